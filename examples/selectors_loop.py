"""Drive the kproto client core with nothing but the standard library.

Bootstraps, reads the cluster metadata and produces one record, using a
``selectors`` loop and non-blocking sockets. This is the whole contract
between a driver and a kproto core (see docs/embedding.md):

    feed what arrived  ->  write what is pending  ->  open/close what was
    asked  ->  sleep until the next deadline or the next input  ->  repeat

Run: ``python examples/selectors_loop.py 127.0.0.1:9092 my-topic hello``
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import sys
import time

from kproto.client import Client, ClientConfig
from kproto.driving import Close, Connect
from kproto.errors import KafkaError, error_from_code
from kproto.protocol.messages import ProduceRequest
from kproto.protocol.messages.produce import PartitionProduceData, TopicProduceData
from kproto.protocol.records import RecordBatchBuilder


class SelectorsDriver:
    """Owns the sockets; moves bytes, commands and time between them and the core."""

    def __init__(self, core: Client) -> None:
        self.core = core
        self.sel = selectors.DefaultSelector()
        self.socks: dict[int, socket.socket] = {}
        self.connecting: set[int] = set()
        self.out: dict[int, bytearray] = {}

    def run_once(self, max_wait: float = 1.0) -> None:
        """One loop turn: commands, writes, wait, reads, timers."""
        core = self.core
        for cmd in core.commands():
            if isinstance(cmd, Connect):
                self._connect(cmd)
            elif isinstance(cmd, Close):
                self._drop(cmd.node_id)
        for node_id, data in core.data_to_send():
            if node_id in self.socks:
                self.out[node_id] += data
                self._watch(node_id)
        timer = core.get_timer()
        now = time.monotonic()
        timeout = max_wait if timer is None else min(max(timer - now, 0.0), max_wait)
        for key, mask in self.sel.select(timeout):
            node_id = key.data
            sock = self.socks.get(node_id)
            if sock is None:
                continue
            now = time.monotonic()
            if node_id in self.connecting:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                self.connecting.discard(node_id)
                if err:
                    self._drop(node_id)
                    core.connection_lost(node_id, OSError(err, os.strerror(err)), now)
                    continue
                core.connection_made(node_id, now)
                self._watch(node_id)
                continue
            if mask & selectors.EVENT_WRITE and self.out[node_id]:
                try:
                    sent = sock.send(self.out[node_id])
                    del self.out[node_id][:sent]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._drop(node_id)
                    core.connection_lost(node_id, exc, now)
                    continue
                self._watch(node_id)
            if mask & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._drop(node_id)
                    core.connection_lost(node_id, exc, now)
                    continue
                if not data:
                    self._drop(node_id)
                    core.connection_lost(node_id, None, now)
                    continue
                core.receive_data(node_id, data, now)
        now = time.monotonic()
        timer = core.get_timer()
        if timer is not None and timer <= now:
            core.handle_timer(now)

    def _connect(self, cmd: Connect) -> None:
        # A real driver resolves names off-loop; this example resolves inline.
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(cmd.host, cmd.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self.core.connection_lost(cmd.node_id, exc, time.monotonic())
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self.core.connection_lost(cmd.node_id, OSError(err, os.strerror(err)), time.monotonic())
            return
        self.socks[cmd.node_id] = sock
        self.out[cmd.node_id] = bytearray()
        self.connecting.add(cmd.node_id)
        self.sel.register(sock, selectors.EVENT_WRITE, cmd.node_id)

    def _watch(self, node_id: int) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out[node_id] else 0)
        self.sel.modify(self.socks[node_id], events, node_id)

    def _drop(self, node_id: int) -> None:
        sock = self.socks.pop(node_id, None)
        self.out.pop(node_id, None)
        self.connecting.discard(node_id)
        if sock is not None:
            self.sel.unregister(sock)
            sock.close()


def produce_one(
    bootstrap: str, topic: str, value: bytes, timeout: float = 30.0, bootstrap_timeout: float = 10.0
) -> tuple[int, int]:
    """Produce ``value`` to ``topic``; return ``(partition, offset)``.

    Raises NoBrokersAvailable if no bootstrap server answers within ``bootstrap_timeout`` seconds.
    """
    start = time.monotonic()
    core = Client(ClientConfig(bootstrap_servers=bootstrap, client_id="selectors-example"), now=start)
    driver = SelectorsDriver(core)
    core.set_bootstrap_deadline(start + bootstrap_timeout)
    core.add_topics([topic], start)
    result: list[object] = []

    def on_produce(response: object, error: KafkaError | None) -> None:
        result.append(error if error is not None else response)

    sent = False
    while not result:
        if time.monotonic() - start > timeout:
            raise TimeoutError("no produce response in time")
        driver.run_once()
        if core.bootstrap_error is not None:
            raise core.bootstrap_error
        leader = core.cluster.leader_for(topic, 0)
        if not sent and leader is not None:
            batch = RecordBatchBuilder()
            batch.append(int(time.time() * 1000), None, value)
            request = ProduceRequest(
                acks=-1,
                timeout_ms=10000,
                topic_data=[
                    TopicProduceData(
                        name=topic, partition_data=[PartitionProduceData(index=0, records=batch.seal())]
                    )
                ],
            )
            core.send(request, now=time.monotonic(), node_id=leader, callback=on_produce)
            sent = True
    core.close(time.monotonic())
    driver.run_once(0)
    outcome = result[0]
    if isinstance(outcome, KafkaError):
        raise outcome
    part = outcome.responses[0].partition_responses[0]  # type: ignore[attr-defined]
    if part.error_code:
        raise error_from_code(part.error_code)
    return part.index, part.base_offset


if __name__ == "__main__":
    args = sys.argv[1:] + ["localhost:9092", "kproto-example", "hello"][len(sys.argv) - 1 :]
    server, topic_name, text = args[:3]
    partition, offset = produce_one(server, topic_name, text.encode())
    print(f"produced to {topic_name}[{partition}] at offset {offset}")

"""kproto on Apache Kafka at the newest API versions both sides know (issue 10; KIP-896, KIP-511).

The broker's ranges come from a raw ApiVersions exchange over a socket;
kproto's from the generated classes lowered by
:data:`kproto.protocol.versions.VERSION_CAPS`. On each transport a
transactional producer (with ``send_offsets_to_transaction``) and a group
consumer (``read_committed``, commit, heartbeats) run their whole workload,
and the version each client last wrote for every API (``metrics()['api-versions']``)
must be the highest version in both ranges. Nothing is hard-coded: on a
newer release the expected versions move with the broker and the schemas.
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _kafka import KafkaCluster, ready_topic

from kproto.consumer.types import OffsetAndMetadata, TopicPartition
from kproto.protocol.headers import decode_response_header, encode_request
from kproto.protocol.messages import REQUEST_TYPES, ApiVersionsRequest, ApiVersionsResponse
from kproto.protocol.versions import max_version

#: The APIs whose negotiated version the issue asks to see, by name.
APIS = (
    "Produce",
    "Fetch",
    "Metadata",
    "FindCoordinator",
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "OffsetCommit",
    "OffsetFetch",
    "InitProducerId",
    "AddPartitionsToTxn",
    "EndTxn",
)
_KEY = {cls.__name__.removesuffix("Request"): key for key, cls in REQUEST_TYPES.items()}


def broker_ranges(host: str, port: int) -> dict[int, tuple[int, int]]:
    """``api_key -> (min, max)`` from an ApiVersions v3 exchange on a fresh socket."""
    request = ApiVersionsRequest(client_software_name="kproto-test", client_software_version="1")
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(encode_request(request, 3, correlation_id=7, client_id="versions-test"))
        size = struct.unpack(">i", _recv(sock, 4))[0]
        frame = memoryview(_recv(sock, size))
    cid, pos = decode_response_header(frame, ApiVersionsRequest.API_KEY, 3)
    assert cid == 7
    response, _ = ApiVersionsResponse.read(frame, pos, 3)
    assert response.error_code == 0
    return {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}


def _recv(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "the broker closed the connection"
        out += chunk
    return out


def expected_versions(ranges: dict[int, tuple[int, int]]) -> dict[str, int]:
    """The highest version of each API in both the broker's range and kproto's."""
    out: dict[str, int] = {}
    for name in APIS:
        cls: Any = REQUEST_TYPES[_KEY[name]]
        lo, hi = ranges[cls.API_KEY]
        version = min(hi, max_version(cls))
        assert version >= max(lo, cls.MIN_VERSION), f"no common {name} version"
        out[name] = version
    return out


async def call(obj: Any, transport: str, name: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(obj, name)(*args, **kwargs)
    if transport != "sync":
        result = await result
    return result


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kafka_negotiates_the_newest_versions_both_sides_know(
    transport: str, kafka: KafkaCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = kafka.bootstrap.rsplit(":", 1)
    want = expected_versions(broker_ranges(host, int(port)))
    topic = f"t-versions-{uuid.uuid4().hex[:10]}"
    ready_topic(kafka, topic)
    group = f"g-versions-{uuid.uuid4().hex[:8]}"
    txn_group = f"g-txn-{uuid.uuid4().hex[:8]}"
    used: dict[str, float] = {}

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=kafka.bootstrap, transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
        ) as p:
            await call(p.p, transport, "init_transactions")
            await call(p.p, transport, "begin_transaction")
            handles = [await p.send(topic, b"v%d" % i, partition=0) for i in range(3)]
            await call(
                p.p,
                transport,
                "send_offsets_to_transaction",
                {TopicPartition(topic, 0): OffsetAndMetadata(3)},
                txn_group,
            )
            await call(p.p, transport, "commit_transaction")
            assert [(await p.get(h)).offset for h in handles] == [0, 1, 2]
            used.update(p.metrics()["api-versions"])
        async with open_consumer(
            transport,
            topic,
            bootstrap_servers=kafka.bootstrap,
            group_id=group,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            heartbeat_interval_ms=100,
        ) as c:
            assert sorted(await c.poll_values(3)) == [b"v0", b"v1", b"v2"]
            await call(c.c, transport, "commit")
            deadline = time.monotonic() + 1.0  # a few heartbeats
            while time.monotonic() < deadline:
                await c.poll(100)
            # 3 records, then maybe past the commit marker
            assert await call(c.c, transport, "committed", TopicPartition(topic, 0)) in (3, 4)
            used.update(c.c.metrics()["api-versions"])

    run(transport, scenario)
    got = {name: int(used[name]) for name in APIS if name in used}
    with capsys.disabled():
        print(f"\n{transport} on Kafka {kafka.version}: " + ", ".join(f"{n} v{v}" for n, v in got.items()))
    assert got == want


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_on_three_kafka_brokers_keeps_its_coordinator_connection(
    transport: str, kafka_cluster: KafkaCluster
) -> None:
    """Issue 10's last symptom, on Apache Kafka: a group consumer on 3 brokers (RF 3, min ISR 2) is
    assigned every partition, and its coordinator connection is opened once and kept (no reconnects)."""
    topic = f"t-three-{uuid.uuid4().hex[:10]}"
    ready_topic(kafka_cluster, topic)
    before = kafka_cluster.accepted("PLAINTEXT")

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=kafka_cluster.bootstrap, acks="all") as p:
            for i in range(8):
                await p.send_and_wait(topic, b"r%d" % i, partition=i % 4)
        opened = kafka_cluster.accepted("PLAINTEXT")
        async with open_consumer(
            transport,
            topic,
            bootstrap_servers=kafka_cluster.bootstrap,
            group_id=f"g-three-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            heartbeat_interval_ms=100,
        ) as c:
            assert sorted(await c.poll_values(8)) == sorted(b"r%d" % i for i in range(8))
            assert {tp.partition for tp in c.c.assignment()} == {0, 1, 2, 3}
            deadline = time.monotonic() + 1.0  # heartbeats to the coordinator
            while time.monotonic() < deadline:
                await c.poll(100)
            assert c.c.metrics()["api-versions"]["Heartbeat"] >= 0
        # bootstrap + at most 3 brokers + the coordinator: nothing was reopened
        assert kafka_cluster.accepted("PLAINTEXT") - opened <= 5

    run(transport, scenario)
    assert kafka_cluster.accepted("PLAINTEXT") > before

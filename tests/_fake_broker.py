"""A scripted Kafka broker on loopback for hostile-broker tests (one thread, ``selectors``).

::

    with FakeBroker() as broker:                       # answers ApiVersions and Metadata
        broker.script[API_PRODUCE] = STALL              # never answer a Produce
        broker.script[API_METADATA] = lambda req: broker.metadata(advertise=[(1, "a" * 64, 9092)])
        KafkaProducer(bootstrap_servers=broker.bootstrap, ...)

It speaks the framing (int32 size prefix) and parses request headers and
bodies with kproto's own generated messages. ``script`` maps an API key to
what to answer; an entry is a callable ``(request) -> reply`` or a reply:

- a generated response object: encoded at the request's version, with the
  right response header;
- ``bytes``: written to the socket as they are (garbage, a bad size prefix);
- :data:`STALL`: no answer, the connection stays open;
- :data:`CLOSE`: the connection is closed.

Without an entry, ApiVersions, Metadata (``topics``, this broker leading
every partition) and Produce (every batch appended: offsets count up per
partition) are answered, and every other request stalls.
Bounds: at most ``MAX_CONNECTIONS`` connections and ``MAX_REQUEST`` bytes per
request (a connection over it is closed).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from typing import Any

from _loopback import LoopbackServer

from kproto.protocol._primitives import read_nullable_string, skip_tagged_fields
from kproto.protocol.messages import REQUEST_FLEXIBLE_VERSIONS, REQUEST_TYPES, RESPONSE_FLEXIBLE_VERSIONS
from kproto.protocol.messages.api_versions import ApiVersion, ApiVersionsResponse
from kproto.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kproto.protocol.messages.produce import PartitionProduceResponse, ProduceResponse, TopicProduceResponse
from kproto.protocol.records import read_batches

__all__ = [
    "API_API_VERSIONS",
    "API_FETCH",
    "API_METADATA",
    "API_PRODUCE",
    "CLOSE",
    "STALL",
    "FakeBroker",
    "FakeRequest",
]

API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA, API_API_VERSIONS = 0, 1, 2, 3, 18
#: Connections at once (a client opens a handful).
MAX_CONNECTIONS = 32
#: Largest request frame accepted (the producer tests send ~1 MB requests).
MAX_REQUEST = 64 * 1024 * 1024

_SIZE = struct.Struct(">i")
_REQ_HEADER = struct.Struct(">hhi")


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: Reply: say nothing, keep the connection open.
STALL = _Sentinel("STALL")
#: Reply: close the connection.
CLOSE = _Sentinel("CLOSE")


class FakeRequest:
    """One parsed request: ``api_key``, ``version``, ``correlation_id``, ``client_id``, ``body``."""

    __slots__ = ("api_key", "body", "client_id", "correlation_id", "size", "version")

    def __init__(self, api_key: int, version: int, correlation_id: int, client_id: str | None, body: Any, size: int):
        self.api_key = api_key
        self.version = version
        self.correlation_id = correlation_id
        self.client_id = client_id
        self.body = body
        #: Bytes of the frame (without the size prefix).
        self.size = size


class _Conn:
    __slots__ = ("inbuf", "out", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.out = bytearray()


class FakeBroker(LoopbackServer):
    """A broker on 127.0.0.1 whose answers a test scripts per API key; see the module docstring.

    Args:
        node_id: This broker's id in the Metadata it serves.
        topics: Topic name -> partition count served by the default Metadata answer.
    """

    def __init__(self, node_id: int = 0, topics: dict[str, int] | None = None) -> None:
        super().__init__("fake-broker")
        self.node_id = node_id
        self.topics = dict(topics or {})
        self.script: dict[int, Any] = {}
        #: Every request parsed, in arrival order.
        self.requests: list[FakeRequest] = []
        #: Request bytes received so far (frames, without size prefixes).
        self.received_bytes = 0
        #: Next offset per (topic, partition) of the default Produce answer.
        self.offsets: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}

    def api_keys(self, api_key: int) -> list[FakeRequest]:
        """The requests received with ``api_key``."""
        with self._lock:
            return [r for r in self.requests if r.api_key == api_key]

    # --- default answers -------------------------------------------------------------

    def api_versions(self, request: FakeRequest | None = None) -> ApiVersionsResponse:
        """Every API kproto can encode, at its full version range."""
        return ApiVersionsResponse(
            api_keys=[
                ApiVersion(api_key=key, min_version=cls.MIN_VERSION, max_version=cls.MAX_VERSION)
                for key, cls in sorted(REQUEST_TYPES.items())
            ]
        )

    def metadata(
        self, request: FakeRequest | None = None, advertise: list[tuple[int, str, int]] | None = None
    ) -> MetadataResponse:
        """Metadata for ``self.topics`` led by ``advertise[0]`` (default: this broker as itself)."""
        brokers = advertise if advertise is not None else [(self.node_id, "127.0.0.1", self.port)]
        leader = brokers[0][0]
        topics = [
            MetadataResponseTopic(
                name=name,
                partitions=[
                    MetadataResponsePartition(
                        partition_index=i, leader_id=leader, replica_nodes=[leader], isr_nodes=[leader]
                    )
                    for i in range(count)
                ],
            )
            for name, count in self.topics.items()
        ]
        return MetadataResponse(
            brokers=[MetadataResponseBroker(node_id=n, host=h, port=p) for n, h, p in brokers],
            cluster_id="fake",
            controller_id=leader,
            topics=topics,
        )

    def produce(self, request: FakeRequest) -> ProduceResponse | _Sentinel:
        """Append every batch (offsets count up per partition); nothing with ``acks=0``."""
        topics = []
        for t in request.body.topic_data:
            parts = []
            for p in t.partition_data:
                key = (t.name, p.index)
                base = self.offsets.get(key, 0)
                count = sum(b.last_offset_delta + 1 for b in read_batches(bytes(p.records)))
                self.offsets[key] = base + count
                parts.append(PartitionProduceResponse(index=p.index, base_offset=base))
            topics.append(TopicProduceResponse(name=t.name, partition_responses=parts))
        return STALL if request.body.acks == 0 else ProduceResponse(responses=topics)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeBroker:
        self._start_thread()
        return self

    def __enter__(self) -> FakeBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the server thread ---------------------------------------------------------------

    def _ready(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            self._read(conn)
        if mask & selectors.EVENT_WRITE and conn.sock in self._conns:
            self._write(conn)

    def _teardown(self) -> None:
        for conn in list(self._conns.values()):
            self._drop(conn)

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        self.accepted += 1
        if len(self._conns) >= MAX_CONNECTIONS:
            sock.close()
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self._conns[sock] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)

    def _drop(self, conn: _Conn) -> None:
        if self._conns.pop(conn.sock, None) is not None:
            self._sel.unregister(conn.sock)
        conn.sock.close()

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.inbuf += data
        while len(conn.inbuf) >= 4:
            (size,) = _SIZE.unpack_from(conn.inbuf, 0)
            if size < 0 or size > MAX_REQUEST:
                self._drop(conn)
                return
            if len(conn.inbuf) < 4 + size:
                return
            frame = bytes(conn.inbuf[4 : 4 + size])
            del conn.inbuf[: 4 + size]
            if not self._answer(conn, frame):
                self._drop(conn)
                return

    def _answer(self, conn: _Conn, frame: bytes) -> bool:
        """Answer one request frame; False: close the connection."""
        view = memoryview(frame)
        api_key, version, corr = _REQ_HEADER.unpack_from(view, 0)
        client_id, pos = read_nullable_string(view, 8)
        flex = REQUEST_FLEXIBLE_VERSIONS.get(api_key)
        if flex is not None and version >= flex:
            pos = skip_tagged_fields(view, pos)
        body, _ = REQUEST_TYPES[api_key].read(view, pos, version)
        request = FakeRequest(api_key, version, corr, client_id, body, len(frame))
        with self._lock:
            self.requests.append(request)
            self.received_bytes += len(frame)
        entry = self.script.get(api_key)
        if entry is None:
            defaults = {API_API_VERSIONS: self.api_versions, API_METADATA: self.metadata, API_PRODUCE: self.produce}
            entry = defaults.get(api_key, STALL)
        reply = entry(request) if callable(entry) else entry
        if reply is STALL:
            return True
        if reply is CLOSE:
            return False
        if isinstance(reply, (bytes, bytearray)):
            conn.out += reply
        else:
            header = corr.to_bytes(4, "big")
            rflex = RESPONSE_FLEXIBLE_VERSIONS.get(api_key)
            if api_key != API_API_VERSIONS and rflex is not None and version >= rflex:
                header += b"\x00"
            payload = header + reply.encode(version)
            conn.out += _SIZE.pack(len(payload)) + payload
        self._write(conn)
        return True

    def _write(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._drop(conn)
            return
        del conn.out[:n]
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._sel.modify(conn.sock, want, conn)


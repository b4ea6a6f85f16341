"""Deterministic simulation of a Kafka cluster for driving kproto cores.

Everything runs in one thread on a simulated clock; a ``random.Random``
seeded per scenario decides latencies, chunking and faults, so a seed
reproduces a run exactly. The brokers speak the real wire protocol through
kproto's generated codec: the core under test sees the same bytes it would
see from Kafka.

Pieces
------

``SimCluster(rng, n_brokers=3, ...)``
    The brokers (``cluster.brokers[node_id]``: ``SimBroker``), the topics
    (auto-created with ``default_partitions`` on a Metadata request), the
    partition leaders and leader epochs, coordinators, producer ids, and a
    log per partition (``cluster.log(topic, p)``: ``SimLog``).
    Faults: ``broker_down(id)`` / ``broker_up(id)``, ``move_leader(t, p[, to])``,
    ``move_coordinator(key_type, key[, to])``, ``inject(api_key, code, count=1,
    append=False)`` (the next ``count`` responses of that API carry ``code``;
    for Produce, ``append=True`` appends the batch anyway, like a timeout after
    the write), ``throttle(node_id, ms)`` (the next response from that broker
    carries ``throttle_time_ms``). Brokers answer Metadata from a view that may
    lag (``metadata_lag``), as followers do, which exercises KIP-320 epochs.

``SimLog``
    ``batches``: ``[(base_offset, RecordBatch)]`` in offset order;
    ``records()``: ``[(offset, key, value)]``; idempotent producer state per
    producer id (epoch, the last five batches' sequence ranges) applied as
    Kafka does: a duplicate of one of the last five batches is acknowledged
    again with its original offset; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER;
    an older epoch is INVALID_PRODUCER_EPOCH.

``SimNetwork(cluster, rng, ...)``
    Carries bytes between the core and the brokers with random latency
    (order kept per connection) and random chunking (partial reads and
    writes). ``cut(node_id)`` drops a connection (mid-request or
    mid-response, whatever is in transit). It also checks, as bytes move,
    that the core writes nothing to a node that is not open and nothing to
    a throttled node before the throttle ends (KIP-219).

``Sim(core, cluster, network)`` and ``Sim.run(until=..., max_time=...)``
    The loop: drain the core's commands and output, advance the clock to
    the next network event or ``core.get_timer()``, deliver it or call
    ``handle_timer``, check the invariants, repeat. ``until`` is a
    predicate checked after every step. ``Sim.at(t, fn)`` schedules a fault
    or a workload action at simulated time ``t``. Violations raise
    ``SimViolation`` with the step and time.

A scenario::

    rng = random.Random(seed)
    cluster = SimCluster(rng, n_brokers=3)
    core = Client(ClientConfig(bootstrap_servers=cluster.bootstrap), now=0.0, rng=random.Random(seed))
    sim = Sim(core, cluster, SimNetwork(cluster, rng))
    sim.at(2.0, lambda: cluster.move_leader("t", 0))
    sim.run(until=lambda: core.cluster.leader_for("t", 0) is not None, max_time=60)

Print the seed on failure (``pytest`` parametrized by seed does it); rerun
one with ``pytest tests/sim -k 'seed-123'``.
"""

from __future__ import annotations

import heapq
import itertools
import random
import struct
from collections.abc import Callable
from typing import Any

from kproto.driving import Close, Connect
from kproto.protocol._primitives import read_nullable_string, skip_tagged_fields
from kproto.protocol.messages import (
    REQUEST_FLEXIBLE_VERSIONS,
    REQUEST_TYPES,
    RESPONSE_FLEXIBLE_VERSIONS,
)
from kproto.protocol.messages.api_versions import ApiVersion, ApiVersionsResponse
from kproto.protocol.messages.find_coordinator import Coordinator, FindCoordinatorResponse
from kproto.protocol.messages.init_producer_id import InitProducerIdResponse
from kproto.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kproto.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kproto.protocol.records import RecordBatch, read_batches

__all__ = ["Sim", "SimBroker", "SimCluster", "SimLog", "SimNetwork", "SimViolation"]

# Wire error codes the sim uses.
NONE = 0
NOT_LEADER_OR_FOLLOWER = 6
LEADER_NOT_AVAILABLE = 5
REQUEST_TIMED_OUT = 7
NETWORK_EXCEPTION = 13
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
UNSUPPORTED_VERSION = 35
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47

API_PRODUCE, API_METADATA, API_FIND_COORDINATOR, API_API_VERSIONS, API_INIT_PRODUCER_ID = 0, 3, 10, 18, 22

_REQ_HEADER = struct.Struct(">hhi")
_BATCH_PRODUCER = struct.Struct(">qhi")  # producer id, epoch, base sequence at batch offset 43


class SimViolation(AssertionError):
    """An invariant broke; the message says which, when, and at which step."""


# --- the cluster --------------------------------------------------------------------


class SimLog:
    """One partition's log with Kafka's idempotent-producer checks."""

    #: Kafka remembers the last 5 batches per producer for duplicate detection.
    DEDUP_WINDOW = 5

    def __init__(self) -> None:
        self.batches: list[tuple[int, RecordBatch]] = []
        self.end_offset = 0
        # producer id -> (epoch, [(first_seq, last_seq, base_offset)], newest last)
        self.producers: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}

    def append(self, batch_bytes: bytes) -> tuple[int, int]:
        """Validate and append one Produce ``records`` blob: ``(error_code, base_offset)``."""
        batches = list(read_batches(batch_bytes))
        if len(batches) != 1 or not isinstance(batches[0], RecordBatch):
            return 87, -1  # INVALID_RECORD: producers send one v2 batch per partition
        batch = batches[0]
        pid, epoch, first_seq = batch.producer_id, batch.producer_epoch, batch.base_sequence
        count = batch.record_count
        if pid >= 0:
            state = self.producers.get(pid)
            last_seq_of_batch = (first_seq + count - 1) % 2**31
            if state is not None:
                known_epoch, recent = state
                if epoch < known_epoch:
                    return INVALID_PRODUCER_EPOCH, -1
                if epoch == known_epoch:
                    for first, last, off in recent:
                        if (first, last) == (first_seq, last_seq_of_batch):
                            return NONE, off  # duplicate: acknowledged again (Kafka >= 1.0)
                    expected = (recent[-1][1] + 1) % 2**31 if recent else 0
                    if first_seq != expected:
                        return OUT_OF_ORDER_SEQUENCE_NUMBER, -1
                elif first_seq != 0:
                    return OUT_OF_ORDER_SEQUENCE_NUMBER, -1  # a new epoch starts at 0
            elif first_seq != 0:
                return OUT_OF_ORDER_SEQUENCE_NUMBER, -1  # unknown producer (KIP-360 simplified)
        base = self.end_offset
        self.batches.append((base, batch))
        self.end_offset += count
        if pid >= 0:
            state = self.producers.get(pid)
            recent = state[1] if state is not None and state[0] == epoch else []
            recent = (recent + [(first_seq, (first_seq + count - 1) % 2**31, base)])[-self.DEDUP_WINDOW :]
            self.producers[pid] = (epoch, recent)
        return NONE, base

    def records(self) -> list[tuple[int, bytes | None, bytes | None]]:
        """Every record as ``(offset, key, value)``."""
        out = []
        for base, batch in self.batches:
            for i, rec in enumerate(batch.records()):
                out.append((base + i, rec.key, rec.value))
        return out


class _Partition:
    def __init__(self, leader: int, now: float) -> None:
        self.history: list[tuple[float, int, int]] = [(now, leader, 0)]  # (since, leader, epoch)
        self.log = SimLog()

    @property
    def leader(self) -> int:
        return self.history[-1][1]

    @property
    def epoch(self) -> int:
        return self.history[-1][2]

    def view(self, at: float) -> tuple[int, int]:
        """(leader, epoch) as a broker whose metadata lags to ``at`` sees it."""
        for since, leader, epoch in reversed(self.history):
            if since <= at:
                return leader, epoch
        return self.history[0][1], self.history[0][2]


class SimBroker:
    """One broker: parses request frames, answers from the cluster state."""

    def __init__(self, cluster: SimCluster, node_id: int, api_versions_max: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.host = f"broker{node_id}.sim"
        self.port = 9092
        self.up = True
        self.api_versions_max = api_versions_max
        self.metadata_lag = 0.0
        self.throttle_next_ms = 0
        self.requests: list[tuple[int, int]] = []  # (api_key, version) in arrival order

    # Which versions this broker serves: the codec's range, ApiVersions maybe less (KIP-511 path).
    def supported(self) -> list[ApiVersion]:
        keys = []
        for key in (API_PRODUCE, API_METADATA, API_FIND_COORDINATOR, API_API_VERSIONS, API_INIT_PRODUCER_ID):
            cls = REQUEST_TYPES[key]
            hi = self.api_versions_max if key == API_API_VERSIONS else cls.MAX_VERSION
            keys.append(ApiVersion(api_key=key, min_version=0, max_version=hi))
        return keys

    def handle(self, frame: bytes, now: float) -> tuple[bytes | None, int]:
        """Answer one request frame (no size prefix): ``(response frame or None, throttle_ms)``."""
        view = memoryview(frame)
        api_key, version, corr = _REQ_HEADER.unpack_from(view, 0)
        pos = 8
        _client_id, pos = read_nullable_string(view, pos)
        flex = REQUEST_FLEXIBLE_VERSIONS.get(api_key)
        if flex is not None and version >= flex:
            pos = skip_tagged_fields(view, pos)
        self.requests.append((api_key, version))
        if api_key == API_API_VERSIONS and version > self.api_versions_max:
            body = ApiVersionsResponse(
                error_code=UNSUPPORTED_VERSION,
                api_keys=[
                    ApiVersion(api_key=API_API_VERSIONS, min_version=0, max_version=self.api_versions_max)
                ],
            ).encode(0)
            return corr.to_bytes(4, "big") + body, 0
        request, end = REQUEST_TYPES[api_key].read(view, pos, version)
        assert end == len(view), f"{len(view) - end} trailing bytes in a request"
        handler = {
            API_API_VERSIONS: self._api_versions,
            API_METADATA: self._metadata,
            API_FIND_COORDINATOR: self._find_coordinator,
            API_PRODUCE: self._produce,
            API_INIT_PRODUCER_ID: self._init_producer_id,
        }[api_key]
        response = handler(request, version, now)
        if response is None:
            return None, 0
        throttle = 0
        if api_key != API_API_VERSIONS and self.throttle_next_ms and hasattr(response, "throttle_time_ms"):
            throttle, self.throttle_next_ms = self.throttle_next_ms, 0
            response.throttle_time_ms = throttle
        header = corr.to_bytes(4, "big")
        rflex = RESPONSE_FLEXIBLE_VERSIONS.get(api_key)
        if api_key != API_API_VERSIONS and rflex is not None and version >= rflex:
            header += b"\x00"
        return header + response.encode(version), throttle

    def _api_versions(self, request: Any, version: int, now: float) -> Any:
        return ApiVersionsResponse(api_keys=self.supported())

    def _metadata(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        names = [t.name for t in request.topics] if request.topics is not None else sorted(c.topics)
        if request.allow_auto_topic_creation:
            for name in names:
                c.create_topic(name, now)
        at = now - self.metadata_lag
        electing = c.take_injected(API_METADATA) == LEADER_NOT_AVAILABLE  # an election in progress
        topics = []
        for name in names:
            parts = c.topics.get(name)
            if parts is None:
                topics.append(MetadataResponseTopic(error_code=3, name=name))
                continue
            plist = []
            for i, part in enumerate(parts):
                leader, epoch = part.view(at)
                live = leader >= 0 and c.brokers[leader].up and not electing
                plist.append(
                    MetadataResponsePartition(
                        error_code=NONE if live else LEADER_NOT_AVAILABLE,
                        partition_index=i,
                        leader_id=leader if live else -1,
                        leader_epoch=epoch,
                        replica_nodes=sorted(c.brokers),
                        isr_nodes=[b for b in sorted(c.brokers) if c.brokers[b].up],
                    )
                )
            topics.append(MetadataResponseTopic(name=name, partitions=plist))
        brokers = [
            MetadataResponseBroker(node_id=b.node_id, host=b.host, port=b.port)
            for b in c.brokers.values()
            if b.up
        ]
        return MetadataResponse(
            brokers=brokers, cluster_id="sim", controller_id=min(c.brokers), topics=topics
        )

    def _find_coordinator(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        keys = request.coordinator_keys if version >= 4 else [request.key]
        results = []
        for key in keys:
            code = c.take_injected(API_FIND_COORDINATOR)
            owner = c.coordinator_of(request.key_type, key)
            if code == NONE and not c.brokers[owner].up:
                code = COORDINATOR_NOT_AVAILABLE
            b = c.brokers[owner]
            if code:
                results.append(Coordinator(key=key, node_id=-1, host="", port=-1, error_code=code))
            else:
                results.append(Coordinator(key=key, node_id=owner, host=b.host, port=b.port))
        if version >= 4:
            return FindCoordinatorResponse(coordinators=results)
        r = results[0]
        return FindCoordinatorResponse(error_code=r.error_code, node_id=r.node_id, host=r.host, port=r.port)

    def _init_producer_id(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        code = c.take_injected(API_INIT_PRODUCER_ID)
        if code:
            return InitProducerIdResponse(error_code=code, producer_id=-1, producer_epoch=-1)
        txn = request.transactional_id
        if txn is not None:
            if c.coordinator_of(1, txn) != self.node_id:
                return InitProducerIdResponse(error_code=NOT_COORDINATOR, producer_id=-1, producer_epoch=-1)
            pid, epoch = c.txn_producers.get(txn, (c.new_producer_id(), -1))
            c.txn_producers[txn] = (pid, epoch + 1)
            return InitProducerIdResponse(producer_id=pid, producer_epoch=epoch + 1)
        return InitProducerIdResponse(producer_id=c.new_producer_id(), producer_epoch=0)

    def _produce(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        injected = c.take_injected(API_PRODUCE)
        code_inj, append_anyway = injected if isinstance(injected, tuple) else (injected, False)
        topics = []
        for t in request.topic_data:
            parts = []
            for p in t.partition_data:
                parts_of_topic = c.topics.get(t.name, [])
                part = parts_of_topic[p.index] if 0 <= p.index < len(parts_of_topic) else None
                if part is None:
                    parts.append(PartitionProduceResponse(index=p.index, error_code=3, base_offset=-1))
                    continue
                if part.leader != self.node_id:
                    parts.append(
                        PartitionProduceResponse(
                            index=p.index, error_code=NOT_LEADER_OR_FOLLOWER, base_offset=-1
                        )
                    )
                    continue
                if code_inj and not append_anyway:
                    parts.append(PartitionProduceResponse(index=p.index, error_code=code_inj, base_offset=-1))
                    continue
                code, base = part.log.append(bytes(p.records))
                if code_inj:
                    code, base = code_inj, -1
                parts.append(PartitionProduceResponse(index=p.index, error_code=code, base_offset=base))
            topics.append(TopicProduceResponse(name=t.name, partition_responses=parts))
        if request.acks == 0:
            return None
        return ProduceResponse(responses=topics)


class SimCluster:
    """Brokers, topics, leaders, coordinators and logs; see the module docstring."""

    def __init__(
        self,
        rng: random.Random,
        n_brokers: int = 3,
        *,
        default_partitions: int = 4,
        old_api_versions: bool = False,
        now: float = 0.0,
    ) -> None:
        self.rng = rng
        self.now = now
        self.brokers = {
            i: SimBroker(self, i, 2 if old_api_versions and i % 2 else ApiVersionsResponse.MAX_VERSION)
            for i in range(1, n_brokers + 1)
        }
        self.default_partitions = default_partitions
        self.topics: dict[str, list[_Partition]] = {}
        self.coordinators: dict[tuple[int, str], int] = {}
        self.txn_producers: dict[str, tuple[int, int]] = {}
        self._next_pid = 1000
        self._injected: dict[int, list[Any]] = {}

    @property
    def bootstrap(self) -> str:
        """A bootstrap string naming the first broker (others are learned from metadata)."""
        b = self.brokers[min(self.brokers)]
        return f"{b.host}:{b.port}"

    def by_address(self, host: str, port: int) -> SimBroker | None:
        return next((b for b in self.brokers.values() if (b.host, b.port) == (host, port)), None)

    def create_topic(self, name: str, now: float, partitions: int | None = None) -> None:
        if name not in self.topics:
            ids = sorted(self.brokers)
            n = partitions or self.default_partitions
            start = sum(name.encode())  # deterministic, spread over brokers
            self.topics[name] = [_Partition(ids[(start + i) % len(ids)], -1e9) for i in range(n)]

    def leader(self, topic: str, partition: int) -> int:
        return self.topics[topic][partition].leader

    def log(self, topic: str, partition: int) -> SimLog:
        return self.topics[topic][partition].log

    def coordinator_of(self, key_type: int, key: str) -> int:
        k = (key_type, key)
        if k not in self.coordinators:
            ids = sorted(self.brokers)
            self.coordinators[k] = ids[sum(key.encode()) % len(ids)]
        return self.coordinators[k]

    def new_producer_id(self) -> int:
        self._next_pid += 1
        return self._next_pid

    # --- faults ------------------------------------------------------------------

    def move_leader(self, topic: str, partition: int, to: int | None = None) -> int:
        part = self.topics[topic][partition]
        choices = [b for b in self.brokers if b != part.leader and self.brokers[b].up] or [part.leader]
        new = to if to is not None else self.rng.choice(sorted(choices))
        part.history.append((self.now, new, part.epoch + 1))
        return new

    def move_coordinator(self, key_type: int, key: str, to: int | None = None) -> int:
        old = self.coordinator_of(key_type, key)
        choices = [b for b in self.brokers if b != old] or [old]
        new = to if to is not None else self.rng.choice(sorted(choices))
        self.coordinators[(key_type, key)] = new
        return new

    def broker_down(self, node_id: int) -> None:
        """Stop a broker; the controller moves its partitions to live brokers."""
        self.brokers[node_id].up = False
        for parts in self.topics.values():
            for i, part in enumerate(parts):
                if part.leader == node_id:
                    live = [b for b in sorted(self.brokers) if self.brokers[b].up]
                    if live:
                        part.history.append((self.now, live[i % len(live)], part.epoch + 1))

    def broker_up(self, node_id: int) -> None:
        self.brokers[node_id].up = True

    def inject(self, api_key: int, code: int, count: int = 1, append: bool = False) -> None:
        """The next ``count`` responses of ``api_key`` carry ``code`` (Produce: per request)."""
        self._injected.setdefault(api_key, []).extend(
            [(code, append) if api_key == API_PRODUCE else code] * count
        )

    def take_injected(self, api_key: int) -> Any:
        queue = self._injected.get(api_key)
        if queue:
            return queue.pop(0)
        return (NONE, False) if api_key == API_PRODUCE else NONE

    def throttle(self, node_id: int, ms: int) -> None:
        self.brokers[node_id].throttle_next_ms = ms


# --- the network ------------------------------------------------------------------------


class _SimConn:
    """One connection attempt's pipes; ``gen`` tells stale events from current ones."""

    def __init__(self, node_id: int, broker: SimBroker | None, gen: int) -> None:
        self.node_id = node_id
        self.broker = broker
        self.gen = gen
        self.open = False  # connection_made delivered
        self.dead = False  # cut, refused or closed: no more bytes flow
        self.core_knows = False  # the core closed it or was told it is gone
        self.to_broker_at = 0.0  # last scheduled delivery, to keep order
        self.to_client_at = 0.0
        self.inbuf = bytearray()  # broker side request bytes
        self.throttle_until = 0.0
        self.cut_mid: str | None = None  # "request" or "response": cut inside the next such frame


def _whole_frames(buf: bytearray) -> bool:
    """True if ``buf`` holds only complete size-prefixed frames."""
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < 4:
            return False
        pos += 4 + int.from_bytes(buf[pos : pos + 4], "big")
    return pos == len(buf)


class SimNetwork:
    """Latency, chunking and cuts between the core and the brokers; see the module docstring."""

    def __init__(
        self,
        cluster: SimCluster,
        rng: random.Random,
        *,
        latency: tuple[float, float] = (0.0005, 0.02),
        max_chunk: int = 64,
        connect_refused_delay: float = 0.01,
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.latency = latency
        self.max_chunk = max_chunk
        self.connect_refused_delay = connect_refused_delay
        self.conns: dict[int, _SimConn] = {}
        self._gen = itertools.count()
        self.sim: Sim | None = None
        #: How many cuts landed inside a frame (a scenario can check faults happened).
        self.mid_frame_cuts = 0

    def _delay(self) -> float:
        lo, hi = self.latency
        return self.rng.uniform(lo, hi)

    def _chunks(self, data: bytes) -> list[bytes]:
        out, pos = [], 0
        while pos < len(data):
            n = self.rng.randint(1, self.max_chunk) if self.rng.random() < 0.5 else len(data) - pos
            out.append(data[pos : pos + n])
            pos += n
        return out

    def command(self, cmd: Connect | Close, now: float) -> None:
        sim = self.sim
        assert sim is not None
        if isinstance(cmd, Connect):
            old = self.conns.get(cmd.node_id)
            if old is not None and not old.core_knows:
                raise SimViolation(f"Connect({cmd.node_id}) while the core still has a connection to it")
            broker = self.cluster.by_address(cmd.host, cmd.port)
            conn = self.conns[cmd.node_id] = _SimConn(cmd.node_id, broker, next(self._gen))
            if broker is None or not broker.up:
                sim.schedule(now + self.connect_refused_delay, self._refused, conn)
            else:
                sim.schedule(now + self._delay(), self._made, conn)
        else:
            conn = self.conns.get(cmd.node_id)
            if conn is not None:
                conn.dead = conn.core_knows = True

    def _refused(self, conn: _SimConn, now: float) -> None:
        if conn.dead:
            return
        conn.dead = conn.core_knows = True
        assert self.sim is not None
        self.sim.core.connection_lost(conn.node_id, ConnectionRefusedError("refused"), now)

    def _made(self, conn: _SimConn, now: float) -> None:
        if conn.dead:
            return
        assert conn.broker is not None and self.sim is not None
        if not conn.broker.up:
            self._refused(conn, now)
            return
        conn.open = True
        self.sim.core.connection_made(conn.node_id, now)

    def client_write(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes from ``core.data_to_send()``; checks they go to an open, unthrottled node."""
        conn = self.conns.get(node_id)
        if conn is None or conn.core_knows or not conn.open:
            raise SimViolation(f"core wrote {len(data)} bytes to node {node_id}, which is not open")
        if conn.dead:
            return  # cut, and the core has not heard yet: the bytes are lost
        if now < conn.throttle_until:
            raise SimViolation(
                f"core wrote to node {node_id} at {now:.4f}, throttled until {conn.throttle_until:.4f}"
            )
        assert self.sim is not None
        for chunk in self._chunks(data):
            at = conn.to_broker_at = max(conn.to_broker_at, now + self._delay())
            self.sim.schedule(at, self._broker_receive, conn, chunk)

    def _broker_receive(self, conn: _SimConn, chunk: bytes, now: float) -> None:
        if conn.dead:
            return
        broker = conn.broker
        assert broker is not None and self.sim is not None
        conn.inbuf += chunk
        if conn.cut_mid == "request" and conn.inbuf and not _whole_frames(conn.inbuf):
            self.cut(conn.node_id, now)  # the broker holds part of a request
            self.mid_frame_cuts += 1
            return
        while len(conn.inbuf) >= 4:
            size = int.from_bytes(conn.inbuf[:4], "big")
            if len(conn.inbuf) < 4 + size:
                break
            frame = bytes(conn.inbuf[4 : 4 + size])
            del conn.inbuf[: 4 + size]
            response, throttle = broker.handle(frame, now)
            if response is None:
                continue
            data = len(response).to_bytes(4, "big") + response
            chunks = self._chunks(data)
            for i, piece in enumerate(chunks):
                at = conn.to_client_at = max(conn.to_client_at, now + self._delay())
                last = i == len(chunks) - 1
                self.sim.schedule(at, self._client_receive, conn, piece, throttle if last else 0, last)

    def _client_receive(self, conn: _SimConn, chunk: bytes, throttle_ms: int, last: bool, now: float) -> None:
        if conn.dead:
            return
        assert self.sim is not None
        if conn.cut_mid == "response" and not last:
            self.sim.core.receive_data(conn.node_id, chunk, now)
            self.cut(conn.node_id, now)  # the client holds part of a response
            self.mid_frame_cuts += 1
            return
        if throttle_ms:
            conn.throttle_until = now + throttle_ms / 1000
        self.sim.core.receive_data(conn.node_id, chunk, now)

    def cut(self, node_id: int, now: float) -> bool:
        """Drop the connection to ``node_id`` (whatever is in transit is lost)."""
        conn = self.conns.get(node_id)
        if conn is None or conn.dead:
            return False
        conn.dead = True
        assert self.sim is not None
        if conn.open:
            self.sim.schedule(now + self._delay(), self._lost, conn)
        else:
            self.sim.schedule(now + self._delay(), self._lost_before_open, conn)
        return True

    def _lost(self, conn: _SimConn, now: float) -> None:
        assert self.sim is not None
        if self.conns.get(conn.node_id) is conn and not conn.core_knows:
            conn.core_knows = True
            self.sim.core.connection_lost(conn.node_id, ConnectionResetError("cut by the sim"), now)

    def _lost_before_open(self, conn: _SimConn, now: float) -> None:
        assert self.sim is not None
        if self.conns.get(conn.node_id) is conn and not conn.core_knows:
            conn.core_knows = True
            self.sim.core.connection_lost(conn.node_id, ConnectionRefusedError("cut before open"), now)

    def cut_mid_frame(self, node_id: int, where: str) -> bool:
        """Cut ``node_id``'s connection inside its next ``"request"`` or ``"response"`` frame."""
        conn = self.conns.get(node_id)
        if conn is None or conn.dead:
            return False
        conn.cut_mid = where
        self.max_chunk = min(self.max_chunk, 16)  # make sure frames arrive in pieces
        return True

    def cut_broker(self, broker_id: int, now: float) -> None:
        """Drop every connection that goes to ``broker_id`` (coordinator connections too)."""
        for node_id, conn in list(self.conns.items()):
            if conn.broker is not None and conn.broker.node_id == broker_id:
                self.cut(node_id, now)

    def open_nodes(self) -> list[int]:
        return [n for n, c in self.conns.items() if c.open and not c.dead]


# --- the loop --------------------------------------------------------------------------------


class Sim:
    """Runs a core against a SimCluster through a SimNetwork on a simulated clock."""

    def __init__(self, core: Any, cluster: SimCluster, network: SimNetwork, *, now: float = 0.0) -> None:
        self.core = core
        self.cluster = cluster
        self.network = network
        network.sim = self
        self.now = now
        cluster.now = now
        self.steps = 0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        #: ``(time, command)`` for every command the core gave.
        self.commands_seen: list[tuple[float, Connect | Close]] = []
        #: Called after every step (scenario invariants).
        self.on_step: Callable[[], None] | None = None

    def schedule(self, at: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args, now)`` at simulated time ``at``."""
        heapq.heappush(self._queue, (at, next(self._seq), fn, args))

    def at(self, at: float, fn: Callable[[], None]) -> None:
        """Call ``fn()`` at simulated time ``at`` (faults, workload)."""
        self.schedule(at, self._action, fn)

    @staticmethod
    def _action(fn: Callable[[], None], now: float) -> None:
        fn()

    def clear_actions(self) -> None:
        """Drop every pending ``at`` action (network events stay)."""
        self._queue = [e for e in self._queue if e[2] is not self._action]
        heapq.heapify(self._queue)

    def _flush(self) -> None:
        core = self.core
        while True:
            cmds = core.commands()
            for cmd in cmds:
                self.commands_seen.append((self.now, cmd))
                self.network.command(cmd, self.now)
            out = core.data_to_send()
            for node_id, data in out:
                self.network.client_write(node_id, data, self.now)
            if not cmds and not out:
                return

    def step(self) -> bool:
        """Advance to the next event or timer and process it; False when nothing is left."""
        self._flush()
        timer = self.core.get_timer()
        if timer is not None and timer < self.now:
            raise SimViolation(f"step {self.steps}: get_timer() {timer} is before now {self.now}")
        next_event = self._queue[0][0] if self._queue else None
        if next_event is None and timer is None:
            return False
        self.steps += 1
        if timer is not None and (next_event is None or timer <= next_event):
            self.now = self.cluster.now = max(self.now, timer)
            self.core.handle_timer(self.now)
            after = self.core.get_timer()
            if after is not None and after < self.now:
                raise SimViolation(
                    f"step {self.steps}: get_timer() {after} is in the past after handle_timer({self.now})"
                )
        else:
            at, _, fn, args = heapq.heappop(self._queue)
            self.now = self.cluster.now = max(self.now, at)
            fn(*args, self.now)
        self._flush()
        return True

    def run(
        self, *, until: Callable[[], bool] | None = None, max_time: float = 60.0, max_steps: int = 200_000
    ) -> bool:
        """Step until ``until()`` holds (True), time passes ``max_time`` or nothing is left (False)."""
        while self.steps < max_steps:
            if until is not None and until():
                return True
            next_time = self._next_time()
            if next_time is None or next_time > max_time:
                return until() if until is not None else False
            self.step()
            if self.on_step is not None:
                self.on_step()
        raise SimViolation(f"no progress after {max_steps} steps (livelock?) at t={self.now}")

    def _next_time(self) -> float | None:
        self._flush()
        timer = self.core.get_timer()
        nxt = self._queue[0][0] if self._queue else None
        if timer is None:
            return nxt
        return timer if nxt is None else min(timer, nxt)

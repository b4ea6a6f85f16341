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
    ``replace_brokers(keep_ids=False)`` (the whole cluster moves to new
    brokers at new addresses; with ``add_alias()``, a bootstrap name that
    always reaches a live broker, as DNS or a load balancer would),
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

``SimGroup`` (``cluster.group(group_id)``)
    A classic-protocol group coordinator on whichever broker
    ``coordinator_of(0, group)`` names (others answer NOT_COORDINATOR):
    JoinGroup (MEMBER_ID_REQUIRED first, KIP-394; answered when the rebalance
    completes), SyncGroup (answered when the leader's arrives), Heartbeat
    (REBALANCE_IN_PROGRESS during a rebalance, ILLEGAL_GENERATION,
    UNKNOWN_MEMBER_ID), LeaveGroup, OffsetCommit, OffsetFetch; sessions and
    rebalance timeouts expire on ``cluster.tick(now)``; ``move_coordinator``
    reloads the group as of its last stable generation. Brokers also serve
    Fetch (no sessions; an empty fetch waits ``max_wait_ms``; leader and
    leader-epoch checks) and ListOffsets. Delayed answers are ``Deferred``:
    the connection is muted until they resolve, as Kafka does.

Racks (KIP-392): ``cluster.racks = {node_id: rack}`` puts each broker in a
    rack (Metadata says so) and turns on what Kafka does with
    ``replica.selector.class=RackAwareReplicaSelector``: a leader asked by a
    Fetch v11+ with a ``rack_id`` answers a partition with no records and
    ``preferred_read_replica`` when an in-sync replica in that rack is not
    itself, and every replica serves Fetch v11+ (up to its own log end,
    ``follower_end``; beyond it OFFSET_OUT_OF_RANGE). Faults:
    ``leave_isr(t, p, node)`` (Metadata and the selector drop it; it still
    serves), ``lag_follower(t, p, node, end)``, and ``fetch_errors[node]``
    (codes the next partition answers from that broker carry).

Transactions (KIP-98): InitProducerId with a transactional id bumps its
    epoch (aborting what the previous epoch left open); AddPartitionsToTxn,
    AddOffsetsToTxn, TxnOffsetCommit and EndTxn on whichever broker
    ``coordinator_of(1, id)`` names (epoch-checked: PRODUCER_FENCED). Every
    transactional batch appended is recorded in ``cluster.txn_batches``
    (``(topic, partition, base offset) -> True/False`` once committed or
    aborted, None while open); one to a partition not added to its
    transaction is a ``SimViolation``. Offsets are written to the group
    (``cluster.group(g).offsets``) only when the transaction commits.

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

``MultiSim(cluster, rng)`` drives several cores (a consumer group), each
through its own SimNetwork: ``add(name, core)``, ``crash(name)``,
``remove(name)``; it ticks the cluster's group coordinators.

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
from kproto.protocol.messages import fetch as _fetch
from kproto.protocol.messages import join_group as _jg
from kproto.protocol.messages import leave_group as _lg
from kproto.protocol.messages import list_offsets as _lo
from kproto.protocol.messages import offset_commit as _oc
from kproto.protocol.messages import offset_fetch as _of
from kproto.protocol.messages.add_offsets_to_txn import AddOffsetsToTxnResponse
from kproto.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopicResult,
)
from kproto.protocol.messages.api_versions import ApiVersion, ApiVersionsResponse
from kproto.protocol.messages.end_txn import EndTxnResponse
from kproto.protocol.messages.fetch import FetchResponse
from kproto.protocol.messages.find_coordinator import Coordinator, FindCoordinatorResponse
from kproto.protocol.messages.heartbeat import HeartbeatResponse
from kproto.protocol.messages.init_producer_id import InitProducerIdResponse
from kproto.protocol.messages.join_group import JoinGroupResponse
from kproto.protocol.messages.leave_group import LeaveGroupResponse
from kproto.protocol.messages.list_offsets import ListOffsetsResponse
from kproto.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)
from kproto.protocol.messages.offset_commit import OffsetCommitResponse
from kproto.protocol.messages.offset_fetch import OffsetFetchResponse
from kproto.protocol.messages.produce import (
    PartitionProduceResponse,
    ProduceResponse,
    TopicProduceResponse,
)
from kproto.protocol.messages.sync_group import SyncGroupResponse
from kproto.protocol.messages.txn_offset_commit import (
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)
from kproto.protocol.records import RecordBatch, read_batches

__all__ = [
    "Deferred",
    "MultiSim",
    "Sim",
    "SimBroker",
    "SimCluster",
    "SimGroup",
    "SimLog",
    "SimNetwork",
    "SimViolation",
]

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
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
REBALANCE_IN_PROGRESS = 27
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
MEMBER_ID_REQUIRED = 79
PRODUCER_FENCED = 90

API_PRODUCE, API_METADATA, API_FIND_COORDINATOR, API_API_VERSIONS, API_INIT_PRODUCER_ID = 0, 3, 10, 18, 22
API_FETCH, API_LIST_OFFSETS, API_OFFSET_COMMIT, API_OFFSET_FETCH = 1, 2, 8, 9
API_JOIN_GROUP, API_HEARTBEAT, API_LEAVE_GROUP, API_SYNC_GROUP = 11, 12, 13, 14
API_ADD_PARTITIONS_TO_TXN, API_ADD_OFFSETS_TO_TXN, API_END_TXN, API_TXN_OFFSET_COMMIT = 24, 25, 26, 28
_SERVED = (
    API_PRODUCE,
    API_FETCH,
    API_LIST_OFFSETS,
    API_METADATA,
    API_OFFSET_COMMIT,
    API_OFFSET_FETCH,
    API_FIND_COORDINATOR,
    API_JOIN_GROUP,
    API_HEARTBEAT,
    API_LEAVE_GROUP,
    API_SYNC_GROUP,
    API_API_VERSIONS,
    API_INIT_PRODUCER_ID,
    API_ADD_PARTITIONS_TO_TXN,
    API_ADD_OFFSETS_TO_TXN,
    API_END_TXN,
    API_TXN_OFFSET_COMMIT,
)

_REQ_HEADER = struct.Struct(">hhi")
_BATCH_PRODUCER = struct.Struct(">qhi")  # producer id, epoch, base sequence at batch offset 43


class SimViolation(AssertionError):
    """An invariant broke; the message says which, when, and at which step."""


class Deferred:
    """A response a broker gives later (JoinGroup, SyncGroup, a long-poll Fetch).

    The connection it came on is muted until it resolves, as Kafka mutes a
    channel with a request in progress, so responses stay in order.
    """

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.sink: Callable[[Any], None] | None = None

    def resolve(self, value: Any) -> None:
        if self.done:
            return
        self.done, self.value = True, value
        if self.sink is not None:
            self.sink(value)

    def then(self, sink: Callable[[Any], None]) -> None:
        self.sink = sink
        if self.done:
            sink(self.value)


# --- the cluster --------------------------------------------------------------------


class SimLog:
    """One partition's log with Kafka's idempotent-producer checks."""

    #: Kafka remembers the last 5 batches per producer for duplicate detection.
    DEDUP_WINDOW = 5

    def __init__(self) -> None:
        self.batches: list[tuple[int, RecordBatch]] = []
        #: Each batch's bytes as a Fetch returns them (base offset stamped in).
        self.raw: list[bytes] = []
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
        stamped = bytearray(batch._buf[batch._start : batch._end])
        stamped[0:8] = base.to_bytes(8, "big", signed=True)
        self.raw.append(bytes(stamped))
        self.end_offset += count
        if pid >= 0:
            state = self.producers.get(pid)
            recent = state[1] if state is not None and state[0] == epoch else []
            recent = (recent + [(first_seq, (first_seq + count - 1) % 2**31, base)])[-self.DEDUP_WINDOW :]
            self.producers[pid] = (epoch, recent)
        return NONE, base

    def read(self, offset: int, max_bytes: int, end: int | None = None) -> bytes:
        """Whole batches holding ``offset`` and after, up to ``max_bytes`` (at least one batch),
        and only those wholly before ``end`` if given (a lagging follower's log)."""
        out = bytearray()
        for (base, batch), raw in zip(self.batches, self.raw, strict=True):
            if base + batch.last_offset_delta < offset:
                continue
            if end is not None and base + batch.last_offset_delta >= end:
                break
            if out and len(out) + len(raw) > max_bytes:
                break
            out += raw
        return bytes(out)

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
        #: Replicas out of the ISR (``leave_isr``), and followers whose log ends early.
        self.out_of_isr: set[int] = set()
        self.follower_end: dict[int, int] = {}

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


class BrokerQuirks:
    """How an independent Kafka-compatible broker differs from Apache Kafka (issue 10); off by default."""

    def __init__(self) -> None:
        #: Body answered to an ApiVersions version above ``api_versions_max`` (None: KIP-511's v0 body).
        self.api_versions_refusal: bytes | None = None
        #: Hang up after answering such an ApiVersions (Kafka keeps the connection).
        self.close_after_refusal = False
        #: Appended to every flexible response body except ApiVersions.
        self.trailing_bytes = b""
        #: Host name FindCoordinator answers instead of the one in Metadata (both reach the broker).
        self.coordinator_host: str | None = None


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
        self.quirks = BrokerQuirks()
        #: Set by ``handle`` when the broker closes the connection once its answer is out.
        self.close_after_answer = False
        #: Fetch answers that named a preferred read replica (KIP-392), and record bytes
        #: served as leader ([0]) and as follower ([1]).
        self.redirects = 0
        self.served = [0, 0]
        #: Record bytes served as a follower, per (topic, partition).
        self.served_as_follower: dict[tuple[str, int], int] = {}
        #: More APIs this broker serves: api_key -> ``handler(request, version, now)``
        #: (the admin scenarios install theirs; see ``tests/sim/admin_broker.py``).
        self.extra_handlers: dict[int, Callable[[Any, int, float], Any]] = {}

    # Which versions this broker serves: the codec's range, ApiVersions maybe less (KIP-511 path).
    def supported(self) -> list[ApiVersion]:
        keys = []
        for key in (*_SERVED, *self.extra_handlers):
            cls = REQUEST_TYPES[key]
            hi = self.api_versions_max if key == API_API_VERSIONS else cls.MAX_VERSION
            keys.append(ApiVersion(api_key=key, min_version=cls.MIN_VERSION, max_version=hi))
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
        if api_key == API_API_VERSIONS and version > self.api_versions_max and self.quirks.api_versions_refusal:
            self.close_after_answer = self.quirks.close_after_refusal
            return corr.to_bytes(4, "big") + self.quirks.api_versions_refusal, 0
        if api_key == API_API_VERSIONS and version > self.api_versions_max:
            self.close_after_answer = self.quirks.close_after_refusal
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
            API_FETCH: self._fetch,
            API_LIST_OFFSETS: self._list_offsets,
            API_JOIN_GROUP: self._group_call,
            API_SYNC_GROUP: self._group_call,
            API_HEARTBEAT: self._group_call,
            API_LEAVE_GROUP: self._group_call,
            API_OFFSET_COMMIT: self._group_call,
            API_OFFSET_FETCH: self._group_call,
            API_ADD_PARTITIONS_TO_TXN: self._add_partitions_to_txn,
            API_ADD_OFFSETS_TO_TXN: self._add_offsets_to_txn,
            API_END_TXN: self._end_txn,
            API_TXN_OFFSET_COMMIT: self._txn_offset_commit,
        }.get(api_key) or self.extra_handlers[api_key]
        self._api_key = api_key
        response = handler(request, version, now)
        if response is None:
            return None, 0

        def encode(response: Any) -> bytes:
            header = corr.to_bytes(4, "big")
            rflex = RESPONSE_FLEXIBLE_VERSIONS.get(api_key)
            if api_key != API_API_VERSIONS and rflex is not None and version >= rflex:
                header += b"\x00"
                return header + response.encode(version) + self.quirks.trailing_bytes
            return header + response.encode(version)

        if isinstance(response, Deferred):
            framed = Deferred()
            response.then(lambda r: framed.resolve(encode(r)))
            return framed, 0  # type: ignore[return-value]
        throttle = 0
        if api_key != API_API_VERSIONS and self.throttle_next_ms and hasattr(response, "throttle_time_ms"):
            throttle, self.throttle_next_ms = self.throttle_next_ms, 0
            response.throttle_time_ms = throttle
        return encode(response), throttle

    def _api_versions(self, request: Any, version: int, now: float) -> Any:
        return ApiVersionsResponse(api_keys=self.supported())

    def _metadata(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        names = [t.name for t in request.topics] if request.topics is not None else sorted(c.topics)
        if request.allow_auto_topic_creation:
            for name in names:
                c.create_topic(name, now)
        at = now - self.metadata_lag
        injected = c.take_injected(API_METADATA)
        if injected not in (None, NONE, LEADER_NOT_AVAILABLE) and version >= 13:  # a top-level error (KIP-1102)
            return MetadataResponse(error_code=injected)
        electing = injected == LEADER_NOT_AVAILABLE  # an election in progress
        topics = []
        for name in names:
            parts = c.topics.get(name)
            if parts is None:
                topics.append(MetadataResponseTopic(error_code=3, name=name))
                continue
            plist = []
            for i, part in enumerate(parts):
                leader, epoch = part.view(at)
                live = leader >= 0 and leader in c.brokers and c.brokers[leader].up and not electing
                plist.append(
                    MetadataResponsePartition(
                        error_code=NONE if live else LEADER_NOT_AVAILABLE,
                        partition_index=i,
                        leader_id=leader if live else -1,
                        leader_epoch=epoch,
                        replica_nodes=sorted(c.brokers),
                        isr_nodes=[b for b in sorted(c.brokers) if c.brokers[b].up and b not in part.out_of_isr],
                    )
                )
            topics.append(MetadataResponseTopic(name=name, partitions=plist))
        brokers = [
            MetadataResponseBroker(node_id=b.node_id, host=b.host, port=b.port, rack=c.racks.get(b.node_id))
            for b in c.brokers.values()
            if b.up
        ]
        return MetadataResponse(
            brokers=brokers,
            cluster_id="sim",
            controller_id=min(c.brokers) if c.controller_id is None else c.controller_id,
            topics=topics,
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
                host = b.quirks.coordinator_host or b.host
                results.append(Coordinator(key=key, node_id=owner, host=host, port=b.port))
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
            open_txn = c.transactions.pop(txn, None)
            if open_txn is not None:  # a new epoch aborts what the old one left open
                c.end_transaction(open_txn, committed=False)
            return InitProducerIdResponse(producer_id=pid, producer_epoch=epoch + 1)
        return InitProducerIdResponse(producer_id=c.new_producer_id(), producer_epoch=0)

    def _preferred_replica(self, part: _Partition, rack: str, offset: int) -> int:
        """KIP-392, as Kafka's RackAwareReplicaSelector: a live in-sync replica in ``rack``
        whose log holds ``offset`` (the leader if it is one), else -1."""
        c = self.cluster
        in_rack = [b for b in sorted(c.brokers)
                   if c.racks.get(b) == rack and c.brokers[b].up and b not in part.out_of_isr
                   and part.follower_end.get(b, part.log.end_offset) >= offset]
        if not in_rack or self.node_id in in_rack:
            return -1
        return in_rack[0]

    def _fetch_answer(self, request: Any, version: int = 0) -> tuple[Any, bool]:
        c = self.cluster
        topics, any_data = [], False
        # Kafka serves a consumer's Fetch v11+ from any replica (FetchParams.fetchOnlyLeader).
        follower_ok = bool(c.racks) and version >= 11
        for t in request.topics:
            parts = []
            for p in t.partitions:
                plist = c.topics.get(t.topic, [])
                part = plist[p.partition] if 0 <= p.partition < len(plist) else None
                if part is None:
                    parts.append(
                        _fetch.PartitionData(
                            partition_index=p.partition, error_code=UNKNOWN_TOPIC_OR_PARTITION
                        )
                    )
                    continue
                code = NONE
                leader = part.leader == self.node_id
                end = part.log.end_offset if leader else part.follower_end.get(self.node_id, part.log.end_offset)
                queued = c.fetch_errors.get(self.node_id)
                if queued:
                    code = queued.pop(0)
                elif not leader and not follower_ok:
                    code = NOT_LEADER_OR_FOLLOWER
                elif leader and p.current_leader_epoch >= 0 and p.current_leader_epoch > part.epoch:
                    code = UNKNOWN_LEADER_EPOCH
                elif leader and p.current_leader_epoch >= 0 and p.current_leader_epoch < part.epoch:
                    code = FENCED_LEADER_EPOCH
                elif not 0 <= p.fetch_offset <= end:
                    code = OFFSET_OUT_OF_RANGE
                if code:
                    parts.append(_fetch.PartitionData(partition_index=p.partition, error_code=code))
                    continue
                preferred = self._preferred_replica(part, request.rack_id, p.fetch_offset) if leader and follower_ok else -1
                if preferred >= 0:
                    # Kafka's ReplicaManager: no records, only where to read them.
                    parts.append(_fetch.PartitionData(partition_index=p.partition, high_watermark=end,
                                                      last_stable_offset=end, log_start_offset=0,
                                                      preferred_read_replica=preferred))
                    any_data = True  # answered at once, as Kafka does
                    self.redirects += 1
                    continue
                data = part.log.read(p.fetch_offset, p.partition_max_bytes, None if leader else end)
                any_data = any_data or bool(data)
                self.served[not leader] += len(data)
                if data and not leader:
                    key = (t.topic, p.partition)
                    self.served_as_follower[key] = self.served_as_follower.get(key, 0) + len(data)
                parts.append(
                    _fetch.PartitionData(
                        partition_index=p.partition,
                        high_watermark=end,
                        last_stable_offset=end,
                        log_start_offset=0,
                        records=data,
                    )
                )
            topics.append(_fetch.FetchableTopicResponse(topic=t.topic, partitions=parts))
        return FetchResponse(session_id=0, responses=topics), any_data

    def _fetch(self, request: Any, version: int, now: float) -> Any:
        """Fetch without sessions (session id 0: declined); a fetch with no data waits ``max_wait_ms``."""
        response, any_data = self._fetch_answer(request, version)
        sim = self.cluster.sim
        if any_data or request.max_wait_ms <= 0 or sim is None:
            return response
        later = Deferred()
        sim.schedule(
            now + request.max_wait_ms / 1000, lambda now: later.resolve(self._fetch_answer(request, version)[0])
        )
        return later

    def _list_offsets(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                plist = c.topics.get(t.name, [])
                part = plist[p.partition_index] if 0 <= p.partition_index < len(plist) else None
                if part is None or part.leader != self.node_id:
                    code = UNKNOWN_TOPIC_OR_PARTITION if part is None else NOT_LEADER_OR_FOLLOWER
                    parts.append(
                        _lo.ListOffsetsPartitionResponse(
                            partition_index=p.partition_index, error_code=code, offset=-1, timestamp=-1
                        )
                    )
                    continue
                end = part.log.end_offset
                off = 0 if p.timestamp == -2 else end
                if p.timestamp >= 0:
                    off = end
                    for base, batch in part.log.batches:
                        if batch.max_timestamp >= p.timestamp:
                            off = base
                            break
                parts.append(
                    _lo.ListOffsetsPartitionResponse(
                        partition_index=p.partition_index,
                        offset=off,
                        timestamp=-1,
                        leader_epoch=part.epoch,
                    )
                )
            topics.append(_lo.ListOffsetsTopicResponse(name=t.name, partitions=parts))
        return ListOffsetsResponse(topics=topics)

    def _group_call(self, request: Any, version: int, now: float) -> Any:
        group = self.cluster.group(request.group_id)
        owner = self.cluster.coordinator_of(0, request.group_id)
        return group.handle(self._api_key, request, version, now, owner == self.node_id)

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
                if code == NONE:
                    c.produced(request.transactional_id, t.name, p.index, base, part.log)
                if code_inj:
                    code, base = code_inj, -1
                parts.append(PartitionProduceResponse(index=p.index, error_code=code, base_offset=base))
            topics.append(TopicProduceResponse(name=t.name, partition_responses=parts))
        if request.acks == 0:
            return None
        return ProduceResponse(responses=topics)

    # --- the transaction coordinator (KIP-98) ---------------------------------------------

    def _txn_check(self, txn_id: str, pid: int, epoch: int) -> int:
        """NONE, or the error a coordinator answers a transactional request with."""
        c = self.cluster
        code = c.take_injected(self._api_key)
        if code:
            return int(code)
        if c.coordinator_of(1, txn_id) != self.node_id:
            return NOT_COORDINATOR
        known = c.txn_producers.get(txn_id)
        if known is None or known[0] != pid:
            return 49  # INVALID_PRODUCER_ID_MAPPING
        if epoch != known[1]:
            return PRODUCER_FENCED
        return NONE

    def _add_partitions_to_txn(self, request: Any, version: int, now: float) -> Any:
        assert version <= 3, "clients use AddPartitionsToTxn v0-3"
        txn_id = request.v3_and_below_transactional_id
        code = self._txn_check(txn_id, request.v3_and_below_producer_id, request.v3_and_below_producer_epoch)
        if code == NONE:
            txn = self.cluster.transaction(txn_id, request.v3_and_below_producer_id)
            for t in request.v3_and_below_topics:
                for p in t.partitions:
                    txn.partitions.add((t.name, p))
        return AddPartitionsToTxnResponse(
            results_by_topic_v3_and_below=[
                AddPartitionsToTxnTopicResult(
                    name=t.name,
                    results_by_partition=[
                        AddPartitionsToTxnPartitionResult(partition_index=p, partition_error_code=code)
                        for p in t.partitions
                    ],
                )
                for t in request.v3_and_below_topics
            ]
        )

    def _add_offsets_to_txn(self, request: Any, version: int, now: float) -> Any:
        code = self._txn_check(request.transactional_id, request.producer_id, request.producer_epoch)
        if code == NONE:
            self.cluster.transaction(request.transactional_id, request.producer_id).groups.add(
                request.group_id
            )
        return AddOffsetsToTxnResponse(error_code=code)

    def _txn_offset_commit(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        code = c.take_injected(API_TXN_OFFSET_COMMIT)
        if not code and c.coordinator_of(0, request.group_id) != self.node_id:
            code = NOT_COORDINATOR
        txn = c.transactions.get(request.transactional_id)
        if not code and (txn is None or request.group_id not in txn.groups):
            raise SimViolation(f"TxnOffsetCommit for {request.group_id!r} before AddOffsetsToTxn")
        if not code:
            assert txn is not None
            for t in request.topics:
                for p in t.partitions:
                    txn.offsets[(request.group_id, t.name, p.partition_index)] = p.committed_offset
        return TxnOffsetCommitResponse(
            topics=[
                TxnOffsetCommitResponseTopic(
                    name=t.name,
                    partitions=[
                        TxnOffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ]
        )

    def _end_txn(self, request: Any, version: int, now: float) -> Any:
        c = self.cluster
        code = self._txn_check(request.transactional_id, request.producer_id, request.producer_epoch)
        if code == NONE:
            txn = c.transactions.pop(request.transactional_id, None)
            if txn is None:
                # A retried EndTxn whose first answer was lost: Kafka answers the
                # same outcome again (and INVALID_TXN_STATE for the other one).
                last = c.txn_ended.get(request.transactional_id)
                if last is None or last != request.committed:
                    code = 48  # INVALID_TXN_STATE
            else:
                c.end_transaction(txn, committed=request.committed)
        return EndTxnResponse(error_code=code)


class SimTxn:
    """One open transaction on the simulated coordinator."""

    def __init__(self, txn_id: str, pid: int) -> None:
        self.txn_id = txn_id
        self.pid = pid
        self.partitions: set[tuple[str, int]] = set()
        self.groups: set[str] = set()
        #: (group, topic, partition) -> offset, committed with the transaction.
        self.offsets: dict[tuple[str, str, int], int] = {}
        #: Batches written: (topic, partition, base offset).
        self.batches: list[tuple[str, int, int]] = []


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
        #: Open transactions by transactional id; outcomes of ended ones.
        self.transactions: dict[str, SimTxn] = {}
        self.txn_ended: dict[str, bool] = {}
        #: (topic, partition, base offset) of every transactional batch -> True/False once
        #: committed/aborted (None while open).
        self.txn_batches: dict[tuple[str, int, int], bool | None] = {}
        self._next_pid = 1000
        self._injected: dict[int, list[Any]] = {}
        #: The Sim driving this cluster (set by Sim): brokers schedule delayed answers through it.
        self.sim: Sim | None = None
        self.groups: dict[str, SimGroup] = {}
        #: Addresses that reach the lowest live broker, whichever it is (see ``add_alias``).
        self.aliases: set[tuple[str, int]] = set()
        self._generation = 0
        #: The controller id Metadata names (None: the lowest broker id).
        self.controller_id: int | None = None
        #: Broker racks (KIP-392; see the module docstring): empty turns follower fetching off.
        self.racks: dict[int, str] = {}
        #: Partition error codes the next Fetch answers of a broker carry, in turn.
        self.fetch_errors: dict[int, list[int]] = {}

    def group(self, group_id: str) -> SimGroup:
        if group_id not in self.groups:
            self.groups[group_id] = SimGroup(self, group_id)
        return self.groups[group_id]

    def tick(self, now: float) -> None:
        """Expire sessions and rebalance timeouts (the Sim calls this periodically)."""
        for g in list(self.groups.values()):
            g.tick(now)

    @property
    def bootstrap(self) -> str:
        """A bootstrap string: the first alias (``add_alias``) if any, else the first broker
        (others are learned from metadata)."""
        if self.aliases:
            host, port = min(self.aliases)
            return f"{host}:{port}"
        b = self.brokers[min(self.brokers)]
        return f"{b.host}:{b.port}"

    def by_address(self, host: str, port: int) -> SimBroker | None:
        found = next(
            (b for b in self.brokers.values() if host in (b.host, b.quirks.coordinator_host) and b.port == port),
            None,
        )
        if found is None and (host, port) in self.aliases:
            live = [i for i in sorted(self.brokers) if self.brokers[i].up]
            found = self.brokers[live[0]] if live else None
        return found

    def add_alias(self, host: str = "bootstrap.sim", port: int = 9092) -> str:
        """An address that reaches whichever broker is live (a DNS name or load balancer); returns it."""
        self.aliases.add((host, port))
        return f"{host}:{port}"

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

    # --- transactions ------------------------------------------------------------

    def transaction(self, txn_id: str, pid: int) -> SimTxn:
        txn = self.transactions.get(txn_id)
        if txn is None:
            txn = self.transactions[txn_id] = SimTxn(txn_id, pid)
        return txn

    def produced(self, txn_id: str | None, topic: str, partition: int, base: int, log: SimLog) -> None:
        """A Produce was appended (or acknowledged as a duplicate) at ``base``."""
        batch = next((b for off, b in log.batches if off == base), None)
        if batch is None or not batch.attributes & 0x10:
            if txn_id is not None:
                raise SimViolation("a Produce with a transactional id carried a non-transactional batch")
            return
        if (topic, partition, base) in self.txn_batches:
            return  # a duplicate acknowledged again
        txn = self.transactions.get(txn_id or "")
        if txn is None or (topic, partition) not in txn.partitions:
            raise SimViolation(f"transactional batch to {topic}-{partition} not added to a transaction")
        txn.batches.append((topic, partition, base))
        self.txn_batches[(topic, partition, base)] = None

    def end_transaction(self, txn: SimTxn, *, committed: bool) -> None:
        self.txn_ended[txn.txn_id] = committed
        for key in txn.batches:
            self.txn_batches[key] = committed
        if committed:
            for (group, topic, partition), offset in txn.offsets.items():
                self.group(group).offsets[(topic, partition)] = (offset, "")

    # --- faults ------------------------------------------------------------------

    def move_leader(self, topic: str, partition: int, to: int | None = None) -> int:
        part = self.topics[topic][partition]
        choices = [b for b in self.brokers if b != part.leader and self.brokers[b].up] or [part.leader]
        new = to if to is not None else self.rng.choice(sorted(choices))
        part.history.append((self.now, new, part.epoch + 1))
        return new

    def leave_isr(self, topic: str, partition: int, node_id: int) -> None:
        """``node_id`` falls out of the partition's ISR (it still serves Fetch as a replica)."""
        self.topics[topic][partition].out_of_isr.add(node_id)

    def lag_follower(self, topic: str, partition: int, node_id: int, end: int | None) -> None:
        """The follower's log of the partition ends at ``end`` (None: caught up)."""
        part = self.topics[topic][partition]
        if end is None:
            part.follower_end.pop(node_id, None)
        else:
            part.follower_end[node_id] = end

    def move_coordinator(self, key_type: int, key: str, to: int | None = None) -> int:
        old = self.coordinator_of(key_type, key)
        choices = [b for b in self.brokers if b != old] or [old]
        new = to if to is not None else self.rng.choice(sorted(choices))
        self.coordinators[(key_type, key)] = new
        if key_type == 0 and key in self.groups and new != old:
            self.groups[key].moved(self.now)
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

    def replace_brokers(self, *, keep_ids: bool = False) -> list[int]:
        """Replace the whole cluster: new brokers at new addresses take over.

        The old brokers are gone (their addresses refuse connections; the
        caller cuts open connections with ``SimNetwork.cut_broker``). With
        ``keep_ids`` the new brokers reuse the ids, else they get fresh ones.
        Every partition keeps its log (replicated to the new brokers) and gets
        a new leader with the next leader epoch; coordinators move along.

        Returns:
            The old broker ids.
        """
        self._generation += 1
        gen = self._generation
        old_ids = sorted(self.brokers)
        for b in self.brokers.values():
            b.up = False
        new_ids = old_ids if keep_ids else [max(old_ids) + 1 + i for i in range(len(old_ids))]
        mapping = dict(zip(old_ids, new_ids, strict=True))
        self.brokers = {}
        for i in new_ids:
            b = SimBroker(self, i, ApiVersionsResponse.MAX_VERSION)
            b.host = f"broker{i}.gen{gen}.sim"
            self.brokers[i] = b
        for parts in self.topics.values():
            for part in parts:
                part.history.append((self.now, mapping.get(part.leader, new_ids[0]), part.epoch + 1))
        for k, owner in list(self.coordinators.items()):
            self.coordinators[k] = mapping.get(owner, new_ids[0])
            if k[0] == 0 and k[1] in self.groups:
                self.groups[k[1]].moved(self.now)
        return old_ids

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


# --- the group coordinator -------------------------------------------------------------------


class _Member:
    def __init__(self, member_id: str, request: Any, now: float) -> None:
        self.id = member_id
        self.instance_id: str | None = request.group_instance_id
        self.session = request.session_timeout_ms / 1000
        self.rebalance = max(request.rebalance_timeout_ms, request.session_timeout_ms) / 1000
        self.protocols: list[tuple[str, bytes]] = [(p.name, bytes(p.metadata)) for p in request.protocols]
        self.seen = now
        self.join: Deferred | None = None  # a JoinGroup waiting for the rebalance to complete
        self.sync: Deferred | None = None  # a SyncGroup waiting for the leader's
        self.assignment = b""


class SimGroup:
    """A classic-protocol group coordinator, after Kafka's ``GroupCoordinator``.

    States: ``Empty``, ``PreparingRebalance`` (collecting JoinGroups until every
    member rejoined or the rebalance timeout), ``CompletingRebalance`` (waiting
    for the leader's SyncGroup), ``Stable``. A JoinGroup without a member id
    gets one with MEMBER_ID_REQUIRED (KIP-394). A member whose session times
    out (no Heartbeat, JoinGroup or SyncGroup for ``session_timeout_ms``) is
    removed and the group rebalances. A coordinator move (``moved``) answers
    what is pending with NOT_COORDINATOR and reloads the group as of its last
    stable generation, as a new coordinator reads it from ``__consumer_offsets``.

    ``commits``: ``[(time, tp, offset, generation, member)]`` of every
    accepted OffsetCommit (``commit_attempts``: every one, with its code); ``generations``: generation -> {member: assignment bytes}.
    """

    def __init__(self, cluster: SimCluster, group_id: str) -> None:
        self.cluster = cluster
        self.id = group_id
        self.state = "Empty"
        self.generation = 0
        self.protocol: str | None = None
        self.leader: str | None = None
        self.members: dict[str, _Member] = {}
        self.pending_ids: dict[str, float] = {}  # member ids handed out by MEMBER_ID_REQUIRED
        self.rebalance_deadline = 0.0
        self.offsets: dict[tuple[str, int], tuple[int, str | None]] = {}
        self.commits: list[tuple[float, tuple[str, int], int, int, str]] = []
        #: Every OffsetCommit partition that reached any broker for this group, with the answer code.
        self.commit_attempts: list[tuple[float, tuple[str, int], int, int, str, int]] = []
        self.generations: dict[int, dict[str, bytes]] = {}
        #: (api key, error code) -> how many answers (scenarios check their faults happened).
        self.answers: dict[tuple[int, int], int] = {}
        #: Members removed because their session timed out.
        self.expired: list[str] = []
        self._ids = itertools.count(1)
        self._saved: tuple[int, str | None, str | None, dict[str, _Member]] | None = None

    # --- requests -----------------------------------------------------------------

    def handle(self, api_key: int, request: Any, version: int, now: float, owner: bool) -> Any:
        response = self._handle(api_key, request, version, now, owner)
        code = getattr(response, "error_code", 0)
        if isinstance(response, Deferred):
            response.then(lambda r: self._count(api_key, getattr(r, "error_code", 0)))
        else:
            self._count(api_key, code)
        return response

    def _count(self, api_key: int, code: int) -> None:
        self.answers[(api_key, code)] = self.answers.get((api_key, code), 0) + 1

    def _handle(self, api_key: int, request: Any, version: int, now: float, owner: bool) -> Any:
        if api_key == API_JOIN_GROUP:
            if not owner:
                return JoinGroupResponse(
                    error_code=NOT_COORDINATOR, generation_id=-1, member_id="", leader=""
                )
            injected = self.cluster.take_injected(API_JOIN_GROUP)  # cluster.inject(API_JOIN_GROUP, code)
            if injected:
                return JoinGroupResponse(
                    error_code=injected, generation_id=-1, member_id=request.member_id, leader=""
                )
            return self._join(request, version, now)
        if api_key == API_SYNC_GROUP:
            if not owner:
                return SyncGroupResponse(error_code=NOT_COORDINATOR)
            injected = self.cluster.take_injected(API_SYNC_GROUP)  # cluster.inject(API_SYNC_GROUP, code)
            return SyncGroupResponse(error_code=injected) if injected else self._sync(request, now)
        if api_key == API_HEARTBEAT:
            return HeartbeatResponse(
                error_code=NOT_COORDINATOR if not owner else self._heartbeat(request, now)
            )
        if api_key == API_LEAVE_GROUP:
            return (
                LeaveGroupResponse(error_code=NOT_COORDINATOR)
                if not owner
                else self._leave(request, version, now)
            )
        if api_key == API_OFFSET_COMMIT:
            return self._commit(request, now, owner)
        return self._offset_fetch(request, owner)

    def _join(self, request: Any, version: int, now: float) -> Any:
        mid = request.member_id
        if request.protocol_type != "consumer" or not request.protocols:
            return JoinGroupResponse(
                error_code=INCONSISTENT_GROUP_PROTOCOL, generation_id=-1, member_id=mid, leader=""
            )
        if self.members and not self._common_protocols(request):
            return JoinGroupResponse(
                error_code=INCONSISTENT_GROUP_PROTOCOL, generation_id=-1, member_id=mid, leader=""
            )
        if not mid:
            new = f"member-{next(self._ids)}"
            if version >= 4:
                self.pending_ids[new] = now
                return JoinGroupResponse(
                    error_code=MEMBER_ID_REQUIRED, generation_id=-1, member_id=new, leader=""
                )
            mid = new
        elif mid not in self.members and mid not in self.pending_ids:
            return JoinGroupResponse(error_code=UNKNOWN_MEMBER_ID, generation_id=-1, member_id=mid, leader="")
        self.pending_ids.pop(mid, None)
        member = self.members.get(mid)
        if member is None:
            member = self.members[mid] = _Member(mid, request, now)
        else:
            member.protocols = [(p.name, bytes(p.metadata)) for p in request.protocols]
            member.session = request.session_timeout_ms / 1000
            member.rebalance = max(request.rebalance_timeout_ms, request.session_timeout_ms) / 1000
            if member.join is not None:
                member.join.resolve(
                    JoinGroupResponse(
                        error_code=REBALANCE_IN_PROGRESS, generation_id=-1, member_id=mid, leader=""
                    )
                )
        member.seen = now
        later = member.join = Deferred()
        if self.state != "PreparingRebalance":
            self._prepare(now)
        self._maybe_complete(now)
        return later

    def _common_protocols(self, request: Any) -> set[str]:
        names = {p.name for p in request.protocols}
        for m in self.members.values():
            names &= {n for n, _ in m.protocols}
        return names

    def _prepare(self, now: float) -> None:
        if self.state == "CompletingRebalance":
            syncs = [m.sync for m in self.members.values() if m.sync is not None]
            for m in self.members.values():
                m.sync = None
            for sync in syncs:
                sync.resolve(SyncGroupResponse(error_code=REBALANCE_IN_PROGRESS))
        self.state = "PreparingRebalance"
        self.rebalance_deadline = now + max((m.rebalance for m in self.members.values()), default=0.0)

    def _maybe_complete(self, now: float, *, timed_out: bool = False) -> None:
        if self.state != "PreparingRebalance":
            return
        if not timed_out and any(m.join is None for m in self.members.values()):
            return
        for mid in [m for m, mem in self.members.items() if mem.join is None]:
            del self.members[mid]  # did not rejoin within the rebalance timeout
        self.generation += 1
        if not self.members:
            self.state, self.protocol, self.leader = "Empty", None, None
            self._save()
            return
        ids = sorted(self.members)
        first = self.members[ids[0]]
        common = set.intersection(*({n for n, _ in m.protocols} for m in self.members.values()))
        self.protocol = next(n for n, _ in first.protocols if n in common)
        if self.leader not in self.members:
            self.leader = ids[0]
        self.state = "CompletingRebalance"
        members = [
            _jg.JoinGroupResponseMember(
                member_id=m.id, group_instance_id=m.instance_id, metadata=dict(m.protocols)[self.protocol]
            )
            for m in self.members.values()
        ]
        # Every join is taken before any is answered: an answer unmutes its connection, whose
        # queued requests (a LeaveGroup) are then served at once and may start the next round.
        joins = []
        for m in self.members.values():
            join, m.join = m.join, None
            m.seen = now
            assert join is not None
            joins.append((m.id, join))
        generation, protocol, leader = self.generation, self.protocol, self.leader
        for mid, join in joins:
            join.resolve(
                JoinGroupResponse(
                    generation_id=generation,
                    protocol_type="consumer",
                    protocol_name=protocol,
                    leader=leader,
                    member_id=mid,
                    members=members if mid == leader else [],
                )
            )

    def _check_member(self, mid: str, generation: int) -> int:
        if mid not in self.members:
            return UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return ILLEGAL_GENERATION
        return NONE

    def _sync(self, request: Any, now: float) -> Any:
        code = self._check_member(request.member_id, request.generation_id)
        if code:
            return SyncGroupResponse(error_code=code)
        member = self.members[request.member_id]
        member.seen = now
        if self.state == "PreparingRebalance":
            return SyncGroupResponse(error_code=REBALANCE_IN_PROGRESS)
        if self.state == "Stable":
            return SyncGroupResponse(
                protocol_type="consumer", protocol_name=self.protocol, assignment=member.assignment
            )
        later = member.sync = Deferred()
        if request.member_id == self.leader:
            given = {a.member_id: bytes(a.assignment) for a in request.assignments}
            for m in self.members.values():
                m.assignment = given.get(m.id, b"")
            self.generations[self.generation] = {m.id: m.assignment for m in self.members.values()}
            self.state = "Stable"
            self._save()
            # Taken before answered, as the joins in _maybe_complete.
            syncs = [(m, m.sync) for m in self.members.values() if m.sync is not None]
            protocol = self.protocol
            for m, _ in syncs:
                m.sync = None
            for m, sync in syncs:
                sync.resolve(SyncGroupResponse(protocol_type="consumer", protocol_name=protocol, assignment=m.assignment))
        return later

    def _heartbeat(self, request: Any, now: float) -> int:
        injected = self.cluster.take_injected(API_HEARTBEAT)  # cluster.inject(API_HEARTBEAT, code)
        if injected:
            return int(injected)
        code = self._check_member(request.member_id, request.generation_id)
        if code:
            return code
        self.members[request.member_id].seen = now
        return REBALANCE_IN_PROGRESS if self.state == "PreparingRebalance" else NONE

    def _leave(self, request: Any, version: int, now: float) -> Any:
        ids = [m.member_id for m in request.members] if version >= 3 else [request.member_id]
        results = []
        for mid in ids:
            if mid in self.members:
                self._remove(mid, now)
                results.append(_lg.MemberResponse(member_id=mid, error_code=NONE))
            else:
                results.append(_lg.MemberResponse(member_id=mid, error_code=UNKNOWN_MEMBER_ID))
        if version < 3:
            return LeaveGroupResponse(error_code=results[0].error_code)
        return LeaveGroupResponse(members=results)

    def _remove(self, mid: str, now: float) -> None:
        m = self.members.pop(mid)
        for d in (m.join, m.sync):
            if d is not None:
                d.resolve(
                    SyncGroupResponse(error_code=UNKNOWN_MEMBER_ID)
                    if d is m.sync
                    else JoinGroupResponse(
                        error_code=UNKNOWN_MEMBER_ID, generation_id=-1, member_id=mid, leader=""
                    )
                )
        if self.leader == mid:
            self.leader = None
        if self.state in ("Stable", "CompletingRebalance"):
            if self.members:
                self._prepare(now)
            else:
                self.generation += 1
                self.state, self.protocol = "Empty", None
                self._save()
        self._maybe_complete(now)

    def _commit(self, request: Any, now: float, owner: bool) -> Any:
        gen, mid = request.generation_id_or_member_epoch, request.member_id
        if not owner:
            code = NOT_COORDINATOR
        elif gen < 0 and not mid:
            code = NONE if self.state == "Empty" else ILLEGAL_GENERATION
        elif self.state == "CompletingRebalance" and mid in self.members and gen == self.generation:
            code = REBALANCE_IN_PROGRESS
        else:
            code = self._check_member(mid, gen)
        for t in request.topics:
            for p in t.partitions:
                self.commit_attempts.append(
                    (now, (t.name, p.partition_index), p.committed_offset, gen, mid, code)
                )
        if code == NONE:
            if mid in self.members:
                self.members[mid].seen = now
            for t in request.topics:
                for p in t.partitions:
                    tp = (t.name, p.partition_index)
                    self.offsets[tp] = (p.committed_offset, p.committed_metadata)
                    self.commits.append((now, tp, p.committed_offset, gen, mid))
        return OffsetCommitResponse(
            topics=[
                _oc.OffsetCommitResponseTopic(
                    name=t.name,
                    partitions=[
                        _oc.OffsetCommitResponsePartition(partition_index=p.partition_index, error_code=code)
                        for p in t.partitions
                    ],
                )
                for t in request.topics
            ]
        )

    def _offset_fetch(self, request: Any, owner: bool) -> Any:
        if not owner:
            return OffsetFetchResponse(error_code=NOT_COORDINATOR)
        wanted = request.topics
        if wanted is None:
            names: dict[str, list[int]] = {}
            for t, p in sorted(self.offsets):
                names.setdefault(t, []).append(p)
            wanted = [_of.OffsetFetchRequestTopic(name=t, partition_indexes=ps) for t, ps in names.items()]
        topics = []
        for t in wanted:
            parts = []
            for p in t.partition_indexes:
                off, meta = self.offsets.get((t.name, p), (-1, ""))
                parts.append(
                    _of.OffsetFetchResponsePartition(
                        partition_index=p, committed_offset=off, committed_leader_epoch=-1, metadata=meta
                    )
                )
            topics.append(_of.OffsetFetchResponseTopic(name=t.name, partitions=parts))
        return OffsetFetchResponse(topics=topics)

    # --- time and moves ------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for mid in list(self.members):
            m = self.members.get(mid)
            if m is not None and m.join is None and m.sync is None and now - m.seen > m.session:
                self.expired.append(mid)
                self._remove(mid, now)  # session timed out
        for mid, since in list(self.pending_ids.items()):
            if now - since > 30:
                del self.pending_ids[mid]
        if self.state == "PreparingRebalance" and now >= self.rebalance_deadline:
            self._maybe_complete(now, timed_out=True)

    def expire(self, member_id: str, now: float) -> None:
        """Drop a member as if its heartbeats were lost (a network partition): it lives on, a zombie."""
        if member_id in self.members:
            self.expired.append(member_id)
            self._remove(member_id, now)

    def _save(self) -> None:
        members = {mid: m for mid, m in self.members.items()}
        self._saved = (self.generation, self.protocol, self.leader, members)

    def moved(self, now: float) -> None:
        """The coordinator moved: answer what waits with NOT_COORDINATOR; reload the last stable state."""
        for m in list(self.members.values()):
            if m.join is not None:
                m.join.resolve(
                    JoinGroupResponse(error_code=NOT_COORDINATOR, generation_id=-1, member_id=m.id, leader="")
                )
            if m.sync is not None:
                m.sync.resolve(SyncGroupResponse(error_code=NOT_COORDINATOR))
            m.join = m.sync = None
        self.pending_ids.clear()
        if self._saved is None:
            self.state, self.members, self.leader, self.protocol = "Empty", {}, None, None
            return
        self.generation, self.protocol, self.leader, members = self._saved
        self.members = dict(members)
        for m in self.members.values():
            m.seen = now
        self.state = "Stable" if self.members else "Empty"


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
        self.muted = False  # a Deferred response is pending: later requests wait (as Kafka)


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
        #: The core this network serves (None: ``sim.core``; MultiSim gives each core its own network).
        self.core: Any = None
        #: How many cuts landed inside a frame (a scenario can check faults happened).
        self.mid_frame_cuts = 0

    def _target(self) -> Any:
        if self.core is not None:
            return self.core
        assert self.sim is not None
        return self.sim.core

    def crash(self) -> None:
        """The core's process died: its connections go dead, and nothing reaches it any more."""
        for conn in self.conns.values():
            conn.dead = conn.core_knows = True

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
        self._target().connection_lost(conn.node_id, ConnectionRefusedError("refused"), now)

    def _made(self, conn: _SimConn, now: float) -> None:
        if conn.dead:
            return
        assert conn.broker is not None and self.sim is not None
        if not conn.broker.up:
            self._refused(conn, now)
            return
        conn.open = True
        self._target().connection_made(conn.node_id, now)

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
        self._serve(conn, now)

    def _serve(self, conn: _SimConn, now: float) -> None:
        broker = conn.broker
        assert broker is not None and self.sim is not None
        while len(conn.inbuf) >= 4 and not conn.muted and not conn.dead:
            size = int.from_bytes(conn.inbuf[:4], "big")
            if len(conn.inbuf) < 4 + size:
                break
            frame = bytes(conn.inbuf[4 : 4 + size])
            del conn.inbuf[: 4 + size]
            response, throttle = broker.handle(frame, now)
            if response is None:
                continue
            if broker.close_after_answer:  # the answer goes out, then the broker hangs up
                broker.close_after_answer = False
                self._respond(conn, response, throttle, now)
                self.sim.schedule(conn.to_client_at, self._hang_up, conn)
                return
            if isinstance(response, Deferred):
                conn.muted = True
                response.then(lambda data, conn=conn: self._answer_later(conn, data))
                continue
            self._respond(conn, response, throttle, now)

    def _respond(self, conn: _SimConn, response: bytes, throttle: int, now: float) -> None:
        assert self.sim is not None
        data = len(response).to_bytes(4, "big") + response
        chunks = self._chunks(data)
        for i, piece in enumerate(chunks):
            at = conn.to_client_at = max(conn.to_client_at, now + self._delay())
            last = i == len(chunks) - 1
            self.sim.schedule(at, self._client_receive, conn, piece, throttle if last else 0, last)

    def _answer_later(self, conn: _SimConn, response: bytes) -> None:
        assert self.sim is not None
        conn.muted = False
        if conn.dead:
            return
        now = self.sim.now
        self._respond(conn, response, 0, now)
        self._serve(conn, now)

    def _client_receive(self, conn: _SimConn, chunk: bytes, throttle_ms: int, last: bool, now: float) -> None:
        if conn.dead:
            return
        assert self.sim is not None
        if conn.cut_mid == "response" and not last:
            self._target().receive_data(conn.node_id, chunk, now)
            self.cut(conn.node_id, now)  # the client holds part of a response
            self.mid_frame_cuts += 1
            return
        if throttle_ms:
            conn.throttle_until = now + throttle_ms / 1000
        self._target().receive_data(conn.node_id, chunk, now)

    def _hang_up(self, conn: _SimConn, now: float) -> None:
        if self.conns.get(conn.node_id) is conn:
            self.cut(conn.node_id, now)

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
            self._target().connection_lost(conn.node_id, ConnectionResetError("cut by the sim"), now)

    def _lost_before_open(self, conn: _SimConn, now: float) -> None:
        assert self.sim is not None
        if self.conns.get(conn.node_id) is conn and not conn.core_knows:
            conn.core_knows = True
            self._target().connection_lost(conn.node_id, ConnectionRefusedError("cut before open"), now)

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
        cluster.sim = self
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


class MultiSim(Sim):
    """Several cores (the members of a consumer group) against one SimCluster.

    Each core gets its own :class:`SimNetwork` (node ids are per core); they
    share the cluster, the clock, the event queue and the rng. ``add(name,
    core)`` starts a core, ``crash(name)`` kills one (its connections go dead
    without a word to the brokers, so its group session must time out),
    ``remove(name)`` stops driving one that closed. The cluster's group
    coordinators are ticked every ``tick`` seconds (session and rebalance
    timeouts).
    """

    def __init__(
        self,
        cluster: SimCluster,
        rng: random.Random,
        *,
        tick: float = 0.05,
        now: float = 0.0,
        **network_kwargs: Any,
    ) -> None:
        self.cluster = cluster
        cluster.sim = self
        self.rng = rng
        self.network_kwargs = network_kwargs
        self.cores: dict[str, tuple[Any, SimNetwork]] = {}
        self.now = now
        cluster.now = now
        self.steps = 0
        self._queue = []
        self._seq = itertools.count()
        self.commands_seen = []
        self.on_step = None
        self._tick_every = tick
        #: Timers a core gave in the past (handled at once); see ``_earliest_timer``.
        self.late_timers = 0
        self.schedule(now + tick, self._tick)

    @property  # type: ignore[override]
    def core(self) -> Any:
        raise AttributeError("a MultiSim has several cores: use .cores")

    def _tick(self, now: float) -> None:
        self.cluster.tick(now)
        self.schedule(now + self._tick_every, self._tick)

    def add(self, name: str, core: Any) -> SimNetwork:
        net = SimNetwork(self.cluster, self.rng, **self.network_kwargs)
        net.sim = self
        net.core = core
        self.cores[name] = (core, net)
        return net

    def crash(self, name: str) -> None:
        _core, net = self.cores.pop(name)
        net.crash()

    def remove(self, name: str) -> None:
        self.cores.pop(name)

    def _flush(self) -> None:
        for core, net in list(self.cores.values()):
            while True:
                cmds = core.commands()
                for cmd in cmds:
                    self.commands_seen.append((self.now, cmd))
                    net.command(cmd, self.now)
                out = core.data_to_send()
                for node_id, data in out:
                    net.client_write(node_id, data, self.now)
                if not cmds and not out:
                    break

    def _earliest_timer(self) -> tuple[float | None, Any]:
        best: tuple[float | None, Any] = (None, None)
        for core, _net in self.cores.values():
            t = core.get_timer()
            if t is not None and t < self.now:
                # A core that was not called since its clock (``_now``) fell behind may answer
                # with that stale time for "due now" (ConsumerCore.close, then the client's
                # pending completions): run it now, and count it.
                self.late_timers += 1
                t = self.now
            if t is not None and (best[0] is None or t < best[0]):
                best = (t, core)
        return best

    def step(self) -> bool:
        self._flush()
        timer, core = self._earliest_timer()
        next_event = self._queue[0][0] if self._queue else None
        if next_event is None and timer is None:
            return False
        self.steps += 1
        if timer is not None and (next_event is None or timer <= next_event):
            self.now = self.cluster.now = max(self.now, timer)
            core.handle_timer(self.now)
            after = core.get_timer()
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

    def _next_time(self) -> float | None:
        self._flush()
        timer, _core = self._earliest_timer()
        nxt = self._queue[0][0] if self._queue else None
        if timer is None:
            return nxt
        return timer if nxt is None else min(timer, nxt)

"""Admin core: the requests it writes, where it sends them, retries, per-resource results, deadlines.

The brokers are the simulation's ``SimBroker`` with the admin APIs of
``tests/sim/admin_broker.py`` (real wire bytes through kproto's codec), driven
by hand one explicit step at a time. ``AdminPair.override`` replaces a
broker's answer to one API with a response built here from the generated
response classes.
"""

from __future__ import annotations

import hashlib
import random
import secrets
import struct
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kproto.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    AdminConfig,
    AdminCore,
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    ListOffsetsResultInfo,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kproto.client import COORDINATOR_NODE_BASE
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.driving import Connect
from kproto.errors import (
    Cancelled,
    GroupAuthorizationFailedError,
    GroupIdNotFoundError,
    IllegalArgumentError,
    InvalidPartitionsError,
    KafkaConnectionError,
    KafkaProtocolError,
    KafkaTimeoutError,
    NonEmptyGroupError,
    NotControllerError,
    PolicyViolationError,
    RebootstrapRequiredError,
    SecurityDisabledError,
    TopicAlreadyExistsError,
    TransactionalIdNotFoundError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
)
from kproto.protocol._primitives import read_nullable_string, skip_tagged_fields
from kproto.protocol.messages import REQUEST_FLEXIBLE_VERSIONS, REQUEST_TYPES, RESPONSE_FLEXIBLE_VERSIONS
from kproto.protocol.messages import create_topics as _ct
from kproto.protocol.messages import describe_configs as _dc
from kproto.protocol.messages import list_offsets as _lo
from kproto.protocol.messages import offset_fetch as _of
from kproto.protocol.messages.describe_groups import DescribedGroup, DescribeGroupsResponse
from kproto.protocol.messages.metadata import MetadataResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim.admin_broker import AdminState, install  # noqa: E402
from sim.harness import SimCluster  # noqa: E402

T0 = 100.0
_HDR = struct.Struct(">hhi")


class AdminPair:
    """An admin core and a simulated cluster, moved one explicit step at a time."""

    def __init__(self, n_brokers: int = 3, **config: Any) -> None:
        self.cluster = SimCluster(random.Random(0), n_brokers, default_partitions=2)
        self.state: AdminState = install(self.cluster)
        config.setdefault("bootstrap_servers", self.cluster.bootstrap)
        self.core = AdminCore(AdminConfig(**config), now=T0, rng=random.Random(3))
        self.now = T0
        self.inbuf: dict[int, bytearray] = {}
        self.address: dict[int, tuple[str, int]] = {}
        #: (node id, broker id, api key, version, decoded request) of every request written.
        self.sent: list[tuple[int, int, int, int, Any]] = []
        #: api_key -> fn(broker_id, request) -> response object, or None for the broker's own answer.
        self.override: dict[int, Callable[[int, Any], Any]] = {}
        #: Nodes whose requests are swallowed (a broker that does not answer).
        self.silent: set[int] = set()

    def _answer(self, broker: Any, frame: bytes) -> bytes | None:
        api_key, version, corr = _HDR.unpack_from(frame, 0)
        pos = 8
        _cid, pos = read_nullable_string(memoryview(frame), pos)
        flex = REQUEST_FLEXIBLE_VERSIONS.get(api_key)
        if flex is not None and version >= flex:
            pos = skip_tagged_fields(memoryview(frame), pos)
        request, _ = REQUEST_TYPES[api_key].read(memoryview(frame), pos, version)
        self._last = (api_key, version, request)
        fn = self.override.get(api_key)
        custom = fn(broker.node_id, request) if fn is not None else None
        if custom is None:
            response, _ = broker.handle(frame, self.now)
            return response  # type: ignore[no-any-return]
        header = corr.to_bytes(4, "big")
        rflex = RESPONSE_FLEXIBLE_VERSIONS.get(api_key)
        if rflex is not None and version >= rflex:
            header += b"\x00"
        return header + custom.encode(version)  # type: ignore[no-any-return]

    def step(self) -> int:
        """Open what is asked, deliver pending requests and their answers; returns frames answered."""
        answered = 0
        for cmd in self.core.commands():
            if isinstance(cmd, Connect):
                self.address[cmd.node_id] = (cmd.host, cmd.port)
                self.core.connection_made(cmd.node_id, self.now)
        for node_id, data in self.core.data_to_send():
            broker = self.cluster.by_address(*self.address[node_id])
            assert broker is not None
            buf = self.inbuf.setdefault(node_id, bytearray())
            buf += data
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                size = int.from_bytes(buf[:4], "big")
                frame = bytes(buf[4 : 4 + size])
                del buf[: 4 + size]
                if node_id in self.silent:
                    continue
                response = self._answer(broker, frame)
                api_key, version, request = self._last
                self.sent.append((node_id, broker.node_id, api_key, version, request))
                if response is not None:
                    self.core.receive_data(node_id, len(response).to_bytes(4, "big") + response, self.now)
                    answered += 1
        return answered

    def settle(self) -> None:
        """Exchange until quiet, calling handle_timer when a deadline is due at ``now``."""
        for _ in range(100):
            moved = self.step()
            timer = self.core.get_timer()
            if timer is not None and timer <= self.now:
                self.core.handle_timer(self.now)
                moved = 1
            if not moved:
                return
        raise AssertionError("the admin core did not settle")

    def advance(self, to: float) -> None:
        """Move the clock to ``to``, firing every timer on the way."""
        while True:
            self.settle()
            timer = self.core.get_timer()
            if timer is None or timer > to:
                break
            self.now = max(self.now, timer)
            self.core.handle_timer(self.now)
        self.now = to
        self.core.handle_timer(to)
        self.settle()

    def run(self, op: Any, limit: float = 120.0) -> Any:
        """Drive until ``op.done`` (timers included); fail if it takes past ``T0 + limit``."""
        self.settle()
        while not op.done:
            timer = self.core.get_timer()
            assert timer is not None, f"{op!r} open with no timer"
            assert timer <= T0 + limit, f"{op!r} still open at {timer}"
            self.now = max(self.now, timer)
            self.core.handle_timer(self.now)
            self.settle()
        return op

    def requests(self, api_key: int) -> list[tuple[int, Any]]:
        """``(broker id, request)`` of every ``api_key`` request written, in order."""
        return [(b, r) for _n, b, k, _v, r in self.sent if k == api_key]


# --- topics ------------------------------------------------------------------------------


def test_create_topics_goes_to_the_controller_and_reports_each_topic() -> None:
    p = AdminPair()
    p.cluster.controller_id = 2
    p.cluster.create_topic("exists", 0.0)
    op = p.core.create_topics(
        [NewTopic("a", 3, 1, topic_configs={"retention.ms": "1000"}), NewTopic("exists", 1, 1), "b"],
        now=p.now,
        timeout_ms=5000,
    )
    p.run(op)
    [(broker, req)] = p.requests(19)
    assert broker == 2
    assert [(t.name, t.num_partitions, t.replication_factor) for t in req.topics] == [
        ("a", 3, 1),
        ("exists", 1, 1),
        ("b", -1, -1),
    ]
    assert [(c.name, c.value) for c in req.topics[0].configs] == [("retention.ms", "1000")]
    assert req.timeout_ms == 5000 and req.validate_only is False
    assert set(op.results) == {"a", "b"}
    assert op.results["a"]["num_partitions"] == 3
    assert op.results["b"]["num_partitions"] == 2  # the broker's default
    assert isinstance(op.errors["exists"], TopicAlreadyExistsError)
    assert op.errors["exists"].errno == TopicAlreadyExistsError.errno
    assert len(p.cluster.topics["a"]) == 3


def test_create_topics_accepts_kafka_python_dict_input_and_validate_only() -> None:
    p = AdminPair()
    op = p.core.create_topics(
        {"v": {"num_partitions": 4, "replication_factor": 1, "configs": {"cleanup.policy": "compact"}}},
        now=p.now,
        validate_only=True,
    )
    p.run(op)
    [(_b, req)] = p.requests(19)
    assert req.validate_only is True
    assert req.topics[0].num_partitions == 4
    assert op.results["v"]["name"] == "v"
    assert "v" not in p.cluster.topics


def test_not_controller_refreshes_metadata_and_retries_at_the_new_controller() -> None:
    p = AdminPair()
    p.cluster.controller_id = 1
    p.settle()  # metadata names broker 1 as controller
    p.cluster.controller_id = 3  # the controller moved
    op = p.core.create_topics(["t1"], now=p.now)
    p.run(op)
    brokers = [b for b, _r in p.requests(19)]
    assert brokers == [1, 3]
    assert set(op.results) == {"t1"} and not op.errors
    # The retry waited retry_backoff_ms and a fresh Metadata came in between.
    metadata_after = [i for i, s in enumerate(p.sent) if s[2] == 3]
    first, second = (i for i, s in enumerate(p.sent) if s[2] == 19)
    assert any(first < i < second for i in metadata_after)


def test_a_topic_level_error_fails_only_that_topic_and_is_not_retried() -> None:
    p = AdminPair()

    def answer(_broker: int, req: Any) -> Any:
        return _ct.CreateTopicsResponse(
            topics=[
                _ct.CreatableTopicResult(
                    name="bad", error_code=PolicyViolationError.errno, error_message="no"
                ),
                _ct.CreatableTopicResult(name="good", num_partitions=1, replication_factor=1),
            ]
        )

    p.override[19] = answer
    op = p.run(p.core.create_topics(["bad", "good"], now=p.now))
    assert len(p.requests(19)) == 1
    assert isinstance(op.errors["bad"], PolicyViolationError)
    assert "no" in str(op.errors["bad"])
    assert op.results["good"]["num_partitions"] == 1


def test_a_response_missing_a_topic_fails_that_topic_with_a_protocol_error() -> None:
    p = AdminPair()
    p.override[19] = lambda _b, req: _ct.CreateTopicsResponse(topics=[_ct.CreatableTopicResult(name="x")])
    op = p.run(p.core.create_topics(["x", "y"], now=p.now))
    assert "x" in op.results
    assert isinstance(op.errors["y"], KafkaProtocolError)


def test_delete_topics_by_name_and_id() -> None:
    p = AdminPair()
    p.cluster.create_topic("gone", 0.0)
    tid = uuid.UUID(int=5)
    op = p.run(p.core.delete_topics(["gone", "never"], now=p.now))
    assert set(op.results) == {"gone"}
    assert isinstance(op.errors["never"], UnknownTopicOrPartitionError)
    assert "gone" not in p.cluster.topics
    [(_b, req)] = p.requests(20)
    assert [t.name for t in req.topics] == ["gone", "never"]
    # by id: the request names the id (v6, KIP-516); the sim knows no ids, so it fails by name None
    op2 = p.run(p.core.delete_topics([tid], now=p.now))
    [(_b, req2)] = p.requests(20)[1:]
    assert req2.topics[0].topic_id == tid and req2.topics[0].name is None
    assert op2.done and len(op2.results) + len(op2.errors) == 1


def test_create_partitions_per_topic() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=2)
    op = p.run(p.core.create_partitions({"t": NewPartitions(5), "u": NewPartitions(2)}, now=p.now))
    assert op.results == {"t": None}
    assert isinstance(op.errors["u"], UnknownTopicOrPartitionError)
    assert len(p.cluster.topics["t"]) == 5
    op = p.run(p.core.create_partitions({"t": NewPartitions(3)}, now=p.now))
    assert isinstance(op.errors["t"], InvalidPartitionsError)


def test_list_and_describe_topics_and_cluster_use_metadata_without_auto_creation() -> None:
    p = AdminPair()
    p.cluster.create_topic("x", 0.0, partitions=3)
    listed = p.run(p.core.list_topics(now=p.now))
    assert listed.results == {None: ["x"]}
    described = p.run(p.core.describe_topics(["x", "missing"], now=p.now))
    assert [q["partition_index"] for q in described.results["x"]["partitions"]] == [0, 1, 2]
    assert isinstance(described.errors["missing"], UnknownTopicOrPartitionError)
    assert "missing" not in p.cluster.topics  # allow_auto_topic_creation=False
    for _b, req in p.requests(3):
        assert req.allow_auto_topic_creation is False
    cluster = p.run(p.core.describe_cluster(now=p.now)).results[None]
    assert cluster["cluster_id"] == "sim"
    assert [b["broker_id"] for b in cluster["brokers"]] == [1, 2, 3]
    assert cluster["controller_id"] == 1
    assert len(p.requests(60)) == 1  # DescribeCluster (KIP-700)


def test_describe_cluster_falls_back_to_metadata_on_a_broker_without_describe_cluster() -> None:
    p = AdminPair()
    for broker in p.cluster.brokers.values():
        del broker.extra_handlers[60]
    p.cluster.controller_id = 2
    before = len(p.requests(3))
    cluster = p.run(p.core.describe_cluster(now=p.now)).results[None]
    assert cluster == {
        "cluster_id": "sim",
        "controller_id": 2,
        "brokers": [
            {"broker_id": i, "host": f"broker{i}.sim", "port": 9092, "rack": None, "is_fenced": False}
            for i in (1, 2, 3)
        ],
    }
    assert p.requests(60) == []
    # the client's bootstrap Metadata, then the fallback: both name no topics
    assert [r.topics for _b, r in p.requests(3)[before:]] == [[], []]


def test_admin_config_forces_auto_creation_off() -> None:
    core = AdminCore(AdminConfig(bootstrap_servers="h:1", allow_auto_create_topics=True), now=0.0)
    assert core.config.allow_auto_create_topics is False
    assert core.config.default_api_timeout_ms == 60000


# --- configs ------------------------------------------------------------------------------


def test_describe_configs_sends_broker_resources_to_that_broker() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0)
    op = p.run(
        p.core.describe_configs(
            [
                ConfigResource(ConfigResourceType.BROKER, "2"),
                ConfigResource("topic", "t", ["retention.ms"]),
                ConfigResource(ConfigResourceType.TOPIC, "nope"),
            ],
            now=p.now,
        )
    )
    by_broker = {
        (b, tuple((r.resource_type, r.resource_name) for r in req.resources)) for b, req in p.requests(32)
    }
    assert (2, ((4, "2"),)) in by_broker
    assert op.results[(ConfigResourceType.BROKER, "2")]["broker.id"]["value"] == "2"
    assert op.results[(ConfigResourceType.TOPIC, "t")] == {
        "retention.ms": {
            "value": "604800000",
            "read_only": False,
            "config_source": 5,
            "is_sensitive": False,
            "synonyms": [],
        }
    }
    assert isinstance(op.errors[(ConfigResourceType.TOPIC, "nope")], UnknownTopicOrPartitionError)


def test_broker_resource_names_must_be_ids() -> None:
    p = AdminPair()
    with pytest.raises(IllegalArgumentError, match="broker id"):
        p.core.describe_configs([ConfigResource(ConfigResourceType.BROKER, "b1")], now=p.now)
    with pytest.raises(IllegalArgumentError, match="resource_type"):
        ConfigResource("planet", "x")


def test_alter_and_incremental_alter_configs() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0)
    op = p.run(p.core.alter_configs([ConfigResource("TOPIC", "t", {"retention.ms": 5})], now=p.now))
    assert op.results == {(ConfigResourceType.TOPIC, "t"): None}
    assert p.state.configs[(2, "t")] == {"retention.ms": "5"}
    op = p.run(
        p.core.alter_configs(
            [
                ConfigResource(
                    "TOPIC", "t", {"retention.ms": (AlterConfigOp.DELETE, None), "cleanup.policy": "compact"}
                ),
                ConfigResource("BROKER", "3", {"log.cleaner.threads": "2"}),
            ],
            now=p.now,
            incremental=True,
        )
    )
    assert not op.errors
    assert p.state.configs[(2, "t")] == {"cleanup.policy": "compact"}
    assert p.state.configs[(4, "3")] == {"log.cleaner.threads": "2"}
    [req] = [r for b, r in p.requests(44) if r.resources[0].resource_type == 4]
    assert [b for b, r in p.requests(44) if r.resources[0].resource_type == 4] == [3]
    assert [(c.name, c.config_operation) for c in req.resources[0].configs] == [("log.cleaner.threads", 0)]
    with pytest.raises(IllegalArgumentError, match="configs"):
        p.core.alter_configs([ConfigResource("TOPIC", "t", ["k"])], now=p.now)


# --- groups -------------------------------------------------------------------------------


def _group_with_offsets(p: AdminPair, gid: str, offsets: dict[tuple[str, int], int]) -> None:
    g = p.cluster.group(gid)
    for tp, off in offsets.items():
        g.offsets[tp] = (off, "m")


def test_group_calls_go_to_the_coordinator() -> None:
    p = AdminPair()
    _group_with_offsets(p, "g1", {("t", 0): 5, ("t", 1): 7})
    owner = p.cluster.coordinator_of(0, "g1")
    op = p.run(p.core.list_consumer_group_offsets("g1", now=p.now))
    assert op.results == {
        "g1": {
            TopicPartition("t", 0): OffsetAndMetadata(5, "m", -1),
            TopicPartition("t", 1): OffsetAndMetadata(7, "m", -1),
        }
    }
    [(broker, _req)] = p.requests(9)
    assert broker == owner
    assert [s[0] for s in p.sent if s[2] == 9] == [COORDINATOR_NODE_BASE - owner]
    described = p.run(p.core.describe_consumer_groups(["g1"], now=p.now))
    assert described.results["g1"]["state"] == "Empty"


def test_not_coordinator_looks_the_coordinator_up_again() -> None:
    p = AdminPair()
    _group_with_offsets(p, "g", {("t", 0): 1})
    p.settle()
    old = p.cluster.coordinator_of(0, "g")
    p.run(p.core.describe_consumer_groups(["g"], now=p.now))
    new = p.cluster.move_coordinator(0, "g")
    assert new != old
    op = p.run(p.core.list_consumer_group_offsets("g", now=p.now))
    assert op.results["g"] == {TopicPartition("t", 0): OffsetAndMetadata(1, "m", -1)}
    assert [b for b, _r in p.requests(9)] == [old, new]
    assert len(p.requests(10)) == 2  # two FindCoordinator lookups


def test_coordinator_load_in_progress_retries_the_same_coordinator_after_the_backoff() -> None:
    p = AdminPair(retry_backoff_ms=200)
    p.cluster.group("g")
    p.cluster.inject(15, 14)  # DescribeGroups: COORDINATOR_LOAD_IN_PROGRESS once
    p.override[15] = lambda b, req: (
        DescribeGroupsResponse(groups=[DescribedGroup(error_code=14, group_id="g")])
        if p.cluster.take_injected(15)
        else None
    )
    start = p.now
    op = p.core.describe_consumer_groups(["g"], now=p.now)
    p.settle()
    assert not op.done
    assert p.core.get_timer() == pytest.approx(start + 0.2)
    p.run(op)
    assert op.results["g"]["group_id"] == "g"
    assert len({b for b, _r in p.requests(15)}) == 1
    assert len(p.requests(10)) == 1  # no new lookup


def test_a_failed_coordinator_lookup_fails_only_that_group() -> None:
    p = AdminPair()
    p.cluster.group("ok")

    def lookup(_broker: int, req: Any) -> Any:
        if req.key == "denied":
            from kproto.protocol.messages.find_coordinator import FindCoordinatorResponse

            return FindCoordinatorResponse(
                error_code=GroupAuthorizationFailedError.errno, node_id=-1, host="", port=-1
            )
        return None

    p.override[10] = lookup
    op = p.run(p.core.describe_consumer_groups(["ok", "denied"], now=p.now))
    assert "ok" in op.results
    assert isinstance(op.errors["denied"], GroupAuthorizationFailedError)
    assert [r.groups for _b, r in p.requests(15)] == [["ok"]]  # never sent for the denied group


def test_alter_delete_offsets_and_delete_groups() -> None:
    p = AdminPair()
    p.cluster.group("g")
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    op = p.run(
        p.core.alter_consumer_group_offsets("g", {tp0: 10, tp1: OffsetAndMetadata(20, "x")}, now=p.now)
    )
    assert op.results == {"g": {tp0: None, tp1: None}}
    [(_b, req)] = p.requests(8)
    assert req.generation_id_or_member_epoch == -1 and req.member_id == ""
    assert p.cluster.groups["g"].offsets == {("t", 0): (10, ""), ("t", 1): (20, "x")}
    op = p.run(p.core.delete_consumer_group_offsets("g", [tp0], now=p.now))
    assert op.results == {"g": {tp0: None}}
    assert p.cluster.groups["g"].offsets == {("t", 1): (20, "x")}
    op = p.run(p.core.delete_consumer_groups(["g", "nobody"], now=p.now))
    assert op.results == {"g": None}
    assert isinstance(op.errors["nobody"], GroupIdNotFoundError)
    p.cluster.group("busy").members["m"] = object()  # type: ignore[assignment]
    op = p.run(p.core.delete_consumer_groups(["busy"], now=p.now))
    assert isinstance(op.errors["busy"], NonEmptyGroupError)


def test_list_consumer_groups_asks_every_broker() -> None:
    p = AdminPair()
    for gid in ("a", "b", "c", "d"):
        p.cluster.group(gid)
    op = p.run(p.core.list_consumer_groups(now=p.now))
    assert sorted(b for b, _r in p.requests(16)) == [1, 2, 3]
    assert set(op.results) == {1, 2, 3}
    names = sorted(g for groups in op.results.values() for g, _t, _s in groups)
    assert names == ["a", "b", "c", "d"]


# --- partitions ---------------------------------------------------------------------------


def test_delete_records_and_list_offsets_group_partitions_per_leader() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=4)
    leaders = {i: p.cluster.leader(("t"), i) for i in range(4)}
    tps = {TopicPartition("t", i): 3 for i in range(4)}
    op = p.run(p.core.delete_records(tps, now=p.now))
    assert op.results == {tp: {"low_watermark": 3} for tp in tps}
    reqs = p.requests(21)
    assert len(reqs) == len(set(leaders.values()))
    for broker, req in reqs:
        assert {q.partition_index for t in req.topics for q in t.partitions} == {
            i for i, b in leaders.items() if b == broker
        }
    specs = {TopicPartition("t", 0): OffsetSpec.LATEST, TopicPartition("t", 1): OffsetSpec.EARLIEST}
    op = p.run(p.core.list_offsets(specs, now=p.now))
    assert op.results[TopicPartition("t", 0)] == ListOffsetsResultInfo(0, -1, 0)
    assert set(op.results) == set(specs)
    sent = {q.partition_index: q.timestamp for _b, r in p.requests(2) for t in r.topics for q in t.partitions}
    assert sent == {0: -1, 1: -2}


def test_an_unknown_topic_fails_its_partitions_only() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=1)
    op = p.run(
        p.core.list_offsets(
            {TopicPartition("t", 0): -1, TopicPartition("nope", 0): -1, TopicPartition("t", 9): -1}, now=p.now
        )
    )
    assert set(op.results) == {TopicPartition("t", 0)}
    assert isinstance(op.errors[TopicPartition("nope", 0)], UnknownTopicOrPartitionError)
    assert isinstance(op.errors[TopicPartition("t", 9)], UnknownTopicOrPartitionError)
    assert "nope" not in p.cluster.topics
    assert p.core.client.tracked_topics == frozenset()  # the core forgets topics it no longer needs


def test_not_leader_refreshes_metadata_and_retries_at_the_new_leader() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=1)
    p.run(p.core.list_offsets({TopicPartition("t", 0): -1}, now=p.now))
    old = p.cluster.leader("t", 0)
    p.settle()
    calls = {"n": 0}

    def stale_leader(broker: int, req: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:  # the first answer: the leader moved meanwhile
            p.cluster.move_leader("t", 0)
            return _lo.ListOffsetsResponse(
                topics=[
                    _lo.ListOffsetsTopicResponse(
                        name="t",
                        partitions=[_lo.ListOffsetsPartitionResponse(partition_index=0, error_code=6)],
                    )
                ]
            )
        return None

    p.override[2] = stale_leader
    op = p.run(p.core.list_offsets({TopicPartition("t", 0): -1}, now=p.now))
    new = p.cluster.leader("t", 0)
    assert new != old
    assert [b for b, _r in p.requests(2)][-2:] == [old, new]
    assert TopicPartition("t", 0) in op.results


# --- deadlines and misuse ------------------------------------------------------------------


def test_retriable_errors_until_the_deadline_then_a_timeout_with_the_cause() -> None:
    p = AdminPair(retry_backoff_ms=1000)
    p.cluster.controller_id = 1
    always = NotControllerError.errno
    p.override[19] = lambda _b, req: _ct.CreateTopicsResponse(
        topics=[_ct.CreatableTopicResult(name=t.name, error_code=always) for t in req.topics]
    )
    op = p.core.create_topics(["t"], now=p.now, timeout_ms=3500)
    assert op.deadline == T0 + 3.5
    p.run(op)
    assert isinstance(op.errors["t"], KafkaTimeoutError)
    assert isinstance(op.errors["t"].__cause__, NotControllerError)
    assert p.now == pytest.approx(T0 + 3.5)
    assert 2 <= len(p.requests(19)) <= 4  # one attempt per backoff, none after the deadline


def test_a_silent_broker_times_out_each_request_within_the_call_deadline() -> None:
    p = AdminPair(request_timeout_ms=30000)
    p.settle()
    for node in range(1, 4):
        p.silent.add(node)
    p.silent.update({-1})
    op = p.core.describe_cluster(now=p.now, timeout_ms=2000)
    p.run(op)
    assert isinstance(op.errors[None], KafkaTimeoutError)
    assert p.now == pytest.approx(T0 + 2.0)


def test_empty_calls_close_and_bad_arguments() -> None:
    p = AdminPair()
    op = p.core.delete_topics([], now=p.now)
    assert op.done and isinstance(op.error, IllegalArgumentError)
    with pytest.raises(IllegalArgumentError):
        p.core.list_topics(now=p.now, timeout_ms=-1)
    with pytest.raises(IllegalArgumentError):
        NewTopic("x", 3, 1, replica_assignments={0: [1]})
    pending = p.core.describe_consumer_groups(["g"], now=p.now)
    p.core.close(p.now)
    assert isinstance(pending.errors["g"], Cancelled)
    assert p.core.get_timer() is None


# --- ACLs, log dirs, transactions, producers -------------------------------------------------


def test_create_describe_delete_acls() -> None:
    p = AdminPair()
    read = ACL(
        "User:alice",
        "*",
        ACLOperation.READ,
        ACLPermissionType.ALLOW,
        ResourcePattern(ResourceType.TOPIC, "t"),
    )
    write = ACL(
        "User:bob",
        "*",
        ACLOperation.WRITE,
        ACLPermissionType.DENY,
        ResourcePattern(ResourceType.TOPIC, "t-", ACLResourcePatternType.PREFIXED),
    )
    bad = ACL(
        "alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.GROUP, "g")
    )
    op = p.run(p.core.create_acls([read, write, bad], now=p.now))
    assert op.results == {read: None, write: None}
    assert bad in op.errors and op.errors[bad].errno == 42
    [(_b, req)] = p.requests(30)
    assert [(c.principal, c.resource_pattern_type) for c in req.creations] == [
        ("User:alice", 3),
        ("User:bob", 4),
        ("alice", 3),
    ]
    anything = ACLFilter(
        None,
        None,
        ACLOperation.ANY,
        ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    op = p.run(p.core.describe_acls(anything, now=p.now))
    assert sorted(op.results[anything], key=lambda a: a.principal) == [read, write]
    only_bob = ACLFilter(
        "User:bob",
        None,
        ACLOperation.ANY,
        ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.TOPIC, None, ACLResourcePatternType.ANY),
    )
    op = p.run(p.core.delete_acls([only_bob], now=p.now))
    assert op.results == {only_bob: [write]}
    p.cluster.inject(29, 54)  # SECURITY_DISABLED: no authorizer
    op = p.run(p.core.describe_acls(anything, now=p.now))
    assert isinstance(op.errors[anything], SecurityDisabledError)
    with pytest.raises(IllegalArgumentError):
        ACL(
            "User:x", "*", ACLOperation.ANY, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.TOPIC, "t")
        )
    with pytest.raises(IllegalArgumentError):
        ResourcePattern(ResourceType.ANY, "t")


def test_describe_log_dirs_and_list_transactions_ask_every_broker() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=3)
    p.cluster.txn_producers["tx"] = (77, 0)
    op = p.run(p.core.describe_log_dirs(now=p.now))
    assert sorted(b for b, _r in p.requests(35)) == [1, 2, 3]
    assert set(op.results) == {1, 2, 3}
    led = {tp for dirs in op.results.values() for d in dirs.values() for tp in d["partitions"]}
    assert led == {TopicPartition("t", i) for i in range(3)}
    assert op.results[1]["/data/1"]["total_bytes"] == 10**9
    op = p.run(p.core.list_transactions(now=p.now))
    assert sorted(b for b, _r in p.requests(66)) == [1, 2, 3]
    owner = p.cluster.coordinator_of(1, "tx")
    assert op.results[owner] == [("tx", 77, "Empty")]


def test_describe_transactions_and_fence_producers_go_to_the_transaction_coordinator() -> None:
    p = AdminPair()
    p.cluster.txn_producers["tx"] = (77, 3)
    owner = p.cluster.coordinator_of(1, "tx")
    op = p.run(p.core.describe_transactions(["tx", "unknown"], now=p.now))
    assert op.results["tx"]["producer_id"] == 77 and op.results["tx"]["producer_epoch"] == 3
    assert isinstance(op.errors["unknown"], TransactionalIdNotFoundError)
    assert {b for b, _r in p.requests(65)} <= {owner, p.cluster.coordinator_of(1, "unknown")}
    lookups = [r for _b, r in p.requests(10)]
    assert {(r.key, r.key_type) for r in lookups} == {("tx", 1), ("unknown", 1)}
    op = p.run(p.core.fence_producers(["tx"], now=p.now))
    assert op.results == {"tx": {"producer_id": 77, "producer_epoch": 4}}
    [(broker, req)] = p.requests(22)
    assert broker == owner and req.transactional_id == "tx" and req.producer_id == -1


def test_describe_producers_at_the_leader() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=2)
    p.cluster.log("t", 0).producers[500] = (2, [(0, 9, 0)])
    op = p.run(p.core.describe_producers([TopicPartition("t", 0), TopicPartition("t", 1)], now=p.now))
    assert op.results[TopicPartition("t", 1)] == []
    [state] = op.results[TopicPartition("t", 0)]
    assert (state["producer_id"], state["producer_epoch"], state["last_sequence"]) == (500, 2, 9)
    for broker, req in p.requests(61):
        for t in req.topics:
            for i in t.partition_indexes:
                assert p.cluster.leader("t", i) == broker


def test_alter_and_describe_user_scram_credentials() -> None:
    p = AdminPair()
    given_salt, bob_given = b"s" * 24, secrets.token_bytes(24)
    op = p.run(
        p.core.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(
                    "alice", "SCRAM-SHA-256", "pw", iterations=8192, salt=given_salt
                ),
                UserScramCredentialUpsertion("bob", ScramMechanism.SCRAM_SHA_512, "pw2", salt=bob_given),
                UserScramCredentialDeletion("carol", "scram-sha-256"),
            ],
            now=p.now,
        )
    )
    assert op.results == {"alice": None, "bob": None}
    assert op.errors["carol"].errno == 91  # RESOURCE_NOT_FOUND
    iterations, salt, salted = p.state.scram["alice"][1]
    assert (iterations, salt) == (8192, given_salt)
    assert salted == hashlib.pbkdf2_hmac("sha256", b"pw", given_salt, 8192)  # RFC 5802 Hi()
    _it, bob_salt, bob_salted = p.state.scram["bob"][2]
    assert bob_salt == bob_given and bob_salted == hashlib.pbkdf2_hmac("sha512", b"pw2", bob_given, 4096)
    # kproto draws no salt of its own (no global or non-cryptographic randomness): a missing one is refused.
    with pytest.raises(IllegalArgumentError, match="'dave' needs a salt"):
        p.core.alter_user_scram_credentials([UserScramCredentialUpsertion("dave", 1, "pw")], now=p.now)
    op = p.run(p.core.describe_user_scram_credentials(["alice", "nobody"], now=p.now))
    assert op.results == {"alice": [(ScramMechanism.SCRAM_SHA_256, 8192)]}
    assert op.errors["nobody"].errno == 91
    everyone = p.run(p.core.describe_user_scram_credentials(now=p.now)).results[None]
    assert set(everyone) == {"alice", "bob"}
    assert "pw" not in repr(UserScramCredentialUpsertion("x", 1, "pw"))
    with pytest.raises(IllegalArgumentError, match="mechanism"):
        UserScramCredentialDeletion("x", "MD5")
    with pytest.raises(IllegalArgumentError, match="iterations"):
        UserScramCredentialUpsertion("x", 1, "pw", iterations=10)


def test_odd_broker_answers_fail_their_entries_and_the_core_keeps_serving() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0)
    # A resource type this client has no name for: that answer cannot be read.
    p.override[32] = lambda _b, req: _dc.DescribeConfigsResponse(
        results=[_dc.DescribeConfigsResult(resource_type=99, resource_name="t")]
    )
    op = p.run(p.core.describe_configs([ConfigResource("TOPIC", "t")], now=p.now))
    assert isinstance(op.errors[(ConfigResourceType.TOPIC, "t")], KafkaProtocolError)
    # An answer for a topic nobody asked about is ignored; the asked one is missing: its entry fails.
    p.override[19] = lambda _b, req: _ct.CreateTopicsResponse(topics=[_ct.CreatableTopicResult(name="other")])
    op = p.run(p.core.create_topics(["mine"], now=p.now))
    assert set(op.errors) == {"mine"} and not op.results
    del p.override[19], p.override[32]
    assert p.run(p.core.create_topics(["mine"], now=p.now)).results.keys() == {"mine"}


def test_group_offsets_leave_out_a_partition_with_a_final_error() -> None:
    p = AdminPair()
    p.cluster.group("g")

    def answer(_b: int, req: Any) -> Any:
        return _of.OffsetFetchResponse(
            topics=[
                _of.OffsetFetchResponseTopic(
                    name="t",
                    partitions=[
                        _of.OffsetFetchResponsePartition(partition_index=0, committed_offset=4, metadata=""),
                        _of.OffsetFetchResponsePartition(
                            partition_index=1, error_code=3, committed_offset=-1
                        ),
                    ],
                )
            ]
        )

    p.override[9] = answer
    op = p.run(p.core.list_consumer_group_offsets("g", now=p.now))
    assert op.results == {"g": {TopicPartition("t", 0): OffsetAndMetadata(4, "", -1)}}


def test_a_top_level_metadata_error_fails_the_metadata_calls() -> None:
    p = AdminPair()
    p.settle()
    p.override[3] = lambda _b, req: MetadataResponse(error_code=RebootstrapRequiredError.errno)
    op = p.run(p.core.list_topics(now=p.now, timeout_ms=1000))
    assert isinstance(op.errors[None], RebootstrapRequiredError)  # not retriable: at once


def test_max_timestamp_needs_list_offsets_v7() -> None:
    p = AdminPair()
    p.cluster.create_topic("t", 0.0, partitions=2)
    old = p.cluster.leader("t", 0)
    broker = p.cluster.brokers[old]
    served = broker.supported

    def below_v7() -> list[Any]:
        return [
            type(v)(api_key=v.api_key, min_version=v.min_version, max_version=6) if v.api_key == 2 else v
            for v in served()
        ]

    broker.supported = below_v7  # type: ignore[method-assign]
    tp = TopicPartition("t", 0)
    op = p.run(p.core.list_offsets({tp: OffsetSpec.MAX_TIMESTAMP}, now=p.now))
    assert isinstance(op.errors[tp], UnsupportedVersionError)
    assert "v7" in str(op.errors[tp])
    assert p.requests(2) == []  # nothing the broker would misread was sent
    broker.supported = served  # type: ignore[method-assign]
    other = next(b for b in p.cluster.brokers if b != old)
    p.cluster.move_leader("t", 0, other)
    op = p.run(p.core.list_offsets({tp: OffsetSpec.MAX_TIMESTAMP}, now=p.now))
    assert tp in op.results
    [(_b, req)] = p.requests(2)
    assert req.topics[0].partitions[0].timestamp == -3
    assert [v for _n, _b, k, v, _r in p.sent if k == 2] == [10]


def test_elect_leaders_at_the_controller_and_describe_all_topics() -> None:
    p = AdminPair()
    p.cluster.controller_id = 3
    p.cluster.create_topic("t", 0.0, partitions=2)
    op = p.run(p.core.elect_leaders(0, [TopicPartition("t", 0), TopicPartition("t", 7)], now=p.now))
    assert op.results == {TopicPartition("t", 0): None}
    assert isinstance(op.errors[TopicPartition("t", 7)], UnknownTopicOrPartitionError)
    [(broker, req)] = p.requests(43)
    assert broker == 3 and req.election_type == 0
    assert [(t.topic, t.partitions) for t in req.topic_partitions] == [("t", [0, 7])]
    everything = p.run(p.core.describe_topics(now=p.now)).results[None]
    assert [t["name"] for t in everything] == ["t"]
    [(_b, meta)] = [(b, r) for b, r in p.requests(3) if r.topics is None]
    assert meta.allow_auto_topic_creation is False


def test_close_fails_a_call_still_waiting_for_the_broker_list() -> None:
    p = AdminPair()
    op = p.core.list_consumer_groups(now=p.now)  # no metadata yet: waits for the brokers
    assert not op.done
    p.core.close(p.now)
    assert op.done and isinstance(op.error, Cancelled)


def test_a_call_that_never_reached_a_broker_times_out_naming_why() -> None:
    p = AdminPair()
    op = p.core.describe_cluster(now=p.now, timeout_ms=1500)
    for cmd in p.core.commands():  # every connection attempt is refused
        assert isinstance(cmd, Connect)
        p.core.connection_lost(cmd.node_id, ConnectionRefusedError("refused"), p.now)
    while not op.done:
        timer = p.core.get_timer()
        assert timer is not None
        p.now = timer
        p.core.handle_timer(p.now)
        for cmd in p.core.commands():
            if isinstance(cmd, Connect):
                p.core.connection_lost(cmd.node_id, ConnectionRefusedError("refused"), p.now)
    err = op.errors[None]
    assert isinstance(err, KafkaTimeoutError) and p.now == pytest.approx(T0 + 1.5)
    assert isinstance(err.__cause__, KafkaConnectionError)
    assert "refused" in str(err)


def test_an_authentication_failure_fails_open_calls_at_once() -> None:
    from kproto.errors import AuthenticationFailedError

    p = AdminPair()
    op = p.core.list_topics(now=p.now)
    waiting = p.core.list_consumer_groups(now=p.now)
    [cmd] = p.core.commands()
    assert isinstance(cmd, Connect)
    p.core.connection_lost(cmd.node_id, AuthenticationFailedError("bad certificate"), p.now)
    assert op.done and isinstance(op.errors[None], AuthenticationFailedError)
    assert waiting.done and isinstance(waiting.error, AuthenticationFailedError)

"""Our encoders produce exactly kafka-python's bytes (whole frames, headers included).

kafka-python 3.x builds its messages from the same Apache Kafka JSON schemas,
through an independent implementation, so byte equality is a strong check of
field order, compact encodings, tagged sections and header versions.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.consumer import FetchRequest as KpFetchRequest
from kafka.protocol.consumer import JoinGroupRequest as KpJoinGroupRequest
from kafka.protocol.consumer import OffsetCommitRequest as KpOffsetCommitRequest
from kafka.protocol.metadata import MetadataRequest as KpMetadataRequest
from kafka.protocol.producer import ProduceRequest as KpProduceRequest

from kproto.protocol._primitives import FieldSpec
from kproto.protocol.headers import encode_request
from kproto.protocol.messages import (
    REQUEST_TYPES,
    RESPONSE_TYPES,
    FetchRequest,
    JoinGroupRequest,
    MetadataRequest,
    OffsetCommitRequest,
    ProduceRequest,
)
from kproto.protocol.messages.fetch import FetchPartition, FetchTopic, ForgottenTopic, ReplicaState
from kproto.protocol.messages.join_group import JoinGroupRequestProtocol
from kproto.protocol.messages.metadata import MetadataRequestTopic
from kproto.protocol.messages.offset_commit import (
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kproto.protocol.messages.produce import PartitionProduceData, TopicProduceData

CLIENT_ID = "kproto-interop"
TOPIC_ID = uuid.UUID("0123456789abcdef0123456789abcdef")


def to_kafka_python(obj: Any, kp_cls: Any, version: int) -> Any:
    """Build the kafka-python object with the same field values as ``obj``.

    Only fields present at ``version`` are passed: kafka-python's schemas
    are from a newer Kafka, which dropped some fields of old versions.
    """
    kwargs: dict[str, Any] = {}
    defaults = type(obj)()
    for spec in type(obj)._FIELDS:
        if not spec.versions[0] <= version <= spec.versions[1]:
            continue
        value = getattr(obj, spec.name)
        if spec.tagged is not None and value == getattr(defaults, spec.name):
            # kafka-python writes every tagged field that was passed in, even
            # at its default; the Java client (and we) omit defaults. Leaving
            # it out makes both sides write the same bytes.
            continue
        if value is not None and spec.struct is not None:
            sub = getattr(kp_cls, spec.struct._SCHEMA_NAME)
            if spec.kind == "array":
                value = [to_kafka_python(e, sub, version) for e in value]
            else:
                value = to_kafka_python(value, sub, version)
        elif value is not None and spec.kind == "records":
            value = bytes(value)
        kwargs[spec.name] = value
    return kp_cls(**kwargs)


def kafka_python_frame(obj: Any, kp_cls: Any, version: int, correlation_id: int) -> bytes:
    kp = to_kafka_python(obj, kp_cls, version)
    kp.API_VERSION = version
    kp.with_header(correlation_id=correlation_id, client_id=CLIENT_ID)
    return bytes(kp.encode(version=version, header=True, framed=True))


def assert_same_frames(obj: Any, kp_cls: Any, versions: list[int]) -> None:
    for version in versions:
        ours = encode_request(obj, version, correlation_id=version + 100, client_id=CLIENT_ID)
        theirs = kafka_python_frame(obj, kp_cls, version, version + 100)
        assert ours == theirs, f"{type(obj).__name__} v{version}"


def test_metadata_request() -> None:
    req = MetadataRequest(
        topics=[MetadataRequestTopic(name="orders"), MetadataRequestTopic(name="payments")],
        allow_auto_topic_creation=True,
    )
    assert_same_frames(req, KpMetadataRequest, [0, 1, 4, 7, 8, 9])
    by_id = MetadataRequest(topics=[MetadataRequestTopic(topic_id=TOPIC_ID, name="orders")])
    assert_same_frames(by_id, KpMetadataRequest, [10, 11, 12])
    everything = MetadataRequest(topics=None, include_topic_authorized_operations=True)
    assert_same_frames(everything, KpMetadataRequest, [8, 9, 12])


def test_produce_request() -> None:
    req = ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout_ms=30000,
        topic_data=[
            TopicProduceData(
                name="orders",
                partition_data=[
                    PartitionProduceData(index=i, records=bytes(range(i, i + 70))) for i in range(3)
                ],
            )
        ],
    )
    assert_same_frames(req, KpProduceRequest, [3, 5, 7, 8, 9, 10, 11])
    txn = ProduceRequest(
        transactional_id="txn-1",
        acks=1,
        timeout_ms=5,
        topic_data=[TopicProduceData(name="t", partition_data=[PartitionProduceData(index=0, records=None)])],
    )
    assert_same_frames(txn, KpProduceRequest, [3, 8, 9, 11])


def test_fetch_request() -> None:
    req = FetchRequest(
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=52428800,
        isolation_level=1,
        session_id=0,
        session_epoch=-1,
        topics=[
            FetchTopic(
                topic="orders",
                topic_id=TOPIC_ID,
                partitions=[
                    FetchPartition(
                        partition=p,
                        current_leader_epoch=3,
                        fetch_offset=1000 * p,
                        last_fetched_epoch=-1,
                        log_start_offset=-1,
                        partition_max_bytes=1048576,
                    )
                    for p in range(4)
                ],
            )
        ],
        forgotten_topics_data=[],
        rack_id="",
    )
    # Topic names in v0-12, topic ids from v13; both set so either version works.
    assert_same_frames(req, KpFetchRequest, [4, 7, 10, 11, 12, 13, 14])
    # v15+: the replica id moves into the tagged ReplicaState struct.
    assert_same_frames(req, KpFetchRequest, [15, 16, 17])
    req.replica_state = ReplicaState(replica_id=-1, replica_epoch=7)
    assert_same_frames(req, KpFetchRequest, [15, 16])
    # v17 adds a tagged uuid per partition.
    for p in req.topics[0].partitions:
        p.replica_directory_id = uuid.UUID(int=p.partition + 1)
    assert_same_frames(req, KpFetchRequest, [17])
    incremental = FetchRequest(
        max_wait_ms=100,
        min_bytes=1,
        session_id=12,
        session_epoch=4,
        topics=[],
        forgotten_topics_data=[ForgottenTopic(topic="old", topic_id=TOPIC_ID, partitions=[1, 2])],
        rack_id="rack-a",
    )
    assert_same_frames(incremental, KpFetchRequest, [7, 11, 12, 13])


def test_join_group_request() -> None:
    req = JoinGroupRequest(
        group_id="group-1",
        session_timeout_ms=10000,
        rebalance_timeout_ms=300000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[
            JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01abc"),
            JoinGroupRequestProtocol(name="roundrobin", metadata=b""),
        ],
        reason=None,
    )
    assert_same_frames(req, KpJoinGroupRequest, [1, 2, 4, 5, 6, 7, 8, 9])
    static = JoinGroupRequest(
        group_id="g",
        session_timeout_ms=6000,
        rebalance_timeout_ms=6000,
        member_id="m-1",
        group_instance_id="instance-1",
        protocol_type="consumer",
        protocols=[JoinGroupRequestProtocol(name="range", metadata=b"x")],
        reason="rejoin",
    )
    assert_same_frames(static, KpJoinGroupRequest, [5, 6, 8, 9])


def test_offset_commit_request() -> None:
    req = OffsetCommitRequest(
        group_id="group-1",
        generation_id_or_member_epoch=7,
        member_id="member-1",
        group_instance_id=None,
        topics=[
            OffsetCommitRequestTopic(
                name="orders",
                partitions=[
                    OffsetCommitRequestPartition(
                        partition_index=p,
                        committed_offset=100 + p,
                        committed_leader_epoch=-1,
                        committed_metadata="",
                    )
                    for p in range(3)
                ],
            )
        ],
    )
    assert_same_frames(req, KpOffsetCommitRequest, [2, 3, 5, 6, 7, 8, 9])


# --- a broader sweep: every request kafka-python also knows, random values ----


def _in(rng: tuple[int, int] | None, v: int) -> bool:
    return rng is not None and rng[0] <= v <= rng[1]


def _prim(kind: str) -> st.SearchStrategy[Any]:
    bits = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}
    if kind in bits:
        n = bits[kind]
        return st.integers(-(2 ** (n - 1)), 2 ** (n - 1) - 1)
    if kind == "uint16":
        return st.integers(0, 2**16 - 1)
    if kind == "bool":
        return st.booleans()
    if kind == "float64":
        return st.floats(allow_nan=False)
    if kind == "string":
        return st.text(max_size=8)
    if kind in ("bytes", "records"):
        return st.binary(max_size=8)
    if kind == "uuid":
        return st.uuids()
    raise AssertionError(kind)


def _struct(cls: type, version: int) -> st.SearchStrategy[Any]:
    fields = {
        spec.name: _field(spec, version)
        for spec in cls._FIELDS  # type: ignore[attr-defined]
        if _in(spec.versions, version)
    }
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def _field(spec: FieldSpec, version: int) -> st.SearchStrategy[Any]:
    if spec.kind == "struct":
        assert spec.struct is not None
        s = _struct(spec.struct, version)
    elif spec.kind == "array":
        elem = _struct(spec.struct, version) if spec.struct is not None else _prim(str(spec.elem))
        s = st.lists(elem, max_size=2)
    else:
        s = _prim(spec.kind)
    return st.none() | s if _in(spec.nullable, version) else s


def _kafka_python_classes() -> dict[str, Any]:
    import kafka.protocol.admin as admin
    import kafka.protocol.consumer as consumer
    import kafka.protocol.metadata as metadata
    import kafka.protocol.producer as producer
    import kafka.protocol.sasl as sasl

    found: dict[str, Any] = {}
    for mod in (admin, consumer, metadata, producer, sasl):
        for name in dir(mod):
            obj = getattr(mod, name)
            # Only the schema-driven message classes (not the legacy ones).
            if (
                name.endswith(("Request", "Response"))
                and isinstance(obj, type)
                and issubclass(obj, ApiMessage)
                and obj.__module__.startswith("kafka.protocol.")
                and ".old" not in obj.__module__
            ):
                found[name] = obj
    return found


KP = _kafka_python_classes()
OURS = {cls.__name__: cls for cls in list(REQUEST_TYPES.values()) + list(RESPONSE_TYPES.values())}


def _comparable(name: str, version: int) -> bool:
    """kafka-python renamed a few fields in its copy of the schemas; skip those."""
    try:
        to_kafka_python(OURS[name](), KP[name], version)
    except ValueError:
        return False
    return True


SWEEP = sorted(
    (name, v)
    for name, cls in OURS.items()
    if name in KP
    for v in range(cls.MIN_VERSION, min(cls.MAX_VERSION, KP[name].max_version) + 1)  # type: ignore[attr-defined]
    if _comparable(name, v)
)


def test_sweep_covers_the_client_apis() -> None:
    names = {name for name, _ in SWEEP}
    for api in (
        "Produce",
        "Fetch",
        "Metadata",
        "ApiVersions",
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "Heartbeat",
        "LeaveGroup",
        "OffsetCommit",
        "OffsetFetch",
        "ListOffsets",
        "InitProducerId",
        "SaslHandshake",
        "SaslAuthenticate",
    ):
        assert f"{api}Request" in names and f"{api}Response" in names, api
    assert len(SWEEP) > 300


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_sweep_same_body_bytes_as_kafka_python(data: st.DataObject) -> None:
    name, version = data.draw(st.sampled_from(SWEEP))
    ours_cls = OURS[name]
    obj = data.draw(_struct(ours_cls, version))
    ours = obj.encode(version)
    try:
        kp = to_kafka_python(obj, KP[name], version)
        theirs = bytes(kp.encode(version=version))
    except (ValueError, TypeError):
        # kafka-python renamed or retyped a few fields in its copy of the
        # schemas (e.g. authorized_operations as a set); not comparable.
        reject()
    assert theirs == ours, f"{name} v{version}"
    # Each side reads the other's bytes as the same message.
    assert ours_cls.decode(theirs, version) == obj, f"{name} v{version}"  # type: ignore[attr-defined]
    if name == "ApiVersionsResponse" and obj.error_code != 0:
        return  # kafka-python then reads the body as v0 on purpose (KIP-511)
    again = KP[name].decode(ours, version=version)
    again._header = None  # kafka-python's decode leaves this slot unset
    assert bytes(again.encode(version=version)) == ours, f"{name} v{version}"

"""Which APIs are generated, how they are typed, and how the generated code reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kproto.errors import DecodeError, UnsupportedVersionError
from kproto.protocol.message import Message, Request, Response, Struct
from kproto.protocol.messages import (
    DATA_TYPES,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    HeartbeatRequest,
    ProduceRequest,
)
from kproto.protocol.messages.produce import PartitionProduceData, TopicProduceData

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tools" / "kafka-protocol" / "message"
GENERATED = ROOT / "kproto" / "protocol" / "messages"

#: What a Kafka admin client sends (Java's Admin), by request name.
ADMIN_APIS = (
    "CreateTopics DeleteTopics DescribeConfigs AlterConfigs IncrementalAlterConfigs CreatePartitions "
    "DeleteRecords ListGroups DescribeGroups DeleteGroups OffsetDelete DescribeAcls CreateAcls DeleteAcls "
    "DescribeLogDirs AlterReplicaLogDirs ElectLeaders DescribeUserScramCredentials AlterUserScramCredentials "
    "ListTransactions DescribeTransactions DescribeProducers DescribeCluster AlterPartitionReassignments "
    "ListPartitionReassignments DescribeClientQuotas AlterClientQuotas CreateDelegationToken "
    "DescribeDelegationToken RenewDelegationToken ExpireDelegationToken UpdateFeatures DescribeQuorum "
    "AddRaftVoter RemoveRaftVoter UnregisterBroker WriteTxnMarkers ConsumerGroupDescribe ShareGroupDescribe "
    "DescribeTopicPartitions ListConfigResources OffsetFetch ListOffsets Metadata FindCoordinator"
).split()


def _schema(name: str) -> dict[str, object]:
    text = (SCHEMAS / f"{name}.json").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    data: dict[str, object] = json.loads(body)
    return data


def test_every_request_is_client_facing() -> None:
    names = {cls.__name__ for cls in REQUEST_TYPES.values()}
    for name in names:
        listeners = _schema(name)["listeners"]
        assert isinstance(listeners, list) and "broker" in listeners, name
    # Controller-only and broker-to-broker APIs are not generated.
    for gone in (
        "Vote",
        "BeginQuorumEpoch",
        "BrokerHeartbeat",
        "BrokerRegistration",
        "Envelope",
        "AlterPartition",
        "AllocateProducerIds",
        "FetchSnapshot",
        "ReadShareGroupState",
        "WriteShareGroupState",
        "InitializeShareGroupState",
        "DeleteShareGroupState",
    ):
        assert f"{gone}Request" not in names
        assert not (GENERATED / f"{gone}.py").exists()
    assert set(DATA_TYPES) == {"ConsumerProtocolAssignment", "ConsumerProtocolSubscription", "EndTxnMarker"}


def test_admin_client_apis_are_generated() -> None:
    names = {cls.__name__ for cls in REQUEST_TYPES.values()}
    missing = [api for api in ADMIN_APIS if f"{api}Request" not in names]
    assert missing == []


def test_classes_derive_from_the_typed_bases() -> None:
    for key, req in REQUEST_TYPES.items():
        resp = RESPONSE_TYPES[key]
        assert issubclass(req, Request) and issubclass(resp, Response)
        assert req.API_KEY == resp.API_KEY == key
        # The type argument names this request's own response.
        bases = getattr(req, "__orig_bases__", ())
        assert [b.__args__[0].__forward_arg__ for b in bases] == [resp.__name__]
    for cls in DATA_TYPES.values():
        assert issubclass(cls, Message) and not issubclass(cls, (Request, Response))
    assert issubclass(TopicProduceData, Struct) and not issubclass(TopicProduceData, Message)


def test_inherited_codec_methods_keep_their_contract() -> None:
    req = ProduceRequest(
        acks=-1,
        timeout_ms=5,
        topic_data=[
            TopicProduceData(name="t", partition_data=[PartitionProduceData(index=0, records=b"abc")])
        ],
    )
    body = req.encode(9)
    assert ProduceRequest.decode(body, 9) == req
    assert repr(ProduceRequest.decode(body, 9)).endswith("records=<3 bytes>)])])")
    with pytest.raises(UnsupportedVersionError, match=r"ProduceRequest has no version 2 \(valid 3-13\)"):
        req.encode(2)
    with pytest.raises(UnsupportedVersionError, match="TopicProduceData has no version 14"):
        TopicProduceData().encode(14)
    with pytest.raises(DecodeError, match="1 trailing bytes after ProduceRequest v9"):
        ProduceRequest.decode(body + b"\0", 9)
    with pytest.raises(DecodeError, match="malformed ProduceRequest v9"):
        ProduceRequest.decode(body[:-3], 9)
    out = bytearray(b"keep")
    with pytest.raises(ValueError, match="cannot encode HeartbeatRequest v4"):
        HeartbeatRequest(generation_id=1 << 40).write(out, 4)
    assert out == b"keep"  # nothing left appended on error
    assert HeartbeatRequest(group_id="g") != HeartbeatRequest(group_id="h")
    assert HeartbeatRequest(group_id="g") == HeartbeatRequest(group_id="g")


def test_generated_code_uses_readable_names() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in GENERATED.glob("*.py"))
    assert "_S_" not in text and "_w_" not in text and "_r_" not in text
    produce = (GENERATED / "produce.py").read_text(encoding="utf-8")
    assert "_INT32_INT16_INT64_INT64 = struct.Struct('>ihqq')" in produce
    assert "def _read_TopicProduceData_v9(" in produce
    assert "for partition_data_item in partition_data:" in produce
    # The schema's facts per field, in the class docstring (issue 14 item 4).
    assert "        acks: ``Acks`` ``int16``; every version.\n" in produce
    assert "    acks: int\n" in produce
    assert "Generated from ``tools/kafka-protocol/message/ProduceRequest.json``" in produce
    assert "Kafka request ``ProduceRequest`` (API key 0): valid versions v3-13, flexible versions v9+." in produce

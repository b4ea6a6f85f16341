"""Tagged fields (KIP-482): known ones decode, unknown ones survive a round trip."""

from __future__ import annotations

import uuid

from kproto.protocol.messages import ApiVersionsResponse, FetchResponse, ProduceRequest
from kproto.protocol.messages.fetch import (
    EpochEndOffset,
    FetchableTopicResponse,
    LeaderIdAndEpoch,
    PartitionData,
)
from kproto.protocol.messages.produce import PartitionProduceData, TopicProduceData


def test_unknown_tags_on_top_level_survive_decode_encode() -> None:
    # ApiVersionsResponse v3 body: error_code, empty compact array, throttle,
    # then a tagged section with known tag 3 (ZkMigrationReady = true) and an
    # unknown tag 9 (3 bytes).
    body = bytes.fromhex("00000100000000020301010903616263")
    obj = ApiVersionsResponse.decode(body, 3)
    assert obj.unknown_tags == {9: b"abc"}
    assert obj.zk_migration_ready is True
    assert obj.encode(3) == body


def test_unknown_tags_in_nested_structs_survive() -> None:
    req = ProduceRequest(
        acks=1,
        timeout_ms=100,
        topic_data=[
            TopicProduceData(
                name="t",
                partition_data=[PartitionProduceData(index=3, records=b"xyz", unknown_tags={7: b"\x01\x02"})],
                unknown_tags={100000: b""},
            )
        ],
        unknown_tags={1: b"hello"},
    )
    body = req.encode(9)
    back = ProduceRequest.decode(body, 9)
    assert back == req
    assert back.topic_data[0].partition_data[0].unknown_tags == {7: b"\x01\x02"}
    assert back.topic_data[0].unknown_tags == {100000: b""}
    assert back.unknown_tags == {1: b"hello"}
    assert back.encode(9) == body


def test_known_and_unknown_tags_are_written_in_tag_order() -> None:
    part = PartitionData(
        partition_index=1,
        records=b"",
        diverging_epoch=EpochEndOffset(epoch=4, end_offset=40),  # tag 0
        current_leader=LeaderIdAndEpoch(leader_id=2, leader_epoch=5),  # tag 1
        unknown_tags={5: b"\xaa", 0x10: b"\xbb\xcc"},
    )
    resp = FetchResponse(responses=[FetchableTopicResponse(topic_id=uuid.UUID(int=1), partitions=[part])])
    body = resp.encode(13)
    back = FetchResponse.decode(body, 13)
    assert back == resp
    got = back.responses[0].partitions[0]
    assert got.diverging_epoch == EpochEndOffset(epoch=4, end_offset=40)
    assert got.current_leader == LeaderIdAndEpoch(leader_id=2, leader_epoch=5)
    assert got.unknown_tags == {5: b"\xaa", 0x10: b"\xbb\xcc"}
    assert back.encode(13) == body


def test_tag_section_is_sorted_by_tag() -> None:
    resp = ApiVersionsResponse(zk_migration_ready=True, unknown_tags={9: b"b", 7: b"a"})
    body = resp.encode(3)
    # count 3; tag 3 (known bool), tag 7 (unknown), tag 9 (unknown)
    assert body.endswith(bytes.fromhex("03030101070161090162"))
    assert ApiVersionsResponse.decode(body, 3) == resp


def test_default_tagged_fields_are_not_written() -> None:
    plain = FetchResponse(
        responses=[
            FetchableTopicResponse(topic_id=uuid.UUID(int=1), partitions=[PartitionData(partition_index=1)])
        ]
    )
    tagged = FetchResponse(
        responses=[
            FetchableTopicResponse(
                topic_id=uuid.UUID(int=1),
                partitions=[PartitionData(partition_index=1, current_leader=LeaderIdAndEpoch(leader_id=3))],
            )
        ]
    )
    assert len(tagged.encode(13)) > len(plain.encode(13))
    assert FetchResponse.decode(plain.encode(13), 13) == plain
    assert FetchResponse.decode(tagged.encode(13), 13) == tagged


def test_unknown_tags_are_ignored_in_non_flexible_versions() -> None:
    resp = ApiVersionsResponse(error_code=0, unknown_tags={3: b"x"})
    assert ApiVersionsResponse.decode(resp.encode(2), 2).unknown_tags is None

"""Range and round-robin assignors: the Java client's test cases, then properties (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kproto.consumer import TopicPartition
from kproto.consumer.assignors import (
    RangePartitionAssignor,
    RoundRobinPartitionAssignor,
    StickyPartitionAssignor,
    decode_assignment,
    decode_sticky_user_data,
    decode_subscription,
    encode_assignment,
    encode_sticky_user_data,
    encode_subscription,
    resolve_assignors,
)
from kproto.errors import KafkaConfigurationError


def members(**subs: list[str]) -> dict[str, tuple[list[str], None]]:
    return {m: (topics, None) for m, topics in subs.items()}


def test_range_one_consumer_one_topic() -> None:
    assert RangePartitionAssignor().assign({"t1": 3}, members(c1=["t1"])) == {"c1": {"t1": [0, 1, 2]}}


def test_range_two_consumers_two_topics_six_partitions() -> None:
    got = RangePartitionAssignor().assign({"t1": 3, "t2": 3}, members(c1=["t1", "t2"], c2=["t1", "t2"]))
    assert got == {"c1": {"t1": [0, 1], "t2": [0, 1]}, "c2": {"t1": [2], "t2": [2]}}


def test_range_only_subscribed_topics_and_mixed() -> None:
    got = RangePartitionAssignor().assign({"t1": 3, "t2": 2, "other": 3},
                                          members(c1=["t1"], c2=["t1", "t2"], c3=["t1"]))
    assert got == {"c1": {"t1": [0]}, "c2": {"t1": [1], "t2": [0, 1]}, "c3": {"t1": [2]}}


def test_range_more_consumers_than_partitions() -> None:
    got = RangePartitionAssignor().assign({"t1": 1}, members(c1=["t1"], c2=["t1"]))
    assert got == {"c1": {"t1": [0]}, "c2": {}}


def test_roundrobin_two_consumers_two_topics_six_partitions() -> None:
    got = RoundRobinPartitionAssignor().assign({"t1": 3, "t2": 3}, members(c1=["t1", "t2"], c2=["t1", "t2"]))
    assert got == {"c1": {"t1": [0, 2], "t2": [1]}, "c2": {"t1": [1], "t2": [0, 2]}}


def test_roundrobin_mixed_topics() -> None:
    got = RoundRobinPartitionAssignor().assign({"t1": 3, "t2": 2}, members(c1=["t1"], c2=["t1", "t2"], c3=["t1"]))
    assert got == {"c1": {"t1": [0]}, "c2": {"t1": [1], "t2": [0, 1]}, "c3": {"t1": [2]}}


def test_static_members_sort_by_instance_id() -> None:
    m = {"zzz": (["t"], "a"), "aaa": (["t"], "b")}
    assert RangePartitionAssignor().assign({"t": 2}, m) == {"zzz": {"t": [0]}, "aaa": {"t": [1]}}


def test_protocol_encodings_round_trip() -> None:
    sub = decode_subscription(encode_subscription(["b", "a"]))
    assert list(sub.topics) == ["a", "b"]
    data = encode_assignment({"t": [2, 0], "u": [1]})
    assert data[:2] == b"\x00\x00"
    assert decode_assignment(data) == {TopicPartition("t", 0), TopicPartition("t", 2), TopicPartition("u", 1)}
    assert decode_assignment(b"") == set()


def test_kafka_python_encodings_are_read() -> None:
    from kafka.protocol.old.consumer_protocol import (
        ConsumerProtocolMemberAssignment_v0,
        ConsumerProtocolMemberMetadata_v0,
    )

    meta = ConsumerProtocolMemberMetadata_v0(0, ["x", "y"], b"").encode()
    assert list(decode_subscription(meta).topics) == ["x", "y"]
    # kafka-python reads what kproto writes, too.
    assert ConsumerProtocolMemberMetadata_v0.decode(encode_subscription(["y", "x"])).topics == ["x", "y"]
    assign = ConsumerProtocolMemberAssignment_v0(0, [("x", [0, 3])], b"").encode()
    assert decode_assignment(assign) == {TopicPartition("x", 0), TopicPartition("x", 3)}


def test_resolve_assignors() -> None:
    from kafka.coordinator.assignors.range import RangePartitionAssignor as KRange

    got = resolve_assignors(["roundrobin", KRange, RangePartitionAssignor(), "sticky", "cooperative-sticky"])
    assert [a.name for a in got] == ["roundrobin", "range", "range", "sticky", "cooperative-sticky"]
    assert [a.cooperative for a in got] == [False, False, False, False, True]
    with pytest.raises(KafkaConfigurationError, match="cooperative-sticky"):
        resolve_assignors(["no-such-assignor"])


@given(
    counts=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 12), min_size=1),
    subs=st.lists(st.sets(st.sampled_from(["a", "b", "c", "d"]), min_size=1), min_size=1, max_size=6),
)
@pytest.mark.parametrize("assignor", [RangePartitionAssignor(), RoundRobinPartitionAssignor(),
                                      StickyPartitionAssignor()])
def test_every_partition_to_exactly_one_subscribed_member(assignor: object, counts: dict[str, int],
                                                          subs: list[set[str]]) -> None:
    ms = {f"m{i}": (sorted(s), None) for i, s in enumerate(subs)}
    plan = assignor.assign(counts, ms)  # type: ignore[attr-defined]
    assert set(plan) == set(ms)
    seen: dict[tuple[str, int], str] = {}
    for m, topics in plan.items():
        for t, ps in topics.items():
            assert t in ms[m][0]
            for p in ps:
                assert (t, p) not in seen
                seen[(t, p)] = m
    wanted = {(t, p) for t, n in counts.items() for p in range(n) if any(t in s for s, _ in ms.values())}
    assert set(seen) == wanted
    if isinstance(assignor, RangePartitionAssignor):
        for t in counts:  # per topic, subscribers differ by at most one partition
            sizes = [len(plan[m].get(t, [])) for m in ms if t in ms[m][0]]
            if sizes:
                assert max(sizes) - min(sizes) <= 1


# --- sticky -------------------------------------------------------------------------------


def sticky_round(counts: dict[str, int], subs: dict[str, list[str]],
                 previous: dict[str, dict[str, list[int]]] | None = None, generation: int = 1
                 ) -> dict[str, dict[str, list[int]]]:
    ud = {m: encode_sticky_user_data({TopicPartition(t, p) for t, ps in a.items() for p in ps}, generation)
          for m, a in (previous or {}).items() if m in subs}
    return StickyPartitionAssignor().assign(counts, {m: (ts, None) for m, ts in subs.items()}, ud)


def flat(a: dict[str, list[int]]) -> set[tuple[str, int]]:
    return {(t, p) for t, ps in a.items() for p in ps}


def test_sticky_user_data_round_trip_and_java_layout() -> None:
    data = encode_sticky_user_data({TopicPartition("t", 1), TopicPartition("t", 0)}, 7)
    assert data == (b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x00"
                    + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x07")
    assert decode_sticky_user_data(data) == ({TopicPartition("t", 0), TopicPartition("t", 1)}, 7)
    assert decode_sticky_user_data(data[:-4]) == ({TopicPartition("t", 0), TopicPartition("t", 1)}, -1)
    with pytest.raises(ValueError):
        decode_sticky_user_data(b"\x00\x00\x00\x05")


def test_sticky_first_assignment_is_balanced() -> None:
    got = sticky_round({"t1": 3, "t2": 3}, {"c1": ["t1", "t2"], "c2": ["t1", "t2"]})
    assert sorted(len(flat(a)) for a in got.values()) == [3, 3]


def test_sticky_adding_a_member_moves_only_what_balance_needs() -> None:
    first = sticky_round({"t": 6}, {"a": ["t"], "b": ["t"]})
    second = sticky_round({"t": 6}, {"a": ["t"], "b": ["t"], "c": ["t"]}, first)
    assert sorted(len(flat(x)) for x in second.values()) == [2, 2, 2]
    for m in ("a", "b"):
        assert flat(second[m]) <= flat(first[m])  # existing members only give partitions up


def test_sticky_member_leaving_keeps_the_others() -> None:
    first = sticky_round({"t": 6}, {"a": ["t"], "b": ["t"], "c": ["t"]})
    second = sticky_round({"t": 6}, {"a": ["t"], "b": ["t"]}, first)
    for m in ("a", "b"):
        assert flat(first[m]) <= flat(second[m])
    assert sorted(len(flat(x)) for x in second.values()) == [3, 3]


def test_sticky_conflicting_claims_go_to_the_newest_generation() -> None:
    ud = {"a": encode_sticky_user_data({TopicPartition("t", 0)}, 3),
          "b": encode_sticky_user_data({TopicPartition("t", 0)}, 5)}
    got = StickyPartitionAssignor().assign({"t": 2}, {"a": (["t"], None), "b": (["t"], None)}, ud)
    assert got == {"a": {"t": [1]}, "b": {"t": [0]}}


@given(
    n_parts=st.integers(1, 20),
    first_members=st.integers(1, 5),
    second_members=st.integers(1, 5),
)
def test_sticky_balanced_and_sticky_properties(n_parts: int, first_members: int, second_members: int) -> None:
    subs1 = {f"m{i}": ["t"] for i in range(first_members)}
    subs2 = {f"m{i}": ["t"] for i in range(second_members)}
    first = sticky_round({"t": n_parts}, subs1)
    second = sticky_round({"t": n_parts}, subs2, first)
    for plan in (first, second):
        owned = [flat(a) for a in plan.values()]
        assert sum(len(o) for o in owned) == n_parts and set().union(*owned) == {("t", p) for p in range(n_parts)}
        assert max(len(o) for o in owned) - min(len(o) for o in owned) <= 1
    # Stickiness: a member present in both rounds keeps min(what it had, its fair share) partitions.
    share = n_parts // second_members
    for m in set(subs1) & set(subs2):
        assert len(flat(first[m]) & flat(second[m])) >= min(len(flat(first[m])), share)
    # With nothing changed, nothing moves.
    assert sticky_round({"t": n_parts}, subs2, second) == second

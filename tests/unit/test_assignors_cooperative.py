"""cooperative-sticky (KIP-429): the leader's two-round incremental assignment, and its wire format."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from kafka.protocol.old.consumer_protocol import ConsumerProtocolMemberMetadata_v0

from kproto.consumer import CooperativeStickyAssignor, TopicPartition
from kproto.consumer.assignors import (
    StickyPartitionAssignor,
    decode_subscription,
    encode_subscription,
)

Plan = dict[str, dict[str, list[int]]]


def flat(a: dict[str, list[int]]) -> set[TopicPartition]:
    return {TopicPartition(t, p) for t, ps in a.items() for p in ps}


def coop_round(
    counts: dict[str, int],
    subs: dict[str, list[str]],
    owned: dict[str, set[TopicPartition]],
    generation: int = 1,
) -> Plan:
    """One rebalance as the leader sees it: each member's subscription goes through the wire encoding."""
    a = CooperativeStickyAssignor()
    members = {m: (ts, None) for m, ts in subs.items()}
    user_data = {}
    for m in subs:
        mine = owned.get(m, set())
        sub = decode_subscription(encode_subscription(subs[m], a.user_data(mine, generation), mine))
        user_data[m] = a.member_data(sub)
    return a.assign(counts, members, user_data)


def converge(
    counts: dict[str, int], subs: dict[str, list[str]], owned: dict[str, set[TopicPartition]]
) -> tuple[list[Plan], dict[str, set[TopicPartition]]]:
    """Rebalance as members do: after each round a member revokes what it lost and, if it did, rejoins."""
    plans = []
    owned = {m: set(owned.get(m, set())) for m in subs}
    for generation in range(1, 6):
        plan = coop_round(counts, subs, owned, generation)
        plans.append(plan)
        # Invariant: nobody is given a partition another member still owns.
        for m, a in plan.items():
            for tp in flat(a):
                assert all(tp not in owned[o] for o in subs if o != m), (tp, m, owned)
        revoked_any = any(owned[m] - flat(plan[m]) for m in subs)
        owned = {m: flat(plan[m]) for m in subs}
        if not revoked_any:
            return plans, owned
    raise AssertionError(f"no convergence after 5 rounds: {plans}")


def test_subscription_carries_owned_partitions_and_generation() -> None:
    a = CooperativeStickyAssignor()
    owned = {TopicPartition("t", 2), TopicPartition("t", 0), TopicPartition("u", 1)}
    raw = encode_subscription(["u", "t"], a.user_data(owned, 7), owned)
    assert raw[:2] == b"\x00\x01"  # version 1: owned_partitions (KIP-429)
    sub = decode_subscription(raw)
    assert list(sub.topics) == ["t", "u"]
    assert {(tp.topic, tuple(tp.partitions)) for tp in sub.owned_partitions} == {("t", (0, 2)), ("u", (1,))}
    assert sub.user_data == struct.pack(">i", 7)  # the Java CooperativeStickyAssignor user data
    # A v0 reader (kafka-python) still reads the topics: the v1 fields come after.
    assert ConsumerProtocolMemberMetadata_v0.decode(raw).topics == ["t", "u"]


def test_new_member_gets_moved_partitions_only_in_the_second_round() -> None:
    subs2 = {"a": ["t"], "b": ["t"]}
    _plans, owned = converge({"t": 6}, subs2, {})
    assert sorted(len(o) for o in owned.values()) == [3, 3]
    subs3 = {"a": ["t"], "b": ["t"], "c": ["t"]}
    first = coop_round({"t": 6}, subs3, owned, 2)
    # Round 1: c gets nothing (all six are owned), a and b each give up one.
    assert flat(first["c"]) == set()
    for m in ("a", "b"):
        assert flat(first[m]) < owned[m] and len(owned[m] - flat(first[m])) == 1
    after = {m: flat(first[m]) for m in subs3}
    second = coop_round({"t": 6}, subs3, after, 3)
    # Round 2: c gets exactly what a and b revoked; a and b keep the rest.
    assert flat(second["c"]) == (owned["a"] | owned["b"]) - after["a"] - after["b"]
    assert {m: flat(second[m]) for m in ("a", "b")} == {m: after[m] for m in ("a", "b")}
    assert sorted(len(flat(x)) for x in second.values()) == [2, 2, 2]


def test_leaving_member_partitions_go_out_in_one_round() -> None:
    _plans, owned = converge({"t": 6}, {"a": ["t"], "b": ["t"], "c": ["t"]}, {})
    plans, after = converge({"t": 6}, {"a": ["t"], "b": ["t"]}, {m: owned[m] for m in ("a", "b")})
    assert len(plans) == 1  # nothing owned moves: no revocation, no second round
    assert owned["a"] <= after["a"] and owned["b"] <= after["b"]
    assert sorted(len(o) for o in after.values()) == [3, 3]


def test_same_target_as_sticky() -> None:
    _plans, owned = converge({"t": 5, "u": 3}, {"a": ["t", "u"], "b": ["t", "u"]}, {})
    subs = {"a": ["t", "u"], "b": ["t", "u"], "c": ["t", "u"]}
    _plans, final = converge({"t": 5, "u": 3}, subs, owned)
    from kproto.consumer.assignors import encode_sticky_user_data

    sticky = StickyPartitionAssignor().assign(
        {"t": 5, "u": 3},
        {m: (ts, None) for m, ts in subs.items()},
        {m: encode_sticky_user_data(o, 1) for m, o in owned.items()},
    )
    assert final == {m: flat(sticky[m]) for m in subs}


@given(
    n_parts=st.integers(1, 16),
    first_members=st.integers(1, 5),
    second_members=st.integers(1, 5),
)
def test_cooperative_balance_and_stickiness(n_parts: int, first_members: int, second_members: int) -> None:
    subs1 = {f"m{i}": ["t"] for i in range(first_members)}
    subs2 = {f"m{i}": ["t"] for i in range(second_members)}
    everything = {TopicPartition("t", p) for p in range(n_parts)}
    _plans, owned1 = converge({"t": n_parts}, subs1, {})
    plans, owned2 = converge({"t": n_parts}, subs2, {m: owned1[m] for m in subs2 if m in owned1})
    for owned in (owned1, owned2):
        sizes = [len(o) for o in owned.values()]
        assert set().union(*owned.values()) == everything and sum(sizes) == n_parts  # disjoint, complete
        assert max(sizes) - min(sizes) <= 1  # balanced
    # At most two rounds: one to revoke, one to hand out.
    assert len(plans) <= 2
    # Sticky: a member in both groups keeps min(what it had, its fair share).
    share = n_parts // second_members
    for m in set(subs1) & set(subs2):
        assert len(owned1[m] & owned2[m]) >= min(len(owned1[m]), share)
    # Nothing changes: one round, nothing moves.
    again, same = converge({"t": n_parts}, subs2, owned2)
    assert len(again) == 1 and same == owned2


@given(
    counts=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(1, 8), min_size=1),
    subs=st.lists(st.sets(st.sampled_from(["a", "b", "c"]), min_size=1), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_cooperative_mixed_subscriptions_never_double_assign(
    counts: dict[str, int], subs: list[set[str]], seed: int
) -> None:
    import random

    rng = random.Random(seed)
    members = {f"m{i}": sorted(s) for i, s in enumerate(subs)}
    # Arbitrary (even stale or unsubscribed) previous ownership, disjoint as a real group's is.
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    for t, n in counts.items():
        for p in range(n):
            if rng.random() < 0.6:
                owned[rng.choice(sorted(members))].add(TopicPartition(t, p))
    _plans, final = converge(counts, members, owned)  # converge() checks no double assignment each round
    wanted = {
        TopicPartition(t, p)
        for t, n in counts.items()
        for p in range(n)
        if any(t in s for s in members.values())
    }
    assert set().union(*final.values()) == wanted
    for m, tps in final.items():
        assert all(tp.topic in members[m] for tp in tps)

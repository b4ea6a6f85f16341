"""KIP-899 re-bootstrap: the whole cluster moves to new addresses mid-run.

ProducerCore with the real Client against the wire-level simulated cluster
(tests/sim/harness.py). The client bootstraps through an alias
(``bootstrap.sim``, as a DNS name or a load balancer in front of the
cluster) and learns the brokers' own addresses from metadata. Mid-run every
broker is replaced by one at a new address (new ids, or the same ids), so
every broker the client knows refuses connections; only the bootstrap alias
reaches the new cluster.

- With ``metadata_recovery_strategy='rebootstrap'`` the client goes back to
  the alias, learns the new brokers and every record is delivered (with
  idempotence: exactly once, in order), with leader epochs never going back.
- With ``'none'`` it keeps retrying the old brokers: it never connects to the
  bootstrap alias again and nothing sent after the move is delivered.
- A consumer group (the group simulation's scenario) lives through the same
  move: every member re-bootstraps, finds the moved coordinator, and every
  record is delivered with the group's invariants intact.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kproto.driving import Connect
from kproto.events import Rebootstrapped
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome

from .harness import Sim, SimCluster, SimNetwork, SimViolation
from .test_consumer_group_sim import FAULT_PHASE, GroupScenario

TOPIC = "moving"
MOVE_AT = 1.0


def scenario(
    seed: int, *, strategy: str, idempotent: bool, keep_ids: bool, records: int = 300, max_time: float = 120.0
) -> dict[str, Any]:
    rng = random.Random(seed)
    cluster = SimCluster(rng, n_brokers=3, default_partitions=rng.choice((1, 3, 4)))
    bootstrap = cluster.add_alias()
    kwargs: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        linger_ms=rng.choice((0, 5)),
        retry_backoff_ms=rng.choice((10, 100)),
        request_timeout_ms=2000,
        delivery_timeout_ms=1_000_000,
        metadata_recovery_strategy=strategy,
    )
    if idempotent:
        kwargs["enable_idempotence"] = True
    else:
        kwargs.update(retries=1_000_000, acks=rng.choice((1, "all")))
    core = ProducerCore(ProducerConfig.from_kwargs(**kwargs), now=0.0, rng=random.Random(seed))
    client = core._client
    network = SimNetwork(cluster, rng, latency=(0.0001, 0.01), max_chunk=rng.choice((64, 4096)))
    sim = Sim(core, cluster, network)

    delivered: dict[int, tuple[int, int]] = {}
    failed: dict[int, Exception] = {}
    sent = [0]
    rebootstraps: list[Rebootstrapped] = []
    epochs: dict[tuple[str, int], int] = {}

    def on_step() -> None:
        for ev in core.events():
            if not isinstance(ev, BatchOutcome):
                continue  # the client's events and retries, forwarded
            for k, tok in enumerate(ev.tokens):
                assert tok not in delivered and tok not in failed, f"seed {seed}: token {tok} completed twice"
                if isinstance(ev, RecordsDelivered):
                    delivered[tok] = (ev.partition, ev.base_offset + k)
                else:
                    assert isinstance(ev, DeliveryFailed)
                    failed[tok] = ev.error
        # The producer drains the client's events; watch the count instead.
        while len(rebootstraps) < client.rebootstrap_count:
            rebootstraps.append(Rebootstrapped(reason="", servers=()))
        cm = client.cluster
        for p in cm.partitions_for(TOPIC) or ():
            epoch = cm.leader_epoch_for(TOPIC, p)
            if epoch is not None:
                if epoch < epochs.get((TOPIC, p), -1):
                    raise SimViolation(f"seed {seed}: leader epoch of {TOPIC}/{p} went back to {epoch}")
                epochs[(TOPIC, p)] = epoch

    def send_some() -> None:
        burst = rng.randrange(1, 6)
        while burst and sent[0] < records:
            i = sent[0]
            ok = core.send(
                topic=TOPIC, key=b"k%d" % (i % 7), value=b"%d" % i, headers=None, partition=None,
                timestamp_ms=1_700_000_000_000 + i, token=i, now=sim.now,
            )  # fmt: skip
            if not ok:
                break
            sent[0] += 1
            burst -= 1
        if sent[0] < records:
            sim.at(sim.now + rng.random() * 0.04, send_some)  # ~2 s of sending

    old_ids: list[int] = []

    def move() -> None:
        old_ids.extend(cluster.replace_brokers(keep_ids=keep_ids))
        for b in old_ids:
            network.cut_broker(b, sim.now)

    sim.at(0.0, send_some)
    sim.at(MOVE_AT, move)
    sim.on_step = on_step
    done = sim.run(until=lambda: sent[0] == records and core.pending_count() == 0, max_time=max_time)
    on_step()
    bootstrap_connects = [
        t
        for t, cmd in sim.commands_seen
        if isinstance(cmd, Connect) and (cmd.host, cmd.port) == ("bootstrap.sim", 9092)
    ]
    log_values = {
        p: [v for _o, _k, v in cluster.log(TOPIC, p).records()] for p in range(len(cluster.topics[TOPIC]))
    }
    for tok, (p, offset) in delivered.items():
        assert log_values[p][offset] == b"%d" % tok, (seed, tok, p, offset)
    if idempotent:
        for p, values in log_values.items():
            acked = [int(v) for v in values if v is not None and int(v) in delivered]
            assert len(acked) == len(set(acked)), f"seed {seed}: partition {p} has a record twice"
            assert acked == sorted(acked), f"seed {seed}: partition {p} out of send order"
    return {
        "done": done,
        "delivered": delivered,
        "failed": failed,
        "rebootstraps": client.rebootstrap_count,
        "bootstrap_connects": bootstrap_connects,
        "brokers": client.cluster.brokers,
        "new_ids": sorted(cluster.brokers),
        "pending": core.pending_count(),
        "sent": sent[0],
    }


@pytest.mark.parametrize("seed", range(12))
def test_rebootstrap_recovers_when_the_whole_cluster_moves(seed: int) -> None:
    r = scenario(seed, strategy="rebootstrap", idempotent=seed % 2 == 0, keep_ids=seed % 3 == 0)
    assert r["done"], f"seed {seed}: stuck, {r['pending']} pending of {r['sent']}"
    assert len(r["delivered"]) == r["sent"] == 300 and not r["failed"], r["failed"]
    assert r["rebootstraps"] >= 1
    # The first bootstrap, then again after the move (the driver resolves the name again).
    assert r["bootstrap_connects"][0] < MOVE_AT < r["bootstrap_connects"][-1]
    assert sorted(r["brokers"]) == r["new_ids"]
    assert all(".gen1.sim" in host for host, _port, _rack in r["brokers"].values())


@pytest.mark.parametrize("seed", range(4))
def test_strategy_none_keeps_retrying_the_old_brokers(seed: int) -> None:
    r = scenario(seed, strategy="none", idempotent=seed % 2 == 0, keep_ids=seed % 3 == 0, max_time=60.0)
    assert not r["done"]
    assert r["rebootstraps"] == 0
    assert all(t < MOVE_AT for t in r["bootstrap_connects"])  # never back to the bootstrap address
    assert r["pending"] > 0 and not r["failed"]
    assert all(".gen1.sim" not in host for host, _port, _rack in r["brokers"].values())


def test_scenario_is_reproducible() -> None:
    a = scenario(5, strategy="rebootstrap", idempotent=True, keep_ids=False)
    b = scenario(5, strategy="rebootstrap", idempotent=True, keep_ids=False)
    assert a["delivered"] == b["delivered"] and a["bootstrap_connects"] == b["bootstrap_connects"]


class MovingGroupScenario(GroupScenario):
    """The group scenario, bootstrapping through an alias; one fault: the whole cluster moves."""

    def __init__(self, seed: int, *, keep_ids: bool) -> None:
        super().__init__(seed, "leaders")
        self.cluster.add_alias()  # members bootstrap through it (SimCluster.bootstrap)
        self.keep_ids = keep_ids
        self.moved_members: list[str] = []

    def schedule_faults(self) -> None:
        self.sim.at(FAULT_PHASE / 2, self._move)

    def _move(self) -> None:
        self.moved_members = sorted(self.members)
        old = self.cluster.replace_brokers(keep_ids=self.keep_ids)
        for _core, net in self.sim.cores.values():
            for b in old:
                net.cut_broker(b, self.sim.now)


@pytest.mark.parametrize("seed", range(6))
def test_consumer_group_lives_through_the_move(seed: int) -> None:
    scenario = MovingGroupScenario(300 + seed, keep_ids=seed % 2 == 1)
    scenario.run()  # every record delivered, ownership and commit invariants hold
    assert scenario.moved_members
    for name in scenario.moved_members:
        member = scenario.members.get(name)
        if member is not None:
            assert member.core._client.rebootstrap_count >= 1, name
    assert all(
        ".gen1.sim" in host
        for host, _p, _r in next(iter(scenario.members.values())).core._client.cluster.brokers.values()
    )

"""ProducerCore + the real Client against the wire-level simulated cluster (tests/sim/harness.py).

Bytes go through kproto's codec both ways, with random latency and chunking.
Faults: cut connections (mid-request or mid-response), leader moves, brokers
going down and up, injected retriable Produce errors (some after the batch
was written, like a replication timeout). Invariants at the end of each
seeded run:

- every record completes exactly once, and nothing hangs;
- every acknowledged record is in the log at the offset reported;
- with idempotence: each acknowledged record is in the log exactly once, and
  per partition acknowledged records are in send order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome

from .harness import API_PRODUCE, Sim, SimCluster, SimNetwork

TOPIC = "wire"
NOT_ENOUGH_REPLICAS = 19
REQUEST_TIMED_OUT = 7
NOT_LEADER = 6


def scenario(
    seed: int,
    *,
    idempotent: bool,
    records: int = 1000,
    faults: bool = True,
    acks: Any = None,
    lose_state: bool = False,
) -> dict[str, Any]:
    rng = random.Random(seed)
    cluster = SimCluster(rng, n_brokers=3, default_partitions=rng.choice((1, 3, 4)))
    kwargs: dict[str, Any] = dict(
        bootstrap_servers=cluster.bootstrap,
        linger_ms=rng.choice((0, 0, 5)),
        batch_size=rng.choice((300, 2000, 16384)),
        retry_backoff_ms=rng.choice((10, 50)),
        request_timeout_ms=2000,
        delivery_timeout_ms=1_000_000,
        max_in_flight_requests_per_connection=rng.choice((1, 3, 5)),
        compression_type=rng.choice((None, None, "lz4", "gzip")),
        max_request_size=rng.choice((400, 1048576)),
    )
    if idempotent:
        kwargs["enable_idempotence"] = True
    else:
        kwargs.update(retries=1_000_000, acks=rng.choice((1, "all")) if acks is None else acks)
    core = ProducerCore(ProducerConfig.from_kwargs(**kwargs), now=0.0, rng=random.Random(seed))
    network = SimNetwork(cluster, rng, latency=(0.0001, 0.01), max_chunk=rng.choice((64, 4096)))
    sim = Sim(core, cluster, network)

    delivered: dict[int, tuple[int, int]] = {}
    failed: dict[int, Exception] = {}
    sent = [0]

    def collect() -> None:
        for ev in core.events():
            if not isinstance(ev, BatchOutcome):
                continue  # the client's events and retries, forwarded
            for k, tok in enumerate(ev.tokens):
                assert isinstance(tok, int)
                assert tok not in delivered and tok not in failed, f"seed {seed}: token {tok} completed twice"
                if isinstance(ev, RecordsDelivered):
                    delivered[tok] = (ev.partition, ev.base_offset + k if ev.base_offset >= 0 else -1)
                else:
                    assert isinstance(ev, DeliveryFailed)
                    failed[tok] = ev.error

    paused = [False]

    def pause_and_lose_state() -> None:
        """Stop sending; once nothing is pending, the brokers forget our producer state (KIP-360)."""
        paused[0] = True

    def send_some() -> None:
        if paused[0]:
            sim.at(sim.now + 0.01, send_some)
            return
        burst = rng.randrange(1, 20)
        while burst and sent[0] < records:
            i = sent[0]
            key = None if rng.random() < 0.5 else b"k%d" % rng.randrange(10)
            ok = core.send(
                topic=TOPIC, key=key, value=b"%d" % i, headers=None, partition=None,
                timestamp_ms=1_700_000_000_000 + i, token=i, now=sim.now,
            )  # fmt: skip
            if not ok:
                break
            sent[0] += 1
            burst -= 1
        if sent[0] < records:
            sim.at(sim.now + rng.random() * 0.05, send_some)

    sim.at(0.0, send_some)
    if faults:
        t = 0.05
        while t < 3.0:
            kind = rng.random()
            if kind < 0.05 and idempotent and lose_state:
                sim.at(t, pause_and_lose_state)
            elif kind < 0.3:
                node = rng.choice(sorted(cluster.brokers))
                sim.at(t, lambda node=node: network.cut_broker(node, sim.now))
            elif kind < 0.5:
                sim.at(t, lambda: cluster.move_leader(TOPIC, rng.randrange(len(cluster.topics[TOPIC])))
                       if TOPIC in cluster.topics else None)  # fmt: skip
            elif kind < 0.6:
                node = rng.choice(sorted(cluster.brokers))
                sim.at(t, lambda node=node: cluster.broker_down(node))
                sim.at(t + 0.3, lambda node=node: cluster.broker_up(node))
            else:
                code = rng.choice((NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT, NOT_LEADER))
                sim.at(
                    t, lambda code=code: cluster.inject(API_PRODUCE, code, append=code == REQUEST_TIMED_OUT)
                )
            t += rng.random() * 0.15

    def on_step() -> None:
        collect()
        if paused[0] and core.pending_count() == 0:
            # e.g. producer id expiration: the log stays, the producer's state goes
            for part in cluster.topics.get(TOPIC, []):
                part.log.producers.clear()
            lost[0] += 1
            paused[0] = False

    lost = [0]
    sim.on_step = on_step
    done = sim.run(until=lambda: sent[0] == records and core.pending_count() == 0, max_time=600)
    collect()
    assert done, f"seed {seed}: stuck with {core.pending_count()} pending, {sent[0]} sent"
    sim.on_step = None
    sim.run(max_time=sim.now + 1.0)  # let acks=0 bytes in transit reach the brokers
    assert len(delivered) + len(failed) == records

    log_values: dict[int, list[bytes | None]] = {
        p: [v for _o, _k, v in cluster.log(TOPIC, p).records()] for p in range(len(cluster.topics[TOPIC]))
    }
    for tok, (p, offset) in delivered.items():
        if acks == 0:
            assert offset == -1
        if offset >= 0:
            assert log_values[p][offset] == b"%d" % tok, (seed, tok, p, offset)
        else:
            assert b"%d" % tok in log_values[p], (seed, tok, p)
    if idempotent:
        for p, values in log_values.items():
            acked = [int(v) for v in values if v is not None and int(v) in delivered]
            assert len(acked) == len(set(acked)), (
                f"seed {seed}: partition {p} has an acknowledged record twice"
            )
            assert acked == sorted(acked), f"seed {seed}: partition {p} out of send order"
            assert len(acked) == sum(1 for q, _o in delivered.values() if q == p)
    return {"delivered": len(delivered), "failed": failed, "state_lost": lost[0]}


@pytest.mark.parametrize("seed", range(25))
def test_wire_idempotent_exactly_once_in_order(seed: int) -> None:
    result = scenario(seed, idempotent=True)
    assert result["delivered"] == 1000, result["failed"]


@pytest.mark.parametrize("seed", range(15))
def test_wire_idempotent_recovers_lost_producer_state(seed: int) -> None:
    result = scenario(50 + seed, idempotent=True, lose_state=True)
    assert result["delivered"] == 1000, result["failed"]


def test_wire_state_loss_happens() -> None:
    assert sum(scenario(50 + seed, idempotent=True, lose_state=True)["state_lost"] for seed in range(15)) > 0


@pytest.mark.parametrize("seed", range(25))
def test_wire_retries_lose_nothing_acknowledged(seed: int) -> None:
    result = scenario(100 + seed, idempotent=False)
    assert result["delivered"] == 1000, result["failed"]


def test_wire_no_faults_everything_delivered() -> None:
    result = scenario(7, idempotent=True, faults=False)
    assert result["delivered"] == 1000 and not result["failed"]


def test_wire_acks_zero_delivered_on_write_with_offset_minus_one() -> None:
    result = scenario(11, idempotent=False, faults=False, acks=0)
    assert result["delivered"] == 1000 and not result["failed"]

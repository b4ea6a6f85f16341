"""The transactional ProducerCore + the real Client against the simulated cluster's transaction coordinator.

Each seeded run: ``init_transactions``, then transactions of random records
(random partitions), some with ``send_offsets_to_transaction``, each
committed or aborted at random (an abortable error forces an abort). Faults:
cut connections, brokers down and up (the coordinator's too), coordinators
and leaders moving, injected CONCURRENT_TRANSACTIONS /
COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR answers, and now and then
a Produce refused with INVALID_RECORD (the transaction must abort). The simulated
coordinator refuses a transactional batch to a partition not added to the
transaction (a violation). Invariants at the end:

- every record completes exactly once;
- no transactional batch is left in an open transaction;
- every record of a committed transaction was acknowledged, and is in the
  log exactly once, in a batch the coordinator committed;
- no record of an aborted transaction is in a committed batch;
- the group's committed offsets are the last committed transaction's.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from kproto.errors import KafkaError, TransactionAbortedError
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome

from .harness import (
    API_ADD_PARTITIONS_TO_TXN,
    API_END_TXN,
    API_INIT_PRODUCER_ID,
    API_PRODUCE,
    Sim,
    SimCluster,
    SimNetwork,
)

TOPIC = "txn-out"
GROUP = "txn-group"
TXN_ID = "txn-sim"
CONCURRENT_TRANSACTIONS = 51
COORDINATOR_LOAD_IN_PROGRESS = 14
NOT_COORDINATOR = 16
INVALID_RECORD = 87


def scenario(seed: int, *, transactions: int = 12, faults: bool = True) -> dict[str, Any]:
    rng = random.Random(seed)
    cluster = SimCluster(rng, n_brokers=3, default_partitions=rng.choice((1, 3, 4)))
    config = ProducerConfig.from_kwargs(
        bootstrap_servers=cluster.bootstrap,
        transactional_id=TXN_ID,
        linger_ms=rng.choice((0, 0, 5)),
        batch_size=rng.choice((300, 16384)),
        retry_backoff_ms=rng.choice((10, 50)),
        request_timeout_ms=2000,
        delivery_timeout_ms=1_000_000,
        max_in_flight_requests_per_connection=rng.choice((1, 5)),
    )
    core = ProducerCore(config, now=0.0, rng=random.Random(seed))
    network = SimNetwork(cluster, rng, latency=(0.0001, 0.01), max_chunk=rng.choice((64, 4096)))
    sim = Sim(core, cluster, network)

    delivered: dict[int, tuple[int, int]] = {}
    failed: dict[int, Exception] = {}

    def collect() -> None:
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

    sim.on_step = collect

    def wait(op: Any, what: str) -> Any:
        assert sim.run(until=lambda: op.done, max_time=sim.now + 300), f"seed {seed}: {what} never finished"
        collect()
        return op

    if faults:
        t = 0.05
        while t < 8.0:
            kind = rng.random()
            if kind < 0.25:
                node = rng.choice(sorted(cluster.brokers))
                sim.at(t, lambda node=node: network.cut_broker(node, sim.now))
            elif kind < 0.4:
                sim.at(t, lambda: cluster.move_leader(TOPIC, rng.randrange(len(cluster.topics[TOPIC])))
                       if TOPIC in cluster.topics else None)  # fmt: skip
            elif kind < 0.5:
                node = rng.choice(sorted(cluster.brokers))
                sim.at(t, lambda node=node: cluster.broker_down(node))
                sim.at(t + 0.3, lambda node=node: cluster.broker_up(node))
            elif kind < 0.6:
                sim.at(t, lambda: cluster.move_coordinator(1, TXN_ID))
            elif kind < 0.65:
                sim.at(t, lambda: cluster.move_coordinator(0, GROUP))
            elif kind < 0.7:
                # A record the broker refuses: the transaction becomes abortable.
                sim.at(t, lambda: cluster.inject(API_PRODUCE, INVALID_RECORD))
            else:
                api = rng.choice((API_ADD_PARTITIONS_TO_TXN, API_END_TXN, API_INIT_PRODUCER_ID))
                code = rng.choice((CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR))
                sim.at(t, lambda api=api, code=code: cluster.inject(api, code))
            t += rng.random() * 0.3

    op = wait(core.init_transactions(sim.now), "init_transactions")
    assert op.error is None, f"seed {seed}: {op.error!r}"

    outcomes: list[tuple[bool, list[int], int | None]] = []  # (committed, tokens, offset sent)
    token = 0
    committed_offset: int | None = None
    for n in range(transactions):
        core.begin_transaction(sim.now)
        tokens = []
        abortable = False
        for _ in range(rng.randrange(0, 40)):
            key = None if rng.random() < 0.5 else b"k%d" % rng.randrange(10)
            try:
                assert core.send(
                    topic=TOPIC, key=key, value=b"%d" % token, headers=None, partition=None,
                    timestamp_ms=1_700_000_000_000 + token, token=token, now=sim.now,
                )  # fmt: skip
            except KafkaError:
                assert core.transaction_state() == "ABORTABLE_ERROR", (seed, core.transaction_state())
                abortable = True
                break
            tokens.append(token)
            token += 1
            if rng.random() < 0.2:
                sim.run(max_time=sim.now + rng.random() * 0.05)
        offset = None
        if not abortable and rng.random() < 0.5:
            offset = 1000 + n
            try:
                off_op = wait(
                    core.send_offsets_to_transaction({("in", 0): offset}, GROUP, sim.now), "offsets"
                )
                abortable = off_op.error is not None
            except KafkaError:  # abortable already
                abortable = True
        commit = not abortable and rng.random() < 0.7
        if commit:
            try:
                op = wait(core.commit_transaction(sim.now), "commit_transaction")
                commit = op.error is None  # else abortable: abort below
            except KafkaError:  # abortable already
                assert core.transaction_state() == "ABORTABLE_ERROR", (seed, core.transaction_state())
                commit = False
        if not commit:
            op = wait(core.abort_transaction(sim.now), "abort_transaction")
            assert op.error is None, f"seed {seed}: abort failed with {op.error!r}"
        elif offset is not None:
            committed_offset = offset
        assert core.transaction_state() == "READY", (seed, core.transaction_state())
        outcomes.append((commit, tokens, offset))

    sim.on_step = None
    collect()
    assert len(delivered) + len(failed) == token, f"seed {seed}: records never completed"
    assert all(v is not None for v in cluster.txn_batches.values()), f"seed {seed}: a transaction left open"

    in_committed: dict[bytes, int] = {}
    in_aborted: set[bytes] = set()
    for p in range(len(cluster.topics.get(TOPIC, []))):
        log = cluster.log(TOPIC, p)
        for base, batch in log.batches:
            state = cluster.txn_batches[(TOPIC, p, base)]
            for rec in batch.records():
                assert rec.value is not None
                if state:
                    in_committed[rec.value] = in_committed.get(rec.value, 0) + 1
                else:
                    in_aborted.add(rec.value)
    commits = 0
    for committed, tokens, _offset in outcomes:
        for tok in tokens:
            value = b"%d" % tok
            if committed:
                assert tok in delivered, (
                    f"seed {seed}: record {tok} of a committed transaction not acknowledged"
                )
                assert in_committed.get(value) == 1, (
                    f"seed {seed}: record {tok} committed {in_committed.get(value)}x"
                )
            else:
                assert value not in in_committed, (
                    f"seed {seed}: record {tok} of an aborted transaction committed"
                )
        commits += committed
    group_offsets = cluster.group(GROUP).offsets
    assert group_offsets.get(("in", 0), (None, ""))[0] == committed_offset, seed
    return {
        "commits": commits, "aborts": len(outcomes) - commits, "records": token,
        "abortable": sum(1 for e in failed.values() if not isinstance(e, TransactionAbortedError)),
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(20))
def test_transactions_commit_exactly_what_they_say_under_faults(seed: int) -> None:
    result = scenario(seed)
    assert result["commits"] > 0


def test_transactions_without_faults() -> None:
    result = scenario(7, faults=False)
    assert result["commits"] > 0 and result["aborts"] > 0

"""Transactions and producers (KIP-664, KIP-618): ListTransactions at every
broker, DescribeTransactions and fencing at the transaction coordinator,
DescribeProducers at each partition's leader.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kproto.admin.answers import by_topic, per_partition, per_unit, retry_or_fail
from kproto.admin.engine import (
    COORDINATOR,
    LEADER,
    AdminEngine,
    AdminOp,
    Build,
    Parse,
)
from kproto.client import COORDINATOR_TRANSACTION
from kproto.consumer import TopicPartition
from kproto.protocol.messages import describe_producers as _dp
from kproto.protocol.messages import describe_transactions as _dtx
from kproto.protocol.messages import list_transactions as _lt
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest


def list_transactions(
    engine: AdminEngine,
    *,
    now: float,
    state_filters: Iterable[str] = (),
    producer_id_filters: Iterable[int] = (),
    timeout_ms: int | None = None,
) -> AdminOp:
    """ListTransactions (KIP-664) on every broker; per broker id,
    ``[(transactional_id, producer_id, state)]``."""
    states, pids = list(state_filters), list(producer_id_filters)

    def build(_keys: list[int], _t: int) -> Any:
        return _lt.ListTransactionsRequest(state_filters=states, producer_id_filters=pids)

    def parse(resp: Any, keys: list[int]) -> dict[int, Any]:
        if resp.error_code:
            return {keys[0]: retry_or_fail(resp.error_code, None, f"list transactions on broker {keys[0]}")}
        return {
            keys[0]: [
                (t.transactional_id, t.producer_id, t.transaction_state) for t in resp.transaction_states
            ]
        }

    return engine.every_broker("list_transactions", build, parse, now, timeout_ms)


def describe_transactions(
    engine: AdminEngine, transactional_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DescribeTransactions (KIP-664) at each id's transaction coordinator; a dict per id."""

    def build(keys: list[str], _t: int) -> Any:
        return _dtx.DescribeTransactionsRequest(transactional_ids=keys)

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        return per_unit(
            resp.transaction_states, lambda t: t.transactional_id, "describe", _transaction, retry_or_fail
        )

    keys = list(dict.fromkeys(transactional_ids))
    return _at_transaction_coordinator(engine, "describe_transactions", keys, build, parse, now, timeout_ms)


def _transaction(t: Any) -> dict[str, Any]:
    return {
        "state": t.transaction_state,
        "timeout_ms": t.transaction_timeout_ms,
        "start_time_ms": t.transaction_start_time_ms,
        "producer_id": t.producer_id,
        "producer_epoch": t.producer_epoch,
        "partitions": sorted(TopicPartition(d.topic, p) for d in t.topics for p in d.partitions),
    }


def fence_producers(
    engine: AdminEngine,
    transactional_ids: Iterable[str],
    *,
    now: float,
    transaction_timeout_ms: int = 60000,
    timeout_ms: int | None = None,
) -> AdminOp:
    """Fence each transactional id's producers (KIP-618): InitProducerId at its
    coordinator bumps the epoch, as Java's ``fenceProducers``. Value per id:
    ``{"producer_id", "producer_epoch"}``."""

    def build(keys: list[str], _t: int) -> Any:
        return InitProducerIdRequest(
            transactional_id=keys[0],
            transaction_timeout_ms=transaction_timeout_ms,
            producer_id=-1,
            producer_epoch=-1,
        )

    def parse(resp: Any, keys: list[str]) -> dict[str, Any]:
        if resp.error_code:
            return {keys[0]: retry_or_fail(resp.error_code, None, f"fence {keys[0]!r}")}
        return {keys[0]: {"producer_id": resp.producer_id, "producer_epoch": resp.producer_epoch}}

    keys = list(dict.fromkeys(transactional_ids))
    return _at_transaction_coordinator(
        engine, "fence_producers", keys, build, parse, now, timeout_ms, batch=False
    )


def describe_producers(
    engine: AdminEngine, partitions: Iterable[TopicPartition], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DescribeProducers (KIP-664) at each partition's leader; per partition, a list
    of ``{"producer_id", "producer_epoch", "last_sequence", "last_timestamp",
    "coordinator_epoch", "current_txn_start_offset"}``."""
    parts = list(dict.fromkeys(partitions))

    def build(keys: list[TopicPartition], _t: int) -> Any:
        return _dp.DescribeProducersRequest(
            topics=[_dp.TopicRequest(name=t, partition_indexes=p) for t, p in by_topic(keys).items()]
        )

    def producers(p: Any) -> list[dict[str, int]]:
        return [
            {
                "producer_id": s.producer_id,
                "producer_epoch": s.producer_epoch,
                "last_sequence": s.last_sequence,
                "last_timestamp": s.last_timestamp,
                "coordinator_epoch": s.coordinator_epoch,
                "current_txn_start_offset": s.current_txn_start_offset,
            }
            for s in p.active_producers
        ]

    def parse(resp: Any, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
        return per_partition(resp.topics, "describe producers", producers)

    return engine.start("describe_producers", parts, LEADER, build, parse, now, timeout_ms)


def _at_transaction_coordinator(
    engine: AdminEngine,
    name: str,
    keys: list[str],
    build: Build[str],
    parse: Parse[str],
    now: float,
    timeout_ms: int | None,
    *,
    batch: bool = True,
) -> AdminOp:
    """A call whose units are transactional ids, each sent to its transaction coordinator."""
    return engine.start(
        name, keys, COORDINATOR, build, parse, now, timeout_ms, key_type=COORDINATOR_TRANSACTION, batch=batch
    )

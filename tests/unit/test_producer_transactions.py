"""The transactional producer core (KIP-98), driven through a scripted client: exact requests, exact states."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_producer_core import ScriptedClient, Sent, produce_requests, produce_response

from kproto.consumer.types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from kproto.errors import (
    ConcurrentTransactionsError,
    IllegalStateError,
    KafkaConfigurationError,
    KafkaConnectionError,
    ProducerFencedError,
    TopicAuthorizationFailedError,
    TransactionAbortedError,
    TransactionalIdAuthorizationFailedError,
)
from kproto.events import CoordinatorLookupFailed
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.producer.events import BatchOutcome
from kproto.protocol.messages.add_offsets_to_txn import AddOffsetsToTxnRequest, AddOffsetsToTxnResponse
from kproto.protocol.messages.add_partitions_to_txn import (
    AddPartitionsToTxnPartitionResult,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopicResult,
)
from kproto.protocol.messages.end_txn import EndTxnRequest, EndTxnResponse
from kproto.protocol.messages.init_producer_id import InitProducerIdRequest, InitProducerIdResponse
from kproto.protocol.messages.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
    TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
)


def outcomes(core: ProducerCore) -> list[BatchOutcome]:
    """The delivery reports among the core's events (drains all of them)."""
    return [e for e in core.events() if isinstance(e, BatchOutcome)]

TXN_COORD = -1001
GROUP_COORD = -1002
PID, EPOCH = 4000, 3


class TxnClient(ScriptedClient):
    """The scripted client plus coordinators: the transactional id's is TXN_COORD, a group's GROUP_COORD."""

    def __init__(self) -> None:
        super().__init__()
        self.known: dict[tuple[int, str], int] = {}
        self.dead: list[tuple[str, int]] = []
        self.pending_events: list[object] = []
        self.versions: dict[tuple[int, int], int] = {}

    def coordinator(self, key: str, key_type: int, now: float) -> int | None:
        return self.known.get((key_type, key), TXN_COORD if key_type == 1 else GROUP_COORD)

    def mark_coordinator_dead(self, key: str, key_type: int, now: float) -> None:
        self.dead.append((key, key_type))

    def events(self) -> list[object]:
        evs, self.pending_events = self.pending_events, []
        return evs


def make(**kwargs: Any) -> tuple[ProducerCore, TxnClient]:
    client = TxnClient()
    client.cluster.set_topic("t", {0: 1, 1: 2, 2: 1})
    config = ProducerConfig.from_kwargs(transactional_id="tx-1", retry_backoff_ms=100, **kwargs)
    core = ProducerCore(config, now=0.0, rng=random.Random(7), client=client)
    core.handle_timer(0.0)
    return core, client


def send(core: ProducerCore, token: object, *, partition: int = 0, now: float = 0.0) -> bool:
    return core.send(
        topic="t",
        key=b"k",
        value=b"v",
        headers=None,
        partition=partition,
        timestamp_ms=1000,
        token=token,
        now=now,
    )


def answer(core: ProducerCore, client: TxnClient, sent: Sent, response: Any, now: float = 0.0) -> None:
    client.answer(sent, response)
    core.receive_data(1, b"", now)


def requests_of(client: TxnClient, kind: type) -> list[Sent]:
    return [s for s in client.sent if isinstance(s.request, kind)]


def ready() -> tuple[ProducerCore, TxnClient]:
    """A core after init_transactions (producer id PID, epoch EPOCH)."""
    core, client = make()
    op = core.init_transactions(0.0)
    core.data_to_send()
    (init,) = client.sent
    assert init.node == TXN_COORD
    assert isinstance(init.request, InitProducerIdRequest)
    r = init.request
    assert (r.transactional_id, r.transaction_timeout_ms, r.producer_id, r.producer_epoch) == (
        "tx-1",
        60000,
        -1,
        -1,
    )
    assert not op.done
    answer(core, client, init, InitProducerIdResponse(producer_id=PID, producer_epoch=EPOCH))
    assert op.done and op.error is None
    assert core.transaction_state() == "READY"
    client.sent.clear()
    return core, client


def add_ok(core: ProducerCore, client: TxnClient, sent: Sent, now: float = 0.0) -> None:
    topics = [
        AddPartitionsToTxnTopicResult(
            name=t.name,
            results_by_partition=[AddPartitionsToTxnPartitionResult(partition_index=p) for p in t.partitions],
        )
        for t in sent.request.v3_and_below_topics
    ]
    answer(core, client, sent, AddPartitionsToTxnResponse(results_by_topic_v3_and_below=topics), now)


def added(sent: Sent) -> list[tuple[str, int]]:
    return sorted((t.name, p) for t in sent.request.v3_and_below_topics for p in t.partitions)


def produce_in_transaction(core: ProducerCore, client: TxnClient, token: object) -> Sent:
    """Begin a transaction, send one record to partition 0, add it, and return the Produce request."""
    core.begin_transaction(0.0)
    send(core, token)
    core.data_to_send()
    add_ok(core, client, client.sent[0])
    core.data_to_send()
    (produce,) = produce_requests(client)
    return produce


# --- configuration and misuse -------------------------------------------------------------


def test_transactional_id_turns_idempotence_on_and_conflicts_name_the_option() -> None:
    config = ProducerConfig.from_kwargs(transactional_id="x")
    assert config.enable_idempotence and config.acks == -1 and config.transaction_timeout_ms == 60000
    with pytest.raises(KafkaConfigurationError, match="acks"):
        ProducerConfig.from_kwargs(transactional_id="x", acks=1)
    with pytest.raises(KafkaConfigurationError, match="enable_idempotence"):
        ProducerConfig.from_kwargs(transactional_id="x", enable_idempotence=False)
    with pytest.raises(KafkaConfigurationError, match="transaction_timeout_ms"):
        ProducerConfig.from_kwargs(transactional_id="x", transaction_timeout_ms=0)


def test_send_outside_a_transaction_raises_illegal_state() -> None:
    core, client = make()
    with pytest.raises(IllegalStateError, match="init_transactions"):
        send(core, "a")
    with pytest.raises(IllegalStateError):
        core.begin_transaction(0.0)
    core, client = ready()
    with pytest.raises(IllegalStateError, match="begin_transaction"):
        send(core, "a")
    with pytest.raises(IllegalStateError):
        core.commit_transaction(0.0)
    with pytest.raises(IllegalStateError):
        core.abort_transaction(0.0)
    with pytest.raises(IllegalStateError):
        core.init_transactions(0.0)
    core.begin_transaction(0.0)
    with pytest.raises(IllegalStateError):
        core.begin_transaction(0.0)
    assert client.sent == []


def test_transactional_calls_without_transactional_id_raise() -> None:
    client = TxnClient()
    core = ProducerCore(ProducerConfig.from_kwargs(), now=0.0, client=client)
    with pytest.raises(IllegalStateError, match="transactional_id"):
        core.init_transactions(0.0)
    assert core.transaction_state() is None
    core.check_transactional_send()  # no transactional id: nothing to check


# --- the happy path ---------------------------------------------------------------------------


def test_commit_adds_partitions_once_in_one_request_then_produces_then_ends() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a", partition=0)
    send(core, "b", partition=2)
    core.data_to_send()
    # Partitions first, both in one AddPartitionsToTxn to the coordinator; no Produce yet.
    (add,) = client.sent
    assert isinstance(add.request, AddPartitionsToTxnRequest) and add.node == TXN_COORD
    r = add.request
    assert (r.v3_and_below_transactional_id, r.v3_and_below_producer_id, r.v3_and_below_producer_epoch) == (
        "tx-1", PID, EPOCH,
    )  # fmt: skip
    assert added(add) == [("t", 0), ("t", 2)]
    add_ok(core, client, add)
    core.data_to_send()
    (produce,) = produce_requests(client)
    assert produce.request.transactional_id == "tx-1" and produce.request.acks == -1
    batches = produce.batches()
    for batch in batches.values():
        assert batch.attributes & 0x10, "the transactional bit (KIP-98)"
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (PID, EPOCH, 0)
    # More records to a partition already in the transaction: no new AddPartitionsToTxn.
    send(core, "c", partition=0)
    core.data_to_send()
    assert len(requests_of(client, AddPartitionsToTxnRequest)) == 1
    commit = core.commit_transaction(0.0)
    core.data_to_send()
    assert requests_of(client, EndTxnRequest) == []  # not before every record is in
    for p in produce_requests(client):
        assert p.request.transactional_id == "tx-1"
        answer(core, client, p, produce_response(p))
    core.data_to_send()
    (end,) = requests_of(client, EndTxnRequest)
    assert end.node == TXN_COORD
    assert (end.request.transactional_id, end.request.producer_id, end.request.producer_epoch) == (
        "tx-1",
        PID,
        EPOCH,
    )
    assert end.request.committed is True
    assert not commit.done
    answer(core, client, end, EndTxnResponse())
    assert commit.done and commit.error is None
    assert core.transaction_state() == "READY"
    delivered = [t for e in outcomes(core) if isinstance(e, RecordsDelivered) for t in e.tokens]
    assert sorted(delivered) == ["a", "b", "c"]
    # The next transaction adds its partitions again; sequences go on under the same epoch.
    client.sent.clear()
    core.begin_transaction(0.0)
    send(core, "d", partition=0)
    core.data_to_send()
    (add2,) = client.sent
    assert added(add2) == [("t", 0)]
    add_ok(core, client, add2)
    core.data_to_send()
    (p2,) = produce_requests(client)
    assert p2.batches()[("t", 0)].base_sequence == 2


def test_the_fast_paths_keep_the_transaction_rules() -> None:
    """send_value and send_many (the facades' inlined appends) check the state as send() does."""
    from collections import deque

    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a", partition=0)  # the topic is known from here on (the inlined paths need that)
    core.commit_transaction(0.0)  # COMMITTING: no more records
    with pytest.raises(IllegalStateError):
        core.send_value("t", None, b"v", 1000, "x", 0.0)
    failed: list[tuple[object, Exception]] = []
    queue: deque[Any] = deque([("t", None, b"v", None, None, 1000, "y")])
    assert core.send_many(queue, 0.0, lambda tok, exc: failed.append((tok, exc)))
    assert [tok for tok, _ in failed] == ["y"] and isinstance(failed[0][1], IllegalStateError)
    # Inside a transaction: what the inlined paths take is added to the transaction first.
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a", partition=0)
    for i in range(20):
        core.send_value("t", None, b"v%d" % i, 1000, f"v{i}", 0.0)
    refused: list[object] = []
    records: deque[Any] = deque([("t", None, b"m", None, None, 1000, f"m{i}") for i in range(20)])
    assert core.send_many(records, 0.0, lambda tok, exc: refused.append(tok)) and refused == []
    core.data_to_send()
    (add,) = client.sent
    assert isinstance(add.request, AddPartitionsToTxnRequest)
    add_ok(core, client, add)
    core.data_to_send()
    produced = {tp for p in produce_requests(client) for tp in p.batches()}
    assert produced and produced <= set(added(add))
    assert all(b.attributes & 0x10 for p in produce_requests(client) for b in p.batches().values())


def test_empty_transaction_ends_without_a_request() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    op = core.commit_transaction(0.0)
    core.data_to_send()
    assert op.done and op.error is None and client.sent == []
    core.begin_transaction(0.0)
    op = core.abort_transaction(0.0)
    core.data_to_send()
    assert op.done and op.error is None and client.sent == []


def test_send_offsets_goes_to_both_coordinators_and_commits_with_the_transaction() -> None:
    core, client = ready()
    core.begin_transaction(0.0)

    op = core.send_offsets_to_transaction(
        {
            TopicPartition("in", 0): OffsetAndMetadata(42, "meta", 5),
            TopicPartition("in", 3): OffsetAndMetadata(9),
        },
        ConsumerGroupMetadata("g", 7, "m-1"),  # what KafkaConsumer.group_metadata() gives
        0.0,
    )
    core.data_to_send()
    (add,) = client.sent
    assert isinstance(add.request, AddOffsetsToTxnRequest) and add.node == TXN_COORD
    assert (add.request.group_id, add.request.producer_id, add.request.producer_epoch) == ("g", PID, EPOCH)
    answer(core, client, add, AddOffsetsToTxnResponse())
    core.data_to_send()
    (commit_offsets,) = requests_of(client, TxnOffsetCommitRequest)
    assert commit_offsets.node == GROUP_COORD
    r = commit_offsets.request
    assert (r.transactional_id, r.group_id, r.producer_id, r.producer_epoch) == ("tx-1", "g", PID, EPOCH)
    assert (r.generation_id, r.member_id, r.group_instance_id) == (7, "m-1", None)
    assert [(t.name, p.partition_index, p.committed_offset, p.committed_leader_epoch, p.committed_metadata)
            for t in r.topics for p in t.partitions] == [("in", 0, 42, 5, "meta"), ("in", 3, 9, -1, "")]  # fmt: skip
    assert not op.done
    answer(
        core,
        client,
        commit_offsets,
        TxnOffsetCommitResponse(
            topics=[
                TxnOffsetCommitResponseTopic(
                    name="in",
                    partitions=[TxnOffsetCommitResponsePartition(partition_index=p) for p in (0, 3)],
                )
            ]
        ),
    )
    assert op.done and op.error is None
    commit = core.commit_transaction(0.0)
    core.data_to_send()
    (end,) = requests_of(client, EndTxnRequest)  # a group was added: the transaction is not empty
    assert end.request.committed
    answer(core, client, end, EndTxnResponse())
    assert commit.done and commit.error is None


def test_send_offsets_takes_a_group_id_string() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    core.send_offsets_to_transaction({("in", 1): 5}, "grp", 0.0)
    core.data_to_send()
    answer(core, client, client.sent[0], AddOffsetsToTxnResponse())
    core.data_to_send()
    (c,) = requests_of(client, TxnOffsetCommitRequest)
    assert (c.request.group_id, c.request.generation_id, c.request.member_id) == ("grp", -1, "")


# --- abort -----------------------------------------------------------------------------------


def test_abort_fails_unsent_records_waits_for_in_flight_then_ends() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "sent", partition=0)
    core.data_to_send()
    add_ok(core, client, client.sent[0])
    core.data_to_send()
    (produce,) = produce_requests(client)
    send(core, "unsent", partition=1)  # its partition is not even added yet
    op = core.abort_transaction(0.0)
    core.data_to_send()
    failed = [e for e in outcomes(core) if isinstance(e, DeliveryFailed)]
    assert [(e.tokens, type(e.error)) for e in failed] == [(["unsent"], TransactionAbortedError)]
    assert requests_of(client, EndTxnRequest) == []  # the in-flight batch first
    assert len(requests_of(client, AddPartitionsToTxnRequest)) == 1
    answer(core, client, produce, produce_response(produce))
    core.data_to_send()
    (end,) = requests_of(client, EndTxnRequest)
    assert end.request.committed is False
    answer(core, client, end, EndTxnResponse())
    assert op.done and op.error is None and core.transaction_state() == "READY"
    with pytest.raises(IllegalStateError):
        send(core, "after")


# --- errors ------------------------------------------------------------------------------------


def test_retriable_coordinator_errors_are_retried_after_the_backoff() -> None:
    core, client = make()
    op = core.init_transactions(0.0)
    core.data_to_send()
    answer(
        core, client, client.sent[-1], InitProducerIdResponse(error_code=14)
    )  # COORDINATOR_LOAD_IN_PROGRESS
    core.data_to_send()
    assert len(client.sent) == 1
    assert core.get_timer() == pytest.approx(0.1)
    core.handle_timer(0.1)
    core.data_to_send()
    assert len(client.sent) == 2
    answer(core, client, client.sent[-1], InitProducerIdResponse(error_code=16), now=0.1)  # NOT_COORDINATOR
    assert client.dead == [("tx-1", 1)]
    core.handle_timer(0.2)
    core.data_to_send()
    client.answer(client.sent[-1], None, KafkaConnectionError("cut"))  # a lost connection: look it up again
    core.connection_lost(TXN_COORD, None, 0.2)
    assert client.dead == [("tx-1", 1), ("tx-1", 1)]
    assert core.get_timer() == pytest.approx(0.3)
    core.handle_timer(0.31)
    core.data_to_send()
    answer(core, client, client.sent[-1], InitProducerIdResponse(producer_id=1, producer_epoch=0), now=0.31)
    assert op.done and op.error is None
    assert len(requests_of(client, InitProducerIdRequest)) == 4

    # CONCURRENT_TRANSACTIONS on AddPartitionsToTxn: retried, batches wait.
    client.sent.clear()
    core.begin_transaction(0.3)
    send(core, "a", now=0.3)
    core.data_to_send()
    (add,) = client.sent
    answer(
        core,
        client,
        add,
        AddPartitionsToTxnResponse(
            results_by_topic_v3_and_below=[
                AddPartitionsToTxnTopicResult(
                    name="t",
                    results_by_partition=[
                        AddPartitionsToTxnPartitionResult(partition_index=0, partition_error_code=51)
                    ],
                )
            ]
        ),
        now=0.3,
    )
    core.data_to_send()
    assert len(client.sent) == 1 and core.get_timer() == pytest.approx(0.4)
    core.handle_timer(0.4)
    core.data_to_send()
    add_ok(core, client, client.sent[-1], now=0.4)
    core.data_to_send()
    assert len(produce_requests(client)) == 1
    assert core.transaction_state() == "IN_TRANSACTION"
    assert ConcurrentTransactionsError.retriable


def test_fenced_producer_is_fatal() -> None:
    core, client = ready()
    produce = produce_in_transaction(core, client, "a")
    answer(core, client, produce, produce_response(produce, code=47))  # INVALID_PRODUCER_EPOCH
    assert core.transaction_state() == "FATAL"
    (failed,) = outcomes(core)
    assert isinstance(failed, DeliveryFailed)
    with pytest.raises(ProducerFencedError):
        send(core, "b")
    with pytest.raises(ProducerFencedError):
        core.commit_transaction(0.0)
    with pytest.raises(ProducerFencedError):
        core.abort_transaction(0.0)


def test_fenced_on_end_txn_fails_the_commit() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    core.send_offsets_to_transaction({("in", 0): 1}, "g", 0.0)
    core.data_to_send()
    answer(core, client, client.sent[-1], AddOffsetsToTxnResponse(error_code=90))  # PRODUCER_FENCED
    assert core.transaction_state() == "FATAL"
    with pytest.raises(ProducerFencedError):
        core.commit_transaction(0.0)


def test_abortable_error_fails_commit_and_requires_abort() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a", partition=0)
    send(core, "b", partition=1)
    core.data_to_send()
    (add,) = client.sent
    answer(
        core,
        client,
        add,
        AddPartitionsToTxnResponse(
            results_by_topic_v3_and_below=[
                AddPartitionsToTxnTopicResult(
                    name="t",
                    results_by_partition=[
                        AddPartitionsToTxnPartitionResult(partition_index=0, partition_error_code=29),
                        AddPartitionsToTxnPartitionResult(partition_index=1, partition_error_code=55),
                    ],
                )
            ]
        ),
    )
    assert core.transaction_state() == "ABORTABLE_ERROR"
    with pytest.raises(TopicAuthorizationFailedError):
        core.commit_transaction(0.0)
    with pytest.raises(TopicAuthorizationFailedError):
        send(core, "c")
    core.data_to_send()
    # Unsent records fail at once with the error (a flush returns), before the abort.
    failed = [(t, type(e.error)) for e in outcomes(core) if isinstance(e, DeliveryFailed) for t in e.tokens]
    assert sorted(failed) == [("a", TopicAuthorizationFailedError), ("b", TopicAuthorizationFailedError)]
    assert core.pending_count() == 0
    op = core.abort_transaction(0.0)
    core.data_to_send()
    assert produce_requests(client) == []
    assert op.done and op.error is None  # nothing was added: no EndTxn needed
    assert core.transaction_state() == "READY"


def test_failed_batch_during_commit_fails_the_commit() -> None:
    core, client = ready()
    produce = produce_in_transaction(core, client, "a")
    commit = core.commit_transaction(0.0)
    answer(core, client, produce, produce_response(produce, code=87))  # INVALID_RECORD: not retriable
    assert commit.done and commit.error is not None
    assert core.transaction_state() == "ABORTABLE_ERROR"
    assert requests_of(client, EndTxnRequest) == []
    op = core.abort_transaction(0.0)
    core.data_to_send()
    (end,) = requests_of(client, EndTxnRequest)
    assert not end.request.committed
    answer(core, client, end, EndTxnResponse())
    assert op.done and op.error is None


def test_unresolved_sequence_bumps_the_epoch_after_the_abort() -> None:
    core, client = ready()
    produce = produce_in_transaction(core, client, "a")
    answer(core, client, produce, produce_response(produce, code=45))  # OUT_OF_ORDER_SEQUENCE_NUMBER
    assert core.transaction_state() == "ABORTABLE_ERROR"
    op = core.abort_transaction(0.0)
    core.data_to_send()
    (end,) = requests_of(client, EndTxnRequest)
    answer(core, client, end, EndTxnResponse())
    assert not op.done
    core.data_to_send()
    bump = requests_of(client, InitProducerIdRequest)[-1]
    assert (bump.request.producer_id, bump.request.producer_epoch) == (PID, EPOCH)  # KIP-360
    answer(core, client, bump, InitProducerIdResponse(producer_id=PID, producer_epoch=EPOCH + 1))
    assert op.done and op.error is None and core.transaction_state() == "READY"
    client.sent.clear()
    p2 = produce_in_transaction(core, client, "b")
    batch = p2.batches()[("t", 0)]
    assert (batch.producer_epoch, batch.base_sequence) == (EPOCH + 1, 0)


def test_coordinator_lookup_failure_is_fatal_for_init() -> None:
    core, client = make()
    client.known[(1, "tx-1")] = None  # type: ignore[assignment]
    op = core.init_transactions(0.0)
    core.data_to_send()
    assert client.sent == []
    client.pending_events.append(
        CoordinatorLookupFailed(key="tx-1", key_type=1, error=TransactionalIdAuthorizationFailedError())
    )
    core.receive_data(1, b"", 0.0)
    assert op.done and isinstance(op.error, TransactionalIdAuthorizationFailedError)
    assert core.transaction_state() == "FATAL"


def test_calling_again_while_under_way_returns_the_same_op() -> None:
    core, client = make()
    op = core.init_transactions(0.0)
    assert core.init_transactions(0.0) is op
    core.data_to_send()
    answer(core, client, client.sent[0], InitProducerIdResponse(producer_id=1, producer_epoch=0))
    core.begin_transaction(0.0)
    send(core, "a")
    commit = core.commit_transaction(0.0)
    assert core.commit_transaction(0.0) is commit
    with pytest.raises(IllegalStateError):
        core.abort_transaction(0.0)


def test_abort_dropping_a_retried_batch_bumps_the_epoch() -> None:
    core, client = ready()
    produce = produce_in_transaction(core, client, "a")
    answer(core, client, produce, produce_response(produce, code=6))  # NOT_LEADER: retried after the backoff
    assert core.transaction_state() == "IN_TRANSACTION"
    op = core.abort_transaction(0.0)
    core.data_to_send()
    (failed,) = outcomes(core)
    assert isinstance(failed, DeliveryFailed) and isinstance(failed.error, TransactionAbortedError)
    (end,) = requests_of(client, EndTxnRequest)
    answer(core, client, end, EndTxnResponse())
    core.data_to_send()
    # Sequence 0 was used by the dropped batch: a new epoch restarts the sequences.
    bump = requests_of(client, InitProducerIdRequest)[-1]
    assert (bump.request.producer_id, bump.request.producer_epoch) == (PID, EPOCH)
    assert not op.done
    answer(core, client, bump, InitProducerIdResponse(producer_id=PID, producer_epoch=EPOCH + 1))
    assert op.done and op.error is None
    client.sent.clear()
    p2 = produce_in_transaction(core, client, "b")
    batch = p2.batches()[("t", 0)]
    assert (batch.producer_epoch, batch.base_sequence) == (EPOCH + 1, 0)


def test_lost_add_partitions_request_is_sent_again() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a", partition=0)
    send(core, "b", partition=1)
    core.data_to_send()
    (add,) = client.sent
    client.answer(add, None, KafkaConnectionError("cut"))
    core.connection_lost(TXN_COORD, None, 0.0)
    assert client.dead == [("tx-1", 1)]
    core.handle_timer(0.15)
    core.data_to_send()
    again = requests_of(client, AddPartitionsToTxnRequest)
    assert len(again) == 2 and added(again[1]) == [("t", 0), ("t", 1)]
    assert produce_requests(client) == []
    add_ok(core, client, again[1], now=0.15)
    core.data_to_send()
    assert len(produce_requests(client)) == 2


def test_out_of_order_behind_a_retried_batch_is_retried_not_abortable() -> None:
    core, client = ready()
    core.begin_transaction(0.0)
    send(core, "a")
    core.data_to_send()
    add_ok(core, client, client.sent[0])
    core.data_to_send()
    send(core, "b")
    core.data_to_send()
    first, second = produce_requests(client)
    client.answer(first, produce_response(first, code=6))  # NOT_LEADER
    client.answer(second, produce_response(second, code=45))  # sequence 1 before 0 arrived
    core.receive_data(1, b"", 0.0)
    assert core.transaction_state() == "IN_TRANSACTION"
    core.handle_timer(0.1)
    core.data_to_send()
    resent = produce_requests(client)[2:]
    assert [b.base_sequence for r in resent for b in r.batches().values()] == [0, 1]
    for r in resent:
        client.answer(r, produce_response(r))
    core.receive_data(1, b"", 0.1)
    assert sorted(t for e in outcomes(core) if isinstance(e, RecordsDelivered) for t in e.tokens) == ["a", "b"]


def test_epoch_bump_on_an_old_broker_sends_a_plain_init_producer_id() -> None:
    core, client = ready()
    client.init_pid_version = 2  # no producer id/epoch fields before v3 (KIP-360)
    produce = produce_in_transaction(core, client, "a")
    answer(core, client, produce, produce_response(produce, code=45))
    op = core.abort_transaction(0.0)
    core.data_to_send()
    answer(core, client, requests_of(client, EndTxnRequest)[0], EndTxnResponse())
    core.data_to_send()
    bump = requests_of(client, InitProducerIdRequest)[-1]
    assert (bump.request.transactional_id, bump.request.producer_id, bump.request.producer_epoch) == (
        "tx-1",
        -1,
        -1,
    )
    answer(core, client, bump, InitProducerIdResponse(producer_id=PID, producer_epoch=EPOCH + 1))
    assert op.done and op.error is None and core.transaction_state() == "READY"

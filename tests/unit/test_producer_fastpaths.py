"""The producer's hot paths (send_many, send_value, the inlined appends, batch-wise delivery)
give exactly what the plain paths give: same bytes on the wire, same tokens, same errors."""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_producer_core import ScriptedClient, produce_requests, produce_response

from kproto.errors import KafkaError, NotLeaderForPartitionError, RecordTooLargeError
from kproto.producer import DeliveryFailed, ProducerConfig, ProducerCore, RecordsDelivered
from kproto.protocol.records import PLAIN_RECORD_TABLES, RecordsBuffer, encode_headers
from transports._common import Delivery, dispatch_events

Rec = tuple[str, "bytes | None", "bytes | None", Any, "int | None", int, object]


def _core(**kwargs: Any) -> tuple[ProducerCore, ScriptedClient]:
    client = ScriptedClient()
    client.cluster.set_topic("t", {0: 1, 1: 2, 2: 1})
    opts = {"linger_ms": 10_000, **kwargs}
    core = ProducerCore(ProducerConfig.from_kwargs(**opts), now=0.0, rng=random.Random(7), client=client)
    core.handle_timer(0.0)
    return core, client


def _wire(core: ProducerCore, client: ScriptedClient) -> tuple[list[Any], list[Any]]:
    """Flush, answer every request, and return (the batches' records per partition, the events)."""
    core.flush(1.0)
    core.data_to_send()
    out: dict[int, list[bytes]] = {}
    for sent in produce_requests(client):
        for td in sent.request.topic_data:
            for pd in td.partition_data:
                out.setdefault(pd.index, []).append(bytes(pd.records))  # the exact batch bytes
        client.answer(sent, produce_response(sent, base=0))
    core.handle_timer(2.0)
    events = core.events()
    return sorted(out.items()), [(type(e).__name__, e.partition, list(e.tokens)) for e in events]


records = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(max_size=20)),  # key
        st.one_of(  # value: small, around the tables' limits (4096 with a null key, 16384), larger
            st.none(),
            st.binary(max_size=300),
            st.integers(min_value=4090, max_value=4100).map(lambda n: b"w" * n),
            st.integers(min_value=16350, max_value=16400).map(lambda n: bytes(range(256)) * (n >> 8) + b"x" * (n & 255)),
        ),
        st.sampled_from([None, [("h", b"1")]]),  # headers
        st.sampled_from([None, None, None, 1]),  # partition
        st.integers(min_value=-5, max_value=20_000),  # timestamp offset (ms)
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(records, st.sampled_from([200, 1000, 16384]))
def test_send_many_and_send_value_match_send(recs: list[Any], batch_size: int) -> None:
    """Records through send_many / send_value reach the wire as through send, token for token."""
    plain, plain_client = _core(batch_size=batch_size)
    many, many_client = _core(batch_size=batch_size)
    value_core, value_client = _core(batch_size=batch_size)
    queue: deque[Any] = deque()
    for i, (key, value, headers, partition, dt) in enumerate(recs):
        if key is None and value is None:
            value = b""
        ts = 1_700_000_000_000 + dt
        assert plain.send(
            topic="t", key=key, value=value, headers=headers, partition=partition,
            timestamp_ms=ts, token=i, now=0.5,
        )  # fmt: skip
        queue.append(("t", key, value, headers, partition, ts, i))
        if headers is None and partition is None and value is not None:
            assert value_core.send_value("t", key, value, ts, i, 0.5)
        else:
            assert value_core.send(
                topic="t", key=key, value=value, headers=headers, partition=partition,
                timestamp_ms=ts, token=i, now=0.5,
            )  # fmt: skip
    failed: list[Any] = []
    assert many.send_many(queue, 0.5, lambda tok, exc: failed.append((tok, exc)))
    assert not queue and not failed
    assert many.buffer_available() == plain.buffer_available() == value_core.buffer_available()
    assert many.pending_count() == plain.pending_count() == len(recs)
    expected = _wire(plain, plain_client)
    assert _wire(many, many_client) == expected
    assert _wire(value_core, value_client) == expected


def test_inlined_append_tables_match_records_buffer() -> None:
    """PlainRecordTables describe the bytes RecordsBuffer.append writes for null-key records."""
    t = PLAIN_RECORD_TABLES
    for vl in (0, 1, 63, 64, 100, 8191 % t.null_key_limit, t.null_key_limit - 1):
        for n, td in ((1, 0), (63, 5), (64, 63), (8191, 64), (t.limit - 1, t.limit - 1)):
            rb = RecordsBuffer()
            rb.append(1000, None, b"x", encode_headers(()), 1 << 62)
            rb.count = n  # pretend n records are there
            value = b"v" * vl
            before = len(rb.encoded())
            size = rb.append(1000 + td, None, value, encode_headers(()), 1 << 62)
            body = t.attr_td_len[td] + t.zz_len[n] + t.null_key_rest[vl]
            assert size == t.zz_len[body] + body
            tail = rb.encoded()[before:]
            assert tail == t.zz[body] + t.attr_td[td] + t.zz[n] + t.null_key_vlen[vl] + value + b"\x00"


def test_send_many_stops_at_a_non_record_and_reports_failures() -> None:
    core, _client = _core(max_request_size=1000)
    op = object()
    failed: list[tuple[object, Exception]] = []
    queue: deque[Any] = deque(
        [
            ("t", None, b"a", None, None, 1, "ok1"),
            ("t", None, b"x" * 2000, None, None, 1, "too-large"),
            ("t", None, b"b", None, 7, 1, "no-such-partition"),
            ("t", None, b"c", None, None, 1, "ok2"),
            op,
            ("t", None, b"d", None, None, 1, "after-op"),
        ]
    )
    assert core.send_many(queue, 0.5, lambda tok, exc: failed.append((tok, exc)))
    assert list(queue)[0] is op and len(queue) == 2
    assert [tok for tok, _ in failed] == ["too-large"]
    assert isinstance(failed[0][1], RecordTooLargeError)
    # the unknown partition fails through an event, as with send()
    (ev,) = core.events()
    assert isinstance(ev, DeliveryFailed) and ev.tokens == ["no-such-partition"]
    assert core.pending_count() == 2


def test_send_many_buffer_full_puts_the_record_back() -> None:
    core, _client = _core(buffer_memory=600, batch_size=16384)
    queue: deque[Any] = deque(("t", None, b"v" * 100, None, None, 1, i) for i in range(10))
    assert core.send_many(queue, 0.5, lambda tok, exc: None) is False
    accepted = 10 - len(queue)
    assert 0 < accepted < 10
    assert queue[0][-1] == accepted  # the refused record first, nothing lost or reordered
    assert core.pending_count() == accepted


def test_send_value_closed_and_too_large_raise_as_send() -> None:
    core, _client = _core(max_request_size=1000)
    with pytest.raises(RecordTooLargeError):
        core.send_value("t", None, b"x" * 2000, 1, "big", 0.5)
    core.close(1.0)
    with pytest.raises(KafkaError):
        core.send_value("t", None, b"x", 1, "late", 1.0)


# --- batch-wise delivery (dispatch_events) -------------------------------------


class _Tok(Delivery):
    __slots__ = ("completed",)

    def __init__(self) -> None:
        Delivery.__init__(self, "t", 5, -1, 1, -1)
        self.completed = 0

    def _completed(self) -> None:
        self.completed += 1


def test_dispatch_resolves_offsets_by_index_and_completes_only_waited_tokens() -> None:
    toks = [_Tok() for _ in range(5)]
    toks[3]._waiter = "someone waits"
    n = dispatch_events(
        [RecordsDelivered(topic="t", partition=2, base_offset=40, log_append_time_ms=-1, tokens=toks)]
    )
    assert n == 5
    assert [t._outcome().offset for t in toks] == [40, 41, 42, 43, 44]
    assert {t._outcome().partition for t in toks} == {2}
    assert [t.completed for t in toks] == [0, 0, 0, 1, 0]
    # a second outcome for the same tokens changes nothing (runs no callback twice)
    dispatch_events([RecordsDelivered(topic="t", partition=2, base_offset=90, log_append_time_ms=-1, tokens=toks)])
    assert [t._outcome().offset for t in toks] == [40, 41, 42, 43, 44]
    assert toks[3].completed == 1


def test_dispatch_acks0_and_a_failed_batch_fail_only_their_tokens() -> None:
    ok = [_Tok() for _ in range(3)]
    bad = [_Tok() for _ in range(2)]
    err = NotLeaderForPartitionError("gone")
    dispatch_events(
        [
            RecordsDelivered(topic="t", partition=0, base_offset=-1, log_append_time_ms=77, tokens=ok),
            DeliveryFailed(topic="t", partition=1, error=err, tokens=bad),
        ]
    )
    assert [t._outcome().offset for t in ok] == [-1, -1, -1]
    assert [t._outcome().timestamp for t in ok] == [77, 77, 77]
    for t in bad:
        assert t._state == 2 and t._error is err and t.completed == 1
        with pytest.raises(NotLeaderForPartitionError):
            t._outcome()


def test_sync_future_callbacks_run_once_when_added_during_completion() -> None:
    """A callback added while the I/O thread completes the future runs exactly once."""
    from transports.sync import FutureRecordMetadata

    class _Loop:
        cond = threading.Condition(threading.Lock())

    for _ in range(200):
        fut = FutureRecordMetadata(_Loop(), "t", 5, -1, 1, -1)  # type: ignore[arg-type]
        calls: list[int] = []
        start = threading.Barrier(2)

        def deliver(fut: FutureRecordMetadata = fut, start: threading.Barrier = start) -> None:
            start.wait()
            dispatch_events(
                [RecordsDelivered(topic="t", partition=0, base_offset=3, log_append_time_ms=-1, tokens=[fut])]
            )

        th = threading.Thread(target=deliver)
        th.start()
        start.wait()
        fut.add_callback(lambda md, calls=calls: calls.append(md.offset))
        th.join()
        assert calls == [3]


def test_auth_error_is_a_read_only_core_property() -> None:
    from transports._common import auth_failure

    core, client = _core()
    assert core.auth_error is None and auth_failure(core) is None
    client.auth_error = KafkaError("bad password")  # type: ignore[attr-defined]
    assert core.auth_error is client.auth_error  # type: ignore[attr-defined]
    fresh = auth_failure(core)
    assert isinstance(fresh, KafkaError) and fresh is not client.auth_error  # type: ignore[attr-defined]
    assert fresh.args == ("bad password",)
    with pytest.raises(AttributeError):
        core.auth_error = None  # type: ignore[misc]

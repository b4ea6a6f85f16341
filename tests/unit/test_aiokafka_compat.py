"""aiokafka parity: every ``__init__`` option of the installed aiokafka, the batch builder, handles.

The option lists are read from ``inspect.signature`` of aiokafka's classes at
test time, so an option a new aiokafka adds fails here until it is handled
(and listed in docs/aiokafka.md).
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import aiokafka
import pytest
import trio
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from test_consumer_core import TP0, answer_list_offsets, deliver, fetch_response, make, records

from kproto.consumer import ConsumerConfig, TopicPartition
from kproto.errors import IllegalStateError
from kproto.protocol.records import single_record_batch_size
from transports import _aiokafka_compat as compat
from transports._aiokafka_compat import BatchBuilder, aiokafka_configs
from transports._common import FacadeOptions

#: How kproto treats each aiokafka option: its kproto option name (same meaning), or a
#: word for the special cases. A name missing here fails test_every_option_is_classified.
SAME = "same name and meaning"
PRODUCER: dict[str, str] = {
    "loop": "ignored, DeprecationWarning",
    "bootstrap_servers": SAME, "client_id": SAME, "metadata_max_age_ms": SAME,
    "request_timeout_ms": SAME, "api_version": SAME, "acks": SAME, "key_serializer": SAME,
    "value_serializer": SAME, "compression_type": SAME, "max_batch_size": "batch_size",
    "partitioner": SAME, "max_request_size": SAME, "linger_ms": SAME, "retry_backoff_ms": SAME,
    "security_protocol": SAME, "ssl_context": SAME, "connections_max_idle_ms": SAME,
    "enable_idempotence": SAME, "transactional_id": SAME, "transaction_timeout_ms": SAME,
    "sasl_mechanism": SAME, "sasl_plain_password": SAME, "sasl_plain_username": SAME,
    "sasl_kerberos_service_name": SAME, "sasl_kerberos_domain_name": SAME,
    "sasl_oauth_token_provider": SAME,
}
CONSUMER: dict[str, str] = {
    "loop": "ignored, DeprecationWarning",
    "bootstrap_servers": SAME, "client_id": SAME, "group_id": SAME, "group_instance_id": SAME,
    "key_deserializer": SAME, "value_deserializer": SAME, "fetch_max_wait_ms": SAME,
    "fetch_max_bytes": SAME, "fetch_min_bytes": SAME, "max_partition_fetch_bytes": SAME,
    "request_timeout_ms": SAME, "retry_backoff_ms": SAME, "auto_offset_reset": SAME,
    "enable_auto_commit": SAME, "auto_commit_interval_ms": SAME, "check_crcs": SAME,
    "metadata_max_age_ms": SAME, "partition_assignment_strategy": SAME, "max_poll_interval_ms": SAME,
    "rebalance_timeout_ms": SAME, "session_timeout_ms": SAME, "heartbeat_interval_ms": SAME,
    "consumer_timeout_ms": "AIOKafkaConsumer: ignored with a warning; KafkaConsumer: kafka-python's",
    "max_poll_records": SAME, "ssl_context": SAME, "security_protocol": SAME, "api_version": SAME,
    "exclude_internal_topics": SAME, "connections_max_idle_ms": SAME, "isolation_level": SAME,
    "sasl_mechanism": SAME, "sasl_plain_password": SAME, "sasl_plain_username": SAME,
    "sasl_kerberos_service_name": SAME, "sasl_kerberos_domain_name": SAME,
    "sasl_oauth_token_provider": SAME, "client_rack": SAME,
}


def aiokafka_options(cls: type) -> dict[str, Any]:
    """aiokafka's keyword options of ``cls.__init__`` with their defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def default_for(name: str, value: Any) -> Any:
    """aiokafka's default, but a real value where the default is a private sentinel (``acks``)."""
    if name == "acks" and not isinstance(value, (int, str)):
        return 1  # aiokafka's sentinel resolves to 1 without idempotence
    return value


@pytest.mark.parametrize(("cls", "table"), [(aiokafka.AIOKafkaProducer, PRODUCER), (aiokafka.AIOKafkaConsumer, CONSUMER)])
def test_every_option_is_classified(cls: type, table: dict[str, str]) -> None:
    assert set(aiokafka_options(cls)) == set(table)


def build(kind: str, transport: str, **configs: Any) -> Any:
    """Construct a facade with ``configs`` inside its runtime; returns it (never started)."""
    if transport == "trio":
        from transports._consumer_trio import KafkaConsumer as TC
        from transports.trio import KafkaProducer as TP

        async def make_trio() -> Any:
            return TC(**configs) if kind == "consumer" else TP(**configs)

        return trio.run(make_trio)
    from transports import asyncio as facade

    name = {"asyncio": "Kafka", "aiokafka": "AIOKafka"}[transport]
    cls = getattr(facade, f"{name}{'Consumer' if kind == 'consumer' else 'Producer'}")

    async def make_asyncio() -> Any:
        return cls(**configs)

    return asyncio.run(make_asyncio())


TRANSPORTS = ["aiokafka", "asyncio", "trio"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["producer", "consumer"])
def test_each_option_at_aiokafkas_default(kind: str, transport: str) -> None:
    cls = aiokafka.AIOKafkaProducer if kind == "producer" else aiokafka.AIOKafkaConsumer
    for name, value in aiokafka_options(cls).items():
        value = default_for(name, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            facade = build(kind, transport, **{name: value})
        table = PRODUCER if kind == "producer" else CONSUMER
        if table[name] == SAME and name not in compat._UNSET_VALUES and hasattr(facade.config, name):
            # Kept as given, but for aiokafka's "no bound" (None) and kproto's normalised forms.
            want = {"max_poll_records": 2**31 - 1}.get(name, value) if value is None else value
            got = getattr(facade.config, name)
            assert got == want or (name == "partition_assignment_strategy" and list(got) == list(want)), name


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_all_options_together_at_aiokafkas_defaults(transport: str) -> None:
    for kind, cls in (("producer", aiokafka.AIOKafkaProducer), ("consumer", aiokafka.AIOKafkaConsumer)):
        configs = {n: default_for(n, v) for n, v in aiokafka_options(cls).items()}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            facade = build(kind, transport, **configs)
        assert facade.config.request_timeout_ms == 40000  # aiokafka's default, not kproto's


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_loop_is_ignored_with_a_deprecation_warning(transport: str) -> None:
    for kind in ("producer", "consumer"):
        with pytest.warns(DeprecationWarning, match="loop option is deprecated"):
            build(kind, transport, loop=object())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_non_default_values_are_honoured(transport: str) -> None:
    p = build("producer", transport, max_batch_size=1234, linger_ms=7, enable_idempotence=True, acks="all",
              transactional_id="tx", transaction_timeout_ms=9000, compression_type="gzip")
    assert (p.config.batch_size, p.config.linger_ms, p.config.transactional_id) == (1234, 7, "tx")
    assert (p.config.enable_idempotence, p.config.transaction_timeout_ms) == (True, 9000)
    assert p.create_batch()._limit == 1234
    c = build("consumer", transport, rebalance_timeout_ms=12345, isolation_level="read_committed",
              fetch_max_bytes=1 << 20, max_poll_records=None, group_instance_id="static-1",
              partition_assignment_strategy=(RoundRobinPartitionAssignor,))
    assert c.config.rebalance_timeout() == 12345
    assert c.config.read_committed and c.config.fetch_max_bytes == 1 << 20
    assert c.config.max_poll_records == 2**31 - 1  # aiokafka's None: no bound
    assert c.config.group_instance_id == "static-1"


def test_max_batch_size_and_batch_size_together_are_refused() -> None:
    with pytest.raises(TypeError, match="max_batch_size"):
        build("producer", "asyncio", max_batch_size=10, batch_size=10)


def test_consumer_timeout_ms_takes_each_apis_meaning() -> None:
    compat._warned.discard("consumer_timeout_ms")
    with pytest.warns(UserWarning, match="consumer_timeout_ms"):
        aio = build("consumer", "aiokafka", consumer_timeout_ms=200)
    assert aio.config.consumer_timeout_ms is None  # async for runs until stop(), as aiokafka
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build("consumer", "aiokafka", consumer_timeout_ms=200)  # once per process
    assert build("consumer", "asyncio", consumer_timeout_ms=200).config.consumer_timeout_ms == 200


def test_rebalance_timeout_defaults_to_max_poll_interval() -> None:
    cfg = ConsumerConfig.from_kwargs(max_poll_interval_ms=4000)
    assert cfg.rebalance_timeout() == 4000
    with pytest.raises(Exception, match="rebalance_timeout_ms"):
        ConsumerConfig.from_kwargs(rebalance_timeout_ms=0)


def test_join_group_carries_rebalance_timeout() -> None:
    core, client = make(group_id="g", rebalance_timeout_ms=7000, max_poll_interval_ms=60000)
    core.subscribe(["topic"], now=0.0)
    ((req, _, _, _),) = client.take("JoinGroupRequest")
    assert req.rebalance_timeout_ms == 7000


def test_unset_values_leave_the_mapping() -> None:
    out = aiokafka_configs({"client_id": None, "api_version": "auto", "client_rack": None, "api_version2": 1},
                           consumer=True, aiokafka=True)
    assert out == {"api_version2": 1}
    assert aiokafka_configs({"api_version": (2, 8)}, consumer=False, aiokafka=False) == {"api_version": (2, 8)}


# --- the consumer core's fetch bookkeeping behind last_stable_offset / last_poll_timestamp ----


def test_core_keeps_last_stable_offset_and_fetch_time() -> None:
    core, client = make(auto_offset_reset="earliest")
    core.assign([TP0], now=0.0)
    assert core.last_stable_offset(TP0) is None and core.last_fetch_time(TP0) is None
    answer_list_offsets(client, {0: 0})
    ((_, cb, _, _),) = client.take("FetchRequest")
    core.handle_timer(2.5)  # the response's callbacks see the time of the core's latest input
    deliver(core, cb, fetch_response({0: (0, records(0, 3))}, hw=3), now=2.5)
    assert (core.highwater(TP0), core.last_stable_offset(TP0), core.last_fetch_time(TP0)) == (3, 3, 2.5)


# --- BatchBuilder ---------------------------------------------------------------------


def test_batch_builder_counts_sizes_and_fills() -> None:
    b = BatchBuilder(FacadeOptions(None, None), limit=200)
    assert (b.size(), b.record_count()) == (61, 0)
    md = b.append(key=b"k", value=b"v" * 10, timestamp=1000)
    assert md is not None and (md.offset, md.timestamp, md.crc) == (0, 1000, None)
    assert b.size() == single_record_batch_size(b"k", b"v" * 10)
    while b.append(key=None, value=b"x" * 20, timestamp=None) is not None:
        pass
    assert b.size() <= 200 and b.record_count() > 2
    b2 = BatchBuilder(FacadeOptions(None, lambda v: v.encode()), limit=1000)
    b2.append(key=None, value="text", timestamp=5, headers=[("h", b"1")])
    b2.close()
    assert b2.append(key=None, value="more", timestamp=5) is None and b2.record_count() == 1
    with pytest.raises(TypeError):
        BatchBuilder(FacadeOptions(None, None), 100).append(key=None, value="not bytes", timestamp=None)


# --- handles ----------------------------------------------------------------------------


def test_pending_handle_future_calls() -> None:
    from transports.asyncio import DeliveryHandle

    async def scenario() -> list[Any]:
        h = DeliveryHandle("t", 1, -1, 1, -1)
        seen: list[Any] = []
        with pytest.raises(IllegalStateError):
            h.get()
        fn: Callable[[Any], None] = seen.append
        h.add_done_callback(fn)
        assert h.remove_done_callback(fn) == 1
        h.add_done_callback(fn)
        h.add_errback(lambda e: seen.append(("err", type(e).__name__)))
        assert not h.cancel() and not h.cancelled() and h.get_loop() is asyncio.get_running_loop()
        h._fail(KeyError("x"))
        await asyncio.sleep(0)
        assert h.failed() and not h.succeeded() and h.value is None
        return seen

    seen = asyncio.run(scenario())
    assert len(seen) == 2 and ("err", "KeyError") in seen


def test_trio_handle_callbacks_run_once_and_survive_errors() -> None:
    from transports.trio import DeliveryHandle

    h = DeliveryHandle("t", 1, -1, 1, -1)
    seen: list[int] = []

    def boom(_: Any) -> None:
        raise RuntimeError("user bug")

    h.add_done_callback(boom)
    h.add_done_callback(lambda h: seen.append(h.result().offset))
    h._deliver(0, 41, -1)
    assert seen == [41]
    h.add_done_callback(lambda h: seen.append(h.result().offset))  # done: called at once
    assert seen == [41, 41] and h.get().offset == 41


def test_batch_delivery_waits_for_every_record() -> None:
    from transports.trio import DeliveryHandle

    hs = [DeliveryHandle("t", 1, -1, 1, -1) for _ in range(3)]
    d = compat.BatchDelivery(hs)
    done: list[Any] = []
    d.add_done_callback(done.append)
    hs[0]._deliver(1, 10, -1)
    hs[2]._deliver(1, 12, -1)
    assert not d.done() and done == []
    hs[1]._deliver(1, 11, -1)
    assert done == [d] and d.result().offset == 10 and d.exception() is None


def test_getmany_refuses_unassigned_partitions() -> None:
    from transports._consumer_asyncio import KafkaConsumer

    async def scenario() -> None:
        c = KafkaConsumer(bootstrap_servers="127.0.0.1:1")
        c.assign([TopicPartition("t", 0)])
        with pytest.raises(IllegalStateError, match="not assigned"):
            await c.getmany(TopicPartition("t", 1))
        await c.close()

    asyncio.run(scenario())

"""Logs, hooks, interceptors and metrics of every facade against the real broker (docs/observability.md).

Each transport runs one scenario with the root logger at DEBUG: a producer
with an interceptor (it rewrites each value and counts acknowledgements) and
broker hooks, then a group consumer with an interceptor (it drops one record
and counts commits) and hooks. The test checks what a user sees: the log
lines naming the broker, the group and the assignment; every hook call; the
metrics with kafka-python's names. A hook that raises is logged and ignored.
The SASL runs (PLAIN, SCRAM, OAUTHBEARER) log at DEBUG too, and no record
carries the password or the token.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _kafka import ready_topic
from test_sasl_gate import PASSWORD, gate, sasl  # noqa: F401  (gate: the module's SASL broker fixture)

from kproto.consumer import TopicPartition
from kproto.events import Event, NodeReady, RequestCompleted, RequestWritten
from kproto.hooks import BrokerHooks, ConsumerInterceptor, ProducerInterceptor, ProducerRecord

N = 20


class Rewrite(ProducerInterceptor):
    def __init__(self) -> None:
        self.acked: list[Any] = []
        self.failed: list[BaseException] = []

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        return record._replace(value=record.value + b"!", partition=0)

    def on_acknowledgement(self, metadata: Any, exception: BaseException | None) -> None:
        if exception is None:
            self.acked.append(metadata)
        else:
            self.failed.append(exception)


class DropFirst(ConsumerInterceptor):
    def __init__(self) -> None:
        self.seen = 0
        self.commits: list[dict[Any, Any]] = []

    def on_consume(self, records: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        out = {}
        for tp, recs in records.items():
            kept = [r for r in recs if r.offset != 0]
            self.seen += len(recs)
            if kept:
                out[tp] = kept
        return out

    def on_commit(self, offsets: dict[Any, Any]) -> None:
        self.commits.append(offsets)


class Recorder(BrokerHooks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Event]] = []

    def on_connect(self, event: NodeReady) -> None:
        self.calls.append(("connect", event))

    def on_request_written(self, event: RequestWritten) -> None:
        self.calls.append(("written", event))

    def on_response(self, event: RequestCompleted) -> None:
        self.calls.append(("response", event))

    def on_event(self, event: Event) -> None:
        self.calls.append(("event", event))

    def api_keys(self, kind: str) -> set[int]:
        return {getattr(e, "api_key", -1) for k, e in self.calls if k == kind}


class Raising:
    """Duck-typed hooks and interceptor whose every method raises."""

    def on_event(self, event: Event) -> None:
        raise RuntimeError("hook bug")

    def on_send(self, record: ProducerRecord) -> None:
        raise RuntimeError("interceptor bug")

    def on_consume(self, records: Any) -> None:
        raise RuntimeError("interceptor bug")


def _messages(caplog: pytest.LogCaptureFixture, logger: str, level: int | None = None) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and (level is None or r.levelno == level)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_logs_hooks_interceptors_and_metrics(
    transport: str, broker: Any, bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    topic = ready_topic(broker, f"obs-{uuid.uuid4().hex[:10]}")
    group = f"obs-{uuid.uuid4().hex[:8]}"
    rewrite, p_hooks = Rewrite(), Recorder()
    drop, c_hooks = DropFirst(), Recorder()
    values: list[bytes] = []
    metrics: dict[str, dict[str, dict[str, float]]] = {}

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=bootstrap, interceptors=[rewrite, Raising()], hooks=[p_hooks, Raising()],
        ) as p:  # fmt: skip
            for i in range(N):
                await p.send(topic, b"v%d" % i)
            await p.flush(30)
            metrics["producer"] = p.metrics()
        async with open_consumer(
            transport, topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False, interceptors=[drop, Raising()], hooks=[c_hooks],
        ) as c:  # fmt: skip
            values.extend(await c.poll_values(N - 1, timeout=60))
            commit = c.c.commit()
            if transport != "sync":
                await commit
            await c.poll(50)  # the driver hands the commit's events to the observer on its next turn
            metrics["consumer"] = c.c.metrics()

    run(transport, scenario)

    # Interceptors: every value rewritten and sent to partition 0, every record acknowledged
    # once; the consumer's interceptor dropped offset 0 and saw the commit.
    assert len(rewrite.acked) == N and not rewrite.failed
    assert {m.partition for m in rewrite.acked} == {0}
    assert sorted(values) == sorted(b"v%d!" % i for i in range(1, N))
    assert drop.seen == N
    assert drop.commits and drop.commits[-1][TopicPartition(topic, 0)].offset == N
    # Broker hooks: connections, Produce / Fetch / OffsetCommit requests and their responses.
    for hooks, keys in ((p_hooks, {0}), (c_hooks, {1, 8})):
        assert any(k == "connect" for k, _ in hooks.calls)
        assert keys <= hooks.api_keys("written") and keys <= hooks.api_keys("response")
        responses = [e for k, e in hooks.calls if k == "response"]
        assert all(isinstance(e, RequestCompleted) and e.latency >= 0 and e.response_bytes > 0 for e in responses)
    # The raising hook and interceptors were logged, not passed on.
    assert any("Raising.on_event raised" in m for m in _messages(caplog, "kproto.hooks", logging.WARNING))
    assert any("Raising.on_consume raised" in m for m in _messages(caplog, "kproto.hooks", logging.WARNING))
    # DEBUG names the broker and the negotiated versions; INFO the assignment; DEBUG the commit.
    client_lines = _messages(caplog, "kproto.client", logging.DEBUG)
    assert any(m.startswith("connected to ") and "Produce v" in m for m in client_lines)
    assert any(m.startswith("metadata version") for m in client_lines)
    assigned = _messages(caplog, "kproto.consumer.group", logging.INFO)
    assert any(f"group {group!r}" in m and "assigned [" in m and f"{topic}-0" in m for m in assigned)
    assert any(m.startswith("committed ") and f"{topic}-0@{N}" in m for m in _messages(caplog, "kproto.consumer"))
    # Metrics: kafka-python's names, windowed figures from real requests.
    pm = metrics["producer"]["producer-metrics"]
    assert pm["request-latency-avg"] >= 0 and pm["request-latency-max"] >= pm["request-latency-avg"]
    assert pm["compression-rate-avg"] == 1.0 and pm["buffer-available-bytes"] > 0
    assert any(g.startswith("producer-node-metrics.node-") for g in metrics["producer"])
    cm = metrics["consumer"]
    fm = cm["consumer-fetch-manager-metrics"]
    assert fm["fetch-latency-avg"] >= 0 and fm["fetch-rate"] > 0 and fm["bytes-consumed-rate"] > 0
    assert fm["records-consumed-rate"] > 0 and fm["records-lag-max"] >= 0
    assert fm[f"{topic}-0.records-lag"] == 0 and fm[f"{topic}-0.records-lead"] == N
    co = cm["consumer-coordinator-metrics"]
    assert co["rebalance-total"] >= 1 and co["rebalance-latency-max"] >= 0
    assert co["commit-latency-avg"] >= 0 and not math.isnan(co["commit-latency-max"])
    assert cm["consumer-metrics"]["last-poll-seconds-ago"] >= 0


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_debug_logs_of_sasl_runs_hold_no_secret(
    transport: str, mechanism: str, gate: Any, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.DEBUG)
    topic = ready_topic(gate, f"obs-sasl-{uuid.uuid4().hex[:8]}")
    tokens: list[str] = []
    opts = sasl(gate, mechanism)
    if mechanism == "OAUTHBEARER":
        provider = opts["sasl_oauth_token_provider"]

        def remember() -> str:
            tokens.append(provider())
            return tokens[-1]

        opts["sasl_oauth_token_provider"] = remember
    got: list[bytes] = []

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=gate.bootstrap, max_block_ms=10000, **opts) as p:
            await p.get(await p.send(topic, b"s", partition=0), 20)
        async with open_consumer(
            transport, topic, bootstrap_servers=gate.bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest", **opts,
        ) as c:  # fmt: skip
            got.extend(await c.poll_values(1, timeout=30))

    run(transport, scenario)
    assert got == [b"s"]
    assert any(r.name == "kproto.client" and r.getMessage().startswith("connected to ") for r in caplog.records)
    secrets = [PASSWORD, *tokens]
    assert mechanism != "OAUTHBEARER" or tokens
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        for secret in secrets:
            assert secret not in text, f"{record.name}: {text}"
    assert all(secret not in caplog.text for secret in secrets)


def _sizes(core: Any) -> dict[str, int]:
    from tests.sim.test_bounded_state_sim import container_sizes

    for _ in range(20):  # the sync producer's I/O thread may be mid-update: walk again
        try:
            return container_sizes(core)
        except RuntimeError:
            continue
    raise AssertionError("the core kept changing under the walk")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_state_stays_bounded_on_a_real_broker(transport: str, broker: Any, bootstrap: str) -> None:
    """The short real-broker twin of tests/sim/test_bounded_state_sim.py: 2 x 10,000 records
    produced, then 2 x 1.5 s of polling with auto-commit every 10 ms; sizes compared round to round."""
    from tests.sim.test_bounded_state_sim import assert_bounded

    topic = ready_topic(broker, f"obs-bound-{uuid.uuid4().hex[:8]}")
    sizes: dict[str, dict[str, int]] = {}
    commits: list[float] = []

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=bootstrap, linger_ms=1) as p:
            core = p.p._core if transport == "sync" else p.p._driver.core
            for round_ in range(2):
                for _ in range(10_000):
                    await p.send(topic, b"x" * 10)
                await p.flush(30)
                sizes[f"producer{round_}"] = _sizes(core)
            async with open_consumer(
                transport, topic, bootstrap_servers=bootstrap, group_id=f"b-{uuid.uuid4().hex[:6]}",
                auto_offset_reset="earliest", auto_commit_interval_ms=10,
            ) as c:  # fmt: skip
                deadline = time.monotonic() + 60
                while not c.c.assignment() and time.monotonic() < deadline:  # Tansu: ~5 s to the first one
                    await c.poll(100)
                for round_ in range(2):
                    deadline = time.monotonic() + 1.5
                    while time.monotonic() < deadline:
                        await p.send(topic, b"y")  # new positions, so each auto-commit has work
                        await c.poll(10)
                    if transport == "sync":
                        with c.c._turn():  # the heartbeat thread steps aside
                            sizes[f"consumer{round_}"] = _sizes(c.c._core)
                    else:
                        sizes[f"consumer{round_}"] = _sizes(c.c._core)
                commits.append(c.c.metrics()["consumer-metrics"]["commits-total"])

    run(transport, scenario)
    assert_bounded(sizes["producer0"], sizes["producer1"])
    assert_bounded(sizes["consumer0"], sizes["consumer1"])
    assert commits[0] >= 10  # auto-commit really ran, again and again

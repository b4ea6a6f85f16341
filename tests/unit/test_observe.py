"""The facades' observer without a broker: windowed statistics, options, log lines and levels, hooks.

Real events in, log records / hook calls / metric values out, on an explicit clock.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from kproto.consumer import (
    CommitCompleted,
    GroupRequestFailed,
    OffsetAndMetadata,
    PartitionsAssigned,
    PartitionsRevoked,
    TopicPartition,
)
from kproto.errors import KafkaConnectionError, NotLeaderForPartitionError, RebalanceInProgressError
from kproto.events import (
    BootstrapFailed,
    MetadataUpdated,
    NodeDisconnected,
    NodeReady,
    Rebootstrapped,
    RequestCompleted,
)
from kproto.metrics import Sampled
from kproto.producer.events import BatchRetried
from transports._observe import ObserveOptions, Observer, log_event, split_observe

TP0 = TopicPartition("t", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sampled_windows_expire_old_samples() -> None:
    s = Sampled(2, 10.0, now=0.0)
    assert math.isnan(s.avg(0.0)) and math.isnan(s.max(0.0)) and s.count(0.0) == 0
    s.record(4.0, 1.0)
    s.record(8.0, 2.0)
    assert (s.avg(3.0), s.max(3.0), s.min(3.0), s.count(3.0)) == (6.0, 8.0, 4.0, 2)
    s.record(1.0, 12.0)  # second sample
    assert (s.avg(13.0), s.max(13.0), s.min(13.0)) == (13 / 3, 8.0, 1.0)
    # The rate spans at least (num_samples - 1) windows, at most the statistic's age.
    assert s.rate(13.0) == pytest.approx(13.0 / 13.0)
    assert s.count_rate(13.0) == pytest.approx(3 / 13.0)
    s.record(2.0, 25.0)  # third sample replaces the first
    assert (s.max(25.0), s.min(25.0), s.count(25.0)) == (2.0, 1.0, 2)
    assert s.rate(25.0) == pytest.approx(3.0 / 13.0)
    assert math.isnan(s.avg(60.0))  # everything older than 2 windows is gone


def test_split_observe_takes_its_options_and_checks_them() -> None:
    opts, rest = split_observe({"acks": 1, "metrics_num_samples": 3, "metric_reporters": [print], "hooks": []})
    assert rest == {"acks": 1}
    assert opts == ObserveOptions(metrics_num_samples=3, metric_reporters=(print,))
    with pytest.raises(ValueError, match="metrics_num_samples must be an int >= 1, got 0"):
        split_observe({"metrics_num_samples": 0})
    with pytest.raises(ValueError, match="metrics_sample_window_ms"):
        split_observe({"metrics_sample_window_ms": -5})
    with pytest.raises(TypeError, match="metrics_enabled must be a bool"):
        split_observe({"metrics_enabled": "yes"})
    with pytest.raises(TypeError, match="metric_reporters entries must be callables"):
        split_observe({"metric_reporters": [3]})
    with pytest.raises(TypeError, match="interceptors must be a list"):
        split_observe({"interceptors": "x"})


def test_metric_reporters_classes_are_instantiated_as_kafka_python_does() -> None:
    class Reporter:
        made = 0

        def __init__(self) -> None:
            Reporter.made += 1
            self.seen: list[object] = []

        def report(self, metrics: object) -> None:
            self.seen.append(metrics)

    class KafkaPythonStyle:  # init/metric_change over KafkaMetric objects: not emulated
        def init(self, metrics: object) -> None: ...

    opts, _ = split_observe({"metric_reporters": [Reporter]})
    assert Reporter.made == 1
    (report,) = opts.metric_reporters
    report({"g": {"m": 1.0}})
    assert report.__self__.seen == [{"g": {"m": 1.0}}]  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="KafkaPythonStyle"):
        split_observe({"metric_reporters": [KafkaPythonStyle]})


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str]]:
    return [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


def test_each_event_has_its_logger_level_and_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tps = frozenset({TP0})
    for ev in (
        NodeReady(node_id=1, host="b1", port=9092, api_versions={0: 11, 1: 16, 57: 1}),
        NodeDisconnected(node_id=1, error=KafkaConnectionError("reset"), reconnect_at=100.25, host="b1", port=9092),
        MetadataUpdated(version=3, topics=frozenset({"t"}), leaders_moved=(("t", 0, 1, 2),),
                        partitions_added={"t": (1, 3)}),
        BootstrapFailed(error=KafkaConnectionError("nobody home")),  # type: ignore[arg-type]
        Rebootstrapped(reason="no broker reachable", servers=("b1:9092",)),
        BatchRetried(topic="t", partition=0, records=5, attempt=2, error=NotLeaderForPartitionError()),
        CommitCompleted(offsets={TP0: OffsetAndMetadata(7, "", -1)}, error=None),
        PartitionsAssigned(group_id="g", member_id="m-1", generation=4, partitions=tps, added=tps,
                           revoked=frozenset(), rebalance_time=0.5),
        PartitionsRevoked(group_id="g", member_id="m-1", generation=4, partitions=tps, lost=True),
        GroupRequestFailed(group_id="g", request="Heartbeat", error=RebalanceInProgressError()),
        RequestCompleted(node_id=1, api_key=0, api_version=11, request_bytes=90, response_bytes=60, latency=0.01,
                         throttle_ms=250),
    ):  # fmt: skip
        log_event(ev, 100.0)
    assert _lines(caplog) == [
        ("kproto.client", "DEBUG", "connected to node 1 at b1:9092; API versions: Produce v11, Fetch v16 (+1 more)"),
        ("kproto.client", "DEBUG",
         "disconnected from node 1 at b1:9092 (KafkaConnectionError: reset); reconnect in 0.250 s"),
        ("kproto.client", "DEBUG", "metadata version 3: 1 topic(s) described"),
        ("kproto.client", "DEBUG", "leader of t-0 moved from node 1 to node 2"),
        ("kproto.client", "DEBUG", "topic t grew from 1 to 3 partitions"),
        ("kproto.client", "WARNING", "bootstrap failed: KafkaConnectionError: nobody home"),
        ("kproto.client", "INFO", "re-bootstrapping from b1:9092: no broker reachable"),
        ("kproto.producer", "DEBUG", "retrying 5 record(s) to t-0 (attempt 2): NotLeaderForPartitionError: [Error 6] NOT_LEADER_OR_FOLLOWER"),
        ("kproto.consumer", "DEBUG", "committed t-0@7"),
        ("kproto.consumer.group", "INFO",
         "group 'g' member 'm-1' generation 4: assigned [t-0] (added [t-0], revoked []) after 0.500 s"),
        ("kproto.consumer.group", "INFO", "group 'g' member 'm-1' generation 4: lost [t-0]"),
        ("kproto.consumer.group", "DEBUG", "group 'g': Heartbeat answered RebalanceInProgressError: [Error 27] REBALANCE_IN_PROGRESS"),
        ("kproto.client", "DEBUG", "node 1 throttled the client for 250 ms (api key 0)"),
    ]  # fmt: skip


def test_at_warning_nothing_is_formatted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    class Loud(KafkaConnectionError):
        def __str__(self) -> str:
            raise AssertionError("formatted while DEBUG is off")

    log_event(NodeDisconnected(node_id=1, error=Loud(), reconnect_at=0.0), 0.0)
    log_event(GroupRequestFailed(group_id="g", request="JoinGroup", error=Loud()), 0.0)
    assert caplog.records == []


def test_hooks_get_typed_events_and_a_raising_one_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[str, Any]] = []

    class Hooks:
        def on_connect(self, ev: NodeReady) -> None:
            calls.append(("connect", ev.node_id))

        def on_response(self, ev: RequestCompleted) -> None:
            calls.append(("response", ev.api_key))

        def on_throttle(self, ev: RequestCompleted) -> None:
            calls.append(("throttle", ev.throttle_ms))

    class Broken:
        def on_event(self, ev: Any) -> None:
            raise RuntimeError("boom")

    clock = Clock()
    obs = Observer("producer", ObserveOptions(hooks=(Hooks(), Broken())), clock)
    obs.event(NodeReady(node_id=2, host="h", port=1))
    obs.event(RequestCompleted(node_id=2, api_key=0, api_version=9, request_bytes=10, response_bytes=20,
                               latency=0.004, throttle_ms=5))  # fmt: skip
    assert calls == [("connect", 2), ("response", 0), ("throttle", 5)]
    assert [r.getMessage() for r in caplog.records if r.name == "kproto.hooks"] == ["Broken.on_event raised; ignored"] * 2
    m = obs.metrics()
    assert m["producer-metrics"]["request-latency-avg"] == pytest.approx(4.0)
    assert m["producer-node-metrics.node-2"]["request-latency-max"] == pytest.approx(4.0)


def test_consumer_metrics_and_interceptors_from_polls_and_events() -> None:
    clock = Clock()
    commits: list[Any] = []

    class Icp:
        def on_consume(self, records: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
            return {tp: recs[1:] for tp, recs in records.items()}

        def on_commit(self, offsets: dict[Any, Any]) -> None:
            commits.append(offsets)

    class Core:
        def partition_offsets(self) -> dict[TopicPartition, tuple[int, int, int]]:
            return {TP0: (40, 50, 10)}

    reports: list[dict[str, Any]] = []
    obs = Observer("consumer", ObserveOptions(interceptors=(Icp(),), metric_reporters=(reports.append,),
                                              metrics_sample_window_ms=1000), clock)  # fmt: skip
    obs.metrics_source = lambda: obs.metrics(Core())
    assert obs.consumed({TP0: [1, 2, 3]}, Core()) == {TP0: [2, 3]}
    clock.now += 0.5
    obs.consumed({}, Core())
    obs.event(RequestCompleted(node_id=1, api_key=1, api_version=12, request_bytes=10, response_bytes=5000,
                               latency=0.02, throttle_ms=0))  # fmt: skip
    obs.event(CommitCompleted(offsets={TP0: OffsetAndMetadata(40, "", -1)}, error=None))
    obs.event(CommitCompleted(offsets={TP0: OffsetAndMetadata(41, "", -1)}, error=KafkaConnectionError()))
    obs.event(PartitionsAssigned(group_id="g", member_id="m", generation=1, partitions=frozenset(),
                                 added=frozenset(), revoked=frozenset(), rebalance_time=0.25))  # fmt: skip
    assert commits == [{TP0: OffsetAndMetadata(40, "", -1)}]  # only the successful one
    m = obs.metrics(Core())
    fm = m["consumer-fetch-manager-metrics"]
    assert (fm["records-lag-max"], fm["records-lead-min"], fm["t-0.records-lag"], fm["t-0.records-lead"]) == (
        10, 30, 10.0, 30.0)
    assert fm["fetch-latency-avg"] == pytest.approx(20.0) and fm["bytes-consumed-rate"] > 0
    co = m["consumer-coordinator-metrics"]
    assert co["rebalance-total"] == 1 and co["rebalance-latency-max"] == pytest.approx(250.0)
    assert m["consumer-metrics"]["time-between-poll-max"] == pytest.approx(500.0)
    assert m["consumer-metrics"]["last-poll-seconds-ago"] == 0.0
    assert reports == []  # not yet a window since the observer started
    clock.now += 1.0
    obs.event(Rebootstrapped(reason="r", servers=()))
    assert len(reports) == 1 and "consumer-fetch-manager-metrics" in reports[0]


def test_metrics_disabled_gives_no_windowed_metrics_and_no_request_events() -> None:
    class Client:
        observe_requests = 0

    client = Client()
    obs = Observer("consumer", ObserveOptions(metrics_enabled=False), Clock(), client)
    assert obs.metrics() == {} and client.observe_requests == 0
    Observer("consumer", ObserveOptions(), Clock(), client)
    assert client.observe_requests == 1  # responses, for the latency metrics
    Observer("consumer", ObserveOptions(metrics_enabled=False, hooks=(object(),)), Clock(), client)
    assert client.observe_requests == 2  # requests written too, for the hooks

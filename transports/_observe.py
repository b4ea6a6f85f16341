"""What the facades show of the cores: log records, hooks, interceptors and metrics.

The cores log nothing themselves (but for one protocol oddity in
``kproto.connection``): they hand out typed events (:mod:`kproto.events`) and
each facade's :class:`Observer` turns every one of them into a log record,
hook calls and metric updates, on every driver turn. Why events rather than
an injected logger (h2, aioquic): one stream feeds logging, hooks, metrics
and tracing alike; the simulation tests assert on the same events the logs
are made of; and the core never formats a message nobody reads.

Loggers (docs/observability.md):

=============================  ====================================================
``kproto.client``              connects, disconnects, API versions, metadata
                               changes, coordinators, re-bootstraps
``kproto.connection``          (the core) bytes a response carried beyond its fields
``kproto.producer``            retries and failed deliveries
``kproto.consumer``            commits
``kproto.consumer.group``      JoinGroup/SyncGroup/Heartbeat errors, assignments,
                               revocations
``kproto.hooks``               a hook or interceptor that raised (WARNING)
``kproto.transports.<name>``   driver crashes
=============================  ====================================================

DEBUG is the detail, INFO the assignment changes and recoveries, WARNING and
above only what a user must act on. Records never carry secrets: the events
hold no credentials, and errors are logged by name and message.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from kproto.client import COORDINATOR_NODE_BASE
from kproto.consumer.types import (
    CommitCompleted,
    GroupRequestFailed,
    PartitionsAssigned,
    PartitionsRevoked,
    TopicPartition,
)
from kproto.errors import BrokerResponseError
from kproto.events import (
    BootstrapFailed,
    CoordinatorFound,
    CoordinatorLookupFailed,
    Event,
    MetadataUpdated,
    NodeDisconnected,
    NodeReady,
    Rebootstrapped,
    RebootstrapRejected,
    RequestCompleted,
    RequestWritten,
)
from kproto.hooks import ProducerRecord
from kproto.metrics import Sampled
from kproto.producer.events import BatchRetried, DeliveryFailed, RecordsDelivered
from kproto.protocol.versions import named_versions

__all__ = ["OBSERVE_OPTIONS", "ObserveOptions", "Observer", "split_observe"]

log_client = logging.getLogger("kproto.client")
log_producer = logging.getLogger("kproto.producer")
log_consumer = logging.getLogger("kproto.consumer")
log_group = logging.getLogger("kproto.consumer.group")
log_hooks = logging.getLogger("kproto.hooks")

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING

#: Options every facade takes for observability (kafka-python's four metrics_* ones included).
OBSERVE_OPTIONS = frozenset(
    {"interceptors", "hooks", "metrics_enabled", "metrics_num_samples", "metrics_sample_window_ms", "metric_reporters"}
)

# API keys the latency metrics are made of.
_PRODUCE, _FETCH, _OFFSET_COMMIT, _HEARTBEAT = 0, 1, 8, 12


class ObserveOptions(NamedTuple):
    """The observability options of one facade."""

    #: Record-level interceptors (:class:`kproto.hooks.ProducerInterceptor` / ``ConsumerInterceptor``).
    interceptors: tuple[Any, ...] = ()
    #: Broker-level hooks (:class:`kproto.hooks.BrokerHooks`).
    hooks: tuple[Any, ...] = ()
    #: False: only the cores' counters, no windowed statistics, no per-request events.
    metrics_enabled: bool = True
    #: Samples per windowed statistic (kafka-python default 2).
    metrics_num_samples: int = 2
    #: Length of one sample, ms (kafka-python default 30000).
    metrics_sample_window_ms: int = 30000
    #: Callables given the metrics dict once per sample window.
    metric_reporters: tuple[Callable[[dict[str, dict[str, float]]], object], ...] = ()


def _listish(name: str, value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list, got {type(value).__name__}")
    return tuple(value)


def _reporter(entry: Any) -> Callable[[dict[str, dict[str, float]]], object]:
    """One ``metric_reporters`` entry as the callable the observer hands the metrics dict to.

    A class is instantiated once with no arguments, as kafka-python does with its
    reporter classes; the callable is then the instance itself or its ``report``
    method. kafka-python's ``AbstractMetricsReporter`` contract (``init`` and
    ``metric_change`` over ``KafkaMetric`` objects) is not emulated: such a class
    is refused here, by name, rather than silently never called.
    """
    if isinstance(entry, type):
        entry = entry()
        report = getattr(entry, "report", None)
        if callable(report):
            return report  # type: ignore[no-any-return]
    if callable(entry):
        return entry  # type: ignore[no-any-return]
    raise TypeError(
        "metric_reporters entries must be callables given the metrics dict, or classes whose"
        f" instances are callable or have report(metrics); got {entry!r}"
    )


def split_observe(configs: Mapping[str, Any]) -> tuple[ObserveOptions, dict[str, Any]]:
    """Take the observability options out of a facade's keyword arguments.

    Returns:
        The options, and the other keyword arguments.

    Raises:
        TypeError: a list option that is not a list, a reporter that is not callable.
        ValueError: a count or window that is not positive.
    """
    rest = {k: v for k, v in configs.items() if k not in OBSERVE_OPTIONS}
    num = configs.get("metrics_num_samples", 2)
    window = configs.get("metrics_sample_window_ms", 30000)
    for name, value in (("metrics_num_samples", num), ("metrics_sample_window_ms", window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    enabled = configs.get("metrics_enabled", True)
    if not isinstance(enabled, bool):
        raise TypeError(f"metrics_enabled must be a bool, got {type(enabled).__name__}")
    reporters = tuple(_reporter(r) for r in _listish("metric_reporters", configs.get("metric_reporters")))
    opts = ObserveOptions(
        interceptors=_listish("interceptors", configs.get("interceptors")),
        hooks=_listish("hooks", configs.get("hooks")),
        metrics_enabled=enabled,
        metrics_num_samples=num,
        metrics_sample_window_ms=window,
        metric_reporters=reporters,
    )
    return opts, rest


def _err(error: BaseException | None) -> str:
    """An error by class name and message (never more: no secret rides in an error's name)."""
    if error is None:
        return "closed on purpose"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


#: APIs the NodeReady line names (the producer's and the consumer's); the rest are counted.
_MAIN_APIS = (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 22)


def _node(node_id: int) -> str:
    """A node id as a reader knows it: broker, bootstrap entry or coordinator connection."""
    if node_id < 0:
        return f"bootstrap {-node_id}"
    if node_id > COORDINATOR_NODE_BASE // 2:
        return f"coordinator {COORDINATOR_NODE_BASE - node_id}"
    return f"node {node_id}"


def _versions(api_versions: Mapping[int, int]) -> str:
    main = {k: v for k, v in api_versions.items() if k in _MAIN_APIS}
    names = ", ".join(f"{name} v{int(v)}" for name, v in named_versions(main).items())
    rest = len(api_versions) - len(main)
    return (names or "-") + (f" (+{rest} more)" if rest else "")


def _tps(tps: Iterable[TopicPartition]) -> str:
    return "[" + ", ".join(f"{t}-{p}" for t, p in sorted(tps)) + "]"


#: Events logged at DEBUG only, by exact class: the logger, and ``(ev, now)`` ->
#: the message and its arguments (built only when the level is on).
_DEBUG_LINES: dict[type, tuple[logging.Logger, Callable[[Any, float], tuple[Any, ...]]]] = {
    NodeReady: (log_client, lambda ev, now: (
        "connected to %s at %s:%s; API versions: %s", _node(ev.node_id), ev.host, ev.port, _versions(ev.api_versions))),
    NodeDisconnected: (log_client, lambda ev, now: (
        "disconnected from %s at %s:%s (%s); reconnect in %.3f s", _node(ev.node_id), ev.host, ev.port,
        _err(ev.error), max(0.0, ev.reconnect_at - now))),
    CoordinatorFound: (log_client, lambda ev, now: (
        "%s coordinator for %r is broker %d", "transaction" if ev.key_type else "group", ev.key, ev.broker_id)),
    BatchRetried: (log_producer, lambda ev, now: (
        "retrying %d record(s) to %s-%d (attempt %d): %s", ev.records, ev.topic, ev.partition, ev.attempt,
        _err(ev.error))),
    DeliveryFailed: (log_producer, lambda ev, now: (
        "%d record(s) to %s-%d failed: %s", len(ev.tokens), ev.topic, ev.partition, _err(ev.error))),
}


def log_event(ev: Event, now: float) -> None:
    """Write ``ev`` to its logger at its level (see the module docstring); cheap when the level is off."""
    if isinstance(ev, RequestCompleted):  # the common one first: one per response
        if ev.throttle_ms and log_client.isEnabledFor(_DEBUG):
            log_client.debug("%s throttled the client for %d ms (api key %d)",
                             _node(ev.node_id), ev.throttle_ms, ev.api_key)
    elif isinstance(ev, RequestWritten):
        pass  # hooks and metrics only: a line per request would drown the rest
    elif type(ev) in _DEBUG_LINES:
        logger, line = _DEBUG_LINES[type(ev)]
        if logger.isEnabledFor(_DEBUG):
            logger.debug(*line(ev, now))
    elif isinstance(ev, MetadataUpdated):
        if log_client.isEnabledFor(_DEBUG):
            log_client.debug("metadata version %d: %d topic(s) described", ev.version, len(ev.topics))
            for topic, part, old, new in ev.leaders_moved:
                log_client.debug("leader of %s-%d moved from node %d to node %d", topic, part, old, new)
            for topic, (old_n, new_n) in sorted(ev.partitions_added.items()):
                log_client.debug("topic %s grew from %d to %d partitions", topic, old_n, new_n)
    elif isinstance(ev, CoordinatorLookupFailed):
        log_client.warning("no coordinator for %r: %s", ev.key, _err(ev.error))
    elif isinstance(ev, BootstrapFailed):
        log_client.warning("bootstrap failed: %s", _err(ev.error))
    elif isinstance(ev, Rebootstrapped):
        log_client.info("re-bootstrapping from %s: %s", ", ".join(ev.servers), ev.reason)
    elif isinstance(ev, RebootstrapRejected):
        log_client.warning("bootstrap servers now lead to cluster %r, not %r: metadata refused",
                           ev.cluster_id, ev.expected_cluster_id)
    elif isinstance(ev, CommitCompleted):
        if log_consumer.isEnabledFor(_DEBUG):
            offsets = ", ".join(f"{tp.topic}-{tp.partition}@{om.offset}" for tp, om in sorted(ev.offsets.items()))
            if ev.error is None:
                log_consumer.debug("committed %s", offsets)
            else:
                log_consumer.debug("commit of %s failed: %s", offsets, _err(ev.error))
    elif isinstance(ev, PartitionsAssigned):
        if log_group.isEnabledFor(_INFO):
            log_group.info("group %r member %r generation %d: assigned %s (added %s, revoked %s) after %.3f s",
                           ev.group_id, ev.member_id, ev.generation, _tps(ev.partitions), _tps(ev.added),
                           _tps(ev.revoked), ev.rebalance_time)
    elif isinstance(ev, PartitionsRevoked):
        if log_group.isEnabledFor(_INFO):
            log_group.info("group %r member %r generation %d: %s %s", ev.group_id, ev.member_id, ev.generation,
                           "lost" if ev.lost else "revoked", _tps(ev.partitions))
    elif isinstance(ev, GroupRequestFailed):
        if log_group.isEnabledFor(_DEBUG):
            how = "answered" if isinstance(ev.error, BrokerResponseError) else "failed:"
            log_group.debug("group %r: %s %s %s", ev.group_id, ev.request, how, _err(ev.error))


def _call(hook: Any, name: str, *args: Any) -> Any:
    """``hook.name(*args)`` if it has one; a raise is logged, never passed on (as Java's interceptors)."""
    fn = getattr(hook, name, None)
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:
        log_hooks.warning("%s.%s raised; ignored", type(hook).__name__, name, exc_info=True)
        return None


_BROKER_HOOKS: dict[type, str] = {
    NodeReady: "on_connect",
    NodeDisconnected: "on_disconnect",
    RequestWritten: "on_request_written",
    RequestCompleted: "on_response",
}


class Observer:
    """One facade's logs, hooks, interceptors and windowed metrics, fed by its core's events.

    Args:
        role: ``"producer"`` or ``"consumer"``.
        options: From :func:`split_observe`.
        clock: The facade's clock (the core's time base).
        client: The core's :class:`kproto.client.Client`: its per-request events are
            turned on when metrics or hooks need them (before its first input).
    """

    def __init__(self, role: str, options: ObserveOptions, clock: Callable[[], float], client: Any = None) -> None:
        self.role = role
        self.options = options
        self.clock = clock
        self.interceptors = options.interceptors
        self.hooks = options.hooks
        self.enabled = options.metrics_enabled
        now = clock()
        n, w = options.metrics_num_samples, options.metrics_sample_window_ms / 1000

        def stat() -> Sampled:
            return Sampled(n, w, now)

        self._stat = stat
        #: api key -> latency statistic (Produce, Fetch, OffsetCommit, Heartbeat).
        self.latency: dict[int, Sampled] = {k: stat() for k in (_PRODUCE, _FETCH, _OFFSET_COMMIT, _HEARTBEAT)}
        self.node_latency: dict[int, Sampled] = {}
        self.fetch_bytes = stat()
        self.records = stat()
        self.poll_gap = stat()
        self.lag_max = stat()
        self.lead_min = stat()
        self.rebalance = stat()
        self.rebalances = 0
        self.last_poll: float | None = None
        self.last_heartbeat: float | None = None
        self._report_at = now + w
        #: Gives the facade's whole metrics dict (for the reporters), set by the facade.
        self.metrics_source: Callable[[], dict[str, dict[str, float]]] | None = None
        if client is not None and (self.enabled or self.hooks):
            client.observe_requests = 2 if self.hooks else 1  # writes only for the hooks

    # --- events --------------------------------------------------------------------------

    def event(self, ev: Event) -> None:
        """One core event: log it, update the metrics, call the hooks and ``on_commit``."""
        now = self.clock()
        log_event(ev, now)
        if isinstance(ev, RequestCompleted):
            if self.enabled:
                self._request_done(ev, now)
        elif isinstance(ev, PartitionsAssigned):
            self.rebalances += 1
            self.rebalance.record(ev.rebalance_time, now)
        elif isinstance(ev, CommitCompleted) and self.interceptors and ev.error is None:
            for icp in self.interceptors:
                _call(icp, "on_commit", dict(ev.offsets))
        if self.hooks:
            name = _BROKER_HOOKS.get(type(ev))
            throttled = isinstance(ev, RequestCompleted) and ev.throttle_ms > 0
            for hook in self.hooks:
                if name is not None:
                    _call(hook, name, ev)
                if throttled:
                    _call(hook, "on_throttle", ev)
                _call(hook, "on_event", ev)
        if self.options.metric_reporters and now >= self._report_at:
            self.report(now)

    def events(self, evs: Sequence[Event]) -> None:
        """A driver sink: every event of a batch (the consumers' drivers)."""
        for ev in evs:
            self.event(ev)

    def _request_done(self, ev: RequestCompleted, now: float) -> None:
        latency = ev.latency * 1000
        stat = self.latency.get(ev.api_key)
        if stat is not None:
            stat.record(latency, now)
        if ev.api_key == _FETCH:
            self.fetch_bytes.record(ev.response_bytes, now)
        elif ev.api_key == _HEARTBEAT:
            self.last_heartbeat = now
        node = self.node_latency.get(ev.node_id)
        if node is None:
            node = self.node_latency[ev.node_id] = self._stat()
        node.record(latency, now)

    def report(self, now: float) -> None:
        """Hand the metrics to every ``metric_reporters`` entry (once per sample window)."""
        self._report_at = now + self.options.metrics_sample_window_ms / 1000
        source = self.metrics_source
        if source is None:
            return
        metrics = source()
        for reporter in self.options.metric_reporters:
            try:
                reporter(metrics)
            except Exception:
                log_hooks.warning("metric reporter %r raised; ignored", reporter, exc_info=True)

    # --- producer ------------------------------------------------------------------------

    def on_send(
        self, topic: Any, value: Any, key: Any, headers: Any, partition: Any, timestamp_ms: Any
    ) -> ProducerRecord:
        """Run the interceptors' ``on_send`` in order; the record to send."""
        record = ProducerRecord(topic, value, key, headers, partition, timestamp_ms)
        for icp in self.interceptors:
            new = _call(icp, "on_send", record)
            if new is not None:
                record = new if isinstance(new, ProducerRecord) else ProducerRecord(*new)
        return record

    def acknowledged(self, evs: Sequence[Event]) -> None:
        """``on_acknowledgement`` for every record of the delivery reports in ``evs``."""
        for ev in evs:
            if type(ev) is RecordsDelivered:
                tokens: Sequence[Any] = ev.tokens  # the facades' futures
                for tok in tokens:
                    meta = tok.value  # kafka-python's future.value: the metadata, as it is delivered
                    if meta is None:
                        continue  # failed before this report: its on_acknowledgement ran then
                    for icp in self.interceptors:
                        _call(icp, "on_acknowledgement", meta, None)
            elif type(ev) is DeliveryFailed:
                for _tok in ev.tokens:
                    for icp in self.interceptors:
                        _call(icp, "on_acknowledgement", None, ev.error)

    def producer_sink(self, dispatch: Callable[..., int]) -> Callable[[Sequence[Event]], object]:
        """The driver sink of an event-loop producer: resolve the tokens, log, hook, intercept."""
        event = self.event
        if not self.interceptors:
            return lambda evs: dispatch(evs, event)

        def sink(evs: Sequence[Event]) -> None:
            dispatch(evs, event)
            self.acknowledged(evs)

        return sink

    # --- consumer ------------------------------------------------------------------------

    def consumed(self, records: dict[Any, list[Any]], core: Any) -> dict[Any, list[Any]]:
        """What ``poll`` returns: metrics for it, then the interceptors' ``on_consume``."""
        if self.enabled:
            now = self.clock()
            if self.last_poll is not None:
                self.poll_gap.record((now - self.last_poll) * 1000, now)
            self.last_poll = now
            if records:
                self.records.record(sum(map(len, records.values())), now)
                for pos, hw, start in core.partition_offsets().values():
                    if hw >= 0:
                        self.lag_max.record(hw - pos, now)
                    if start >= 0:
                        self.lead_min.record(pos - start, now)
        for icp in self.interceptors:
            new = _call(icp, "on_consume", records)
            if new is not None:
                records = new
        return records

    def close(self) -> None:
        """The facade is closing: a last report to the ``metric_reporters``, the interceptors' ``close``."""
        if self.options.metric_reporters:
            try:
                self.report(self.clock())
            except Exception:  # the facade's metrics after a crash: nothing more to report
                log_hooks.debug("final metrics report failed", exc_info=True)
        for icp in self.interceptors:
            _call(icp, "close")

    # --- metrics -------------------------------------------------------------------------

    def metrics(self, core: Any = None) -> dict[str, dict[str, float]]:
        """The windowed metrics, by kafka-python / Java group name (empty when disabled)."""
        if not self.enabled:
            return {}
        now = self.clock()
        out: dict[str, dict[str, float]] = {}
        if self.role == "producer":
            lat = self.latency[_PRODUCE]
            out["producer-metrics"] = {"request-latency-avg": lat.avg(now), "request-latency-max": lat.max(now)}
        else:
            fetch = self.latency[_FETCH]
            fm = out["consumer-fetch-manager-metrics"] = {
                "fetch-latency-avg": fetch.avg(now),
                "fetch-latency-max": fetch.max(now),
                "fetch-rate": fetch.count_rate(now),
                "bytes-consumed-rate": self.fetch_bytes.rate(now),
                "records-consumed-rate": self.records.rate(now),
                "records-lag-max": self.lag_max.max(now),
                "records-lead-min": self.lead_min.min(now),
            }
            if core is not None:
                for tp, (pos, hw, start) in sorted(core.partition_offsets().items()):
                    name = f"{tp.topic}-{tp.partition}"
                    fm[f"{name}.records-lag"] = float(hw - pos) if hw >= 0 else math.nan
                    fm[f"{name}.records-lead"] = float(pos - start) if start >= 0 else math.nan
            commit = self.latency[_OFFSET_COMMIT]
            hb = self.latency[_HEARTBEAT]
            out["consumer-coordinator-metrics"] = {
                "commit-latency-avg": commit.avg(now),
                "commit-latency-max": commit.max(now),
                "commit-rate": commit.count_rate(now),
                "heartbeat-response-time-max": hb.max(now),
                "heartbeat-rate": hb.count_rate(now),
                "last-heartbeat-seconds-ago": math.nan if self.last_heartbeat is None else now - self.last_heartbeat,
                "rebalance-latency-avg": self.rebalance.avg(now) * 1000,
                "rebalance-latency-max": self.rebalance.max(now) * 1000,
                "rebalance-total": float(self.rebalances),
                "rebalance-rate-per-hour": self.rebalance.count_rate(now) * 3600,
            }
            out["consumer-metrics"] = {
                "last-poll-seconds-ago": math.nan if self.last_poll is None else now - self.last_poll,
                "time-between-poll-avg": self.poll_gap.avg(now),
                "time-between-poll-max": self.poll_gap.max(now),
            }
        prefix = "producer" if self.role == "producer" else "consumer"
        for node, stat in self.node_latency.items():
            out[f"{prefix}-node-metrics.node-{node}"] = {
                "request-latency-avg": stat.avg(now),
                "request-latency-max": stat.max(now),
            }
        return out


def merge_metrics(*parts: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Groups merged (later parts win on a name both have)."""
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for group, values in part.items():
            out.setdefault(group, {}).update(values)
    return out

"""Client core: commands, exact bytes and exact deadlines, against scripted brokers.

The scripted broker is the simulation's ``SimBroker`` (real wire protocol via
kproto's codec), driven by hand here: every step is explicit.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from kproto.client import COORDINATOR_NODE_BASE, Client, ClientConfig, parse_bootstrap
from kproto.connection import ConnectionState
from kproto.driving import Close, Connect
from kproto.errors import (
    Cancelled,
    IllegalArgumentError,
    IllegalStateError,
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaError,
    KafkaProtocolError,
    NoBrokersAvailable,
)
from kproto.events import (
    BootstrapFailed,
    CoordinatorFound,
    CoordinatorLookupFailed,
    MetadataUpdated,
    NodeDisconnected,
    NodeReady,
)
from kproto.protocol.messages import MetadataRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim.harness import SimCluster  # noqa: E402

T0 = 100.0
SEED = 7


def jitter(seed: int, n: int) -> list[float]:
    """The first ``n`` jitter factors a client seeded with ``seed`` draws (single bootstrap)."""
    rng = random.Random(seed)
    return [rng.uniform(0.8, 1.2) for _ in range(n)]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, KafkaError | None]] = []

    def __call__(self, response: Any, error: KafkaError | None) -> None:
        self.calls.append((response, error))


class Pair:
    """A client and a scripted cluster, moved one explicit step at a time."""

    def __init__(self, n_brokers: int = 2, **config: Any) -> None:
        self.cluster = SimCluster(random.Random(0), n_brokers, default_partitions=2)
        config.setdefault("bootstrap_servers", self.cluster.bootstrap)
        self.client = Client(ClientConfig(**config), now=T0, rng=random.Random(SEED))
        self.inbuf: dict[int, bytearray] = {}
        self.address: dict[int, tuple[str, int]] = {}

    def connects(self) -> list[Connect | Close]:
        cmds = self.client.commands()
        for cmd in cmds:
            if isinstance(cmd, Connect):
                self.address[cmd.node_id] = (cmd.host, cmd.port)
        return cmds

    def exchange(self, now: float) -> int:
        """Deliver every pending request to its broker and every answer back; returns frames answered."""
        answered = 0
        for node_id, data in self.client.data_to_send():
            broker = self.cluster.by_address(*self.address[node_id])
            assert broker is not None
            buf = self.inbuf.setdefault(node_id, bytearray())
            buf += data
            while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                size = int.from_bytes(buf[:4], "big")
                frame = bytes(buf[4 : 4 + size])
                del buf[: 4 + size]
                response, _ = broker.handle(frame, now)
                if response is not None:
                    self.client.receive_data(node_id, len(response).to_bytes(4, "big") + response, now)
                    answered += 1
        return answered

    def settle(self, now: float) -> None:
        """Connect whatever is asked and exchange until quiet."""
        for _ in range(20):
            for cmd in self.connects():
                if isinstance(cmd, Connect):
                    self.client.connection_made(cmd.node_id, now)
            if not self.exchange(now) and not self.client.commands():
                return


# --- bootstrap_servers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ("localhost", [("localhost", 9092)]),
        ("kafka:19092", [("kafka", 19092)]),
        ("a:1,b:2, c", [("a", 1), ("b", 2), ("c", 9092)]),
        (["a:1", "b"], [("a", 1), ("b", 9092)]),
        ("[::1]:9093", [("::1", 9093)]),
        ("[fe80::1]", [("fe80::1", 9092)]),
        ("::1", [("::1", 9092)]),
    ],
)
def test_parse_bootstrap(servers: Any, expected: list[tuple[str, int]]) -> None:
    assert parse_bootstrap(servers) == expected


@pytest.mark.parametrize("bad", ["", "host:", "host:x", "host:70000", "[::1", "[::1]x", ":9092", []])
def test_parse_bootstrap_rejects(bad: Any) -> None:
    with pytest.raises(KafkaConfigurationError):
        parse_bootstrap(bad)


def test_config_defaults_and_validation() -> None:
    c = ClientConfig()
    assert (c.bootstrap_servers, c.client_id, c.request_timeout_ms, c.metadata_max_age_ms) == (
        "localhost:9092",
        "kproto",
        30000,
        300000,
    )
    assert (c.reconnect_backoff_ms, c.reconnect_backoff_max_ms, c.retry_backoff_ms) == (50, 1000, 100)
    assert c.max_in_flight_requests_per_connection == 5
    with pytest.raises(KafkaConfigurationError):
        ClientConfig(request_timeout_ms=-1)
    with pytest.raises(KafkaConfigurationError):
        ClientConfig(max_in_flight_requests_per_connection=0)
    with pytest.raises(KafkaConfigurationError):
        ClientConfig(bootstrap_servers="h:0")


# --- bootstrap and metadata ----------------------------------------------------------------


def test_a_new_client_connects_to_the_first_bootstrap_server_at_once() -> None:
    client = Client(ClientConfig(bootstrap_servers="[::1]:9093,b"), now=T0, rng=random.Random(SEED))
    assert client.get_timer() == T0
    assert client.commands() == []  # nothing happens before an input
    client.handle_timer(T0)
    # Two bootstrap entries: the least-loaded pick starts at a seeded random offset.
    first = random.Random(SEED).randrange(2)
    expected = [Connect(node_id=-1, host="::1", port=9093), Connect(node_id=-2, host="b", port=9092)][first]
    assert client.commands() == [expected]
    assert client.get_timer() == T0 + 10  # connection setup deadline
    client.connection_made(expected.node_id, T0 + 0.1)
    [(node, data)] = client.data_to_send()
    assert node == expected.node_id
    assert data[:12] == bytes.fromhex("000000240012000400000000")  # ApiVersions v4, correlation 0


def test_bootstrap_then_metadata_then_idle_bootstrap_closed() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    assert p.connects() == [Connect(node_id=-1, host="broker1.sim", port=9092)]
    client.connection_made(-1, T0)
    assert p.exchange(T0) == 1  # ApiVersions answered
    assert client.in_flight_count(-1) == 1  # the Metadata request
    assert client.is_ready(-1)  # below the in-flight limit
    assert client.api_version(-1, 3) == 13
    # Metadata v13, no topics, auto-create on, correlation 1:
    assert p.exchange(T0) == 1
    events = client.events()
    assert attrs.evolve(events[0], api_versions={}) == NodeReady(node_id=-1, host="broker1.sim", port=9092)
    assert events[0].api_versions[3] == 13  # type: ignore[union-attr]  # Metadata v13 negotiated
    assert events[1] == MetadataUpdated(version=1, topics=frozenset())
    assert events[2] == NodeDisconnected(node_id=-1, error=None, reconnect_at=T0, host="broker1.sim", port=9092)
    assert p.connects() == [Close(node_id=-1)]
    assert client.bootstrap_connected()
    assert set(client.cluster.brokers) == {1, 2}
    assert client.cluster.broker(2) == ("broker2.sim", 9092, None)
    assert client.get_timer() == T0 + 300  # metadata_max_age_ms


def test_metadata_request_bytes() -> None:
    p = Pair()
    client = p.client
    client.add_topics(["t"], T0)
    client.handle_timer(T0)
    p.connects()
    client.connection_made(-1, T0)
    p.exchange(T0)  # ApiVersions
    [(node, data)] = client.data_to_send()
    # Metadata v13: header v2 (client id "kproto"), topics [{topic_id 0, name "t"}], auto-create, no authz ops.
    assert (node, data) == (
        -1,
        bytes.fromhex("000000280003000d0000000100066b70726f746f0002" + "00" * 16 + "027400010000"),
    )


def test_topic_metadata_leaders_and_routing() -> None:
    p = Pair()
    client = p.client
    client.add_topics(["t"], T0)
    client.handle_timer(T0)
    p.settle(T0)
    assert client.cluster.partitions_for("t") == {0, 1}
    assert client.cluster.leader_for("t", 0) == p.cluster.leader("t", 0)
    assert client.cluster.leader_epoch_for("t", 0) == 0
    assert client.cluster.available_partitions_for("t") == {0, 1}
    assert client.cluster.topic_error("t") is None
    assert client.cluster.partitions_for("nope") is None


def test_request_metadata_update_waits_retry_backoff_after_the_last_attempt() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    client.request_metadata_update(T0 + 0.05)
    assert client.get_timer() == pytest.approx(T0 + 0.1)  # retry_backoff_ms after the fetch at T0
    client.handle_timer(T0 + 0.1)
    assert [c for c in p.connects() if isinstance(c, Connect)]  # a broker connection for the refresh


def test_connection_failures_back_off_exponentially_with_seeded_jitter() -> None:
    # retry_backoff_ms=0: the failed metadata fetch is requeued at once, so the
    # reconnect backoff alone decides when the next Connect comes.
    client = Client(ClientConfig(bootstrap_servers="h", retry_backoff_ms=0), now=T0, rng=random.Random(SEED))
    client.handle_timer(T0)
    j = jitter(SEED, 6)
    now = T0
    for attempt, base in enumerate([0.05, 0.1, 0.2, 0.4, 0.8, 1.0]):
        assert client.commands() == [Connect(node_id=-1, host="h", port=9092)]
        client.connection_lost(-1, ConnectionRefusedError(), now)
        [ev] = [e for e in client.events() if isinstance(e, NodeDisconnected)]
        assert isinstance(ev.error, KafkaConnectionError)
        assert ev.reconnect_at == pytest.approx(now + base * j[attempt])
        assert client.get_timer() == pytest.approx(now + base * j[attempt])
        now = ev.reconnect_at
        client.handle_timer(now)


def test_bootstrap_deadline_reports_no_brokers_available() -> None:
    client = Client(ClientConfig(bootstrap_servers="h"), now=T0, rng=random.Random(SEED))
    client.set_bootstrap_deadline(T0 + 2)
    client.handle_timer(T0)
    client.commands()
    client.connection_lost(-1, ConnectionRefusedError(), T0 + 0.01)
    while (t := client.get_timer()) is not None and t < T0 + 2:
        client.handle_timer(t)
        for c in client.commands():
            if isinstance(c, Connect):
                client.connection_lost(-1, ConnectionRefusedError(), t)
    assert client.get_timer() == T0 + 2
    client.handle_timer(T0 + 2)
    failed = [e for e in client.events() if isinstance(e, BootstrapFailed)]
    assert len(failed) == 1 and isinstance(failed[0].error, NoBrokersAvailable)
    assert client.bootstrap_error is failed[0].error
    assert not client.bootstrap_connected()


# --- requests ------------------------------------------------------------------------------


def test_callbacks_never_run_inside_send() -> None:
    p = Pair()
    client = p.client
    rec = Recorder()
    client.send(MetadataRequest(), now=T0, node_id=99, callback=rec)  # not in the metadata
    assert rec.calls == []
    assert client.get_timer() == T0
    client.handle_timer(T0)
    [(resp, err)] = rec.calls
    assert resp is None and isinstance(err, KafkaConnectionError) and err.refresh_metadata


def test_send_to_least_loaded_and_a_callback_may_send_again() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    results: list[Any] = []

    def again(response: Any, error: KafkaError | None) -> None:
        results.append(error)
        if len(results) == 1:
            client.send(MetadataRequest(), now=T0, callback=again)

    client.send(MetadataRequest(), now=T0, callback=again)
    p.settle(T0)
    assert results == [None, None]


def test_lost_connection_fails_queued_and_in_flight_requests() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    rec = Recorder()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    p.connects()
    client.connection_made(1, T0)
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    client.connection_lost(1, ConnectionResetError(), T0 + 1)
    assert [type(e) for _, e in rec.calls] == [KafkaConnectionError, KafkaConnectionError]
    assert client.connection_state(1) is None


def test_bad_bytes_close_one_node_and_the_client_keeps_serving_others() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    bad, good = Recorder(), Recorder()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=bad)
    client.send(MetadataRequest(), now=T0, node_id=2, callback=good)
    for cmd in p.connects():
        client.connection_made(cmd.node_id, T0)
    p.exchange(T0)  # both handshakes; requests written
    client.data_to_send()
    client.receive_data(1, b"\x7f\xff\xff\xff", T0)  # 2 GiB frame
    assert Close(node_id=1) in p.connects()
    assert isinstance(bad.calls[0][1], KafkaProtocolError)
    assert client.connection_state(2) is ConnectionState.READY
    assert good.calls == []


def test_throttled_node_is_not_ready_until_the_throttle_ends() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    p.cluster.throttle(1, 250)
    rec = Recorder()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    p.settle(T0)
    assert rec.calls and rec.calls[0][0].throttle_time_ms == 250
    assert client.throttled_until(1) == T0 + 0.25
    assert not client.is_ready(1)
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    assert client.data_to_send() == []
    assert client.get_timer() == T0 + 0.25
    client.handle_timer(T0 + 0.25)
    assert [n for n, _ in client.data_to_send()] == [1]


# --- coordinators ---------------------------------------------------------------------------


def test_coordinator_lookup_caching_and_invalidation() -> None:
    p = Pair(n_brokers=3)
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    assert client.coordinator("g", 0, T0) is None
    p.settle(T0)
    owner = p.cluster.coordinator_of(0, "g")
    node = client.coordinator("g", 0, T0)
    assert node == COORDINATOR_NODE_BASE - owner
    found = [e for e in client.events() if isinstance(e, CoordinatorFound)]
    assert found == [CoordinatorFound(key="g", key_type=0, node_id=node, broker_id=owner)]
    assert client.coordinator("g", 0, T0) == node  # cached
    new_owner = p.cluster.move_coordinator(0, "g")
    client.mark_coordinator_dead("g", 0, T0 + 1)
    assert client.coordinator("g", 0, T0 + 1) is None
    p.settle(T0 + 1)
    assert client.coordinator("g", 0, T0 + 1) == COORDINATOR_NODE_BASE - new_owner


def test_coordinator_not_available_is_retried_after_retry_backoff() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    p.cluster.inject(10, 15)  # COORDINATOR_NOT_AVAILABLE
    client.coordinator("g", 0, T0)
    p.settle(T0)
    assert client.coordinator("g", 0, T0) is None
    assert client.get_timer() == pytest.approx(T0 + 0.1)
    client.handle_timer(T0 + 0.1)
    p.settle(T0 + 0.1)
    assert client.coordinator("g", 0, T0 + 0.1) is not None


def test_coordinator_lookup_fails_for_good_on_a_non_retriable_error() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    p.cluster.inject(10, 30)  # GROUP_AUTHORIZATION_FAILED
    client.coordinator("g", 0, T0)
    p.settle(T0)
    [failed] = [e for e in client.events() if isinstance(e, CoordinatorLookupFailed)]
    assert (failed.key, failed.key_type, getattr(failed.error, "errno", None)) == ("g", 0, 30)


# --- closing and misuse --------------------------------------------------------------------------


def test_close_cancels_everything_and_inputs_after_close_raise() -> None:
    p = Pair()
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    rec = Recorder()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    p.connects()
    client.connection_made(1, T0)
    client.close(T0)
    assert isinstance(rec.calls[0][1], Cancelled)
    assert Close(node_id=1) in client.commands()
    assert client.get_timer() is None
    client.close(T0)  # idempotent
    with pytest.raises(IllegalStateError):
        client.receive_data(1, b"x", T0)
    with pytest.raises(IllegalStateError):
        client.handle_timer(T0)
    with pytest.raises(IllegalStateError):
        client.send(MetadataRequest(), now=T0, callback=rec)


def test_misuse_raises_at_the_call() -> None:
    client = Client(ClientConfig(bootstrap_servers="h"), now=T0, rng=random.Random(SEED))
    with pytest.raises(IllegalStateError):
        client.receive_data(5, b"x", T0)  # never connected
    with pytest.raises(IllegalStateError):
        client.connection_made(-1, T0)  # no Connect issued yet
    client.handle_timer(T0)
    client.commands()
    with pytest.raises(IllegalStateError):
        client.receive_data(-1, b"x", T0)  # before connection_made
    client.connection_made(-1, T0)
    with pytest.raises(IllegalStateError):
        client.connection_made(-1, T0)
    with pytest.raises(IllegalArgumentError):
        client.send(MetadataRequest(), now=T0, callback=Recorder(), timeout_ms=-5)
    with pytest.raises(IllegalArgumentError):
        client.ensure_connected(42, T0)


def test_stale_inputs_for_a_closed_attempt_are_ignored_or_closed() -> None:
    client = Client(
        ClientConfig(bootstrap_servers="h", connection_setup_timeout_ms=1000), now=T0, rng=random.Random(SEED)
    )
    client.handle_timer(T0)
    client.commands()
    client.handle_timer(T0 + 1)  # setup timed out: the client gives up on the attempt
    assert client.commands() == [Close(node_id=-1)]
    client.connection_lost(-1, None, T0 + 1)  # a late report: ignored
    client.receive_data(-1, b"late", T0 + 1)  # bytes racing the Close: ignored
    client.connection_made(-1, T0 + 1)  # a late success: closed again
    assert client.commands() == [Close(node_id=-1)]


# --- tolerance (issue 10) ---------------------------------------------------------------------


def test_next_connection_asks_the_api_versions_version_the_last_one_settled_on() -> None:
    """A broker that refuses ApiVersions v4 (KIP-511 fallback) is asked at its version next time."""
    p = Pair(n_brokers=1)
    broker = p.cluster.brokers[1]
    broker.api_versions_max = 1
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)
    assert broker.requests[:2] == [(18, 4), (18, 1)]
    assert client.bootstrap_connected()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=Recorder())
    p.settle(T0)
    broker.requests.clear()
    client.connection_lost(1, None, T0)
    client.handle_timer(T0 + 1)
    p.settle(T0 + 1)
    assert broker.requests[0] == (18, 1)  # no second refusal


def test_responses_with_trailing_bytes_are_counted_across_connections() -> None:
    p = Pair(n_brokers=1)
    client = p.client
    client.handle_timer(T0)
    p.settle(T0)  # bootstrap and metadata
    client.ensure_connected(1, T0)
    p.settle(T0)
    rec = Recorder()
    client.send(MetadataRequest(), now=T0, node_id=1, callback=rec)
    [(node, data)] = client.data_to_send()
    frame = data[4:]
    answer, _ = p.cluster.brokers[1].handle(frame, T0)
    assert answer is not None
    padded = answer + b"\x00\x00"
    client.receive_data(1, len(padded).to_bytes(4, "big") + padded, T0)
    assert rec.calls and rec.calls[0][1] is None
    assert client.responses_with_trailing_bytes == 1
    client.connection_lost(1, None, T0)
    assert client.responses_with_trailing_bytes == 1  # kept after the connection is gone

"""Client core: KIP-899/KIP-1102 re-bootstrap and the growing connection setup timeout (KIP-601).

Scripted brokers (the simulation's ``SimBroker``, real wire protocol) moved
one explicit step at a time, as in ``test_client.py``. The client bootstraps
through an alias (``bootstrap.sim``: a DNS name or load balancer that always
reaches a live broker) and learns the brokers' own addresses from metadata.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

from kproto.client import Client, ClientConfig
from kproto.cluster import ClusterMetadata
from kproto.driving import Close, Connect
from kproto.errors import KafkaConfigurationError
from kproto.events import MetadataUpdated, Rebootstrapped, RebootstrapRejected
from kproto.protocol.messages.metadata import (
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim.harness import SimCluster  # noqa: E402

T0 = 100.0
SEED = 7
BOOTSTRAP = ("bootstrap.sim", 9092)


class Pair:
    """A client and a scripted cluster behind a bootstrap alias."""

    def __init__(self, n_brokers: int = 2, **config: Any) -> None:
        self.cluster = SimCluster(random.Random(0), n_brokers, default_partitions=2)
        config.setdefault("bootstrap_servers", self.cluster.add_alias(*BOOTSTRAP))
        self.client = Client(ClientConfig(**config), now=T0, rng=random.Random(SEED))
        self.inbuf: dict[int, bytearray] = {}
        self.address: dict[int, tuple[str, int]] = {}
        self.connects_seen: list[tuple[float, Connect]] = []
        self.events: list[object] = []

    def step(self, now: float, *, answer: bool = True) -> None:
        """Carry out commands (refused where nothing listens), exchange bytes, collect events."""
        for _ in range(20):
            progressed = False
            for cmd in self.client.commands():
                progressed = True
                if isinstance(cmd, Close):
                    self.inbuf.pop(cmd.node_id, None)
                    continue
                self.address[cmd.node_id] = (cmd.host, cmd.port)
                self.connects_seen.append((now, cmd))
                if self.cluster.by_address(cmd.host, cmd.port) is None:
                    self.client.connection_lost(cmd.node_id, ConnectionRefusedError("refused"), now)
                elif answer:
                    self.client.connection_made(cmd.node_id, now)
            if answer:
                for node_id, data in self.client.data_to_send():
                    progressed = True
                    broker = self.cluster.by_address(*self.address[node_id])
                    if broker is None:
                        self.client.connection_lost(node_id, ConnectionResetError("gone"), now)
                        continue
                    buf = self.inbuf.setdefault(node_id, bytearray())
                    buf += data
                    while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                        size = int.from_bytes(buf[:4], "big")
                        frame = bytes(buf[4 : 4 + size])
                        del buf[: 4 + size]
                        response, _ = broker.handle(frame, now)
                        if response is not None:
                            self.client.receive_data(
                                node_id, len(response).to_bytes(4, "big") + response, now
                            )
            if not progressed:
                break
        self.events.extend(self.client.events())

    def run(self, until: float, *, answer: bool = True, stop: Any = None) -> float:
        """Follow ``get_timer()`` up to ``until`` (or until ``stop()``); returns the time reached."""
        now = self.client._now
        self.step(now, answer=answer)
        while (t := self.client.get_timer()) is not None and t <= until:
            if stop is not None and stop():
                return now
            now = t
            self.client.handle_timer(now)
            self.step(now, answer=answer)
        return now

    def bootstrap_connects(self, after: float) -> list[float]:
        return [t for t, c in self.connects_seen if (c.host, c.port) == BOOTSTRAP and t > after]


def started(n_brokers: int = 2, **config: Any) -> Pair:
    """A pair whose client knows the brokers and topic ``t`` (leader epochs 0)."""
    p = Pair(n_brokers, **config)
    p.client.add_topics(["t"], T0)
    p.client.handle_timer(T0)
    p.step(T0)
    assert set(p.client.cluster.brokers) == set(range(1, n_brokers + 1))
    assert p.client.cluster.partitions_for("t") == {0, 1}
    return p


# --- configuration ---------------------------------------------------------------------------


def test_defaults() -> None:
    c = ClientConfig()
    assert c.metadata_recovery_strategy == "rebootstrap"
    assert c.metadata_recovery_rebootstrap_trigger_ms == 300000
    assert (c.socket_connection_setup_timeout_ms, c.socket_connection_setup_timeout_max_ms) == (10000, 30000)
    assert c.connection_setup_timeout_ms is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "metadata_recovery_strategy",
            "always",
            "metadata_recovery_strategy must be 'none' or 'rebootstrap'",
        ),
        ("metadata_recovery_strategy", None, "metadata_recovery_strategy must be 'none' or 'rebootstrap'"),
        (
            "metadata_recovery_rebootstrap_trigger_ms",
            -1,
            "metadata_recovery_rebootstrap_trigger_ms=-1 is not allowed: metadata_recovery_rebootstrap_trigger_ms must be an int in",
        ),
        ("socket_connection_setup_timeout_ms", -1, "socket_connection_setup_timeout_ms=-1 is not allowed: socket_connection_setup_timeout_ms must be an int in"),
        ("socket_connection_setup_timeout_max_ms", -1, "socket_connection_setup_timeout_max_ms=-1 is not allowed: socket_connection_setup_timeout_max_ms must be an int in"),
        ("connection_setup_timeout_ms", -1, "connection_setup_timeout_ms must be >= 0"),
    ],
)
def test_bad_values_name_the_option(name: str, value: object, message: str) -> None:
    with pytest.raises(KafkaConfigurationError, match=message):
        ClientConfig(**{name: value})


def test_strategy_is_case_insensitive() -> None:
    assert ClientConfig(metadata_recovery_strategy="REBOOTSTRAP").metadata_recovery_strategy == "REBOOTSTRAP"
    assert ClientConfig(metadata_recovery_strategy="None").metadata_recovery_strategy == "None"


# --- KIP-899: every known broker unreachable ---------------------------------------------------------


@pytest.mark.parametrize("keep_ids", [False, True])
def test_rebootstrap_when_no_known_broker_can_be_reached(keep_ids: bool) -> None:
    p = started()
    client = p.client
    p.events.clear()
    old = client.cluster.brokers
    moved_at = T0 + 1
    p.cluster.now = moved_at
    p.cluster.replace_brokers(keep_ids=keep_ids)  # every partition: a new leader, epoch 1
    client.request_metadata_update(moved_at)  # e.g. a produce failed
    p.step(moved_at)
    end = p.run(moved_at + 30, stop=lambda: client.rebootstrap_count > 0)
    # The old brokers refused until all were in reconnect backoff; then back to bootstrap.
    [ev] = [e for e in p.events if isinstance(e, Rebootstrapped)]
    assert ev == Rebootstrapped(
        reason="no broker from the metadata can be reached", servers=("bootstrap.sim:9092",)
    )
    assert end < moved_at + 2  # within a few backoffs, not the 5 min trigger
    assert client.rebootstrap_count == 1
    # Fresh metadata arrives through the bootstrap alias and names the new brokers.
    p.run(end + 1, stop=lambda: client.cluster.brokers and client.cluster.brokers != old)
    assert p.bootstrap_connects(after=moved_at)
    new = client.cluster.brokers
    assert set(new) == set(p.cluster.brokers)
    assert all(".gen1.sim" in host for host, _port, _rack in new.values())
    for part in (0, 1):
        assert client.cluster.leader_for("t", part) == p.cluster.leader("t", part)
        assert client.cluster.leader_epoch_for("t", part) == 1
    # Requests to the new leaders go to their new addresses.
    leader = client.cluster.leader_for("t", 0)
    assert leader is not None
    client.ensure_connected(leader, end + 1)
    cmds = client.commands()
    if keep_ids:
        # The old node object for this id may still be backing off; its next connect uses the new address.
        p.run(
            end + 5, stop=lambda: any(c.node_id == leader for _t, c in p.connects_seen if ".gen1." in c.host)
        )
    else:
        assert Connect(node_id=leader, host=f"broker{leader}.gen1.sim", port=9092) in cmds


def test_strategy_none_keeps_retrying_the_known_brokers() -> None:
    p = started(metadata_recovery_strategy="none")
    client = p.client
    p.cluster.now = T0 + 1
    p.cluster.replace_brokers()
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 600)  # ten minutes: past the KIP-1102 trigger too
    assert client.rebootstrap_count == 0
    assert not [e for e in p.events if isinstance(e, Rebootstrapped)]
    assert p.bootstrap_connects(after=T0 + 1) == []
    assert set(client.cluster.brokers) == {1, 2}
    assert {c.host for t, c in p.connects_seen if t > T0 + 1} == {"broker1.sim", "broker2.sim"}


def test_no_rebootstrap_while_some_known_broker_is_reachable() -> None:
    p = started(n_brokers=3)
    client = p.client
    p.cluster.now = T0 + 1
    p.cluster.broker_down(1)
    p.cluster.broker_down(2)
    # Addresses of brokers 1 and 2 refuse (as if gone); broker 3 keeps answering.
    for b in (1, 2):
        p.cluster.brokers[b].host = "gone.sim"
    for _ in range(20):
        client.request_metadata_update(client._now)
        p.run(client._now + 1)
    assert client.rebootstrap_count == 0
    assert p.bootstrap_connects(after=T0 + 1) == []


def test_an_unreachable_bootstrap_list_does_not_loop() -> None:
    p = started()
    client = p.client
    p.cluster.now = T0 + 1
    p.cluster.replace_brokers()
    p.cluster.aliases.clear()  # the bootstrap name reaches nothing either
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 60)
    assert client.rebootstrap_count == 1  # once; then the bootstrap entries back off as usual
    assert client.cluster.brokers == {}
    times = p.bootstrap_connects(after=T0 + 1)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and max(gaps) >= 0.8  # reconnect_backoff_max_ms=1000 with jitter


# --- KIP-1102: no metadata for metadata_recovery_rebootstrap_trigger_ms -----------------------------


def test_rebootstrap_after_the_trigger_when_brokers_accept_but_never_answer() -> None:
    p = started(
        request_timeout_ms=1000,
        metadata_recovery_rebootstrap_trigger_ms=5000,
        socket_connection_setup_timeout_ms=60000,
    )
    client = p.client
    p.events.clear()
    # The brokers' addresses now swallow connections (no RST, no answer): every
    # connection stays in setup, so every broker still counts as available.
    start = T0 + 1
    client.request_metadata_update(start)
    p.run(start + 30, answer=False, stop=lambda: client.rebootstrap_count > 0)
    [ev] = [e for e in p.events if isinstance(e, Rebootstrapped)]
    assert ev.reason == "no metadata for 5000 ms"
    when = client._now
    assert start + 5 <= when <= start + 5 + 1.2  # the first retry at or after the trigger
    assert client.cluster.brokers == {}
    assert client.cluster.partitions_for("t") == {0, 1}  # topics stay
    # A successful update resets the trigger: no second rebootstrap while metadata flows.
    p.run(when + 600)
    assert client.rebootstrap_count == 1
    assert set(client.cluster.brokers) == {1, 2}


def test_trigger_zero_means_every_failed_refresh_rebootstraps() -> None:
    p = started(request_timeout_ms=1000, metadata_recovery_rebootstrap_trigger_ms=0,
                socket_connection_setup_timeout_ms=60000)  # fmt: skip
    client = p.client
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 10, answer=False, stop=lambda: client.rebootstrap_count > 0)
    assert client.rebootstrap_count == 1


# --- consistency: leader epochs, cluster id -------------------------------------------------------------


def _metadata(epoch: int, leader: int, broker: int, cluster_id: str = "c") -> MetadataResponse:
    return MetadataResponse(
        brokers=[MetadataResponseBroker(node_id=broker, host=f"b{broker}", port=9092)],
        cluster_id=cluster_id,
        controller_id=broker,
        topics=[
            MetadataResponseTopic(
                name="t",
                partitions=[
                    MetadataResponsePartition(
                        partition_index=0, leader_id=leader, leader_epoch=epoch, replica_nodes=[leader],
                        isr_nodes=[leader],
                    )
                ],
            )
        ],
    )  # fmt: skip


def test_forget_brokers_keeps_partitions_and_their_epochs() -> None:
    cm = ClusterMetadata()
    cm.update(_metadata(epoch=5, leader=1, broker=1))
    version = cm.version
    cm.forget_brokers()
    assert cm.brokers == {} and cm.version == version + 1
    assert cm.leader_for("t", 0) == 1 and cm.leader_epoch_for("t", 0) == 5
    cm.update(_metadata(epoch=4, leader=7, broker=7))  # a lagging broker behind the bootstrap alias
    assert cm.leader_for("t", 0) == 1 and cm.leader_epoch_for("t", 0) == 5  # KIP-320: not regressed
    assert set(cm.brokers) == {7}
    cm.update(_metadata(epoch=6, leader=7, broker=7))
    assert cm.leader_for("t", 0) == 7 and cm.leader_epoch_for("t", 0) == 6
    cm.forget_brokers()
    cm.forget_brokers()  # nothing to forget: no new version
    assert cm.version == version + 4


def test_lagging_bootstrap_broker_after_rebootstrap_does_not_move_leaders_back() -> None:
    p = started()
    client = p.client
    p.cluster.now = T0 + 1
    p.cluster.move_leader("t", 0)  # epoch 1
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 2)
    assert client.cluster.leader_epoch_for("t", 0) == 1
    leader_before = client.cluster.leader_for("t", 0)
    p.cluster.now = T0 + 3
    p.cluster.replace_brokers(keep_ids=True)  # epoch 2
    for b in p.cluster.brokers.values():
        b.metadata_lag = 2.5  # the new brokers answer as of T0 + 0.5: epoch 0
    client.request_metadata_update(T0 + 3)
    p.run(T0 + 10, stop=lambda: client.rebootstrap_count > 0 and client.cluster.brokers)
    assert client.rebootstrap_count == 1
    assert client.cluster.leader_epoch_for("t", 0) == 1  # not 0
    assert client.cluster.leader_for("t", 0) == leader_before
    for b in p.cluster.brokers.values():
        b.metadata_lag = 0.0
    client.request_metadata_update(client._now)
    p.run(client._now + 1)
    assert client.cluster.leader_epoch_for("t", 0) == 2


def test_rebootstrap_into_another_cluster_is_refused() -> None:
    p = started()
    client = p.client
    p.events.clear()
    p.cluster.now = T0 + 1
    p.cluster.replace_brokers()
    for b in p.cluster.brokers.values():
        inner = b._metadata

        def other(request: Any, version: int, now: float, inner: Any = inner) -> Any:
            response = inner(request, version, now)
            response.cluster_id = "another"
            return response

        b._metadata = other  # type: ignore[method-assign]
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 10)
    assert client.rebootstrap_count == 1
    rejected = [e for e in p.events if isinstance(e, RebootstrapRejected)]
    assert rejected and rejected[0] == RebootstrapRejected(expected_cluster_id="sim", cluster_id="another")
    assert client.cluster.brokers == {}  # nothing from the other cluster applied
    assert not [e for e in p.events if isinstance(e, MetadataUpdated)]
    times = sorted({t for t, c in p.connects_seen if (c.host, c.port) == BOOTSTRAP and t > T0 + 1})
    # Not a tight loop: about one attempt per reconnect_backoff_max_ms (1 s) over 9 s.
    assert len(rejected) <= 12, (len(rejected), times)


# --- KIP-601: the connection setup timeout grows per failed attempt ------------------------------------


def _setup_deadlines(config: ClientConfig, attempts: int) -> list[float]:
    client = Client(config, now=T0, rng=random.Random(SEED))
    client.handle_timer(T0)
    out = []
    now = T0
    while len(out) < attempts:
        cmds = client.commands()
        if any(isinstance(c, Connect) for c in cmds):
            deadline = client.get_timer()
            assert deadline is not None
            out.append(round(deadline - now, 6))
            now = deadline
            client.handle_timer(now)  # the setup times out
            continue
        t = client.get_timer()
        assert t is not None
        now = t
        client.handle_timer(now)
    return out


def test_setup_timeout_doubles_per_failure_up_to_the_max() -> None:
    cfg = ClientConfig(
        bootstrap_servers="h",
        socket_connection_setup_timeout_ms=1000,
        socket_connection_setup_timeout_max_ms=5000,
    )
    assert _setup_deadlines(cfg, 5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_setup_timeout_default_is_10_s_growing_to_30_s() -> None:
    cfg = ClientConfig(bootstrap_servers="h", request_timeout_ms=600000)  # no request deadline in the way
    assert _setup_deadlines(cfg, 4) == [10.0, 20.0, 30.0, 30.0]


def test_setup_timeout_max_below_base_means_no_growth_and_old_name_wins() -> None:
    cfg = ClientConfig(bootstrap_servers="h", socket_connection_setup_timeout_max_ms=0)
    assert _setup_deadlines(cfg, 3) == [10.0, 10.0, 10.0]
    cfg = ClientConfig(
        bootstrap_servers="h", connection_setup_timeout_ms=500, socket_connection_setup_timeout_ms=9
    )
    assert _setup_deadlines(cfg, 3) == [0.5, 1.0, 2.0]


def test_setup_timeout_resets_once_a_connection_is_ready() -> None:
    p = Pair(socket_connection_setup_timeout_ms=1000)
    client = p.client
    client.handle_timer(T0)
    client.commands()
    client.handle_timer(T0 + 1)  # first attempt times out
    assert client.commands() == [Close(node_id=-1)]
    t = client.get_timer()
    assert t is not None
    client.handle_timer(t)
    [cmd] = client.commands()
    assert isinstance(cmd, Connect)
    assert client.get_timer() == pytest.approx(t + 2)  # grown
    p.address[-1] = (cmd.host, cmd.port)
    client.connection_made(-1, t)
    p.step(t)  # ready, metadata answered, idle bootstrap connection closed
    assert client.cluster.brokers
    client.ensure_connected(-1, t)
    [cmd] = client.commands()
    assert isinstance(cmd, Connect)
    assert client.get_timer() == pytest.approx(t + 1)  # back to the base


# --- KIP-1102: the broker asks for a re-bootstrap (Metadata v13) ------------------------------------


def test_metadata_v13_rebootstrap_required_rebootstraps() -> None:
    p = started()
    client = p.client
    p.events.clear()
    p.cluster.inject(3, 129)  # the next Metadata answer: top-level REBOOTSTRAP_REQUIRED
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 5, stop=lambda: client.rebootstrap_count > 0)
    [ev] = [e for e in p.events if isinstance(e, Rebootstrapped)]
    assert "REBOOTSTRAP_REQUIRED" in ev.reason
    p.run(T0 + 10, stop=lambda: any(isinstance(e, MetadataUpdated) for e in p.events))
    assert p.bootstrap_connects(after=T0 + 1)
    assert set(client.cluster.brokers) == {1, 2}


def test_metadata_v13_other_top_level_error_asks_again_without_applying() -> None:
    p = started()
    client = p.client
    version = client.cluster.version
    asked = sum(b.requests.count((3, 13)) for b in p.cluster.brokers.values())
    p.events.clear()
    p.cluster.inject(3, 7)  # REQUEST_TIMED_OUT at the top level (a made-up case): retried
    client.request_metadata_update(T0 + 1)
    p.run(T0 + 5, stop=lambda: any(isinstance(e, MetadataUpdated) for e in p.events))
    assert client.rebootstrap_count == 0
    assert client.cluster.version == version + 1  # only the good answer was applied
    assert sum(b.requests.count((3, 13)) for b in p.cluster.brokers.values()) == asked + 2

"""kafka-python options the client core honours (issue 11 item 1): exact steps, explicit time.

``api_version`` caps the versions sent to a broker release's; ``connections_max_idle_ms``
closes idle connections; ``receive_message_max_bytes`` bounds a response
frame; ``bootstrap_timeout_ms`` ends a bootstrap no broker answers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from kproto.client import Client, ClientConfig
from kproto.connection import ConnectionState
from kproto.consumer import ConsumerConfig
from kproto.driving import Close, Connect
from kproto.errors import KafkaProtocolError, NoBrokersAvailable
from kproto.events import BootstrapFailed, NodeDisconnected
from kproto.producer.config import ProducerConfig
from kproto.protocol.messages import REQUEST_TYPES, MetadataRequest
from kproto.protocol.release_versions import RELEASES, release_caps
from kproto.protocol.versions import max_version

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _adapters import TRANSPORTS, open_consumer, open_producer, run  # noqa: E402
from test_client import T0, Pair, Recorder  # noqa: E402

API_VERSIONS_KEY = 18
METADATA_KEY = MetadataRequest.API_KEY


def _ready_broker(pair: Pair, now: float) -> int:
    """Bootstrap, then open a connection to broker 0; returns its node id."""
    pair.client.handle_timer(now)
    pair.settle(now)
    node = min(b for b in pair.client.cluster.brokers)
    pair.client.ensure_connected(node, now)
    pair.settle(now)
    assert pair.client.connection_state(node) is ConnectionState.READY
    return node


# --- api_version ------------------------------------------------------------------------


@pytest.mark.parametrize("release", [(2, 2), (2, 8), (3, 5), (4, 0)])
def test_api_version_caps_every_api_at_the_release(release: tuple[int, int]) -> None:
    free = Pair()
    capped = Pair(api_version=release)
    node = _ready_broker(free, T0)
    assert _ready_broker(capped, T0) == node
    caps = release_caps(release)
    lowered = 0
    for key in REQUEST_TYPES:
        negotiated = free.client.api_version(node, key)
        version = capped.client.api_version(node, key)
        if negotiated is None:
            assert version is None
            continue
        if key not in caps:
            assert version is None  # the release has no such API: never sent
            continue
        assert version == min(negotiated, caps[key])
        lowered += version < negotiated
    if release < (3, 0):
        assert lowered  # the simulated broker is newer: the cap bites
    conn = capped.client._nodes[node].conn
    assert conn is not None and conn.api_versions_version <= caps[API_VERSIONS_KEY]


def test_api_version_between_releases_takes_the_older_row() -> None:
    assert release_caps((2, 8, 1)) == RELEASES[(2, 8)]
    assert release_caps((3, 10)) == RELEASES[(3, 9)]


def test_api_version_requests_go_out_at_the_capped_version() -> None:
    pair = Pair(api_version=(2, 8))
    node = _ready_broker(pair, T0)
    done = Recorder()
    pair.client.send(MetadataRequest(topics=[], allow_auto_topic_creation=False), now=T0, callback=done, node_id=node)
    pair.exchange(T0)
    assert done.calls and done.calls[0][1] is None
    assert pair.client.versions_sent()[METADATA_KEY] == min(RELEASES[(2, 8)][METADATA_KEY], max_version(MetadataRequest))


def test_release_table_agrees_with_kafka_python() -> None:
    """The table comes from Kafka's own jars; kafka-python 3 keeps one too: they agree where both know."""
    bvd = pytest.importorskip("kafka.protocol.broker_version_data")
    theirs: dict[tuple[int, ...], dict[int, tuple[int, int]]] = bvd.BROKER_API_VERSIONS
    compared = 0
    for release, caps in RELEASES.items():
        row = theirs.get(release + (0,), theirs.get(release))
        if row is None:
            continue
        for key, top in caps.items():
            if key in row:
                assert row[key][1] == top, (release, key)
                compared += 1
    assert compared > 100


def test_api_version_reaches_the_client_from_both_configs() -> None:
    assert ProducerConfig.from_kwargs(api_version=(2, 8)).client_config().api_version == (2, 8)
    assert ConsumerConfig.from_kwargs(api_version="3.9").client_config().api_version == (3, 9)


# --- connections_max_idle_ms -----------------------------------------------------------


def test_idle_connection_closed_after_connections_max_idle_ms() -> None:
    pair = Pair(connections_max_idle_ms=1000)
    node = _ready_broker(pair, T0)
    pair.client.events()
    timer = pair.client.get_timer()
    assert timer is not None and timer <= T0 + 1.0
    pair.client.handle_timer(T0 + 0.999)
    assert pair.client.connection_state(node) is ConnectionState.READY
    pair.client.handle_timer(T0 + 1.0)
    assert Close(node_id=node) in pair.client.commands()
    assert pair.client.connection_state(node) is None
    lost = [e for e in pair.client.events() if isinstance(e, NodeDisconnected) and e.node_id == node]
    assert lost and lost[0].error is None and lost[0].reconnect_at == T0 + 1.0  # no backoff: reconnect on demand


def test_traffic_and_in_flight_requests_keep_a_connection_open() -> None:
    pair = Pair(connections_max_idle_ms=1000)
    node = _ready_broker(pair, T0)
    done = Recorder()
    pair.client.send(MetadataRequest(topics=[], allow_auto_topic_creation=False), now=T0 + 0.5, callback=done, node_id=node)
    for cmd in pair.client.commands():
        assert not isinstance(cmd, (Close, Connect))
    pair.client.data_to_send()  # written, not answered: in flight
    pair.client.handle_timer(T0 + 5.0)
    assert pair.client.connection_state(node) is ConnectionState.READY


def test_negative_connections_max_idle_ms_never_closes() -> None:
    pair = Pair(connections_max_idle_ms=-1)
    node = _ready_broker(pair, T0)
    pair.client.handle_timer(T0 + 10_000)
    assert pair.client.connection_state(node) is ConnectionState.READY


# --- receive_message_max_bytes ---------------------------------------------------------


def test_response_over_receive_message_max_bytes_closes_with_protocol_error() -> None:
    cap = ProducerConfig.from_kwargs(receive_message_max_bytes=4096).client_config().max_response_size
    assert cap == 4096
    pair = Pair(max_response_size=cap)
    node = _ready_broker(pair, T0)
    done = Recorder()
    pair.client.send(MetadataRequest(topics=[], allow_auto_topic_creation=False), now=T0, callback=done, node_id=node)
    pair.client.data_to_send()
    pair.client.receive_data(node, (cap + 1).to_bytes(4, "big") + b"\0" * 16, T0)
    assert isinstance(done.calls[0][1], KafkaProtocolError)
    assert pair.client.connection_state(node) is None
    assert Close(node_id=node) in pair.client.commands()


def test_consumer_raises_receive_message_max_bytes_to_the_fetch_sizes() -> None:
    """As kafka-python 3: a cap under fetch_max_bytes + max_partition_fetch_bytes would refuse every full fetch."""
    c = ConsumerConfig.from_kwargs(receive_message_max_bytes=1000, fetch_max_bytes=4096, max_partition_fetch_bytes=1024)
    assert c.client_config().max_response_size == 4096 + 1024
    big = ConsumerConfig.from_kwargs(receive_message_max_bytes=10**8)
    assert big.client_config().max_response_size == 10**8


# --- bootstrap_timeout_ms --------------------------------------------------------------


def test_bootstrap_timeout_ms_fails_a_bootstrap_nobody_answers() -> None:
    client = Client(ClientConfig(bootstrap_servers="h:1", bootstrap_timeout_ms=5000), now=T0)
    client.handle_timer(T0)
    assert any(isinstance(c, Connect) for c in client.commands())
    timer = client.get_timer()
    assert timer is not None and timer <= T0 + 5.0
    client.handle_timer(T0 + 4.999)
    assert not [e for e in client.events() if isinstance(e, BootstrapFailed)]
    client.handle_timer(T0 + 5.0)
    failed = [e for e in client.events() if isinstance(e, BootstrapFailed)]
    assert len(failed) == 1 and isinstance(failed[0].error, NoBrokersAvailable)


def test_no_bootstrap_timeout_by_default() -> None:
    client = Client(ProducerConfig.from_kwargs(bootstrap_servers="h:1").client_config(), now=T0)
    client.handle_timer(T0 + 10**6)
    assert not [e for e in client.events() if isinstance(e, BootstrapFailed)]


@pytest.mark.parametrize("facade", ["producer", "consumer"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_facades_fail_waiting_calls_at_bootstrap_timeout(transport: str, facade: str) -> None:
    """Nothing listens on the discard port: the first waiting call fails once the timeout passed,
    with NoBrokersAvailable, not after max_block_ms (60 s) or its own timeout."""
    kw: dict[str, Any] = {"bootstrap_servers": "127.0.0.1:9", "bootstrap_timeout_ms": 200}

    async def scenario() -> None:
        if facade == "producer":
            async with open_producer(transport, **kw) as p:
                with pytest.raises(NoBrokersAvailable, match="127.0.0.1:9"):
                    await p.send("t", b"x")
        else:
            async with open_consumer(transport, "t", **kw) as c:
                with pytest.raises(NoBrokersAvailable, match="127.0.0.1:9"):
                    await c.poll(60_000)

    run(transport, scenario)

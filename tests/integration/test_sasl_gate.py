"""SASL over real sockets on each transport: Apache Kafka's SASL listeners, and a gate in front of Tansu.

``kafka``: the session's Kafka node authenticates for real on its
SASL_PLAINTEXT and SASL_SSL listeners (PLAIN, SCRAM-SHA-256/512 with the user
created at format time, OAUTHBEARER with the unsecured JWS validator).
``tansu``: Tansu cannot create SASL users with in-memory storage, so
``tests/_sasl_gate.py`` plays the broker's SASL part (PLAIN, SCRAM through
``scramp``'s server, OAUTHBEARER) and relays everything else to Tansu, which
advertises the gate's port. Both prove the facades' wiring end to end: the
options reach the core, the exchange runs over the transport, records go out
and come back, and a wrong password fails once with
``AuthenticationFailedError`` and no storm.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, read_back, run
from _broker import TansuBroker, free_port
from _kafka import BROKERS, ready_topic
from _sasl_gate import SaslGate

from kproto.errors import AuthenticationFailedError

PASSWORD = "alice-secret-pw"
TOKEN = "tok-3f9a-secret"


@pytest.fixture(scope="module", params=BROKERS)
def gate(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Kafka's SASL_PLAINTEXT listener, or the gate in front of Tansu: ``bootstrap``, ``token``, ``attempts``, ``failures``."""
    if request.param == "kafka":
        yield request.getfixturevalue("kafka").listener("SASL_PLAINTEXT")
        return
    target = free_port()
    g = SaslGate(target, username="alice", password=PASSWORD, token=TOKEN)
    broker = TansuBroker(port=target, advertised_port=g.port)
    broker.start()
    try:
        yield g
    finally:
        broker.stop()
        g.close()


def sasl(gate: Any, mechanism: str, password: str = PASSWORD) -> dict[str, Any]:
    if mechanism == "OAUTHBEARER":
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": mechanism,
            "sasl_oauth_token_provider": lambda: gate.token,
        }
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice",
        "sasl_plain_password": password,
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_produce_through_sasl(transport: str, mechanism: str, gate: SaslGate) -> None:
    topic = ready_topic(gate, f"sasl-{uuid.uuid4().hex[:10]}")
    outcomes: list[Any] = []
    before = gate.attempts

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=gate.bootstrap, max_block_ms=10000, **sasl(gate, mechanism)
        ) as p:
            for i in range(5):
                outcomes.append(await p.outcome(await p.send(topic, b"m%d" % i), 20))

    run(transport, scenario)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert gate.attempts > before  # it really authenticated
    values = {r.value for r in read_back(gate.bootstrap, topic, 5, security_protocol="SASL_PLAINTEXT",
                                          sasl_mechanism="PLAIN", sasl_plain_username="alice",
                                          sasl_plain_password=PASSWORD)}  # fmt: skip
    assert values == {b"m%d" % i for i in range(5)}


@pytest.mark.parametrize("transport", ["asyncio", "trio"])
def test_async_token_provider(transport: str, gate: SaslGate) -> None:
    calls: list[int] = []

    class Provider:
        async def token(self) -> str:
            calls.append(1)
            return str(gate.token)

    outcomes: list[Any] = []
    topic = ready_topic(gate, f"sasl-{uuid.uuid4().hex[:8]}")

    async def scenario() -> None:
        async with open_producer(
            transport,
            bootstrap_servers=gate.bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=Provider(),
        ) as p:
            outcomes.append(await p.outcome(await p.send(topic, b"x"), 20))

    run(transport, scenario)
    assert not isinstance(outcomes[0], BaseException), outcomes
    assert calls  # resolved before connecting


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_password_fails_once(
    transport: str, mechanism: str, gate: SaslGate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + PASSWORD
    failures_before = gate.failures
    result: list[Any] = []

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=gate.bootstrap, max_block_ms=30000, **sasl(gate, mechanism, wrong)
        ) as p:
            try:
                await p.send(f"sasl-{uuid.uuid4().hex[:8]}", b"x")
                result.append(None)
            except Exception as exc:
                result.append(exc)

    run(transport, scenario)
    err = result[0]
    assert isinstance(err, AuthenticationFailedError), repr(err)
    # the broker's reason reaches the user: "invalid credentials" (gate, Kafka's SCRAM),
    # "Invalid username or password" (Kafka's PLAIN)
    assert "invalid" in str(err).lower(), str(err)
    failed = wait_failures(gate, failures_before)
    assert 1 <= failed <= 2  # no storm: the node waits the longest backoff
    for text in (str(err), repr(err), caplog.text):
        assert wrong not in text and PASSWORD not in text


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_through_sasl(transport: str, gate: SaslGate) -> None:
    topic = ready_topic(gate, f"sasl-{uuid.uuid4().hex[:10]}")
    got: list[bytes] = []

    async def scenario() -> None:
        async with open_producer(transport, bootstrap_servers=gate.bootstrap, **sasl(gate, "SCRAM-SHA-512")) as p:
            for i in range(3):
                await p.get(await p.send(topic, b"c%d" % i, partition=0), 20)
        async with open_consumer(
            transport, topic, bootstrap_servers=gate.bootstrap, group_id=None, auto_offset_reset="earliest",
            **sasl(gate, "SCRAM-SHA-256"),
        ) as c:  # fmt: skip
            got.extend(await c.poll_values(3))

    run(transport, scenario)
    assert got == [b"c0", b"c1", b"c2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_wrong_password_raises_from_poll(transport: str, gate: SaslGate) -> None:
    failures_before = gate.failures
    result: list[Any] = []

    async def scenario() -> None:
        async with open_consumer(
            transport, "any-topic", bootstrap_servers=gate.bootstrap, group_id=None, **sasl(gate, "PLAIN", "nope")
        ) as c:
            try:
                result.append(await c.poll(5000))
            except Exception as exc:
                result.append(exc)

    run(transport, scenario)
    assert isinstance(result[0], AuthenticationFailedError), result
    assert wait_failures(gate, failures_before) == 1


def wait_failures(gate: Any, before: int) -> int:
    """Failed authentications since ``before``, once there is one (Kafka logs its count
    right after answering, so the client can see the refusal a moment before the log does)."""
    deadline = time.monotonic() + 10
    while gate.failures == before and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(gate.failures - before)


@pytest.fixture(scope="module", params=BROKERS)
def sasl_ssl_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """stunnel (TLS) -> SASL gate -> Tansu, advertising the TLS port; or Kafka's SASL_SSL listener."""
    from pathlib import Path

    if request.param == "kafka":
        yield request.getfixturevalue("kafka").listener("SASL_SSL")
        return

    from _tls import TlsBroker, make_tls_files

    files = make_tls_files(Path(tmp_path_factory.mktemp("pki-sasl")))
    with TlsBroker(
        files, gate=lambda port: SaslGate(port, username="alice", password=PASSWORD, token=TOKEN)
    ) as b:
        yield b


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sasl_ssl_scram(transport: str, sasl_ssl_broker: Any) -> None:
    topic = ready_topic(sasl_ssl_broker, f"sasl-ssl-{uuid.uuid4().hex[:8]}")
    outcomes: list[Any] = []
    before = sasl_ssl_broker.gate.attempts
    tls = {"security_protocol": "SASL_SSL", "ssl_cafile": str(sasl_ssl_broker.files.ca)}

    async def scenario() -> None:
        async with open_producer(
            transport, bootstrap_servers=sasl_ssl_broker.bootstrap, **{**sasl(sasl_ssl_broker.gate, "SCRAM-SHA-512"), **tls}
        ) as p:
            for i in range(3):
                outcomes.append(await p.outcome(await p.send(topic, b"s%d" % i), 20))

    run(transport, scenario)
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    assert sasl_ssl_broker.gate.attempts > before

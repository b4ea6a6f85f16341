"""TLS on each consumer transport: stunnel (trustme PKI) in front of a Tansu that advertises the TLS
port, and Apache Kafka's own SSL listeners (``tls_side`` in tests/integration/conftest.py).

Records are written by kafka-python over TLS (an independent client), then
read by the kproto consumer of each transport. stunnel speaks TLS only, so a
consumer that fell back to plaintext could not read anything.

Wrong CA, wrong host name, missing client certificate: ``poll`` (and a
waiting call, ``topics``) raise ``TLSAuthenticationError`` at once, well
inside their 30 s timeouts, every time they are called while the failure
lasts (not an empty poll that hides it), and stunnel saw only a few
connection attempts (no retry storm).
"""

from __future__ import annotations

import inspect
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, run
from _tls import TlsBroker, TlsFiles

from kproto.errors import AuthenticationFailedError, KafkaConfigurationError
from transports._tls import TLSAuthenticationError, make_ssl_context

N = 12
#: A poll or waiting call that hangs or retries would take this long; a clear failure takes far less.
LONG_MS = 30000


def write_records(broker: TlsBroker, files: TlsFiles, *, client_cert: bool = False) -> str:
    """``N`` records to a fresh topic, written by kafka-python over TLS; returns the topic."""
    from kafka import KafkaProducer

    topic = f"tlsc-{uuid.uuid4().hex[:10]}"
    extra: dict[str, Any] = {}
    if client_cert:
        extra = {"ssl_certfile": str(files.client_cert), "ssl_keyfile": str(files.client_key)}
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(files.ca),
        ssl_check_hostname=True,
        **extra,
    )
    try:
        for i in range(N):
            producer.send(topic, value=f"v{i}".encode(), key=b"k%d" % i).get(timeout=30)
    finally:
        producer.close()
    return topic


async def call(consumer: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(consumer.c, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def consume(transport: str, topic: str, **configs: Any) -> list[bytes]:
    values: list[bytes] = []

    async def scenario() -> None:
        async with open_consumer(transport, topic, auto_offset_reset="earliest", **configs) as c:
            values.extend(await c.poll_values(N, timeout=30))

    run(transport, scenario)
    return values


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_reads_over_tls_with_the_right_ca(
    transport: str, tls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    topic = write_records(tls_broker, tls_files)
    values = consume(
        transport,
        topic,
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(N))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_with_client_certificate(
    transport: str, mtls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    topic = write_records(mtls_broker, tls_files, client_cert=True)
    # the file options
    values = consume(
        transport,
        topic,
        bootstrap_servers=mtls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
        ssl_certfile=str(tls_files.client_cert),
        ssl_keyfile=str(tls_files.client_key),
    )
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(N))
    # a ready ssl_context
    ctx = make_ssl_context(
        cafile=str(tls_files.ca), certfile=str(tls_files.client_cert), keyfile=str(tls_files.client_key)
    )
    values = consume(
        transport, topic, bootstrap_servers=mtls_broker.bootstrap, security_protocol="SSL", ssl_context=ctx
    )
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(N))


def failures(transport: str, **configs: Any) -> list[Any]:
    """poll, topics(), poll again: each outcome (exception or result) and how long it took."""
    out: list[Any] = []

    async def scenario() -> None:
        topic = f"tlsc-{uuid.uuid4().hex[:10]}"
        async with open_consumer(
            transport, topic, auto_offset_reset="earliest", request_timeout_ms=LONG_MS + 1000, **configs
        ) as c:
            for name, kwargs in (
                ("poll", {"timeout_ms": LONG_MS}),
                ("topics", {"timeout_ms": LONG_MS}),
                ("poll", {"timeout_ms": LONG_MS}),
            ):
                start = time.monotonic()
                try:
                    result: Any = await call(c, name, **kwargs)
                except Exception as exc:
                    result = exc
                out.append((name, result, time.monotonic() - start))

    run(transport, scenario)
    return out


def expect_auth_failures(
    outcomes: list[Any], broker: TlsBroker, before: int, needle: str, max_attempts: int | None = 3
) -> None:
    assert len(outcomes) == 3, outcomes
    for name, err, took in outcomes:
        assert isinstance(err, TLSAuthenticationError), (name, repr(err))
        assert isinstance(err, AuthenticationFailedError) and not err.retriable
        assert needle in str(err), str(err)
        assert took < 10.0, (name, took)  # not the 30 s timeout
    # a handful of attempts at most: the node waits the longest backoff after each failure
    if max_attempts is not None:
        assert broker.accepted() - before <= max_attempts


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_ca_fails_fast(transport: str, tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    before = tls_broker.accepted()
    outcomes = failures(
        transport,
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.other_ca),
    )
    expect_auth_failures(outcomes, tls_broker, before, "does not verify")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_host_name_fails_fast(transport: str, tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    before = tls_broker.accepted()
    outcomes = failures(
        transport,
        bootstrap_servers=f"localhost:{tls_broker.port}",  # the certificate is for 127.0.0.1 only
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    expect_auth_failures(outcomes, tls_broker, before, "localhost")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_client_certificate_fails_fast(
    transport: str, cert_refusal: Any, tls_files: TlsFiles
) -> None:
    broker = cert_refusal.broker
    before = broker.accepted()
    outcomes = failures(
        transport,
        bootstrap_servers=broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    expect_auth_failures(
        outcomes, broker, before, cert_refusal.needle, max_attempts=cert_refusal.max_attempts
    )


def test_consumer_check_hostname_can_be_turned_off(tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    topic = write_records(tls_broker, tls_files)
    values = consume(
        "sync",
        topic,
        bootstrap_servers=f"localhost:{tls_broker.port}",
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
        ssl_check_hostname=False,
    )
    assert len(values) == N


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_security_option_checks(transport: str, tls_files: TlsFiles) -> None:
    async def scenario() -> None:
        with pytest.raises(KafkaConfigurationError, match="ssl_cafile"):
            async with open_consumer(
                transport, security_protocol="SSL", ssl_cafile=str(tls_files.dir / "missing.pem")
            ):
                pass
        with pytest.raises(TypeError, match="ssl_context"):
            async with open_consumer(transport, security_protocol="SSL", ssl_context="not a context"):
                pass
        with pytest.raises(KafkaConfigurationError) as info:
            async with open_consumer(
                transport,
                security_protocol="SASL_SSL",
                sasl_mechanism="PLAIN",
                sasl_plain_password="s3cr3t-pw",
            ):
                pass
        assert "s3cr3t-pw" not in str(info.value)

    run(transport, scenario)


PASSWORD = "alice-secret-pw"
TOKEN = "tok-3f9a-secret"


@pytest.fixture(scope="module")
def sasl_ssl_broker(tls_side: str, tls_files: TlsFiles, request: pytest.FixtureRequest) -> Iterator[Any]:
    """stunnel (TLS) -> SASL gate -> Tansu, advertising the TLS port; or Kafka's ``SASL_SSL`` listener."""
    from _sasl_gate import SaslGate

    if tls_side == "kafka":
        yield request.getfixturevalue("kafka").listener("SASL_SSL")
        return
    with TlsBroker(
        tls_files, gate=lambda port: SaslGate(port, username="alice", password=PASSWORD, token=TOKEN)
    ) as b:
        yield b


def write_sasl_ssl(broker: TlsBroker, files: TlsFiles) -> str:
    """``N`` records to a fresh topic through TLS and SASL/PLAIN (kafka-python); returns the topic."""
    from kafka import KafkaProducer

    topic = f"tlsc-sasl-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=str(files.ca),
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORD,
    )
    try:
        for i in range(N):
            producer.send(topic, value=f"v{i}".encode()).get(timeout=30)
    finally:
        producer.close()
    return topic


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_consumer_sasl_ssl_scram(transport: str, sasl_ssl_broker: TlsBroker, tls_files: TlsFiles) -> None:
    topic = write_sasl_ssl(sasl_ssl_broker, tls_files)
    before = sasl_ssl_broker.gate.attempts
    values = consume(
        transport,
        topic,
        bootstrap_servers=sasl_ssl_broker.bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=str(tls_files.ca),
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=PASSWORD,
    )
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(N))
    assert sasl_ssl_broker.gate.attempts > before  # it really authenticated, over TLS


@pytest.mark.parametrize("transport", ["asyncio", "trio"])
def test_async_consumer_sasl_ssl_async_token_provider(
    transport: str, sasl_ssl_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    topic = write_sasl_ssl(sasl_ssl_broker, tls_files)
    calls: list[int] = []

    class Provider:
        async def token(self) -> str:
            calls.append(1)
            return str(sasl_ssl_broker.gate.token)

    values = consume(
        transport,
        topic,
        bootstrap_servers=sasl_ssl_broker.bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=str(tls_files.ca),
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=Provider(),
    )
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(N))
    assert calls  # awaited before connecting

"""TLS on each transport: stunnel (trustme PKI) in front of a Tansu that advertises the TLS port.

Right CA: records go out and come back (read with kafka-python over TLS).
Wrong CA, wrong host name, missing client certificate: ``send`` fails at
once with ``TLSAuthenticationError`` (an ``AuthenticationFailedError``), not
``KafkaTimeoutError`` after ``max_block_ms`` (set to a long 30 s here, so a
hang or retry loop would show as the wrong error), and stunnel saw only a
few connection attempts (no retry storm).
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_producer, read_back, run
from _kafka import ready_topic
from _tls import TlsBroker, TlsFiles

from kproto.errors import AuthenticationFailedError, KafkaConfigurationError
from transports._tls import TLSAuthenticationError, make_ssl_context


def produce(transport: str, count: int, broker: Any = None, **configs: Any) -> list[Any]:
    """Send ``count`` records to a fresh topic (ready on ``broker`` if it is Kafka); return (topic, outcomes)."""
    topic = ready_topic(broker, f"tls-{uuid.uuid4().hex[:10]}")
    results: list[Any] = [topic]

    async def scenario() -> None:
        async with open_producer(transport, request_timeout_ms=5000, max_block_ms=30000, **configs) as p:
            try:
                handles = [await p.send(topic, f"v{i}".encode(), key=b"k%d" % i) for i in range(count)]
            except Exception as exc:  # send itself (metadata wait) fails
                results.append(exc)
                return
            for h in handles:
                results.append(await p.outcome(h, 30))

    run(transport, scenario)
    return results


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_right_ca_produces_and_reads_back(transport: str, tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    topic, *outcomes = produce(
        transport,
        20,
        tls_broker,
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes
    records = read_back(
        tls_broker.bootstrap,
        topic,
        20,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
        ssl_check_hostname=True,
    )
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(20))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ssl_context_option_and_client_certificate(
    transport: str, mtls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    ctx = make_ssl_context(
        cafile=str(tls_files.ca), certfile=str(tls_files.client_cert), keyfile=str(tls_files.client_key)
    )
    topic, *outcomes = produce(
        transport, 5, mtls_broker, bootstrap_servers=mtls_broker.bootstrap, security_protocol="SSL", ssl_context=ctx
    )
    assert [o.offset for o in outcomes if not isinstance(o, BaseException)] and all(
        not isinstance(o, BaseException) for o in outcomes
    ), outcomes
    # and with the file options instead of a context
    _, *outcomes = produce(
        transport,
        3,
        mtls_broker,
        bootstrap_servers=mtls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
        ssl_certfile=str(tls_files.client_cert),
        ssl_keyfile=str(tls_files.client_key),
    )
    assert all(not isinstance(o, BaseException) for o in outcomes), outcomes


def expect_auth_failure(
    outcomes: list[Any], broker: TlsBroker, before: int, needle: str, max_attempts: int | None = 3
) -> None:
    assert len(outcomes) == 1, outcomes
    err = outcomes[0]
    assert isinstance(err, TLSAuthenticationError), repr(err)
    assert isinstance(err, AuthenticationFailedError) and not err.retriable
    assert needle in str(err), str(err)
    # a handful of attempts at most: bootstrap fails once and the node waits the longest backoff
    if max_attempts is not None:
        assert broker.accepted() - before <= max_attempts


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_ca_fails_fast_with_a_clear_error(
    transport: str, tls_broker: TlsBroker, tls_files: TlsFiles
) -> None:
    before = tls_broker.accepted()
    _, *outcomes = produce(
        transport,
        1,
        bootstrap_servers=tls_broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.other_ca),
    )
    expect_auth_failure(outcomes, tls_broker, before, "does not verify")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_host_name_fails_fast(transport: str, tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    before = tls_broker.accepted()
    _, *outcomes = produce(
        transport,
        1,
        bootstrap_servers=f"localhost:{tls_broker.port}",  # the certificate is for 127.0.0.1 only
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    expect_auth_failure(outcomes, tls_broker, before, "localhost")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_missing_client_certificate_fails_fast(
    transport: str, cert_refusal: Any, tls_files: TlsFiles
) -> None:
    broker = cert_refusal.broker
    before = broker.accepted()
    _, *outcomes = produce(
        transport,
        1,
        bootstrap_servers=broker.bootstrap,
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
    )
    expect_auth_failure(outcomes, broker, before, cert_refusal.needle, max_attempts=cert_refusal.max_attempts)


def test_check_hostname_can_be_turned_off(tls_broker: TlsBroker, tls_files: TlsFiles) -> None:
    _, *outcomes = produce(
        "sync",
        1,
        tls_broker,
        bootstrap_servers=f"localhost:{tls_broker.port}",
        security_protocol="SSL",
        ssl_cafile=str(tls_files.ca),
        ssl_check_hostname=False,
    )
    assert not isinstance(outcomes[0], BaseException), outcomes


def test_context_defaults_and_option_checks(tls_files: TlsFiles) -> None:
    ctx = make_ssl_context()
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    import transports.sync as ts

    with pytest.raises(KafkaConfigurationError, match="security_protocol"):
        ts.KafkaProducer(security_protocol="TLS")
    with pytest.raises(KafkaConfigurationError, match="ssl_cafile"):
        ts.KafkaProducer(security_protocol="SSL", ssl_cafile=str(tls_files.dir / "missing.pem"))
    with pytest.raises(TypeError, match="ssl_context"):
        ts.KafkaProducer(security_protocol="SSL", ssl_context="not a context")
    with pytest.raises(KafkaConfigurationError) as info:
        ts.KafkaProducer(
            security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_plain_password="s3cr3t-pw"
        )
    assert "s3cr3t-pw" not in str(info.value)
    with pytest.raises(KafkaConfigurationError, match="async"):

        async def provider() -> str:
            return "tok"

        ts.KafkaProducer(
            security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=provider
        )

"""Fixtures the TLS integration tests share, on each broker (``tansu`` and ``kafka`` in the test ids).

Tansu: a throw-away PKI and stunnel-fronted brokers. Apache Kafka: the session
node's own SSL listeners (``SSL``, and ``MTLS``/``MTLS12`` that require a
client certificate) and its PKI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from _kafka import BROKERS, KafkaListener
from _tls import TlsBroker, TlsFiles, make_tls_files


@pytest.fixture(scope="module", params=BROKERS)
def tls_side(request: pytest.FixtureRequest) -> str:
    """Which broker the module's TLS fixtures front: ``tansu`` (stunnel) or ``kafka`` (its SSL listeners)."""
    return str(request.param)


def _tls_broker(
    request: pytest.FixtureRequest, side: str, files: TlsFiles, listener: str, **stunnel: Any
) -> Iterator[TlsBroker | KafkaListener]:
    if side == "kafka":
        yield request.getfixturevalue("kafka").listener(listener)
        return
    with TlsBroker(files, **stunnel) as b:
        yield b


@pytest.fixture(scope="module")
def tls_files(tls_side: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """CA, server and client certificates (trustme), and a second, unrelated CA."""
    if tls_side == "kafka":
        files: TlsFiles = request.getfixturevalue("kafka").tls
        return files
    return make_tls_files(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def tls_broker(
    tls_side: str, tls_files: TlsFiles, request: pytest.FixtureRequest
) -> Iterator[TlsBroker | KafkaListener]:
    """Server authentication only: Tansu behind stunnel, or Kafka's ``SSL`` listener."""
    yield from _tls_broker(request, tls_side, tls_files, "SSL")


@pytest.fixture(scope="module")
def mtls_broker(
    tls_side: str, tls_files: TlsFiles, request: pytest.FixtureRequest
) -> Iterator[TlsBroker | KafkaListener]:
    """Requires a client certificate signed by the CA: stunnel, or Kafka's ``MTLS`` listener."""
    yield from _tls_broker(request, tls_side, tls_files, "MTLS", require_client_cert=True)


@pytest.fixture(scope="module")
def mtls12_broker(
    tls_side: str, tls_files: TlsFiles, request: pytest.FixtureRequest
) -> Iterator[TlsBroker | KafkaListener]:
    """As ``mtls_broker``, capped at TLS 1.2: the server refuses a missing client
    certificate inside the handshake, so the client always reads the alert.

    (With TLS 1.3 the client's handshake completes first and the server's
    refusal follows; if the client writes its first request meanwhile, the
    connection can end in a reset that hides the alert, and the client
    retries with backoff until it reads the alert, as the Java client does.)
    """
    yield from _tls_broker(
        request, tls_side, tls_files, "MTLS12", require_client_cert=True, max_version="TLSv1.2"
    )


class CertRefusal(NamedTuple):
    """A broker that refuses clients without a certificate, and what a test may expect of it."""

    broker: TlsBroker | KafkaListener
    #: Text the client's error must contain.
    needle: str
    #: Most connections the client may open before failing; None: no bound.
    max_attempts: int | None


@pytest.fixture(params=["TLSv1.2", "TLSv1.3"])
def cert_refusal(request: pytest.FixtureRequest, tls_side: str) -> CertRefusal:
    """Both TLS versions' refusal of a missing client certificate.

    TLS 1.2 refuses inside the handshake with handshake_failure (RFC 5246
    7.4.6): a handful of attempts at most. TLS 1.3 sends certificate_required
    (RFC 8446 4.4.2.4) after the client's handshake completed, so the refusal
    can arrive as a reset first (see ``mtls12_broker``): the error must still be
    the clear one, without a bound on the attempts.

    Kafka (the JDK's TLS) sends bad_certificate in both versions, where
    stunnel (OpenSSL) sends handshake_failure in TLS 1.2.
    """
    if request.param == "TLSv1.2":
        needle = "BAD_CERTIFICATE" if tls_side == "kafka" else "HANDSHAKE_FAILURE"
        return CertRefusal(request.getfixturevalue("mtls12_broker"), needle, 3)
    return CertRefusal(request.getfixturevalue("mtls_broker"), "CERTIFICATE", None)

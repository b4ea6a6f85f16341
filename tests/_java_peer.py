"""The Java client as a test peer: ``tests/interop/java/KafkaPeer.java`` in one long-lived JVM.

The source is compiled with ``javac`` against the Kafka fixture's jar folder
(so the peer's ``kafka-clients`` is the broker's pinned release) into a
git-ignored cache keyed by the source and the jar names, then started once;
each :meth:`JavaPeer.call` sends one JSON command and waits for its reply
(the command set is described at the top of the Java file). One JVM serves a
whole session: JVM start-up costs seconds on the 2-core machines.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, NamedTuple

SOURCE = Path(__file__).resolve().parent / "interop" / "java" / "KafkaPeer.java"
CACHE = Path(__file__).resolve().parent.parent / ".cache" / "java-peer"


class JRecord(NamedTuple):
    """A record as the Java consumer saw it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp: int
    timestamp_type: str


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def record(
    value: bytes | None,
    key: bytes | None = None,
    headers: tuple[tuple[str, bytes | None], ...] | list[tuple[str, bytes | None]] = (),
    partition: int | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """One record of a ``produce`` command."""
    return {
        "key": b64(key), "value": b64(value), "partition": partition, "timestamp": timestamp,
        "headers": [[k, b64(v)] for k, v in headers],
    }  # fmt: skip


def jrecords(reply: dict[str, Any]) -> list[JRecord]:
    """The records of a ``consume`` reply."""
    return [
        JRecord(r["topic"], r["partition"], r["offset"], unb64(r["key"]), unb64(r["value"]),
                tuple((k, unb64(v)) for k, v in r["headers"]), r["timestamp"], r["timestamp_type"])
        for r in reply["records"]
    ]  # fmt: skip


def compile_peer(lib: Path) -> Path:
    """The folder of compiled classes for the jars in ``lib`` (compiled on first use)."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    for jar in sorted(p.name for p in lib.glob("*.jar")):
        digest.update(jar.encode())
    out = CACHE / digest.hexdigest()[:16]
    if not (out / "KafkaPeer.class").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE))
        done = subprocess.run(["javac", "-nowarn", "-d", str(tmp), "-cp", f"{lib}/*", str(SOURCE)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise JavaPeerError(f"javac failed:\n{done.stdout}{done.stderr}")
        try:
            tmp.rename(out)  # whole or not at all
        except OSError:  # another session compiled it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return out


class JavaPeerError(RuntimeError):
    """A command the Java peer answered with an error."""


class JavaPeer:
    """A running KafkaPeer JVM; :meth:`call` is safe from several threads (one command at a time)."""

    def __init__(self, lib: Path, log: Path) -> None:
        classes = compile_peer(lib)
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            ["java", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-cp", f"{classes}:{lib}/*", "KafkaPeer"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self._next(60)  # {"ready": true}

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(b"{"):  # a reply; anything else on stdout is not ours
                self._lines.put(line)
        self._lines.put(b"")

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise JavaPeerError(f"no reply within {timeout} s; {self.log_tail()}") from None
        if not line:
            raise JavaPeerError(f"the Java peer exited ({self._proc.poll()}); {self.log_tail()}")
        return json.loads(line)  # type: ignore[no-any-return]

    def log_tail(self, lines: int = 40) -> str:
        """The end of the JVM's stderr (the client's logging, uncaught exceptions)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"log {self.log_path}:\n" + "\n".join(text)

    def call(self, op: str, timeout: float = 120, **args: Any) -> dict[str, Any]:
        """Run one command; its reply, or :class:`JavaPeerError` with the Java exception."""
        with self._lock:
            ident = next(self._ids)
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps({"id": ident, "op": op, **args}).encode() + b"\n")
            self._proc.stdin.flush()
            reply = self._next(timeout)
        assert reply["id"] == ident, reply
        if not reply["ok"]:
            raise JavaPeerError(f"{op}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Stop the JVM (members are closed first), killing it if it lingers."""
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(b'{"op": "quit"}\n')
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            self._log.close()

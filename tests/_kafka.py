"""Apache Kafka, the reference broker: fetch it with Maven, format KRaft storage, run it on loopback.

The release is pinned once, as ``kafka.version`` in ``tests/kafka/pom.xml``.
:func:`fetch` resolves that pom's dependencies (broker, tools, Java client and
a log4j2 binding) with ``mvn -q -B dependency:copy-dependencies`` into
``.cache/kafka/<version>/lib`` (git-ignored; ``KPROTO_KAFKA_CACHE`` moves it),
only when the folder is not complete yet.

:class:`KafkaCluster` runs ``brokers`` combined broker+controller nodes
(``process.roles=broker,controller``; 3 nodes form a 3-voter quorum) with the
main classes that ``bin/kafka-storage.sh`` and ``bin/kafka-server-start.sh``
run: ``kafka.tools.StorageTool format`` then ``kafka.Kafka``. Every node has
four client listeners on 127.0.0.1 (free ports):

* ``PLAINTEXT``;
* ``SSL``: a trustme CA (``tests/_tls.make_tls_files``), server certificate for 127.0.0.1;
* ``SASL_PLAINTEXT`` and ``SASL_SSL``: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
  (the SCRAM user is created at format time with ``--add-scram``) and
  OAUTHBEARER with Kafka's unsecured JWS validator (tokens from :func:`unsecured_jws`).

Topics are auto-created with 4 partitions (as Tansu does); on 3 nodes the
replication factor is 3 and ``min.insync.replicas=2``. ``start`` returns once
every node answers Metadata listing all nodes; ``stop`` kills only the
processes this object started. :meth:`KafkaCluster.log_tail` gives the broker
logs for a failed test's report.

Run one by hand with ``python tools/kafka_cluster.py``.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from _broker import free_port
from _tls import TlsFiles, make_tls_files

__all__ = [
    "LISTENERS",
    "MECHANISMS",
    "PASSWORD",
    "POM",
    "USERNAME",
    "KafkaCluster",
    "KafkaNode",
    "fetch",
    "kafka_version",
    "unsecured_jws",
]

ROOT = Path(__file__).resolve().parent.parent
#: The pom that pins the Kafka release (property ``kafka.version``).
POM = ROOT / "tests" / "kafka" / "pom.xml"
#: Client listeners every node has, in this order.
LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: SASL mechanisms enabled on the SASL listeners.
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
#: The PLAIN and SCRAM user.
USERNAME = "alice"
PASSWORD = "alice-secret-pw"

_MAIN_JAR = "kafka_2.13-{version}.jar"
_COMPLETE = ".complete"
# Processes of every started cluster, killed at interpreter exit if a test run is interrupted.
_RUNNING: set[KafkaCluster] = set()


def kafka_version() -> str:
    """The pinned release: ``kafka.version`` of ``tests/kafka/pom.xml``."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise RuntimeError(f"{POM} has no <kafka.version> property")
    return (node.text or "").strip()


def cache_dir(version: str | None = None) -> Path:
    """``.cache/kafka/<version>`` (or ``$KPROTO_KAFKA_CACHE/<version>``)."""
    base = Path(os.environ.get("KPROTO_KAFKA_CACHE") or ROOT / ".cache" / "kafka")
    return base / (version or kafka_version())


def fetch(version: str | None = None) -> Path:
    """The folder of the release's jars, resolved with Maven first if missing.

    Resolution goes to a temporary folder that is renamed into place when
    Maven succeeded, so an interrupted fetch is never mistaken for a complete one.
    RuntimeError carries Maven's output when it fails.
    """
    version = version or kafka_version()
    lib = cache_dir(version) / "lib"
    if (lib / _COMPLETE).exists() and (lib / _MAIN_JAR.format(version=version)).exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is not installed; it fetches Apache Kafka (CI: .ci/run)")
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}", "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not (tmp / _MAIN_JAR.format(version=version)).exists():
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"fetching Apache Kafka {version} with Maven failed ({' '.join(cmd)}):\n"
                           f"{done.stdout[-3000:]}{done.stderr[-3000:]}")  # fmt: skip
    (tmp / _COMPLETE).write_text(version + "\n")
    if lib.exists():
        shutil.rmtree(lib)
    tmp.rename(lib)
    # mvn leaves target/ next to the pom
    shutil.rmtree(POM.parent / "target", ignore_errors=True)
    return lib


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java is not installed; Apache Kafka needs Java 17+ (CI: .ci/run)")
    return java


def unsecured_jws(subject: str = USERNAME, lifetime_s: int = 3600, **claims: Any) -> str:
    """An unsigned JWS (``alg: none``) that Kafka's unsecured OAUTHBEARER validator accepts."""

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    body = {"sub": subject, "iat": now, "exp": now + lifetime_s, **claims}
    return f"{b64({'alg': 'none'})}.{b64(body)}."


# -- readiness: Metadata v4 by hand (independent of the kproto under test) --


def _metadata_brokers(port: int, timeout: float = 2.0) -> int:
    """How many brokers a Metadata v4 request (no topics) on ``port`` lists; OSError if none answers."""
    body = struct.pack(">hhih", 3, 4, 1, 7) + b"kproto-" + struct.pack(">i?", 0, False)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        head = _recv(sock, 4)
        data = _recv(sock, struct.unpack(">i", head)[0])
    # correlation id, throttle_time_ms, then the brokers array
    (count,) = struct.unpack_from(">i", data, 8)
    return int(count)


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


class KafkaNode:
    """One combined broker+controller process and its ports, folder and log."""

    def __init__(self, node_id: int, root: Path) -> None:
        self.node_id = node_id
        self.ports: dict[str, int] = {name: free_port() for name in LISTENERS}
        self.controller_port = free_port()
        self.dir = root / f"node-{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.config = self.dir / "server.properties"
        self.log_path = self.dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def bootstrap(self, listener: str = "PLAINTEXT") -> str:
        return f"127.0.0.1:{self.ports[listener]}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class KafkaCluster:
    """``brokers`` Apache Kafka nodes on loopback with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL.

    Attributes a test uses: :attr:`bootstrap` (PLAINTEXT ``host:port,...``),
    :meth:`bootstrap_for` / :attr:`bootstraps` (per listener), :attr:`username`
    and :attr:`password` (PLAIN and SCRAM), :meth:`oauth_token`, :attr:`ca_file`
    and :attr:`tls` (the trustme PKI), :meth:`client_config` (kproto/kafka-python
    keyword arguments for a listener and mechanism), :attr:`lib` (the jars, for
    ``java -cp lib/*``), :attr:`version`, :meth:`stop_node` / :meth:`start_node`.
    """

    def __init__(
        self, brokers: int = 1, *, workdir: Path | None = None, heap: str = "512m", lib: Path | None = None
    ) -> None:
        if brokers not in (1, 3):
            raise ValueError(f"brokers must be 1 or 3, got {brokers!r}")
        self.version = kafka_version()
        self.lib = lib
        self.heap = heap
        self._own_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix=f"kafka-{brokers}-"))
        (self.dir / "pki").mkdir(parents=True, exist_ok=True)
        self.tls: TlsFiles = make_tls_files(self.dir / "pki")
        self._keystore = self.dir / "pki" / "server-keystore.pem"
        self.nodes = [KafkaNode(i + 1, self.dir) for i in range(brokers)]
        self.cluster_id = ""
        self.username = USERNAME
        self.password = PASSWORD
        self.mechanisms = MECHANISMS

    # -- addresses and client options --

    @property
    def bootstrap(self) -> str:
        """PLAINTEXT ``127.0.0.1:port,...`` of every node."""
        return self.bootstrap_for("PLAINTEXT")

    def bootstrap_for(self, listener: str) -> str:
        """``host:port,...`` of every node on ``listener`` (one of :data:`LISTENERS`)."""
        return ",".join(n.bootstrap(listener) for n in self.nodes)

    @property
    def bootstraps(self) -> dict[str, str]:
        """Listener name -> bootstrap string."""
        return {name: self.bootstrap_for(name) for name in LISTENERS}

    @property
    def ssl_bootstrap(self) -> str:
        return self.bootstrap_for("SSL")

    @property
    def sasl_plaintext_bootstrap(self) -> str:
        return self.bootstrap_for("SASL_PLAINTEXT")

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return self.bootstrap_for("SASL_SSL")

    @property
    def ca_file(self) -> Path:
        """The trustme CA that signed the brokers' certificate (for ``ssl_cafile``)."""
        return self.tls.ca

    def oauth_token(self, subject: str = USERNAME) -> str:
        """A fresh unsecured JWS the brokers' OAUTHBEARER validator accepts."""
        return unsecured_jws(subject)

    def client_config(self, listener: str = "PLAINTEXT", mechanism: str | None = None) -> dict[str, Any]:
        """``bootstrap_servers``, ``security_protocol`` and the TLS/SASL options for ``listener``.

        ``mechanism`` is required for the SASL listeners; OAUTHBEARER gets a
        ``sasl_oauth_token_provider`` that mints unsecured tokens.
        """
        if listener not in LISTENERS:
            raise ValueError(f"listener must be one of {LISTENERS}, got {listener!r}")
        cfg: dict[str, Any] = {"bootstrap_servers": self.bootstrap_for(listener), "security_protocol": listener}
        if listener.endswith("SSL"):
            cfg["ssl_cafile"] = str(self.ca_file)
        if listener.startswith("SASL"):
            if mechanism not in MECHANISMS:
                raise ValueError(f"{listener} needs a mechanism from {MECHANISMS}, got {mechanism!r}")
            cfg["sasl_mechanism"] = mechanism
            if mechanism == "OAUTHBEARER":
                cfg["sasl_oauth_token_provider"] = self.oauth_token
            else:
                cfg["sasl_plain_username"] = self.username
                cfg["sasl_plain_password"] = self.password
        elif mechanism is not None:
            raise ValueError(f"{listener} takes no SASL mechanism")
        return cfg

    # -- configuration --

    def _write_keystore(self) -> None:
        """Kafka's PEM key store wants the key as unencrypted PKCS#8 followed by the chain."""
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(self.tls.server_key.read_bytes(), password=None)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._keystore.write_bytes(pkcs8 + self.tls.server_cert.read_bytes())

    def _properties(self, node: KafkaNode) -> str:
        n = len(self.nodes)
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        listeners = ",".join(f"{name}://127.0.0.1:{node.ports[name]}" for name in LISTENERS)
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": listeners,
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT"] + [f"{name}:{name}" for name in LISTENERS]
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.data,
            # Topics as Tansu makes them: auto-created on first use with 4 partitions.
            "auto.create.topics.enable": "true",
            "num.partitions": 4,
            "default.replication.factor": n,
            "min.insync.replicas": 2 if n > 1 else 1,
            "offsets.topic.replication.factor": n,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": n,
            "transaction.state.log.min.isr": 2 if n > 1 else 1,
            "transaction.state.log.num.partitions": 6,
            "share.coordinator.state.topic.replication.factor": n,
            "share.coordinator.state.topic.min.isr": 2 if n > 1 else 1,
            # Fast, small test settings.
            "group.initial.rebalance.delay.ms": 0,
            "group.min.session.timeout.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "background.threads": 4,
            "num.replica.fetchers": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
            "log.segment.bytes": 64 * 1024 * 1024,
            # TLS (SSL and SASL_SSL): PEM files, no client certificate.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": self._keystore,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": self.tls.ca,
            "ssl.client.auth": "none",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        }
        plain = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{USERNAME}" password="{PASSWORD}" user_{USERNAME}="{PASSWORD}";'
        )
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        oauth = 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";'
        validator = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"
        for listener in ("sasl_plaintext", "sasl_ssl"):
            prefix = f"listener.name.{listener}"
            props[f"{prefix}.plain.sasl.jaas.config"] = plain
            props[f"{prefix}.scram-sha-256.sasl.jaas.config"] = scram
            props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = scram
            props[f"{prefix}.oauthbearer.sasl.jaas.config"] = oauth
            props[f"{prefix}.oauthbearer.sasl.server.callback.handler.class"] = validator
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _log4j(self, node: KafkaNode) -> Path:
        conf = node.dir / "log4j2.properties"
        conf.write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {node.log_path}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            # the per-request noise of a busy test run
            "logger.state.name = state.change.logger\nlogger.state.level = WARN\n"
            "logger.cleaner.name = kafka.log.LogCleaner\nlogger.cleaner.level = WARN\n"
        )
        return conf

    def _java(self, node: KafkaNode, main: str, *args: str) -> list[str]:
        assert self.lib is not None
        opts = os.environ.get("KPROTO_KAFKA_JVM_OPTS", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1").split()
        return [
            java_binary(),
            f"-Xmx{self.heap}",
            "-Xms64m",
            *opts,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self._log4j(node)}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]

    # -- life cycle --

    def start(self, timeout: float = 180.0) -> None:
        """Fetch if needed, format every node's storage, start them, wait until all are registered."""
        if self.lib is None:
            self.lib = fetch(self.version)
        self._write_keystore()
        self.cluster_id = self._random_uuid()
        formats = []
        for node in self.nodes:
            node.config.write_text(self._properties(node))
            cmd = self._java(node, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                             "-t", self.cluster_id, "-c", str(node.config),
                             "--add-scram", f"SCRAM-SHA-256=[name={USERNAME},password={PASSWORD}]",
                             "--add-scram", f"SCRAM-SHA-512=[name={USERNAME},password={PASSWORD}]")  # fmt: skip
            out = (node.dir / "format.out").open("wb")
            formats.append((node, out, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)))
        for node, out, proc in formats:
            rc = proc.wait(timeout)
            out.close()
            if rc != 0:
                raise RuntimeError(f"formatting node {node.node_id} failed ({rc}):\n"
                                   f"{(node.dir / 'format.out').read_text()[-3000:]}")  # fmt: skip
        _RUNNING.add(self)
        try:
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready(timeout)
        except BaseException:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"Apache Kafka did not start:\n{tail}") from None

    def _random_uuid(self) -> str:
        """A cluster id in Kafka's form (a base64url UUID, as ``StorageTool random-uuid`` prints)."""
        return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()

    def _spawn(self, node: KafkaNode) -> None:
        out = (node.dir / "stdout.log").open("ab")
        node.proc = subprocess.Popen(
            self._java(node, "kafka.Kafka", str(node.config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches only the script, which stops us
        )
        out.close()

    def wait_ready(self, timeout: float = 120.0, nodes: list[KafkaNode] | None = None) -> None:
        """Return once every running node's PLAINTEXT listener lists ``len(nodes running)`` brokers."""
        deadline = time.monotonic() + timeout
        pending = [n for n in (nodes or self.nodes) if n.proc is not None]
        want = sum(1 for n in self.nodes if n.running)
        while pending:
            node = pending[0]
            if not node.running:
                raise RuntimeError(f"node {node.node_id} exited with {node.proc.returncode if node.proc else None}")
            try:
                if _metadata_brokers(node.ports["PLAINTEXT"]) >= want:
                    pending.pop(0)
                    continue
            except (OSError, struct.error):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {node.node_id} not ready within {timeout}s")
            time.sleep(0.2)

    def stop_node(self, node_id: int, graceful: bool = True, timeout: float = 60.0) -> None:
        """Stop one node: SIGTERM (controlled shutdown) or SIGKILL; wait for it to exit."""
        node = self.nodes[node_id - 1]
        proc, node.proc = node.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        """Restart a stopped node on its old ports and data; wait until every running node lists it."""
        node = self.nodes[node_id - 1]
        if node.running:
            return
        self._spawn(node)
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Kill every node this object started and remove its folder."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
        for node in self.nodes:
            if node.proc is not None:
                node.proc.wait(10)
            node.proc = None
        _RUNNING.discard(self)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of every node's log (and stdout), for failure reports."""
        parts = []
        for node in self.nodes:
            for path in (node.log_path, node.dir / "stdout.log"):
                if path.exists():
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                    if text:
                        parts.append(f"--- node {node.node_id} {path.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __hash__(self) -> int:
        return id(self)


@atexit.register
def _kill_leftovers() -> None:
    for cluster in list(_RUNNING):
        cluster.stop()

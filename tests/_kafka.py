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
  OAUTHBEARER with Kafka's unsecured JWS validator (tokens from :func:`unsecured_jws`);
* ``MTLS`` and ``MTLS12``: SSL that requires a client certificate signed by the
  CA (``MTLS12`` capped at TLS 1.2).

Connections each listener accepted are counted from the acceptor's DEBUG log
(:meth:`KafkaCluster.accepted`), so tests can bound a client's reconnects.

Topics are auto-created with 4 partitions (as Tansu does); on 3 nodes the
replication factor is 3 and ``min.insync.replicas=2``. ``racks=True`` puts
node n in rack ``rack<n>`` with Kafka's ``RackAwareReplicaSelector`` (KIP-392:
a consumer that sends its rack reads from the replica there). ``start`` returns once
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
from _sasl_gate import _recv_exact
from _tls import TlsFiles, make_tls_files

__all__ = [
    "BROKERS",
    "LISTENERS",
    "MECHANISMS",
    "MTLS_LISTENERS",
    "PASSWORD",
    "POM",
    "USERNAME",
    "KafkaCluster",
    "KafkaListener",
    "KafkaNode",
    "fetch",
    "kafka_version",
    "ready_topic",
    "unsecured_jws",
]

ROOT = Path(__file__).resolve().parent.parent
#: The broker implementations the integration suite runs on; a test's id names the one it ran on.
BROKERS = ("tansu", "kafka")
#: The pom that pins the Kafka release (property ``kafka.version``).
POM = ROOT / "tests" / "kafka" / "pom.xml"
#: Client listeners every node has, in this order.
LISTENERS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: Extra SSL listeners that require a client certificate (``MTLS12``: at most TLS 1.2).
MTLS_LISTENERS = ("MTLS", "MTLS12")
_ALL_LISTENERS = LISTENERS + MTLS_LISTENERS
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


# -- Metadata v4 and FindCoordinator v1 by hand (independent of the kproto under test) --


def _request(port: int, api_key: int, version: int, body: bytes, timeout: float = 5.0) -> bytes:
    """One request (header v1, client id ``kproto-``) on a fresh connection; the response after its correlation id."""
    frame = struct.pack(">hhih", api_key, version, 1, 7) + b"kproto-" + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        data = _recv_exact(sock, struct.unpack(">i", _recv_exact(sock, 4))[0])
    return data[4:]


def _string(data: bytes, pos: int) -> tuple[str | None, int]:
    (n,) = struct.unpack_from(">h", data, pos)
    if n < 0:
        return None, pos + 2
    return data[pos + 2 : pos + 2 + n].decode(), pos + 2 + n


def _metadata(port: int, topic: str | None = None) -> tuple[int, dict[int, int]]:
    """Metadata v4 for ``topic`` (none: no topics): (brokers listed, partition -> leader id)."""
    if topic is None:
        body = struct.pack(">i?", 0, False)
    else:
        body = struct.pack(">ih", 1, len(topic)) + topic.encode() + b"\0"
    data = _request(port, 3, 4, body, timeout=2.0)
    pos = 4  # throttle_time_ms
    (brokers,) = struct.unpack_from(">i", data, pos)
    pos += 4
    for _ in range(brokers):
        pos += 4  # node id
        _, pos = _string(data, pos)  # host
        pos += 4  # port
        _, pos = _string(data, pos)  # rack
    _, pos = _string(data, pos)  # cluster id
    pos += 4  # controller id
    leaders: dict[int, int] = {}
    (topics,) = struct.unpack_from(">i", data, pos)
    pos += 4
    for _ in range(topics):
        pos += 2  # error code
        _, pos = _string(data, pos)
        pos += 1  # is_internal
        (parts,) = struct.unpack_from(">i", data, pos)
        pos += 4
        for _ in range(parts):
            _err, index, leader, replicas = struct.unpack_from(">hiii", data, pos)
            pos += 14 + 4 * replicas
            (isr,) = struct.unpack_from(">i", data, pos)
            pos += 4 + 4 * isr
            leaders[index] = leader
    return brokers, leaders


def _metadata_brokers(port: int) -> int:
    """How many brokers a Metadata request on ``port`` lists; OSError if none answers."""
    return _metadata(port)[0]


class KafkaNode:
    """One combined broker+controller process and its ports, folder and log."""

    def __init__(self, node_id: int, root: Path) -> None:
        self.node_id = node_id
        self.ports: dict[str, int] = {name: free_port() for name in _ALL_LISTENERS}
        #: Listener -> port to advertise instead of its own (a proxy in front of it); read at (re)start.
        self.advertised: dict[str, int] = {}
        self.controller_port = free_port()
        self.dir = root / f"node-{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.config = self.dir / "server.properties"
        self.log_path = self.dir / "server.log"
        #: The acceptor's DEBUG log: one "Accepted connection from ... on ..." line per connection.
        self.accept_log = self.dir / "accepted.log"
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
        self,
        brokers: int = 1,
        *,
        workdir: Path | None = None,
        heap: str = "512m",
        lib: Path | None = None,
        authorizer: bool = False,
        racks: bool = False,
        kerberos: Any = None,
    ) -> None:
        if brokers not in (1, 3):
            raise ValueError(f"brokers must be 1 or 3, got {brokers!r}")
        #: Node n is in rack ``rack<n>`` (``broker.rack``), and leaders point consumers
        #: that send a ``rack_id`` at a replica in their rack (KIP-392's RackAwareReplicaSelector).
        self.racks = racks
        #: An ``_kdc.MitKdc``: the SASL listeners offer GSSAPI too, as ``kafka/127.0.0.1``.
        self.kerberos = kerberos
        self.kerberos_principal = kerberos.add_service("kafka", "127.0.0.1") if kerberos is not None else None
        self.version = kafka_version()
        #: Run the StandardAuthorizer (ACL calls need one); every client here is a super user.
        self.authorizer = authorizer
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
        self._admin: Any = None
        self._offsets: Any = None

    # -- addresses and client options --

    @property
    def bootstrap(self) -> str:
        """PLAINTEXT ``127.0.0.1:port,...`` of every node."""
        return self.bootstrap_for("PLAINTEXT")

    def bootstrap_for(self, listener: str) -> str:
        """``host:port,...`` of every node on ``listener`` (:data:`LISTENERS` or :data:`MTLS_LISTENERS`)."""
        return ",".join(n.bootstrap(listener) for n in self.nodes)

    @property
    def bootstraps(self) -> dict[str, str]:
        """Listener name -> bootstrap string, for every listener."""
        return {name: self.bootstrap_for(name) for name in _ALL_LISTENERS}

    def accepted(self, listener: str) -> int:
        """Connections the nodes accepted on ``listener`` so far."""
        ports = tuple(f" on /127.0.0.1:{n.ports[listener]} " for n in self.nodes)
        return self._count_lines("accept_log", "Accepted connection from", ports)

    def auth_failures(self, listener: str) -> int:
        """Failed SASL/SSL authentications on ``listener`` so far (the brokers' INFO log).

        Kafka's ``Selector`` logs "Failed authentication with <client> (channelId=<local>-<remote>-<n>)".
        """
        ports = tuple(f"channelId=127.0.0.1:{n.ports[listener]}-" for n in self.nodes)
        return self._count_lines("log_path", "Failed authentication with", ports)

    def _count_lines(self, log: str, needle: str, anyof: tuple[str, ...]) -> int:
        count = 0
        for node in self.nodes:
            path: Path = getattr(node, log)
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    if needle in line and any(p in line + " " for p in anyof):
                        count += 1
        return count

    def create_topic(self, name: str, partitions: int = 4, timeout: float = 60.0, **configs: str) -> str:
        """Create ``name`` and return once every partition's leader serves it.

        Kafka, unlike Tansu, can answer a Produce to a topic it has just
        created (auto-created by Metadata, or by CreateTopics) with
        NOT_LEADER_OR_FOLLOWER: the broker publishes the new metadata before its
        replica manager has become the partitions' leader. A client retries
        (the Java producer's default); a test that sends with ``retries=0`` or
        ``acks=0`` and counts its records needs the topic ready first. Waits
        until ListOffsets, answered by the same leader check as Produce,
        succeeds on every partition (via kafka-python, independent of kproto).
        """
        from kafka import KafkaConsumer, TopicPartition
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        topic = NewTopic(name, partitions, len(self.nodes), topic_configs=configs)
        tps = [TopicPartition(name, p) for p in range(partitions)]
        deadline = time.monotonic() + timeout
        created = False
        while True:
            try:
                # kafka-python clients are kept for speed, and made anew after an error
                # (their metadata can name a node that was stopped meanwhile)
                if self._admin is None:
                    self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="kproto-tests")
                if not created:
                    try:
                        self._admin.create_topics([topic])
                    except TopicAlreadyExistsError:
                        pass
                    created = True
                if self._offsets is None:
                    self._offsets = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id="kproto-tests")
                self._offsets.end_offsets(tps)
                return name
            except (KafkaError, AssertionError) as exc:
                self._close_clients()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name}: not created and served within {timeout}s") from exc
                time.sleep(0.05)

    def _close_clients(self) -> None:
        for client in (self._admin, self._offsets):
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a client of a cluster that is going away
                    pass
        self._admin = self._offsets = None

    def coordinator(self, group_id: str, timeout: float = 30.0) -> int:
        """The node id of ``group_id``'s coordinator (FindCoordinator v1, retried while the
        offsets topic is being created)."""
        key = group_id.encode()
        body = struct.pack(">h", len(key)) + key + b"\0"  # key, key_type GROUP
        deadline = time.monotonic() + timeout
        while True:
            node = next(n for n in self.nodes if n.running)
            try:
                data = _request(node.ports["PLAINTEXT"], 10, 1, body)
                (error,) = struct.unpack_from(">h", data, 4)
                _, pos = _string(data, 6)  # error message
                if error == 0:
                    return int(struct.unpack_from(">i", data, pos)[0])
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no coordinator for group {group_id!r} within {timeout}s")
            time.sleep(0.1)

    def leaders(self, topic: str) -> dict[int, int]:
        """Partition -> leader node id of ``topic``, as a running node's Metadata answers."""
        node = next(n for n in self.nodes if n.running)
        return _metadata(node.ports["PLAINTEXT"], topic)[1]

    def listener(self, name: str) -> KafkaListener:
        """One listener in the shape of the TLS and SASL test helpers (``TlsBroker``, ``SaslGate``)."""
        return KafkaListener(self, name)

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
        if listener not in _ALL_LISTENERS:
            raise ValueError(f"listener must be one of {_ALL_LISTENERS}, got {listener!r}")
        protocol = "SSL" if listener in MTLS_LISTENERS else listener
        cfg: dict[str, Any] = {"bootstrap_servers": self.bootstrap_for(listener), "security_protocol": protocol}
        if protocol.endswith("SSL"):
            cfg["ssl_cafile"] = str(self.ca_file)
        if listener in MTLS_LISTENERS:
            cfg["ssl_certfile"] = str(self.tls.client_cert)
            cfg["ssl_keyfile"] = str(self.tls.client_key)
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
        listeners = ",".join(f"{name}://127.0.0.1:{node.ports[name]}" for name in _ALL_LISTENERS)
        advertised = ",".join(
            f"{name}://127.0.0.1:{node.advertised.get(name, node.ports[name])}" for name in _ALL_LISTENERS
        )
        props = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"{listeners},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": advertised,
            "listener.security.protocol.map": ",".join(
                ["CONTROLLER:PLAINTEXT"]
                + [f"{name}:{name}" for name in LISTENERS]
                + [f"{name}:SSL" for name in MTLS_LISTENERS]
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
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.mtls12.ssl.client.auth": "required",
            "listener.name.mtls12.ssl.enabled.protocols": "TLSv1.2",
            "listener.name.mtls12.ssl.protocol": "TLSv1.2",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        }
        if self.kerberos is not None:
            props["sasl.enabled.mechanisms"] += ",GSSAPI"
            props["sasl.kerberos.service.name"] = "kafka"
            krb5 = (
                "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true "
                f'keyTab="{self.kerberos.service_keytab}" principal="{self.kerberos_principal}";'
            )
            for listener in ("sasl_plaintext", "sasl_ssl"):
                props[f"listener.name.{listener}.gssapi.sasl.jaas.config"] = krb5
        if self.racks:
            props["broker.rack"] = f"rack{node.node_id}"
            props["replica.selector.class"] = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
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
        if self.authorizer:
            # KRaft's ACL authorizer (KIP-801). The controller link, PLAINTEXT clients and
            # the SASL test user are super users, so no existing call is refused; others
            # are allowed wherever no ACL names the resource.
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            props["super.users"] = f"User:ANONYMOUS;User:{USERNAME}"
            props["allow.everyone.if.no.acl.found"] = "true"
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
            # every accepted connection, for KafkaCluster.accepted
            "appender.accepts.type = File\n"
            "appender.accepts.name = ACCEPTS\n"
            f"appender.accepts.fileName = {node.accept_log}\n"
            "appender.accepts.layout.type = PatternLayout\n"
            "appender.accepts.layout.pattern = %m%n\n"
            "logger.acceptor.name = kafka.network.DataPlaneAcceptor\n"
            "logger.acceptor.level = DEBUG\n"
            "logger.acceptor.additivity = false\n"
            "logger.acceptor.appenderRef.accepts.ref = ACCEPTS\n"
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
            *([f"-Djava.security.krb5.conf={self.kerberos.krb5_conf}"] if self.kerberos is not None else []),
            f"-Dlog4j2.configurationFile={self._log4j(node)}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]

    # -- life cycle --

    def start(self, timeout: float = 180.0) -> None:
        """Fetch if needed, format every node's storage, start them, wait until all are registered."""
        try:
            self._format(timeout)
        except BaseException:
            self.stop()
            raise
        _RUNNING.add(self)
        try:
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready(timeout)
        except BaseException:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"Apache Kafka did not start:\n{tail}") from None

    def _format(self, timeout: float) -> None:
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
        try:
            for node, out, proc in formats:
                rc = proc.wait(timeout)
                out.close()
                if rc != 0:
                    raise RuntimeError(f"formatting node {node.node_id} failed ({rc}):\n"
                                       f"{(node.dir / 'format.out').read_text()[-3000:]}")  # fmt: skip
        finally:
            for _, out, proc in formats:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
                out.close()

    def _random_uuid(self) -> str:
        """A cluster id in Kafka's form (a base64url UUID, as ``StorageTool random-uuid`` prints).

        Never one starting with "-", which the storage tool's argument parser
        takes for an option (Kafka's ``Uuid.randomUuid`` avoids them too).
        """
        while True:
            text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            if not text.startswith("-"):
                return text

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
        """Restart a stopped node on its old ports and data (advertising ``node.advertised``);
        wait until every running node lists it."""
        node = self.nodes[node_id - 1]
        if node.running:
            return
        node.config.write_text(self._properties(node))
        self._spawn(node)
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Kill every node this object started and remove its folder."""
        self._close_clients()
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


class KafkaListener:
    """One listener of a :class:`KafkaCluster`, shaped like ``tests/_tls.TlsBroker`` and ``tests/_sasl_gate.SaslGate``.

    ``bootstrap``, ``port`` (the first node's), ``files`` (the PKI), ``accepted()``
    (connections so far); for a SASL listener ``attempts`` (connections, each
    of which must authenticate), ``failures`` (failed authentications),
    ``token`` (a valid OAUTHBEARER token) and ``gate`` (itself: the listener
    plays the gate's part).
    """

    def __init__(self, cluster: KafkaCluster, name: str) -> None:
        if name not in _ALL_LISTENERS:
            raise ValueError(f"listener must be one of {_ALL_LISTENERS}, got {name!r}")
        self.cluster = cluster
        self.name = name
        self.files = cluster.tls
        self.username = cluster.username
        self.password = cluster.password

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap_for(self.name)

    @property
    def port(self) -> int:
        return self.cluster.nodes[0].ports[self.name]

    def accepted(self) -> int:
        return self.cluster.accepted(self.name)

    @property
    def attempts(self) -> int:
        return self.accepted()

    @property
    def failures(self) -> int:
        return self.cluster.auth_failures(self.name)

    @property
    def token(self) -> str:
        return self.cluster.oauth_token()

    @property
    def gate(self) -> KafkaListener:
        return self

    def create_topic(self, name: str, partitions: int = 4) -> str:
        return self.cluster.create_topic(name, partitions)


def ready_topic(target: Any, name: str) -> str:
    """``name``, created and served by its leaders first when ``target`` is Apache Kafka.

    ``target``: a :class:`KafkaCluster`, a :class:`KafkaListener`, or anything
    else (Tansu, a gate, stunnel), which auto-creates the topic on first use.
    See :meth:`KafkaCluster.create_topic` for why Kafka needs it.
    """
    if isinstance(target, (KafkaCluster, KafkaListener)):
        target.create_topic(name)
    return name


@atexit.register
def _kill_leftovers() -> None:
    for cluster in list(_RUNNING):
        cluster.stop()

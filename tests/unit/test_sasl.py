"""SASL (kproto.sasl): mechanisms byte for byte, the exchange through BrokerConnection and Client.

Tansu cannot create SASL users with in-memory storage (see TESTING.md), so the
SASL integration is proven here, sans-I/O: SCRAM against ``scramp``'s server
and the RFC 7677 vector, and the Kafka framing against a scripted broker that
decodes our request bytes and answers literal frames.
"""

from __future__ import annotations

import base64
import logging
import random
import struct
from typing import Any

import pytest
import scramp

from kproto.client import Client, ClientConfig
from kproto.connection import BrokerConnection, ConnectionConfig, ConnectionState
from kproto.driving import Connect
from kproto.errors import AuthenticationFailedError, KafkaConfigurationError, KafkaError
from kproto.events import BootstrapFailed
from kproto.protocol.headers import request_header_version, response_header_version
from kproto.protocol.messages import (
    REQUEST_TYPES,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from kproto.sasl import (
    OAuthBearer,
    Plain,
    SaslAuthenticator,
    Scram,
    make_mechanism,
    nonce_from_rng,
    saslprep,
)

SECRET = "hunter2-very-secret"
TOKEN = "eyJ.secret-token.sig"
T0 = 1000.0
CONFIG = ConnectionConfig(client_id="kproto", client_software_name="kproto", client_software_version="0.1.0")

# --- RFC 7677 section 3 (SCRAM-SHA-256), byte for byte ---------------------------------

RFC7677_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha_256_rfc7677_vector() -> None:
    m = Scram("SCRAM-SHA-256", "user", "pencil", lambda: "rOprNGfwEbeRWgbNEkqO")
    assert m.initial() == RFC7677_CLIENT_FIRST
    assert m.challenge(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert m.challenge(RFC7677_SERVER_FINAL) is None
    assert m.complete


def test_scram_rejects_a_forged_server_signature() -> None:
    m = Scram("SCRAM-SHA-256", "user", "pencil", lambda: "rOprNGfwEbeRWgbNEkqO")
    m.initial()
    m.challenge(RFC7677_SERVER_FIRST)
    forged = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(AuthenticationFailedError, match="server signature"):
        m.challenge(forged)
    assert not m.complete


@pytest.mark.parametrize(
    ("server_first", "why"),
    [
        (b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce"),  # not extended
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999", "iteration"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,s=!!!,i=4096", "salt"),
        (b"r=rOprNGfwEbeRWgbNEkqOx,i=4096", "lacks"),
        (b"m=ext,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "extension"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_scram_refuses_bad_server_first_messages(server_first: bytes, why: str) -> None:
    m = Scram("SCRAM-SHA-256", "user", "pencil", lambda: "rOprNGfwEbeRWgbNEkqO")
    m.initial()
    with pytest.raises(AuthenticationFailedError, match=why):
        m.challenge(server_first)


def test_scram_server_error_attribute() -> None:
    m = Scram("SCRAM-SHA-256", "user", "pencil", lambda: "rOprNGfwEbeRWgbNEkqO")
    m.initial()
    m.challenge(RFC7677_SERVER_FIRST)
    with pytest.raises(AuthenticationFailedError, match="invalid-proof"):
        m.challenge(b"e=invalid-proof")


# --- against scramp's server ------------------------------------------------------------


def scramp_server(mechanism: str, password: str, iterations: int = 4096) -> Any:
    m = scramp.ScramMechanism(mechanism)
    auth_info = m.make_auth_info(password, iteration_count=iterations)
    return m.make_server(lambda _username: auth_info)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("username", ["alice", "we=ird,name", "ünïcode"])
def test_scram_against_scramp_server(mechanism: str, username: str) -> None:
    server = scramp_server(mechanism, SECRET)
    client = Scram(mechanism, username, SECRET, nonce_from_rng(random.Random(7)))
    first = client.initial()
    server.set_client_first(first.decode())
    final = client.challenge(server.get_server_first().encode())
    assert final is not None
    server.set_client_final(final.decode())  # scramp checks our proof here
    assert client.challenge(server.get_server_final().encode()) is None
    assert client.complete
    # the saslname escaping of RFC 5802 5.1 reached the server as written
    assert first.startswith(b"n,,n=" + username.replace("=", "=3D").replace(",", "=2C").encode())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_wrong_password_fails_at_scramp(mechanism: str) -> None:
    server = scramp_server(mechanism, SECRET)
    client = Scram(mechanism, "alice", "wrong", nonce_from_rng(random.Random(7)))
    server.set_client_first(client.initial().decode())
    final = client.challenge(server.get_server_first().encode())
    assert final is not None
    with pytest.raises(scramp.ScramException):
        server.set_client_final(final.decode())
    # scramp's error answer makes the client fail too
    with pytest.raises(AuthenticationFailedError):
        client.challenge(server.get_server_final().encode())


def test_scram_against_a_server_that_does_not_know_the_password() -> None:
    """A man in the middle that accepts any proof cannot forge the server signature."""
    real = scramp_server("SCRAM-SHA-256", "other-password")
    client = Scram("SCRAM-SHA-256", "alice", SECRET, nonce_from_rng(random.Random(1)))
    real.set_client_first(client.initial().decode())
    client.challenge(real.get_server_first().encode())
    fake_final = (
        "v=" + base64.b64encode(real.server_signature if real.server_signature else b"x" * 32).decode()
    )
    with pytest.raises(AuthenticationFailedError, match="server signature"):
        client.challenge(fake_final.encode())


def test_nonce_from_rng_is_reproducible_and_valid() -> None:
    a, b = nonce_from_rng(random.Random(3)), nonce_from_rng(random.Random(3))
    n = a()
    assert n == b() and len(n) == 32 and "," not in n and n.isprintable()
    assert a() != n


def test_saslprep() -> None:
    assert saslprep("pencil") == "pencil"
    assert saslprep("I\u00adX") == "IX"  # soft hyphen maps to nothing
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space maps to space
    assert saslprep("\u2168") == "IX"  # NFKC
    with pytest.raises(AuthenticationFailedError) as info:
        saslprep("bad\u0007char")
    assert "bad" not in str(info.value)


# --- PLAIN and OAUTHBEARER ----------------------------------------------------------------


def test_plain_message() -> None:
    m = Plain("alice", SECRET)
    assert m.initial() == b"\0alice\0" + SECRET.encode()
    assert m.challenge(b"") is None


def test_oauthbearer_initial_response_rfc7628() -> None:
    class Provider:
        def token(self) -> str:
            return TOKEN

        def extensions(self) -> dict[str, str]:
            return {"traceId": "123"}

    assert OAuthBearer(lambda: TOKEN).initial() == f"n,,\x01auth=Bearer {TOKEN}\x01\x01".encode()
    assert OAuthBearer(Provider()).initial() == f"n,,\x01auth=Bearer {TOKEN}\x01traceId=123\x01\x01".encode()


def test_oauthbearer_error_challenge_is_answered_then_fails() -> None:
    m = OAuthBearer(lambda: TOKEN)
    m.initial()
    assert m.challenge(b'{"status":"invalid_token"}') == b"\x01"
    with pytest.raises(AuthenticationFailedError):
        m.challenge(b'{"status":"invalid_token"}')


def test_oauthbearer_provider_problems() -> None:
    async def coro_provider() -> str:
        return TOKEN

    with pytest.raises(AuthenticationFailedError, match="async"):
        OAuthBearer(coro_provider).initial()
    with pytest.raises(AuthenticationFailedError, match="not a non-empty str"):
        OAuthBearer(lambda: None).initial()

    def boom() -> str:
        raise RuntimeError(TOKEN)

    with pytest.raises(AuthenticationFailedError) as info:
        OAuthBearer(boom).initial()
    assert TOKEN not in str(info.value)


def test_make_mechanism_checks() -> None:
    assert isinstance(make_mechanism("plain", username="u", password="p"), Plain)
    with pytest.raises(ValueError, match="needs sasl_plain_username"):
        make_mechanism("SCRAM-SHA-256", username="u", nonce=lambda: "n")
    with pytest.raises(ValueError, match="must be one of"):
        make_mechanism("NTLM", username="u", password="p")
    with pytest.raises(ValueError, match="token_provider"):
        make_mechanism("OAUTHBEARER")


# --- a scripted broker: decodes our request bytes, answers with frames ------------------------

#: Kafka 3.x-like ranges: Metadata 0-12, SaslHandshake 0-1, ApiVersions 0-3, SaslAuthenticate 0-2.
BROKER_KEYS = [(3, 0, 12), (17, 0, 1), (18, 0, 3), (36, 0, 2)]


class ScriptedBroker:
    """Reads request frames from the client's bytes; answers with ``respond(request) -> response``."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int, Any]] = []  # (api_key, version, request)
        self.raw: list[bytes] = []

    def parse(self, data: bytes) -> list[tuple[int, int, int, Any]]:
        out = []
        pos = 0
        while pos < len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            frame = data[pos + 4 : pos + 4 + size]
            self.raw.append(data[pos : pos + 4 + size])
            pos += 4 + size
            api_key, version, cid = struct.unpack_from(">hhi", frame, 0)
            (n,) = struct.unpack_from(">h", frame, 8)
            p = 10 + max(n, 0)
            if request_header_version(api_key, version) == 2:
                p += 1  # empty tagged fields
            req, _ = REQUEST_TYPES[api_key].read(memoryview(frame), p, version)
            self.requests.append((api_key, version, req))
            out.append((api_key, version, cid, req))
        return out

    @staticmethod
    def frame(api_key: int, version: int, cid: int, response: Any) -> bytes:
        header = cid.to_bytes(4, "big")
        if response_header_version(api_key, version) == 1:
            header += b"\0"
        body = header + response.encode(version)
        return len(body).to_bytes(4, "big") + body


def api_versions(keys: list[tuple[int, int, int]] = BROKER_KEYS) -> ApiVersionsResponse:
    from kproto.protocol.messages.api_versions import ApiVersion

    return ApiVersionsResponse(
        error_code=0, api_keys=[ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in keys]
    )


class SaslBrokerScript:
    """A broker that speaks SASL: PLAIN with one user, SCRAM through scramp."""

    def __init__(
        self, mechanisms: list[str], password: str = SECRET, mechanism: str = "SCRAM-SHA-256"
    ) -> None:
        self.mechanisms = mechanisms
        self.password = password
        self.scram = scramp_server(mechanism, password) if mechanism.startswith("SCRAM") else None
        self.authenticated = False

    def respond(self, api_key: int, version: int, req: Any) -> Any:
        if api_key == 18:
            return api_versions()
        if api_key == 17:
            assert isinstance(req, SaslHandshakeRequest)
            ok = req.mechanism in self.mechanisms
            return SaslHandshakeResponse(error_code=0 if ok else 33, mechanisms=self.mechanisms)
        if api_key == 36:
            assert isinstance(req, SaslAuthenticateRequest)
            token = bytes(req.auth_bytes)
            if self.scram is None:  # PLAIN
                _, user, password = token.split(b"\0")
                if password.decode() == self.password:
                    self.authenticated = True
                    return SaslAuthenticateResponse(error_code=0, auth_bytes=b"")
                return SaslAuthenticateResponse(
                    error_code=58, error_message="Authentication failed: Invalid username or password"
                )
            if self.scram.stage is None:
                self.scram.set_client_first(token.decode())
                return SaslAuthenticateResponse(auth_bytes=self.scram.get_server_first().encode())
            try:
                self.scram.set_client_final(token.decode())
            except scramp.ScramException:
                return SaslAuthenticateResponse(
                    error_code=58,
                    error_message="Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256",
                )
            self.authenticated = True
            return SaslAuthenticateResponse(auth_bytes=self.scram.get_server_final().encode())
        if api_key == 3:
            assert self.authenticated
            return MetadataResponse()
        raise AssertionError(api_key)


def exchange(conn: BrokerConnection, broker: ScriptedBroker, script: SaslBrokerScript, now: float) -> None:
    """Run the connection against the script until nothing more is written."""
    for _ in range(20):
        data = conn.data_to_send()
        if not data:
            return
        for api_key, version, cid, req in broker.parse(data):
            conn.receive_data(broker.frame(api_key, version, cid, script.respond(api_key, version, req)), now)
            done, conn.completions = conn.completions, []
            for callback, response, error in done:
                callback(response, error)


# --- byte level through BrokerConnection --------------------------------------------------


def test_plain_handshake_bytes_through_broker_connection() -> None:
    auth = SaslAuthenticator(Plain("alice", SECRET))
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.send(MetadataRequest(), callback=lambda r, e: None, now=T0)
    conn.connection_made(T0)
    broker = ScriptedBroker()
    # ApiVersions first
    (api_key, version, cid, req) = broker.parse(conn.data_to_send())[0]
    assert (api_key, cid) == (18, 0)
    conn.receive_data(broker.frame(api_key, version, cid, api_versions()), T0)
    assert conn.state is ConnectionState.AUTHENTICATING
    # SaslHandshake v1, header v1: size, key 17, version 1, correlation id 1, "kproto", "PLAIN"
    hs = conn.data_to_send()
    assert hs == bytes.fromhex("0000001700110001000000010006") + b"kproto" + b"\x00\x05PLAIN"
    conn.receive_data(broker.frame(17, 1, 1, SaslHandshakeResponse(mechanisms=["PLAIN"])), T0 + 0.1)
    conn.completions[0][0](conn.completions[0][1], conn.completions[0][2])
    conn.completions.clear()
    # SaslAuthenticate v2 (flexible), header v2: tokens as compact bytes
    au = conn.data_to_send()
    token = b"\0alice\0" + SECRET.encode()
    body = b"\x00\x24" + b"\x00\x02" + b"\x00\x00\x00\x02" + b"\x00\x06kproto" + b"\x00"
    body += bytes([len(token) + 1]) + token + b"\x00"
    assert au == len(body).to_bytes(4, "big") + body
    conn.receive_data(broker.frame(36, 2, 2, SaslAuthenticateResponse(auth_bytes=b"")), T0 + 0.2)
    done, conn.completions = conn.completions, []
    for cb, resp, err in done:
        cb(resp, err)
    assert conn.state is ConnectionState.READY
    assert auth.done
    # the queued Metadata goes out only now, with the next correlation id
    assert broker.parse(conn.data_to_send())[0][:3] == (3, 12, 3)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_through_broker_connection_against_scramp(mechanism: str) -> None:
    auth = SaslAuthenticator(Scram(mechanism, "alice", SECRET, nonce_from_rng(random.Random(5))))
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.connection_made(T0)
    broker = ScriptedBroker()
    script = SaslBrokerScript([mechanism], mechanism=mechanism)
    exchange(conn, broker, script, T0)
    assert conn.state is ConnectionState.READY
    assert [k for k, _, _ in broker.requests] == [18, 17, 36, 36]
    assert script.authenticated


def test_unsupported_mechanism_names_what_the_broker_offers() -> None:
    auth = SaslAuthenticator(Plain("alice", SECRET))
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.connection_made(T0)
    exchange(conn, ScriptedBroker(), SaslBrokerScript(["SCRAM-SHA-512"]), T0)
    assert conn.state is ConnectionState.CLOSED
    assert isinstance(conn.error, AuthenticationFailedError)
    assert "SCRAM-SHA-512" in str(conn.error)


def test_broker_without_sasl_handshake_v1_fails_clearly() -> None:
    auth = SaslAuthenticator(Plain("alice", SECRET))
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.connection_made(T0)
    broker = ScriptedBroker()
    (k, v, cid, _) = broker.parse(conn.data_to_send())[0]
    conn.receive_data(broker.frame(k, v, cid, api_versions([(3, 0, 12), (17, 0, 0), (18, 0, 3)])), T0)
    assert conn.state is ConnectionState.CLOSED
    assert isinstance(conn.error, AuthenticationFailedError) and "v1" in str(conn.error)


# --- through Client: wrong credentials, once, no storm, no secrets ----------------------------


def drive_client(client: Client, script_factory: Any, until: float, step: float = 0.05) -> list[Connect]:
    """Run ``client`` over scripted brokers until ``until``; return every Connect issued."""
    connects: list[Connect] = []
    brokers: dict[int, tuple[ScriptedBroker, SaslBrokerScript]] = {}
    now = T0
    while now < until:
        for cmd in client.commands():
            if isinstance(cmd, Connect):
                connects.append(cmd)
                brokers[cmd.node_id] = (ScriptedBroker(), script_factory())
                client.connection_made(cmd.node_id, now)
            else:
                brokers.pop(cmd.node_id, None)
        for node_id, data in client.data_to_send():
            if node_id not in brokers:
                continue
            broker, script = brokers[node_id]
            for api_key, version, cid, req in broker.parse(data):
                answer = broker.frame(api_key, version, cid, script.respond(api_key, version, req))
                client.receive_data(node_id, answer, now)
                if client.connection_state(node_id) is not ConnectionState.AUTHENTICATING and api_key == 36:
                    break
        timer = client.get_timer()
        client.handle_timer(now)
        now = min(now + step, until) if timer is None or timer > now else now + step
    return connects


def test_wrong_password_fails_once_without_a_reconnect_storm(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = ClientConfig(
        bootstrap_servers="b1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_plain_username="alice",
        sasl_plain_password="wrong-" + SECRET,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=1000,
    )
    client = Client(cfg, now=T0, rng=random.Random(1))
    errors: list[KafkaError | None] = []
    client.send(MetadataRequest(), now=T0, callback=lambda r, e: errors.append(e))
    connects = drive_client(client, lambda: SaslBrokerScript(["SCRAM-SHA-256"]), until=T0 + 2.0)
    assert len(errors) == 1 and isinstance(errors[0], AuthenticationFailedError)
    assert "invalid credentials" in str(errors[0])
    events = client.events()
    failed = [e for e in events if isinstance(e, BootstrapFailed)]
    assert failed and isinstance(failed[0].error, AuthenticationFailedError)
    assert len(failed) == 1 and client.bootstrap_error is failed[0].error and client.auth_error is not None
    # Backoff after an auth failure is the cap (~1 s +-20%): at most 2 attempts in 2 s,
    # where the exponential backoff from 50 ms would have made about six.
    assert 1 <= len(connects) <= 2
    for text in [repr(cfg), repr(client), str(errors[0]), repr(errors[0]), caplog.text, repr(events)]:
        assert SECRET not in text


def test_right_password_through_client_reaches_ready() -> None:
    cfg = ClientConfig(
        bootstrap_servers="b1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password=SECRET,
    )
    client = Client(cfg, now=T0, rng=random.Random(1))
    results: list[Any] = []
    client.send(MetadataRequest(), now=T0, callback=lambda r, e: results.append((r, e)))
    connects = drive_client(
        client, lambda: SaslBrokerScript(["SCRAM-SHA-512"], mechanism="SCRAM-SHA-512"), until=T0 + 0.5
    )
    assert results and results[0][1] is None and isinstance(results[0][0], MetadataResponse)
    assert len(connects) == 1
    assert client.bootstrap_connected()


def test_client_config_hides_and_checks_credentials() -> None:
    cfg = ClientConfig(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=lambda: TOKEN,
    )
    assert "OAUTHBEARER" in repr(cfg) and TOKEN not in repr(cfg)
    with pytest.raises(KafkaConfigurationError, match="sasl_plain_username"):
        ClientConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_plain_password=SECRET)
    with pytest.raises(KafkaConfigurationError) as info:
        ClientConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism=SECRET)
    with pytest.raises(KafkaConfigurationError, match="security_protocol"):
        ClientConfig(security_protocol="TLS")
    assert info.value is not None
    for m in (
        Plain("alice", SECRET),
        Scram("SCRAM-SHA-256", "alice", SECRET, lambda: "n"),
        OAuthBearer(lambda: TOKEN),
    ):
        assert SECRET not in repr(m) and TOKEN not in repr(m) and "alice" not in repr(m)


def test_answer_then_close_in_one_chunk_does_not_confuse_the_authenticator() -> None:
    """Found by fuzz/fuzz_connection.py: the handshake answer and a stray frame arrive together.

    The stray frame closes the connection (nothing in flight) before the owner
    runs the handshake callback; the authenticator must then stay quiet.
    """
    auth = SaslAuthenticator(Plain("alice", SECRET))
    conn = BrokerConnection(1, "b1", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.connection_made(T0)
    broker = ScriptedBroker()
    (k, v, cid, _) = broker.parse(conn.data_to_send())[0]
    conn.receive_data(broker.frame(k, v, cid, api_versions()), T0)
    conn.data_to_send()
    hs = broker.frame(17, 1, 1, SaslHandshakeResponse(mechanisms=["PLAIN"]))
    stray = broker.frame(36, 2, 2, SaslAuthenticateResponse())
    conn.receive_data(hs + stray, T0)
    assert conn.state is ConnectionState.CLOSED
    done, conn.completions = conn.completions, []
    for callback, response, error in done:
        callback(response, error)  # must not raise
    assert not auth.done


def test_connection_fuzz_seeds_run_clean() -> None:
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("_fuzz_connection", root / "fuzz" / "fuzz_connection.py")
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    seeds = sorted((root / "fuzz" / "corpus" / "connection").iterdir())
    expected = harness.seed_inputs()
    assert {p.name for p in seeds} >= set(expected)
    for seed in seeds:
        harness.test_one_input(seed.read_bytes())

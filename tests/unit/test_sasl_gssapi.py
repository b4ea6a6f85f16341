"""SASL GSSAPI (RFC 4752) on the SASL side, over a scripted GSS-API context, and the client's principal naming.

The Kerberos part itself (libkrb5 through the ``gssapi`` package, a KDC and
Apache Kafka's acceptor) is exercised in ``tests/integration/test_gssapi.py``;
here a scripted context stands for it so that every SASL step can be driven
and checked byte for byte.
"""

from __future__ import annotations

import importlib.util
import random
from typing import Any

import pytest

from kproto.client import Client, ClientConfig
from kproto.errors import AuthenticationFailedError, KafkaConfigurationError
from kproto.sasl import Gssapi, gssapi_target, make_mechanism


class ScriptedContext:
    """Tokens out in order; the server tokens it saw; wrap/unwrap as a visible tag."""

    def __init__(self, tokens: list[bytes | None], complete_after: int) -> None:
        self.tokens = tokens
        self.seen: list[bytes | None] = []
        self.complete_after = complete_after
        self.complete = False

    def step(self, token: bytes | None) -> bytes | None:
        self.seen.append(token)
        self.complete = len(self.seen) >= self.complete_after
        return self.tokens.pop(0)

    def unwrap(self, data: bytes) -> bytes:
        if not data.startswith(b"W:"):
            raise ValueError("bad MIC")
        return data[2:]

    def wrap(self, data: bytes) -> bytes:
        return b"W:" + data


def test_rfc_4752_exchange() -> None:
    ctx = ScriptedContext([b"AP-REQ", None], complete_after=2)
    mech = Gssapi(ctx)
    assert mech.initial() == b"AP-REQ"
    # The AP-REP completes the context with no output token: an empty response (RFC 4752 3.1).
    assert mech.challenge(b"AP-REP") == b""
    assert ctx.seen == [None, b"AP-REP"]
    # The server offers layers 0x07 and a 64 KiB max; the client takes "none" (1), echoes the
    # size, and names no authorization id.
    assert mech.challenge(b"W:\x07\x01\x00\x00") == b"W:\x01\x01\x00\x00"
    assert mech.challenge(b"") is None


def test_a_context_needing_more_round_trips_keeps_stepping() -> None:
    ctx = ScriptedContext([b"t1", b"t2", b"t3"], complete_after=3)
    mech = Gssapi(ctx)
    assert [mech.initial(), mech.challenge(b"s1"), mech.challenge(b"s2")] == [b"t1", b"t2", b"t3"]
    assert mech.challenge(b"W:\x01\x00\x10\x00") == b"W:\x01\x00\x10\x00"


@pytest.mark.parametrize(
    ("offer", "words"),
    [(b"W:\x06\x01\x00\x00", "no security layer"), (b"W:\x01\x00", "no security layer"), (b"junk", "did not unwrap")],
)
def test_bad_security_layer_offers_fail_authentication(offer: bytes, words: str) -> None:
    mech = Gssapi(ScriptedContext([b"AP-REQ", None], complete_after=2))
    mech.initial()
    mech.challenge(b"AP-REP")
    with pytest.raises(AuthenticationFailedError, match=words):
        mech.challenge(offer)


def test_bytes_after_the_exchange_and_library_errors_fail_authentication() -> None:
    mech = Gssapi(ScriptedContext([b"AP-REQ", None], complete_after=2))
    mech.initial()
    mech.challenge(b"AP-REP")
    mech.challenge(b"W:\x01\x00\x00\x00")
    with pytest.raises(AuthenticationFailedError, match="unexpected bytes"):
        mech.challenge(b"more")

    class NoTicket(ScriptedContext):
        def step(self, token: bytes | None) -> bytes | None:
            raise RuntimeError("Server kafka/h@R not found in Kerberos database")

    with pytest.raises(AuthenticationFailedError, match="GSSAPI: RuntimeError: Server kafka/h@R not found"):
        Gssapi(NoTicket([], 1)).initial()


@pytest.mark.parametrize(
    ("kw", "target"),
    [
        ({}, "kafka@b1.example"),
        ({"service_name": "kfk"}, "kfk@b1.example"),
        ({"domain_name": "kafka.example"}, "kafka@kafka.example"),
        ({"kerberos_name": "kafka/all@R", "service_name": "x", "domain_name": "y"}, "kafka/all@R"),
    ],
)
def test_target_principal_follows_kafka_python(kw: dict[str, Any], target: str) -> None:
    assert gssapi_target("b1.example", **kw) == target


def test_client_builds_one_context_per_connection_for_that_broker() -> None:
    targets: list[str] = []

    def factory(target: str) -> ScriptedContext:
        targets.append(target)
        return ScriptedContext([b"AP-REQ"], complete_after=9)

    cfg = ClientConfig(bootstrap_servers="b1:9092,b2:9092", security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="GSSAPI", sasl_kerberos_service_name="kfk",
                       sasl_gssapi_context_factory=factory)  # fmt: skip
    client = Client(cfg, now=0.0, rng=random.Random(0))
    client.handle_timer(0.0)
    (cmd,) = client.commands()
    client.connection_made(cmd.node_id, 0.0)  # the authenticator (and its context) is per connection
    assert targets == [f"kfk@{cmd.host}"]


def test_gssapi_config_is_checked_at_construction() -> None:
    if importlib.util.find_spec("gssapi") is not None:  # the kproto[gssapi] extra is installed
        ClientConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI")
    else:  # e.g. nox -s compat's venvs: refused at construction, naming the extra
        with pytest.raises(KafkaConfigurationError, match=r"needs the gssapi package: pip install 'kproto\[gssapi\]'"):
            ClientConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI")
    assert isinstance(make_mechanism("gssapi"), Gssapi)

"""SOCKS5 (RFC 1928, RFC 1929): the handshake machine and the broker connection's TUNNEL step, bytes in and out."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kproto.client import Client, ClientConfig
from kproto.connection import ConnectionState
from kproto.driving import Connect
from kproto.errors import (
    AuthenticationFailedError,
    KafkaConfigurationError,
    KafkaConnectionError,
    KafkaProtocolError,
)
from kproto.socks5 import ProxyAddress, Socks5Handshake, parse_proxy_url
from tests.unit.test_connection import API_VERSIONS_V4, T0, new_conn
from tests.unit.test_messages_fuzz_seeds import ROOT
from tests.unit.test_messages_fuzz_seeds import _harness as fuzz_harness

NO_AUTH = ProxyAddress(host="proxy", port=1080)
WITH_AUTH = ProxyAddress(host="proxy", port=1080, username="alice", password="s3cret")
#: CONNECT broker1:9092 by name: VER CMD RSV ATYP=3 LEN "broker1" PORT.
CONNECT_BY_NAME = b"\x05\x01\x00\x03\x07broker1\x23\x84"
#: A success reply with an IPv4 bound address (10.0.0.1:4000).
OK_IPV4 = b"\x05\x00\x00\x01\x0a\x00\x00\x01\x0f\xa0"


def feed(h: Socks5Handshake, data: bytes, *, bytewise: bool) -> None:
    for piece in ([data[i : i + 1] for i in range(len(data))] if bytewise else [data]):
        h.receive_data(piece)


@pytest.mark.parametrize("bytewise", [False, True])
def test_no_auth_connect_by_domain_name(bytewise: bool) -> None:
    h = Socks5Handshake(NO_AUTH, "broker1", 9092)
    assert h.data_to_send() == b"\x05\x01\x00"  # version 5, one method: no authentication
    feed(h, b"\x05\x00", bytewise=bytewise)
    assert h.data_to_send() == CONNECT_BY_NAME and not h.done
    feed(h, OK_IPV4, bytewise=bytewise)
    assert h.done and h.data_to_send() == b""


@pytest.mark.parametrize(
    ("host", "target"),
    [
        ("127.0.0.1", b"\x01\x7f\x00\x00\x01"),
        ("::1", b"\x04" + b"\x00" * 15 + b"\x01"),
        ("brøker.example", b"\x03\x15xn--brker-wua.example"),
    ],
)
def test_connect_by_ip_literal_or_idna_name(host: str, target: bytes) -> None:
    h = Socks5Handshake(NO_AUTH, host, 29092)
    h.data_to_send()
    h.receive_data(b"\x05\x00")
    assert h.data_to_send() == b"\x05\x01\x00" + target + b"\x71\xa4"


@pytest.mark.parametrize("bytewise", [False, True])
def test_username_password_then_connect_with_a_domain_bound_address(bytewise: bool) -> None:
    h = Socks5Handshake(WITH_AUTH, "broker1", 9092)
    assert h.data_to_send() == b"\x05\x02\x00\x02"  # offers no-auth and username/password
    feed(h, b"\x05\x02", bytewise=bytewise)
    assert h.data_to_send() == b"\x01\x05alice\x06s3cret"  # RFC 1929
    feed(h, b"\x01\x00", bytewise=bytewise)
    assert h.data_to_send() == CONNECT_BY_NAME
    feed(h, b"\x05\x00\x00\x03\x05proxy\x04\x38", bytewise=bytewise)
    assert h.done


def test_proxy_that_needs_no_auth_skips_rfc_1929_even_with_credentials() -> None:
    h = Socks5Handshake(WITH_AUTH, "broker1", 9092)
    h.data_to_send()
    h.receive_data(b"\x05\x00")
    assert h.data_to_send() == CONNECT_BY_NAME


@pytest.mark.parametrize(
    ("proxy", "answers", "error", "words"),
    [
        (NO_AUTH, [b"\x05\x00", b"\x05\x05\x00\x01" + bytes(6)], KafkaConnectionError, "connection refused"),
        (NO_AUTH, [b"\x05\x00", b"\x05\x04\x00\x01" + bytes(6)], KafkaConnectionError, "host unreachable"),
        (NO_AUTH, [b"\x05\x00", b"\x05\x63\x00\x01" + bytes(6)], KafkaConnectionError, "unassigned reply code 99"),
        (NO_AUTH, [b"\x05\xff"], AuthenticationFailedError, "user:password@"),
        (WITH_AUTH, [b"\x05\x02", b"\x01\x01"], AuthenticationFailedError, "rejected the user name"),
        (NO_AUTH, [b"\x05\x02"], KafkaProtocolError, "not offered"),
        (NO_AUTH, [b"HTTP/1.1 400 Bad Request\r\n"], KafkaProtocolError, "version 72"),
        (WITH_AUTH, [b"\x05\x02", b"\x05\x00"], KafkaProtocolError, "reply version 5"),
        (NO_AUTH, [b"\x05\x00", b"\x05\x00\x01\x01" + bytes(6)], KafkaProtocolError, "bad reply header"),
        (NO_AUTH, [b"\x05\x00", b"\x05\x00\x00\x07" + bytes(6)], KafkaProtocolError, "unknown address type 7"),
        (NO_AUTH, [b"\x05\x00", OK_IPV4 + b"\x00\x00\x00\x10"], KafkaProtocolError, "4 bytes after its reply"),
    ],
)
def test_refusals_and_garbage_are_named_errors(
    proxy: ProxyAddress, answers: list[bytes], error: type[Exception], words: str
) -> None:
    h = Socks5Handshake(proxy, "broker1", 9092)
    h.data_to_send()
    with pytest.raises(error, match=words) as info:
        for a in answers:
            h.receive_data(a)
            h.data_to_send()
    assert "SOCKS5 proxy proxy:1080 (to broker1:9092)" in str(info.value)
    assert not h.done


def test_a_host_name_over_255_bytes_fails_the_connect_not_the_caller() -> None:
    h = Socks5Handshake(NO_AUTH, "b" * 256, 9092)
    h.data_to_send()
    with pytest.raises(KafkaConnectionError, match="too long"):
        h.receive_data(b"\x05\x00")


def test_buffer_is_bounded_by_the_longest_reply() -> None:
    h = Socks5Handshake(NO_AUTH, "broker1", 9092)
    h.data_to_send()
    h.receive_data(b"\x05\x00")
    h.receive_data(b"\x05\x00\x00\x03\xff" + b"a" * 200)  # a 255-byte bound name, not all here yet
    assert not h.done
    with pytest.raises(KafkaProtocolError, match="bytes after its reply"):
        h.receive_data(b"a" * 55 + b"\x00\x01" + b"x" * 10_000)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("socks5://proxy", ProxyAddress(host="proxy", port=1080)),
        ("socks5h://10.1.2.3:9999", ProxyAddress(host="10.1.2.3", port=9999)),
        ("socks5://al%40ice:p%3Ass@[::1]:1081", ProxyAddress(host="::1", port=1081, username="al@ice", password="p:ss")),
    ],
)
def test_parse_proxy_url(url: str, expected: ProxyAddress) -> None:
    assert parse_proxy_url(url) == expected


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://proxy:8080", "socks5:// or socks5h://"),
        ("socks5://", "no proxy host"),
        ("socks5://proxy:99999", "Port out of range"),
        ("socks5://proxy:1080/path", "nothing after"),
        ("socks5://:pw@proxy", "user name must be 1..255 bytes"),
        (42, "must be a 'socks5://host:port' string"),
    ],
)
def test_bad_proxy_urls_fail_at_construction_naming_the_option(url: object, words: str) -> None:
    with pytest.raises(KafkaConfigurationError, match="proxy_url") as info:
        ClientConfig(proxy_url=url)  # type: ignore[arg-type]
    assert words in str(info.value)
    assert "pw" not in str(info.value)  # credentials never shown


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_tls_with_a_proxy_is_refused_at_construction(protocol: str) -> None:
    with pytest.raises(KafkaConfigurationError, match=f"proxy_url is not allowed with security_protocol='{protocol}'"):
        ClientConfig(proxy_url="socks5://proxy", security_protocol=protocol, sasl_mechanism="PLAIN",
                     sasl_plain_username="u", sasl_plain_password="p")


# --- the broker connection's TUNNEL step ---------------------------------------------------------


def test_connection_tunnels_then_sends_api_versions() -> None:
    conn = new_conn(tunnel=Socks5Handshake(NO_AUTH, "b1", 9092))
    conn.connection_made(T0)
    assert conn.state is ConnectionState.TUNNEL and conn.is_open
    assert conn.data_to_send() == b"\x05\x01\x00"
    conn.receive_data(b"\x05", T0)
    assert conn.data_to_send() == b""
    conn.receive_data(b"\x00", T0)
    assert conn.data_to_send() == b"\x05\x01\x00\x03\x02b1\x23\x84"
    conn.receive_data(OK_IPV4, T0)
    assert conn.state is ConnectionState.API_VERSIONS
    assert conn.data_to_send() == API_VERSIONS_V4  # the first Kafka bytes, only now


@pytest.mark.parametrize(
    ("reply", "error"),
    [(b"\x05\x00\x05\x01\x00\x01" + bytes(6), KafkaConnectionError), (b"\x00\x00", KafkaProtocolError)],
)
def test_a_refusing_or_garbage_proxy_closes_the_connection_with_that_error(
    reply: bytes, error: type[Exception]
) -> None:
    conn = new_conn(tunnel=Socks5Handshake(NO_AUTH, "b1", 9092))
    conn.connection_made(T0)
    conn.data_to_send()
    conn.receive_data(reply, T0)
    assert conn.state is ConnectionState.CLOSED and conn.needs_close_command
    assert isinstance(conn.error, error)


def test_the_setup_deadline_covers_the_tunnel() -> None:
    conn = new_conn(tunnel=Socks5Handshake(NO_AUTH, "b1", 9092))
    conn.connection_made(T0)
    assert conn.get_timer() == T0 + 10
    conn.handle_timer(T0 + 10)
    assert conn.state is ConnectionState.CLOSED and "setup did not finish" in str(conn.error)


def test_client_dials_the_proxy_and_tunnels_to_each_broker() -> None:
    client = Client(ClientConfig(bootstrap_servers="broker1:9092", proxy_url="socks5://u:pw@proxy:1081"),
                    now=T0, rng=random.Random(1))
    client.handle_timer(T0)
    (cmd,) = client.commands()
    assert cmd == Connect(node_id=-1, host="proxy", port=1081)
    client.connection_made(-1, T0)
    ((node, data),) = client.data_to_send()
    assert (node, data) == (-1, b"\x05\x02\x00\x02")
    client.receive_data(-1, b"\x05\x02", T0)
    assert client.data_to_send() == [(-1, b"\x01\x01u\x02pw")]
    client.receive_data(-1, b"\x01\x00", T0)
    assert client.data_to_send() == [(-1, CONNECT_BY_NAME)]
    client.receive_data(-1, b"\x05", T0)  # the reply in pieces, an IPv6 bound address
    client.receive_data(-1, b"\x00\x00\x04" + bytes(18), T0)
    ((_, data),) = client.data_to_send()
    assert data == API_VERSIONS_V4


@settings(max_examples=300)
@given(chunks=st.lists(st.binary(max_size=40), max_size=8), auth=st.booleans())
def test_any_proxy_bytes_end_in_done_a_named_error_or_waiting(chunks: list[bytes], auth: bool) -> None:
    """Hostile proxy bytes: only the documented errors escape, and nothing grows past one reply."""
    h = Socks5Handshake(WITH_AUTH if auth else NO_AUTH, "broker1", 9092)
    h.data_to_send()
    try:
        for chunk in chunks:
            h.receive_data(chunk)
            h.data_to_send()
            if h.done:
                break
    except (KafkaConnectionError, KafkaProtocolError, AuthenticationFailedError):
        return
    assert h.done or len(h._buf) <= 4 + 1 + 255 + 2


def test_fuzz_seed_corpus_runs_clean() -> None:
    """fuzz/fuzz_socks5.py over its committed seeds: each split agrees with its RFC 1928 reading."""
    harness = fuzz_harness("socks5")
    seeds = sorted((ROOT / "fuzz" / "corpus" / "socks5").iterdir())
    assert len(seeds) >= 5
    for seed in seeds:
        harness.test_one_input(seed.read_bytes())
    assert harness.expected(b"\x05\x00\x05\x00\x00\x01" + bytes(6), False, True) == "done"

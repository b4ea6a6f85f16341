"""Fuzz the SOCKS5 handshake (kproto/socks5.py) with hostile proxy replies in any split.

Run: python fuzz/fuzz_socks5.py -max_total_time=30 fuzz/corpus/socks5

Input: an options byte (credentials or not; the broker as a name, an IPv4 or
IPv6 literal, or a name too long for SOCKS5), a byte seeding how the rest is
cut into chunks (empty ones too), then the proxy's bytes. Invariants (an
AssertionError or any other exception is a finding):

- only ``KafkaProtocolError``, ``KafkaConnectionError`` and
  ``AuthenticationFailedError`` come out of ``receive_data``, and the same
  one as :func:`expected` (an independent reading of RFC 1928/1929) names
  for the bytes fed so far: the outcome does not depend on the split;
- ``done`` only when those bytes are exactly a method choice, the RFC 1929
  status when asked, and a well-formed success reply; what the machine
  wrote is the greeting, the credentials when chosen and the CONNECT;
- between calls the buffer holds at most the longest reply (262 bytes).
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.errors import AuthenticationFailedError, KafkaConnectionError, KafkaProtocolError
    from kproto.socks5 import ProxyAddress, Socks5Handshake

LONGEST_REPLY = 4 + 1 + 255 + 2
HOSTS = ("broker1", "10.1.2.3", "fe80::1", "b" * 256)
NO_AUTH = ProxyAddress(host="proxy", port=1080)
WITH_AUTH = ProxyAddress(host="proxy", port=1080, username="alice", password="pw")
WAIT, DONE = "wait", "done"


def expected(s: bytes, auth: bool, host_ok: bool) -> object:
    """What a proxy's bytes ``s`` (all of them so far) mean: WAIT, DONE or the error class."""
    if len(s) < 2:
        return WAIT
    if s[0] != 5:
        return KafkaProtocolError
    pos = 2
    if s[1] == 0xFF:
        return AuthenticationFailedError
    if s[1] == 2 and auth:
        if len(s) < 4:
            return WAIT
        if s[2] != 1:
            return KafkaProtocolError
        if s[3] != 0:
            return AuthenticationFailedError
        pos = 4
    elif s[1] != 0:
        return KafkaProtocolError
    if not host_ok:
        return KafkaConnectionError
    r = s[pos:]
    if len(r) < 5:
        return WAIT
    if r[0] != 5 or r[2] != 0:
        return KafkaProtocolError
    if r[1] != 0:
        return KafkaConnectionError
    size = {1: 10, 4: 22, 3: 7 + r[4]}.get(r[3])
    if size is None:
        return KafkaProtocolError
    if len(r) < size:
        return WAIT
    return DONE if len(r) == size else KafkaProtocolError


def chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = rng.choice((0, 1, 1, 2, 3, 5, 9, 64, 300))
        out.append(data[pos : pos + n])
        pos += n
    return out


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    opts, split, stream = data[0], data[1], data[2:]
    auth = bool(opts & 1)
    host = HOSTS[(opts >> 1) % len(HOSTS)]
    h = Socks5Handshake(WITH_AUTH if auth else NO_AUTH, host, 9092)
    sent = h.data_to_send()
    assert sent == (b"\x05\x02\x00\x02" if auth else b"\x05\x01\x00")
    fed = b""
    outcome: object = WAIT
    for chunk in chunks(stream, random.Random(split)):
        fed += chunk
        try:
            h.receive_data(chunk)
        except (KafkaProtocolError, KafkaConnectionError, AuthenticationFailedError) as exc:
            outcome = type(exc)
            assert not h.done
            break
        sent += h.data_to_send()
        assert len(h._buf) <= LONGEST_REPLY, f"{len(h._buf)} bytes buffered"
        if h.done:
            outcome = DONE
            break
    want = expected(fed, auth, len(host) <= 255)
    assert outcome is want, f"{fed.hex()}: the machine says {outcome}, RFC 1928 says {want}"
    if outcome is DONE:
        assert h.data_to_send() == b""
        assert b"\x05\x01\x00" in sent and (not auth or fed[1] != 2 or b"\x01\x05alice\x02pw" in sent)


def seeds() -> dict[str, bytes]:
    ok4 = b"\x05\x00\x00\x01\x0a\x00\x00\x01\x0f\xa0"
    return {
        "noauth-ipv4": b"\x00\x00\x05\x00" + ok4,
        "auth-domain": b"\x01\x07\x05\x02\x01\x00\x05\x00\x00\x03\x05proxy\x04\x38",
        "ipv6-target-ipv6-bound": b"\x04\x03\x05\x00\x05\x00\x00\x04" + bytes(18),
        "refused": b"\x02\x01\x05\x00\x05\x05\x00\x01" + bytes(6),
        "trailing": b"\x00\x05\x05\x00" + ok4 + b"\x00\x00\x00\x10",
        "long-bound-name": b"\x00\x09\x05\x00\x05\x00\x00\x03\xff" + b"a" * 255 + b"\x00\x01",
        "long-target": b"\x06\x00\x05\x00",
    }


if __name__ == "__main__":
    main(test_one_input, seeds)

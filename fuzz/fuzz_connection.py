"""Fuzz ``BrokerConnection.receive_data``: arbitrary broker bytes, whole and split.

Input layout: byte 0 picks the phase and the request in flight, byte 1 the
chunk size for the split run; the rest is the byte stream from the broker.

Phases:

- ``ready``: after a full handshake, with a request in flight (Metadata,
  Produce, Fetch, ListOffsets, FindCoordinator);
- ``api_versions``: the ApiVersions answer itself (KIP-511 fallback included);
- ``sasl``: after ApiVersions, with a SCRAM-SHA-256 :class:`SaslAuthenticator`
  waiting for SaslHandshake / SaslAuthenticate answers.

The stream is fed whole and in chunks. Invariants: ``receive_data`` never
raises; a closed connection's error is a ``KafkaProtocolError`` (bad bytes),
or, in the handshake phases, the documented handshake errors
(``UnsupportedVersionError``, a broker error code, ``AuthenticationFailedError``);
every request completes at most once, with a response or one of those
errors; and feeding whole or in chunks ends in the same state with the same
outcomes.

Run::

    python fuzz/fuzz_connection.py -max_total_time=30 fuzz/corpus/connection
    python fuzz/fuzz_connection.py --write-seeds fuzz/corpus/connection
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import instrumented, main  # noqa: E402

with instrumented(__name__):
    from kproto.connection import BrokerConnection, ConnectionConfig, ConnectionState
    from kproto.errors import (
        AuthenticationFailedError,
        BrokerResponseError,
        KafkaError,
        KafkaProtocolError,
        UnsupportedVersionError,
    )
    from kproto.protocol.messages import (
        ApiVersionsResponse,
        FetchRequest,
        FindCoordinatorRequest,
        ListOffsetsRequest,
        MetadataRequest,
        MetadataResponse,
        ProduceRequest,
        SaslAuthenticateResponse,
        SaslHandshakeResponse,
    )
    from kproto.protocol.messages.api_versions import ApiVersion
    from kproto.sasl import SaslAuthenticator, Scram

#: Small on purpose: the fuzzer should reach the frame-size bound often.
MAX_RESPONSE = 1 << 14
CONFIG = ConnectionConfig(
    client_id="fuzz",
    client_software_name="kproto",
    client_software_version="0",
    max_response_size=MAX_RESPONSE,
)
#: The broker's ranges in the ready and sasl phases.
KEYS = [(0, 3, 9), (1, 4, 13), (2, 1, 8), (3, 0, 12), (10, 0, 4), (17, 0, 1), (18, 0, 3), (36, 0, 2)]
REQUESTS: list[Any] = [
    MetadataRequest,
    ProduceRequest,
    FetchRequest,
    ListOffsetsRequest,
    FindCoordinatorRequest,
]
PHASES = ("ready", "api_versions", "sasl")
T0 = 100.0


def _frame(cid: int, body: bytes, flexible_header: bool) -> bytes:
    payload = cid.to_bytes(4, "big") + (b"\0" if flexible_header else b"") + body
    return len(payload).to_bytes(4, "big") + payload


def _api_versions_frame(cid: int) -> bytes:
    resp = ApiVersionsResponse(
        api_keys=[ApiVersion(api_key=k, min_version=lo, max_version=hi) for k, lo, hi in KEYS]
    )
    return _frame(cid, resp.encode(3), False)  # ApiVersions answers use header v0 (KIP-511)


def _run_completions(conn: BrokerConnection) -> None:
    while conn.completions:
        done, conn.completions = conn.completions, []
        for callback, response, error in done:
            callback(response, error)


def _connection(phase: str, which: int) -> tuple[BrokerConnection, list[tuple[Any, KafkaError | None]]]:
    """A connection in ``phase`` with a request in flight, and its outcome list."""
    outcomes: list[tuple[Any, KafkaError | None]] = []
    auth = None
    if phase == "sasl":
        nonce = f"fuzznonce{which}"
        auth = SaslAuthenticator(Scram("SCRAM-SHA-256", "user", "pencil", lambda: nonce))
    conn = BrokerConnection(1, "b", 9092, config=CONFIG, now=T0, authenticator=auth)
    conn.start_connect(T0)
    conn.connection_made(T0)
    conn.data_to_send()
    request = REQUESTS[which % len(REQUESTS)]()
    conn.send(request, callback=lambda r, e: outcomes.append((r, e)), now=T0)
    if phase != "api_versions":
        conn.receive_data(_api_versions_frame(0), T0)
        _run_completions(conn)
        conn.data_to_send()
    return conn, outcomes


def _allowed(error: KafkaError | None, phase: str) -> bool:
    if error is None or isinstance(error, KafkaProtocolError):
        return True
    if phase == "ready":
        return False
    return isinstance(error, (UnsupportedVersionError, BrokerResponseError, AuthenticationFailedError))


def _feed(phase: str, which: int, stream: bytes, chunk: int) -> tuple[ConnectionState, list[str], str]:
    conn, outcomes = _connection(phase, which)
    for i in range(0, len(stream), chunk):
        if conn.state is ConnectionState.CLOSED:
            break
        conn.receive_data(stream[i : i + chunk], T0 + 1)
        _run_completions(conn)
        conn.data_to_send()
    _run_completions(conn)
    if conn.state is ConnectionState.CLOSED and not _allowed(conn.error, phase):
        raise AssertionError(f"closed with an undocumented error: {conn.error!r}")
    if len(outcomes) > 1:
        raise AssertionError("a request completed twice")
    for response, error in outcomes:
        if (response is None) == (error is None):
            raise AssertionError("a completion needs exactly one of response and error")
        if not _allowed(error, phase):
            raise AssertionError(f"request failed with an undocumented error: {error!r}")
    kinds = [type(e).__name__ if e is not None else type(r).__name__ for r, e in outcomes]
    return conn.state, kinds, type(conn.error).__name__


def test_one_input(data: bytes) -> None:
    """One fuzz iteration; raises only on a bug."""
    if len(data) < 2:
        return
    phase = PHASES[data[0] % len(PHASES)]
    which = data[0] // len(PHASES)
    chunk = 1 + data[1] % 17
    stream = data[2:]
    whole = _feed(phase, which, stream, max(len(stream), 1))
    split = _feed(phase, which, stream, chunk)
    # In the sasl phase the authenticator sends its next request from a
    # callback the owner runs after receive_data returns, so a whole stream's
    # second answer meets nothing in flight (a protocol error) while a chunked
    # one may not: both outcomes are checked above, equality only elsewhere.
    if phase != "sasl" and whole != split:
        raise AssertionError(f"outcome depends on chunking: {whole} vs {split}")


def seed_inputs() -> dict[str, bytes]:
    """Valid answers for each phase, plus a few near misses."""
    seeds: dict[str, bytes] = {}
    meta = _frame(1, MetadataResponse().encode(12), True)
    for which in range(len(REQUESTS)):
        seeds[f"ready-{which}-metadata"] = bytes([which * 3 + 0, 3]) + meta
    seeds["ready-truncated"] = bytes([0, 1]) + meta[:-3]
    seeds["ready-oversize"] = bytes([0, 2]) + (MAX_RESPONSE + 1).to_bytes(4, "big") + b"\0" * 8
    seeds["api-versions-ok"] = bytes([1, 5]) + _api_versions_frame(0)
    seeds["api-versions-unsupported"] = bytes([1, 2]) + bytes.fromhex(
        "0000001000000000002300000001001200000002"
    )
    hs = _frame(1, SaslHandshakeResponse(mechanisms=["SCRAM-SHA-256"]).encode(1), False)
    rng = random.Random(0)
    nonce = "fuzznonce0" + "".join(rng.choice("abcdef") for _ in range(8))
    first = f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode()
    auth1 = _frame(2, SaslAuthenticateResponse(auth_bytes=first).encode(2), True)
    auth_err = _frame(2, SaslAuthenticateResponse(error_code=58, error_message="bad").encode(2), True)
    seeds["sasl-handshake"] = bytes([2, 4]) + hs
    seeds["sasl-server-first"] = bytes([2, 7]) + hs + auth1
    seeds["sasl-error"] = bytes([2, 3]) + hs + auth_err
    seeds["sasl-unsupported-mechanism"] = bytes([2, 9]) + _frame(
        1, SaslHandshakeResponse(error_code=33, mechanisms=["PLAIN"]).encode(1), False
    )
    return seeds


if __name__ == "__main__":
    main(test_one_input, seed_inputs)

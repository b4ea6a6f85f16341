"""SASL authentication (KIP-43, KIP-152) as a pure :class:`~kproto.connection.Authenticator`.

Theory of operation
-------------------

A :class:`SaslAuthenticator` runs on one connection, between ApiVersions and
READY (``BrokerConnection`` calls :meth:`SaslAuthenticator.start`):

1. ``SaslHandshake`` (v1) names the mechanism. A broker that does not offer
   it answers ``UNSUPPORTED_SASL_MECHANISM`` with the ones it has.
2. ``SaslAuthenticate`` requests carry the mechanism's tokens (KIP-152, the
   Kafka-framed form; brokers from 1.0 on have it, so from 2.1 on all do)
   until the mechanism says it is done. The broker's ``error_code`` /
   ``error_message`` end the exchange with an error.
3. ``authentication_done(None)`` makes the connection READY; any failure
   ends with ``authentication_done(AuthenticationFailedError)``, which
   closes the connection and fails whatever was queued on it. The client
   treats that error as fatal for the node (no retry storm, see
   ``kproto.client``).

Mechanisms are small state machines over bytes (:class:`Mechanism`):
``initial()`` gives the first token and ``challenge(data)`` the next one, or
None when the exchange is complete. Here: PLAIN (RFC 4616), SCRAM-SHA-256 and
SCRAM-SHA-512 (RFC 5802, RFC 7677; the server signature is verified) and
OAUTHBEARER (RFC 7628, the client initial response with a token from a user
provider).

Secrets. Passwords and tokens are held only in objects whose ``repr`` hides
them, and no message of an error raised or reported here contains one (the
broker's ``error_message`` is passed on: brokers do not echo credentials).

Randomness. SCRAM needs a client nonce; it comes from an injected
``nonce()`` callable (the client builds one from its seeded
``random.Random``), never from ``os.urandom`` or ``secrets`` inside kproto.
A transport that wants an unpredictable nonce hands the client a
``random.SystemRandom``-seeded generator or its own ``nonce`` factory.

GSSAPI (Kerberos, RFC 4752): :class:`Gssapi` is the SASL side over a
:class:`GssapiContext`, a GSS-API initiator context built per connection
for ``sasl_kerberos_service_name@host`` (or ``sasl_kerberos_name``). The
default context (:mod:`kproto._gssapi`, the ``kproto[gssapi]`` extra) wraps
the ``gssapi`` package; its first step may ask the KDC for a service ticket
(libkrb5's own I/O, as in every Kerberos client), so an embedder may pass
its own ``sasl_gssapi_context_factory`` instead.

Not here: KIP-368 re-authentication (``session_lifetime_ms`` is ignored: the
broker closes the connection when the session ends and the client
reconnects).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import random
import stringprep
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kproto.connection import BrokerConnection, ConnectionState
from kproto.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kproto.protocol.messages import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

__all__ = [
    "SaslOptions",
    "config_authenticator",
    "MECHANISMS",
    "Gssapi",
    "GssapiContext",
    "Mechanism",
    "OAuthBearer",
    "Plain",
    "SaslAuthenticator",
    "authenticator_for",
    "Scram",
    "check_secret_types",
    "make_mechanism",
    "nonce_from_rng",
    "saslprep",
    "TokenSource",
]

#: Mechanism names this module implements.
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")

#: Kafka's minimum SCRAM iteration count (ScramMechanism.minIterations); a
#: server asking for fewer is refused, as the Java client does.
SCRAM_MIN_ITERATIONS = 4096
#: Upper bound on iterations we are willing to compute (a hostile server could
#: otherwise make the client spin); Kafka's own maximum is 16384.
SCRAM_MAX_ITERATIONS = 16384
#: Bytes of randomness in a SCRAM client nonce (32 base64 characters).
_NONCE_BYTES = 24


class Mechanism(Protocol):
    """One SASL mechanism's client side: tokens in, tokens out."""

    #: The name sent in SaslHandshake.
    name: str

    def initial(self) -> bytes:
        """The first token (the client speaks first in every mechanism here)."""

    def challenge(self, data: bytes) -> bytes | None:
        """The next token after the server's ``data``; None when complete.

        Raises:
            AuthenticationFailedError: the server's answer is wrong or an error.
        """


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep (stored strings): map, NFKC, refuse prohibited characters.

    Raises:
        AuthenticationFailedError: the string holds a prohibited character (the
            message names its position and category, never the string).
    """
    if text.isascii() and text.isprintable():
        return text  # identity for printable ASCII, the common case
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    normal = unicodedata.normalize("NFKC", mapped)
    checks = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    for i, ch in enumerate(normal):
        for check in checks:
            if check(ch):
                raise AuthenticationFailedError(
                    f"SASLprep: prohibited character at position {i} ({check.__name__[3:]})"
                )
    # RFC 3454 section 6: bidirectional strings.
    if any(stringprep.in_table_d1(ch) for ch in normal):
        if any(stringprep.in_table_d2(ch) for ch in normal) or not (
            stringprep.in_table_d1(normal[0]) and stringprep.in_table_d1(normal[-1])
        ):
            raise AuthenticationFailedError("SASLprep: invalid bidirectional text")
    return normal


class Plain:
    """PLAIN (RFC 4616): ``authzid NUL authcid NUL passwd`` in one message."""

    name = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password

    def __repr__(self) -> str:
        return "<Plain username=*** password=***>"

    def initial(self) -> bytes:
        return b"\0" + self._username.encode("utf-8") + b"\0" + self._password.encode("utf-8")

    def challenge(self, data: bytes) -> bytes | None:
        # A broker answers an empty token on success; anything comes with an error code.
        return None


def _scram_name(name: str) -> str:
    """RFC 5802 section 5.1: ``=`` and ``,`` in a saslname are escaped."""
    return name.replace("=", "=3D").replace(",", "=2C")


def nonce_from_rng(rng: random.Random) -> Callable[[], str]:
    """A SCRAM nonce factory drawing from ``rng`` (a ``random.Random``).

    The nonce is 24 random bytes in base64: printable, no ``,`` (RFC 5802).
    """

    def nonce() -> str:
        return base64.b64encode(rng.getrandbits(_NONCE_BYTES * 8).to_bytes(_NONCE_BYTES, "big")).decode()

    return nonce


class Scram:
    """SCRAM-SHA-256 / SCRAM-SHA-512 client (RFC 5802, RFC 7677), no channel binding.

    States: ``initial`` → client-first sent → ``challenge(server-first)`` →
    client-final sent → ``challenge(server-final)`` → complete (server
    signature verified). Any other call order is a protocol error.
    """

    _HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}

    def __init__(self, name: str, username: str, password: str, nonce: Callable[[], str]) -> None:
        if name not in self._HASHES:
            raise ValueError(f"not a SCRAM mechanism: {name!r}")
        self.name = name
        self._hash = self._HASHES[name]
        self._username = username
        self._password = password
        self._nonce_factory = nonce
        self._step = 0
        self._client_nonce = ""
        self._client_first_bare = ""
        self._server_signature = b""

    def __repr__(self) -> str:
        return f"<Scram {self.name} step={self._step} username=*** password=***>"

    def _fail(self, why: str) -> AuthenticationFailedError:
        self._step = -1
        return AuthenticationFailedError(f"{self.name}: {why}")

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self._hash).digest()

    def initial(self) -> bytes:
        if self._step != 0:
            raise self._fail("initial() called twice")
        self._client_nonce = nonce = self._nonce_factory()
        if not nonce or "," in nonce or not nonce.isprintable():
            raise self._fail("the nonce factory returned an invalid nonce")
        self._client_first_bare = f"n={_scram_name(saslprep(self._username))},r={nonce}"
        self._step = 1
        return ("n,," + self._client_first_bare).encode("utf-8")

    def challenge(self, data: bytes) -> bytes | None:
        if self._step == 1:
            return self._server_first(data)
        if self._step == 2:
            self._server_final(data)
            return None
        raise self._fail("unexpected server message")

    def _server_first(self, data: bytes) -> bytes:
        try:
            server_first = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail("server-first-message is not UTF-8") from None
        attrs = _scram_attributes(server_first)
        if "m" in attrs:
            raise self._fail("server requires an unsupported SCRAM extension")
        nonce, salt_b64, iter_text = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or iter_text is None:
            raise self._fail("server-first-message lacks r, s or i")
        if not nonce.startswith(self._client_nonce) or len(nonce) <= len(self._client_nonce):
            raise self._fail("server nonce does not extend the client nonce")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
            iterations = int(iter_text)
        except ValueError:
            raise self._fail("bad salt or iteration count") from None
        if not SCRAM_MIN_ITERATIONS <= iterations <= SCRAM_MAX_ITERATIONS:
            raise self._fail(
                f"iteration count {iterations} outside [{SCRAM_MIN_ITERATIONS}, {SCRAM_MAX_ITERATIONS}]"
            )
        salted = hashlib.pbkdf2_hmac(self._hash, saslprep(self._password).encode("utf-8"), salt, iterations)
        client_final_bare = f"c=biws,r={nonce}"  # biws = base64("n,,"): no channel binding
        auth_message = f"{self._client_first_bare},{server_first},{client_final_bare}".encode()
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        client_signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        server_key = self._hmac(salted, b"Server Key")
        self._server_signature = self._hmac(server_key, auth_message)
        self._step = 2
        return f"{client_final_bare},p={base64.b64encode(proof).decode()}".encode()

    def _server_final(self, data: bytes) -> None:
        try:
            attrs = _scram_attributes(bytes(data).decode("utf-8"))
        except UnicodeDecodeError:
            raise self._fail("server-final-message is not UTF-8") from None
        if "e" in attrs:
            raise self._fail(f"server error {attrs['e']!r}")
        try:
            verifier = base64.b64decode(attrs.get("v", ""), validate=True)
        except ValueError:
            raise self._fail("bad server signature encoding") from None
        if not verifier or not hmac.compare_digest(verifier, self._server_signature):
            raise self._fail("server signature does not verify (not the server that holds our credentials)")
        self._step = 3

    @property
    def complete(self) -> bool:
        """The server's signature was verified."""
        return self._step == 3


def _scram_attributes(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        if len(part) >= 2 and part[1] == "=":
            out.setdefault(part[0], part[2:])
    return out


class TokenSource(Protocol):
    """An OAUTHBEARER token provider object (kafka-python's ``AbstractTokenProvider``);
    it may also have ``extensions() -> dict[str, str]`` (KIP-342)."""

    def token(self) -> object:
        """The token, a non-empty str (an awaitable of one with the async facades, which
        resolve it); anything else fails the authentication (checked when called)."""
        ...


#: ``token_provider``: a callable returning the token, or a :class:`TokenSource`
#: (what the token may be: :meth:`TokenSource.token`).
TokenProvider = Callable[[], object] | TokenSource


class OAuthBearer:
    """OAUTHBEARER (RFC 7628) client initial response with a provider's token."""

    name = "OAUTHBEARER"

    def __init__(self, token_provider: TokenProvider) -> None:
        self._provider: Any = token_provider  # a callable or a TokenSource: initial() tells them apart
        self._failed = False

    def __repr__(self) -> str:
        return "<OAuthBearer token=***>"

    def initial(self) -> bytes:
        provider = self._provider
        get = getattr(provider, "token", None)
        try:
            token = get() if callable(get) else provider()
        except KafkaError:
            raise
        except Exception as exc:
            raise AuthenticationFailedError(
                f"OAUTHBEARER: the token provider raised {type(exc).__name__}"
            ) from exc
        if not isinstance(token, str) or not token:
            if hasattr(token, "__await__"):
                close = getattr(token, "close", None)
                if callable(close):
                    close()  # do not leave a never-awaited coroutine behind
                raise AuthenticationFailedError(
                    "OAUTHBEARER: the token provider is async; use an async facade, which resolves it"
                )
            raise AuthenticationFailedError(
                f"OAUTHBEARER: the token provider returned {type(token).__name__}, not a non-empty str"
            )
        extensions: Mapping[str, str] = {}
        ext = getattr(provider, "extensions", None)
        if callable(ext):
            extensions = ext() or {}
        ext_text = "".join(f"\x01{k}={v}" for k, v in sorted(extensions.items()) if k != "auth")
        return f"n,,\x01auth=Bearer {token}{ext_text}\x01\x01".encode()

    def challenge(self, data: bytes) -> bytes | None:
        if not data:
            return None
        if self._failed:
            raise AuthenticationFailedError("OAUTHBEARER: the server refused the token")
        # RFC 7628 3.2.2: an error challenge (JSON); answer %x01 and the server fails.
        self._failed = True
        return b"\x01"


class GssapiContext(Protocol):
    """A GSS-API initiator security context (Kerberos), as the ``gssapi`` package offers one."""

    @property
    def complete(self) -> bool:
        """The context is established."""

    def step(self, token: bytes | None) -> bytes | None:
        """Feed the server's token (None first); the next token to send, if any."""

    def unwrap(self, data: bytes) -> bytes:
        """A message the server wrapped, checked and opened."""

    def wrap(self, data: bytes) -> bytes:
        """``data`` signed for the server (integrity, no confidentiality)."""


#: ``factory(target) -> GssapiContext`` for the service principal ``target``
#: (``service@host`` host-based, or ``sasl_kerberos_name`` as given).
GssapiContextFactory = Callable[[str], GssapiContext]
#: RFC 4752 3.3 security layers: 1 = none (the only one Kafka supports).
_GSSAPI_NO_SECURITY_LAYER = 1


class Gssapi:
    """GSSAPI (RFC 4752): the Kerberos context exchange, then the security layer choice."""

    name = "GSSAPI"

    def __init__(self, context: GssapiContext) -> None:
        self._ctx = context
        #: 0: context being established; 1: waiting for the security layer offer; 2: answered it.
        self._stage = 0

    def __repr__(self) -> str:
        return "<Gssapi>"

    def _step(self, token: bytes | None) -> bytes:
        try:
            out = self._ctx.step(token)
        except KafkaError:
            raise
        except Exception as exc:  # gssapi.exceptions.GSSError: no ticket, clock skew, wrong principal...
            raise AuthenticationFailedError(f"GSSAPI: {type(exc).__name__}: {exc}") from exc
        if self._ctx.complete:
            self._stage = 1
        return out or b""  # RFC 4752 3.1: an empty response when GSS-API gives no token

    def initial(self) -> bytes:
        return self._step(None)

    def challenge(self, data: bytes) -> bytes | None:
        if self._stage == 0:
            return self._step(data)
        if self._stage == 2:
            if data:
                raise AuthenticationFailedError(f"GSSAPI: {len(data)} unexpected bytes after the exchange")
            return None
        try:
            offer = self._ctx.unwrap(data)
        except Exception as exc:
            raise AuthenticationFailedError(
                f"GSSAPI: the security layer offer did not unwrap: {exc}"
            ) from exc
        if len(offer) != 4 or not offer[0] & _GSSAPI_NO_SECURITY_LAYER:
            raise AuthenticationFailedError(
                "GSSAPI: the server offers no 'no security layer' option (RFC 4752)"
            )
        self._stage = 2
        # Layer "none", the server's maximum message size echoed, and no authorization id
        # (the authenticated principal is the identity, as the Java client does).
        return self._ctx.wrap(bytes([_GSSAPI_NO_SECURITY_LAYER]) + bytes(offer[1:4]))


def gssapi_target(
    host: str,
    *,
    service_name: str | None = "kafka",
    kerberos_name: str | None = None,
    domain_name: str | None = None,
) -> str:
    """The service principal to authenticate to (kafka-python's rules).

    ``sasl_kerberos_name`` as given; else ``sasl_kerberos_service_name@host``,
    with ``sasl_kerberos_domain_name`` in place of the broker's host when set.
    """
    if kerberos_name:
        return str(kerberos_name)
    return f"{service_name or 'kafka'}@{domain_name or host}"


def check_secret_types(
    *, username: object = None, password: object = None, token_provider: object = None
) -> None:
    """Wrong-typed credentials fail here, at construction, not at the first connect.

    Raises:
        ValueError: naming the option and what it must be; never the value
            (a password given as bytes is still a password).
    """
    for option, value in (("sasl_plain_username", username), ("sasl_plain_password", password)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{option} must be a str or None, got a {type(value).__name__}")
    if token_provider is not None:
        get = getattr(token_provider, "token", None)
        if not callable(get) and (get is not None or not callable(token_provider)):
            raise ValueError(
                "sasl_oauth_token_provider must have a token() method (or be a callable) returning "
                f"the token as a str, got a {type(token_provider).__name__}"
            )


def make_mechanism(
    name: str,
    *,
    username: str | None = None,
    password: str | None = None,
    token_provider: TokenProvider | None = None,
    nonce: Callable[[], str] | None = None,
    gssapi_context: Callable[[], GssapiContext] | None = None,
    check_only: bool = False,
) -> Mechanism:
    """Build the client side of mechanism ``name``.

    ``gssapi_context`` builds GSSAPI's context; without one the mechanism is
    a placeholder for a configuration check (``check_only``: is the
    ``gssapi`` package importable).

    Raises:
        ValueError: unknown mechanism, missing or wrong-typed credentials for
            it (the message names the option and what it must be, never a value).
        KafkaConfigurationError: GSSAPI without the ``gssapi`` package.
    """
    check_secret_types(username=username, password=password, token_provider=token_provider)
    upper = (name or "").upper()
    if upper == "PLAIN" or upper.startswith("SCRAM-"):
        if username is None or password is None:
            raise ValueError(f"sasl_mechanism={upper!r} needs sasl_plain_username and sasl_plain_password")
        if upper == "PLAIN":
            return Plain(username, password)
        if upper in Scram._HASHES:
            if nonce is None:
                raise ValueError("SCRAM needs a nonce factory")
            return Scram(upper, username, password, nonce)
    if upper == "OAUTHBEARER":
        if token_provider is None:
            raise ValueError("sasl_mechanism='OAUTHBEARER' needs sasl_oauth_token_provider")
        return OAuthBearer(token_provider)
    if upper == "GSSAPI":
        if gssapi_context is None:
            if check_only:
                from kproto._gssapi import check_available

                check_available()  # at construction: the extra is installed
            return Gssapi(_NoContext())
        return Gssapi(gssapi_context())
    raise ValueError(f"sasl_mechanism must be one of {', '.join(MECHANISMS)}, got {name!r}")


class _NoContext:
    """Stands in for a context when a configuration is only being checked."""

    complete = False

    def step(self, token: bytes | None) -> bytes | None:
        raise AuthenticationFailedError("GSSAPI: no context (configuration check only)")

    def unwrap(self, data: bytes) -> bytes:
        raise AuthenticationFailedError("GSSAPI: no context")

    wrap = unwrap


_HANDSHAKE_VERSION = 1  # v1: tokens travel in SaslAuthenticate (KIP-152)
_UNSUPPORTED_SASL_MECHANISM = UnsupportedSaslMechanismError.errno
_ILLEGAL_SASL_STATE = IllegalSaslStateError.errno
_SASL_AUTHENTICATION_FAILED = SaslAuthenticationFailedError.errno


class SaslAuthenticator:
    """The :class:`~kproto.connection.Authenticator` for one connection attempt.

    Args:
        mechanism: a fresh mechanism object (they are single-use).
    """

    def __init__(self, mechanism: Mechanism) -> None:
        self._mechanism = mechanism
        self._conn: BrokerConnection | None = None
        self._now = 0.0
        self.done = False

    def __repr__(self) -> str:
        return f"<SaslAuthenticator {self._mechanism.name}>"

    def start(self, connection: BrokerConnection, now: float) -> None:
        """Send SaslHandshake for our mechanism."""
        self._conn = connection
        self._now = now
        version = connection.api_version(SaslHandshakeRequest.API_KEY)
        if version is None or version < _HANDSHAKE_VERSION:
            self._finish(
                AuthenticationFailedError(
                    f"node {connection.node_id} does not support SaslHandshake v1 (KIP-152); "
                    "brokers before Kafka 1.0 are not supported for SASL"
                )
            )
            return
        connection.send_handshake_request(
            SaslHandshakeRequest(mechanism=self._mechanism.name), callback=self._on_handshake, now=now
        )

    def _finish(self, error: KafkaError | None) -> None:
        self.done = True
        conn = self._conn
        assert conn is not None
        conn.authentication_done(error, self._current_now())

    def _current_now(self) -> float:
        # Handshake callbacks carry no ``now``; the connection saw the input
        # that completed them, so its clock is the current one.
        now: float = getattr(self._conn, "now", self._now)
        return now

    def _authenticating(self) -> bool:
        # Callbacks run after receive_data returns: a later frame in the same
        # chunk may have closed the connection meanwhile (found by fuzzing).
        conn = self._conn
        return conn is not None and conn.state is ConnectionState.AUTHENTICATING

    def _where(self) -> str:
        conn = self._conn
        assert conn is not None
        return f"node {conn.node_id} ({conn.host}:{conn.port})"

    def _on_handshake(self, response: SaslHandshakeResponse | None, error: KafkaError | None) -> None:
        if error is not None or not self._authenticating():
            return  # the connection failed (and reported it), maybe after this answer arrived  # the connection failed and already reported it
        assert isinstance(response, SaslHandshakeResponse)
        if response.error_code == _UNSUPPORTED_SASL_MECHANISM:
            offered = ", ".join(response.mechanisms) or "none"
            self._finish(
                AuthenticationFailedError(
                    f"{self._where()} does not offer SASL mechanism {self._mechanism.name} (it offers: {offered})"
                )
            )
            return
        if response.error_code != 0:
            self._finish(
                AuthenticationFailedError(
                    f"SaslHandshake to {self._where()} failed with error code {response.error_code}"
                )
            )
            return
        try:
            token = self._mechanism.initial()
        except AuthenticationFailedError as exc:
            self._finish(exc)
            return
        self._send(token)

    def _send(self, token: bytes) -> None:
        assert self._conn is not None
        self._conn.send_handshake_request(
            SaslAuthenticateRequest(auth_bytes=token), callback=self._on_authenticate, now=self._current_now()
        )

    def _on_authenticate(self, response: SaslAuthenticateResponse | None, error: KafkaError | None) -> None:
        if error is not None or not self._authenticating():
            return  # the connection failed (and reported it), maybe after this answer arrived
        assert isinstance(response, SaslAuthenticateResponse)
        if response.error_code != 0:
            detail = f": {response.error_message}" if response.error_message else ""
            self._finish(
                AuthenticationFailedError(
                    f"SASL {self._mechanism.name} authentication to {self._where()} failed "
                    f"(error code {response.error_code}){detail}"
                )
            )
            return
        try:
            token = self._mechanism.challenge(bytes(response.auth_bytes))
        except AuthenticationFailedError as exc:
            self._finish(AuthenticationFailedError(f"SASL authentication to {self._where()} failed: {exc}"))
            return
        if token is None:
            self._finish(None)
        else:
            self._send(token)


def authenticator_for(
    security_protocol: str,
    mechanism: str | None,
    *,
    username: str | None,
    password: str | None,
    token_provider: TokenProvider | None,
    nonce: Callable[[], str],
    gssapi_context: Callable[[], GssapiContext] | None = None,
) -> SaslAuthenticator | None:
    """A fresh SASL authenticator for one connection when ``security_protocol`` is SASL_*, else None.

    ``gssapi_context`` builds the GSSAPI context of this connection (its target principal bound).
    """
    if not security_protocol.upper().startswith("SASL_"):
        return None
    return SaslAuthenticator(
        make_mechanism(
            mechanism or "",
            username=username,
            password=password,
            token_provider=token_provider,
            nonce=nonce,
            gssapi_context=gssapi_context,
        )
    )


class SaslOptions(Protocol):
    """The client options :func:`config_authenticator` reads (``kproto.config.ClientConfig`` has them)."""

    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str | None: ...
    @property
    def sasl_plain_username(self) -> str | None: ...
    @property
    def sasl_plain_password(self) -> str | None: ...
    @property
    def sasl_oauth_token_provider(self) -> TokenProvider | None: ...
    @property
    def sasl_nonce_factory(self) -> Callable[[], str] | None: ...
    @property
    def sasl_kerberos_service_name(self) -> str: ...
    @property
    def sasl_kerberos_name(self) -> str | None: ...
    @property
    def sasl_kerberos_domain_name(self) -> str | None: ...
    @property
    def sasl_gssapi_context_factory(self) -> GssapiContextFactory | None: ...


def config_authenticator(cfg: SaslOptions, host: str, rng: random.Random) -> SaslAuthenticator | None:
    """A fresh authenticator for a connection to ``host`` from the client's options (None: no SASL)."""
    gssapi_context: Callable[[], GssapiContext] | None = None
    if (cfg.sasl_mechanism or "").upper() == "GSSAPI":
        target = gssapi_target(host, service_name=cfg.sasl_kerberos_service_name,
                               kerberos_name=cfg.sasl_kerberos_name, domain_name=cfg.sasl_kerberos_domain_name)
        if cfg.sasl_gssapi_context_factory is not None:
            gssapi_context = functools.partial(cfg.sasl_gssapi_context_factory, target)
        else:
            from kproto._gssapi import context_factory  # the optional ``gssapi`` package, only when asked for

            gssapi_context = functools.partial(context_factory, target)
    return authenticator_for(
        cfg.security_protocol, cfg.sasl_mechanism, username=cfg.sasl_plain_username,
        password=cfg.sasl_plain_password, token_provider=cfg.sasl_oauth_token_provider,
        nonce=cfg.sasl_nonce_factory or nonce_from_rng(rng), gssapi_context=gssapi_context,
    )  # fmt: skip

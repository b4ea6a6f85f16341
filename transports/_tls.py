"""TLS and the security options the transports share (producer and consumer facades).

The core never sees TLS: a driver wraps its byte stream and reports the
connection open only once the TLS handshake is done. What lives here:

- :data:`SECURITY_OPTIONS`, the facade-level option names, and
  :func:`security_from_configs`, which validates them into a
  :class:`Security` (the ``ssl.SSLContext`` built once, the SASL options for
  the core's ``ClientConfig``);
- :func:`make_ssl_context`: TLS 1.2 minimum, certificates and host names
  verified by default, optional client certificate;
- :func:`tls_failure`: which TLS errors are authentication failures.

Error policy. A certificate that does not verify (unknown CA, wrong host
name, expired), an alert from the server during the handshake (it wants a
client certificate, it refused ours) or a server that does not speak TLS is
not going to fix itself by reconnecting: the driver reports it as
:class:`TLSAuthenticationError`, a subclass of
:class:`kproto.errors.AuthenticationFailedError` (as the Java client's
``SslAuthenticationException`` is an ``AuthenticationException``), which the
client core treats as fatal for that node: the requests on it fail at once
with that error (not retriable, so the producer fails the batch instead of
retrying) and the node waits the longest reconnect backoff. A TLS connection
that closes or breaks *after* application data flowed is an ordinary
connection loss (retriable). With TLS 1.3 the server checks the client
certificate after the client finished its handshake; its alert then arrives
with the first read, before any Kafka response: still an authentication
failure by the rule above.

Wiring a driver (what the producer and consumer drivers do):

- options: ``security_from_configs(configs, allow_async_provider=...)``
  gives ``Security``; :func:`client_security_kwargs` turns it into the
  ``ClientConfig`` keyword arguments (``Security.sasl`` and a
  ``sasl_nonce_factory`` on ``random.SystemRandom`` for unpredictable SCRAM
  nonces); ``Security.token_cache``, if set, is awaited (``refresh()``)
  before each connection by an async driver;
- sync: ``ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)``
  after the TCP connect, ``do_handshake()`` until done, then ``connection_made``;
- asyncio: ``loop.create_connection(..., ssl=ctx, server_hostname=host)``;
- trio: ``trio.SSLStream(tcp, ctx, server_hostname=host)`` + ``do_handshake()``;
- errors: map with ``tls_failure(exc, host, port)`` until the first
  application bytes arrived (:func:`lost_error` does it for a closed
  connection, unwrapping trio's ``BrokenResourceError``), and pass the
  result to ``connection_lost``; waiting facade calls raise the client's
  ``auth_error`` at once (``transports._common.auth_failure``).
"""

from __future__ import annotations

import inspect
import os
import ssl
from collections.abc import Mapping
from typing import Any

from kproto.errors import AuthenticationFailedError, KafkaConfigurationError, KafkaConnectionError

__all__ = [
    "SECURITY_OPTIONS",
    "SSL_OPTIONS",
    "SASL_OPTIONS",
    "AsyncTokenCache",
    "Security",
    "TLSAuthenticationError",
    "client_security_kwargs",
    "handshake_closed",
    "lost_error",
    "make_ssl_context",
    "security_from_configs",
    "tls_failure",
]

#: TLS options (facade level; the core never sees them).
SSL_OPTIONS = frozenset(
    {
        "ssl_context",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_check_hostname",
        "ssl_crlfile",
        "ssl_ciphers",
    }
)
#: SASL options (handed to the core's ``ClientConfig``).
SASL_OPTIONS = frozenset(
    {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password", "sasl_oauth_token_provider"}
)
#: Every security option a facade accepts.
SECURITY_OPTIONS = SSL_OPTIONS | SASL_OPTIONS | {"security_protocol"}

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


class TLSAuthenticationError(AuthenticationFailedError):
    """The TLS handshake failed: the certificate does not verify or the server refused us.

    Not retried (see the module docstring).
    """


def make_ssl_context(
    *,
    cafile: str | None = None,
    certfile: str | None = None,
    keyfile: str | None = None,
    password: str | None = None,
    check_hostname: bool = True,
    crlfile: str | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A client ``SSLContext``: TLS 1.2 minimum, certificates verified.

    Args:
        cafile: CA bundle (PEM) to trust; None trusts the system's CAs.
        certfile: Client certificate chain (PEM), for brokers that require one.
        keyfile: Its private key (PEM); None if it is in ``certfile``.
        password: The key's password.
        check_hostname: Verify the broker's host name against its certificate.
        crlfile: A CRL (PEM) to check the broker's certificate against.
        ciphers: An OpenSSL cipher list for TLS 1.2.

    Raises:
        KafkaConfigurationError: a file that cannot be loaded (the message names
            the option, never the password).
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = bool(check_hostname)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        if cafile is not None:
            ctx.load_verify_locations(cafile=cafile)
        if certfile is not None:
            ctx.load_cert_chain(certfile, keyfile, password)
        if crlfile is not None:
            ctx.load_verify_locations(cafile=crlfile)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaConfigurationError(
            f"cannot load the TLS files (ssl_cafile/ssl_certfile/ssl_keyfile/ssl_crlfile/ssl_ciphers): "
            f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or getattr(exc, 'reason', None) or 'failed'}"
        ) from None
    return ctx


class AsyncTokenCache:
    """Holds an async OAUTHBEARER provider's latest token for the (synchronous) core.

    The async drivers ``await refresh()`` before each connection attempt; the
    core calls :meth:`token`, which returns what the last refresh got.
    """

    def __init__(self, provider: Any) -> None:
        self._provider = provider
        self._token: str | None = None
        self._error: Exception | None = None

    def __repr__(self) -> str:
        return "<AsyncTokenCache token=***>"

    async def refresh(self) -> None:
        """Ask the provider for a fresh token (its exception is kept for the core to report)."""
        get = getattr(self._provider, "token", None)
        try:
            result = get() if callable(get) else self._provider()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            self._error = exc
            return
        self._token, self._error = result, None

    def token(self) -> str | None:
        """The latest token (None before the first refresh: the core fails clearly).

        Raises:
            Exception: what the provider raised at the last refresh.
        """
        if self._error is not None:
            raise self._error
        return self._token

    def extensions(self) -> dict[str, str]:
        """KIP-342 extensions of the wrapped provider, if it has them."""
        ext = getattr(self._provider, "extensions", None)
        return dict(ext() or {}) if callable(ext) else {}


def _is_async_provider(provider: Any) -> bool:
    fn = getattr(provider, "token", provider)
    if inspect.iscoroutinefunction(fn):
        return True
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))  # noqa: B004


class Security:
    """Validated security options: the TLS context and the SASL settings for the core."""

    __slots__ = ("protocol", "ssl_context", "sasl", "token_cache")

    def __init__(
        self,
        protocol: str,
        ssl_context: ssl.SSLContext | None,
        sasl: dict[str, Any],
        token_cache: AsyncTokenCache | None,
    ) -> None:
        #: 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'.
        self.protocol = protocol
        #: The context to wrap connections in, None without TLS.
        self.ssl_context = ssl_context
        #: ``ClientConfig`` keyword arguments (``security_protocol``, ``sasl_*``); empty without SASL.
        self.sasl = sasl
        #: Set for an async OAUTHBEARER provider: refresh it before each connect.
        self.token_cache = token_cache

    def __repr__(self) -> str:
        mech = self.sasl.get("sasl_mechanism")
        return f"<Security {self.protocol} tls={self.ssl_context is not None} sasl={mech}>"


#: TLS options holding a file name or an OpenSSL string.
_SSL_TEXT_OPTIONS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_crlfile", "ssl_ciphers")


def _check_types(configs: Mapping[str, Any]) -> None:
    """Security options of the wrong type fail at construction, whatever ``security_protocol``.

    Raises:
        KafkaConfigurationError: naming the option and what it must be (never a secret's value).
    """
    from kproto.sasl import check_secret_types

    for name in _SSL_TEXT_OPTIONS:
        value = configs.get(name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise KafkaConfigurationError(f"{name} must be a str (a path) or None, got a {type(value).__name__}")
    password = configs.get("ssl_password")
    if password is not None and not (isinstance(password, (str, bytes, bytearray)) or callable(password)):
        raise KafkaConfigurationError(
            f"ssl_password must be a str, bytes, a callable returning one, or None; got a {type(password).__name__}"
        )
    mechanism = configs.get("sasl_mechanism")
    if mechanism is not None and not isinstance(mechanism, str):
        raise KafkaConfigurationError(f"sasl_mechanism must be a str or None, got a {type(mechanism).__name__}")
    try:
        check_secret_types(
            username=configs.get("sasl_plain_username"),
            password=configs.get("sasl_plain_password"),
            token_provider=configs.get("sasl_oauth_token_provider"),
        )
    except ValueError as exc:
        raise KafkaConfigurationError(str(exc)) from None


def security_from_configs(configs: Mapping[str, Any], *, allow_async_provider: bool) -> Security:
    """Validate the security options among ``configs`` (others are ignored).

    Args:
        configs: The user's keyword arguments.
        allow_async_provider: True in the async facades, which resolve an
            async ``sasl_oauth_token_provider`` before each connection.

    Raises:
        KafkaConfigurationError: a value that is not allowed; the message never
            contains a password or token.
        TypeError: ``ssl_context`` that is not an ``ssl.SSLContext``.
    """
    _check_types(configs)
    protocol = configs.get("security_protocol", "PLAINTEXT")
    if not isinstance(protocol, str) or protocol.upper() not in _PROTOCOLS:
        raise KafkaConfigurationError(
            f"security_protocol={protocol!r} is not allowed: it must be one of {', '.join(_PROTOCOLS)}"
        )
    protocol = protocol.upper()
    context: ssl.SSLContext | None = None
    if protocol in ("SSL", "SASL_SSL"):
        given = configs.get("ssl_context")
        if given is not None:
            if not isinstance(given, ssl.SSLContext):
                raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(given).__name__}")
            context = given
        else:
            check = configs.get("ssl_check_hostname", True)
            if not isinstance(check, bool):
                raise KafkaConfigurationError(
                    f"ssl_check_hostname={check!r} is not allowed: it must be a bool"
                )
            context = make_ssl_context(
                cafile=configs.get("ssl_cafile"),
                certfile=configs.get("ssl_certfile"),
                keyfile=configs.get("ssl_keyfile"),
                password=configs.get("ssl_password"),
                check_hostname=check,
                crlfile=configs.get("ssl_crlfile"),
                ciphers=configs.get("ssl_ciphers"),
            )
    sasl: dict[str, Any] = {}
    cache: AsyncTokenCache | None = None
    if protocol.startswith("SASL_"):
        sasl = {"security_protocol": protocol}
        for name in SASL_OPTIONS:
            if configs.get(name) is not None:
                sasl[name] = configs[name]
        provider = sasl.get("sasl_oauth_token_provider")
        if provider is not None and _is_async_provider(provider):
            if not allow_async_provider:
                raise KafkaConfigurationError(
                    "sasl_oauth_token_provider is async: use transports.asyncio or transports.trio, "
                    "or give a synchronous provider"
                )
            cache = AsyncTokenCache(provider)
            sasl["sasl_oauth_token_provider"] = cache
        from kproto.client import ClientConfig

        ClientConfig(**sasl)  # checks mechanism and credentials now, not at the first connect
    return Security(protocol, context, sasl, cache)


def client_security_kwargs(security: Security | None) -> dict[str, Any]:
    """``ClientConfig`` keyword arguments for ``security``, to add to the shared ones.

    ``Security.sasl`` (an async OAUTHBEARER provider replaced by its
    :class:`AsyncTokenCache`) and a ``sasl_nonce_factory`` drawing from
    ``random.SystemRandom``, so SCRAM nonces never come from the core's
    seedable generator. Without SASL only the nonce factory (unused).
    """
    import random

    from kproto.sasl import nonce_from_rng

    kwargs: dict[str, Any] = dict(security.sasl) if security is not None else {}
    kwargs["sasl_nonce_factory"] = nonce_from_rng(random.SystemRandom())
    return kwargs


def lost_error(
    exc: BaseException | None, host: str, port: int, *, tls: bool, got_data: bool
) -> BaseException | None:
    """What an async driver reports to ``connection_lost`` for a closed connection.

    Before any byte arrived over TLS, an ``ssl.SSLError`` (raised directly, or
    as the ``__cause__`` of a wrapper such as trio's ``BrokenResourceError``)
    goes through :func:`tls_failure`: with TLS 1.3 the server's verdict on
    our certificate arrives with the first read, after the handshake
    succeeded on our side. Anything else is returned unchanged.
    """
    if exc is None or not tls or got_data:
        return exc
    cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return tls_failure(cause, host, port)
    return exc


#: The peer closed the connection during the TLS handshake (as a plaintext Kafka
#: listener does: the ClientHello reads as a frame size over its limit).
_CLOSED_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLSyscallError, ConnectionResetError, BrokenPipeError, EOFError)


def handshake_closed(host: str, port: int, cause: BaseException | None = None) -> KafkaConnectionError:
    """The connection closed before the TLS handshake finished: most often a plaintext port.

    Retriable (a broker restarting does the same), unlike a refused certificate.
    """
    err = KafkaConnectionError(
        f"TLS handshake with {host}:{port} failed: the connection was closed during the handshake "
        "(a plaintext listener? security_protocol is SSL/SASL_SSL)"
    )
    err.__cause__ = cause
    return err


def tls_failure(exc: BaseException, host: str, port: int) -> BaseException:
    """What to report for ``exc``, raised while the TLS session had carried no data yet.

    Returns a :class:`TLSAuthenticationError` for a verification failure or a
    TLS alert / protocol error, otherwise ``exc`` unchanged (EOF, socket
    errors: ordinary connection losses).
    """
    if isinstance(exc, TLSAuthenticationError):
        return exc
    if isinstance(exc, _CLOSED_IN_HANDSHAKE):
        return handshake_closed(host, port, exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "certificate verify failed"
        err = TLSAuthenticationError(f"TLS: the certificate of {host}:{port} does not verify: {why}")
    elif isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLSyscallError)):
        if isinstance(exc, ssl.SSLZeroReturnError):
            return exc
        err = TLSAuthenticationError(f"TLS handshake with {host}:{port} failed: {exc.reason or exc}")
    else:
        return exc
    err.__cause__ = exc
    return err

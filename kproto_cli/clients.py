"""Making the clients a command uses, and turning what they raise into one-line errors.

The commands run on :mod:`transports.sync`: ``KafkaProducer``,
``KafkaConsumer`` and ``KafkaAdminClient``, with the options of
:func:`kproto_cli.options.client_config`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kproto.errors import KafkaConfigurationError, KafkaConnectionError, KafkaTimeoutError
from kproto_cli.errors import CliError, Unreachable, UsageError

__all__ = ["check_reachable", "explain", "make_client"]

T = TypeVar("T")

#: Seconds a bootstrap server gets to accept the up-front TCP check.
_CONNECT_CHECK_S = 5.0


def _host_port(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    if not host:
        return server, 9092
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise UsageError(f"bootstrap server {server!r} is not host:port") from None


def check_reachable(servers: Sequence[str], timeout: float = _CONNECT_CHECK_S) -> None:
    """Fail fast when no bootstrap server accepts a TCP connection (refused, unknown host).

    The clients would retry until their timeout and then report the same
    reason; a command line answers at once instead.

    Raises:
        Unreachable: Every server refused, did not resolve or did not answer within ``timeout``.
    """
    reasons = []
    for server in servers:
        host, port = _host_port(server)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return
        except socket.gaierror as exc:
            reasons.append(f"{server}: cannot resolve host ({exc.strerror})")
        except TimeoutError:
            reasons.append(f"{server}: no answer within {timeout:g} s")
        except OSError as exc:
            reasons.append(f"{server}: {exc.strerror or exc}")
    raise Unreachable("cannot connect to " + "; ".join(reasons))


def make_client(factory: Callable[..., T], config: dict[str, Any], what: str) -> T:
    """``factory(**config)``; an option the client refuses is a usage error naming it.

    Raises:
        UsageError: An unknown option or a value that is not allowed.
    """
    try:
        return factory(**config)
    except (TypeError, ValueError, KafkaConfigurationError) as exc:
        raise UsageError(f"bad option for the {what}: {exc}") from None


def explain(exc: BaseException) -> CliError:
    """The one-line error for what a client raised (connection trouble is :class:`Unreachable`)."""
    error = _classify(exc)
    error.__cause__ = exc
    return error


def _classify(exc: BaseException) -> CliError:
    cause: BaseException | None = exc
    for _ in range(8):
        if cause is None:
            break
        if isinstance(cause, KafkaConnectionError | ConnectionError):
            return Unreachable(_text(exc))
        cause = cause.__cause__
    if isinstance(exc, KafkaTimeoutError) and "ECONNREFUSED" in str(exc):
        return Unreachable(_text(exc))
    return CliError(_text(exc))


def _text(exc: BaseException) -> str:
    msg = str(exc)
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__

"""What the asyncio producer and consumer drivers share: broker connections.

:class:`BrokerProtocol` is one broker connection; :class:`AsyncioConnections`
opens (``Connect``) and closes (``Close``) them for a driver that feeds a
sans-I/O core on an asyncio loop. Each driver keeps its own run loop.

Names are resolved by ``loop.create_connection`` through ``loop.getaddrinfo``
(the default executor): the loop never blocks on DNS. Whatever fails while
opening a connection (an ``OSError``, a ``UnicodeError`` for a host name the
IDNA codec refuses, an advertised port outside 1..65535) fails that attempt
through ``connection_lost``; bytes that make the core raise fail that
connection. Only the core raising while told so is a crash (:meth:`crash`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from kproto.driving import Connect
from transports._sockets import bad_address, feed, resolve_failure
from transports._tls import AsyncTokenCache, lost_error, tls_failure

__all__ = ["AsyncioConnections", "BrokerProtocol"]


class AsyncioConnections:
    """Connect and close for a driver; it sets these attributes in ``__init__``."""

    core: Any
    loop: asyncio.AbstractEventLoop
    #: Wrap connections in TLS with this context (``security_protocol`` SSL/SASL_SSL).
    ssl_context: ssl.SSLContext | None
    #: An async OAUTHBEARER provider, refreshed before each connection.
    token_cache: AsyncTokenCache | None
    conns: dict[int, BrokerProtocol]
    _connecting: dict[int, asyncio.Task[None]]

    def kick(self) -> None:
        """Wake the driver's task."""
        raise NotImplementedError

    def crash(self, exc: BaseException) -> None:
        """The core raised while told about a connection (a bug): the driver stops, calls fail."""
        raise NotImplementedError

    def report_lost(self, node_id: int, err: BaseException | None) -> None:
        """``core.connection_lost``; the core raising there is a crash."""
        try:
            self.core.connection_lost(node_id, err, self.loop.time())
        except Exception as exc:
            self.crash(exc)
            return
        self.kick()

    async def _connect(self, cmd: Connect) -> None:
        ctx = self.ssl_context
        err: BaseException | None = bad_address(cmd.host, cmd.port)
        try:
            if err is None:
                if self.token_cache is not None:
                    await self.token_cache.refresh()  # async OAUTHBEARER provider: a fresh token per connection
                await self.loop.create_connection(
                    lambda: BrokerProtocol(self, cmd.node_id, cmd.host, cmd.port),
                    cmd.host,
                    cmd.port,
                    ssl=ctx,
                    server_hostname=cmd.host if ctx is not None else None,
                )
        except OSError as exc:  # ssl.SSLError included
            err = tls_failure(exc, cmd.host, cmd.port) if ctx is not None else exc
        except Exception as exc:  # UnicodeError from the IDNA codec, ValueError...
            err = resolve_failure(exc, cmd.host, cmd.port)
        finally:
            self._connecting.pop(cmd.node_id, None)
        if err is not None:
            self.report_lost(cmd.node_id, err)

    def _close(self, node_id: int) -> None:
        task = self._connecting.pop(node_id, None)
        if task is not None:
            task.cancel()
        proto = self.conns.pop(node_id, None)
        if proto is not None and proto.transport is not None:
            proto.closed_by_us = True
            proto.transport.close()


class BrokerProtocol(asyncio.Protocol):
    """One broker connection; every callback feeds the core and pokes the driver."""

    def __init__(self, driver: AsyncioConnections, node_id: int, host: str = "", port: int = 0) -> None:
        self.driver = driver
        self.node_id = node_id
        self.host = host
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.closed_by_us = False
        #: Bytes arrived (a TLS error before that is an authentication failure).
        self.got_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        d = self.driver
        d.conns[self.node_id] = self
        try:
            d.core.connection_made(self.node_id, d.loop.time())
        except Exception as exc:
            d.crash(exc)
            return
        d.kick()

    def data_received(self, data: bytes) -> None:
        d = self.driver
        self.got_data = True
        failed = feed(d.core, self.node_id, data, d.loop.time())
        if failed is not None and not self.closed_by_us:
            # That connection goes; the core fails or retries its requests.
            self.closed_by_us = True
            if d.conns.get(self.node_id) is self:
                del d.conns[self.node_id]
            if self.transport is not None:
                self.transport.abort()
            d.report_lost(self.node_id, failed)
            return
        d.kick()

    def connection_lost(self, exc: Exception | None) -> None:
        d = self.driver
        if d.conns.get(self.node_id) is self:
            del d.conns[self.node_id]
        if not self.closed_by_us:
            # TLS 1.3: the server's verdict on our certificate comes after our handshake.
            err = lost_error(exc, self.host, self.port, tls=d.ssl_context is not None, got_data=self.got_data)
            d.report_lost(self.node_id, err)

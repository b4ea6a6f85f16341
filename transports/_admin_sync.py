"""The blocking ``KafkaAdminClient``: each call drives the admin core inline until its answer is in.

As the blocking consumer, there is no background thread: a call starts its
operation on the core and runs a ``selectors`` loop
(:class:`~transports._selector.SelectorDriver`) in the caller's thread until
every resource has settled or the operation's deadline passed. Methods,
arguments and result shapes are kafka-python 3's (see
:class:`~transports._admin.AdminFacadeBase` and docs/admin.md).
"""

from __future__ import annotations

import time
from typing import Any

from kproto.admin.types import *  # noqa: F403  # re-exported: no __all__ here, so a star import takes every public name (mypy too)
from transports import _admin
from transports._common import SelectorClient
from transports._selector import SelectorDriver


class KafkaAdminClient(_admin.AdminFacadeBase, SelectorClient):
    """Administer a Kafka cluster (blocking; kafka-python 3's ``KafkaAdminClient``).

    ``KafkaAdminClient(**configs)``: the client options (``bootstrap_servers``,
    ``client_id``, ``request_timeout_ms``, ``default_api_timeout_ms``, the
    security options...); an unknown option raises ``TypeError`` naming it.
    Not thread safe: one admin client per thread.
    """

    def __init__(self, **configs: Any) -> None:
        self._driver: SelectorDriver | None = None
        self._setup(configs, time.monotonic, allow_async_provider=False)
        ssl_context = self._security.ssl_context if self._security is not None else None
        # The sink drains the core's events (they would pile up unread otherwise).
        self._driver = SelectorDriver(self._core, self._clock, ssl_context, **_admin.ADMIN_DRIVER)
        self._driver.pump()

    def _finish(self, call: _admin.AdminCall) -> Any:
        driver = self._driver
        assert driver is not None
        return self._result(call, driver.run_until(self._done(call), self._wait_budget(call)))

    def close(self) -> None:
        """Fail what is still open and close every connection (idempotent)."""
        if self._closed:
            return
        try:
            self._fail_open()
        finally:
            if self._driver is not None:
                self._driver.close()

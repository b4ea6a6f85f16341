"""The ``kproto`` command line (``kproto`` console script, or ``python -m kproto``).

Built on the blocking clients of :mod:`transports.sync`; see
:mod:`kproto_cli.main` for the subcommands and :mod:`kproto_cli.errors` for
the exit statuses. The sans-I/O core :mod:`kproto` never imports this package.
"""

from __future__ import annotations

from kproto_cli.main import main

__all__ = ["main"]

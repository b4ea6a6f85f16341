"""The command's exit statuses and the errors that carry them.

=====  =====================================================================
 0     success
 1     a Kafka or runtime error (the broker refused a request, a timeout,
       records that failed to be delivered)
 2     a usage error: bad arguments, a bad ``-X`` option or config file
 3     not found: an unknown topic or consumer group
 4     no broker could be reached at the bootstrap servers
 130   interrupted (Ctrl-C)
=====  =====================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "CliError", "NotFound", "Unreachable", "UsageError"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An error the command reports in one line and exits with :attr:`status`."""

    status = EXIT_ERROR


class UsageError(CliError):
    """A mistake on the command line or in a config file."""

    status = 2


class NotFound(CliError):
    """An unknown topic or group."""

    status = 3


class Unreachable(CliError):
    """No bootstrap server accepted a connection."""

    status = 4

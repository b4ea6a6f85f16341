"""The ApiVersions request version each broker settled on, shared by every connection to it.

A broker that refused a version (the KIP-511 fallback: an UNSUPPORTED_VERSION
answer, then a lower version) is not asked that version again on any
connection to it: not on a second connection to the same broker id (a
coordinator connection, ``COORDINATOR_NODE_BASE - id``), nor on one to the
same address under another name (a bootstrap entry). A broker that answers
the refusal and hangs up would otherwise drop every new connection right
after it opens (issue 10: a group never got its coordinator).
"""

from __future__ import annotations

__all__ = ["BrokerKey", "SettledVersions", "broker_keys"]

#: A name of a broker: ``("broker", id)`` or ``("address", host, port)``.
BrokerKey = tuple[object, ...]


def broker_keys(broker_id: int | None, host: str, port: int, known_address: tuple[str, int] | None) -> list[BrokerKey]:
    """Every name of one broker: its address, its id if known, and the address metadata gives that id."""
    keys: list[BrokerKey] = [("address", host, port)]
    if broker_id is not None:
        keys.append(("broker", broker_id))
    if known_address is not None:  # FindCoordinator may name the broker by another host string
        keys.append(("address", *known_address))
    return keys


class SettledVersions:
    """ApiVersions versions by broker name; the lowest any name of a broker settled on wins."""

    def __init__(self) -> None:
        self._by_key: dict[BrokerKey, int] = {}

    def note(self, keys: list[BrokerKey], version: int) -> None:
        """A connection to the broker with these names settled on ``version``."""
        for key in keys:
            self._by_key[key] = version

    def start(self, keys: list[BrokerKey]) -> int | None:
        """The version a new connection to that broker asks first (None: the newest)."""
        known = [v for k in keys if (v := self._by_key.get(k)) is not None]
        return min(known) if known else None

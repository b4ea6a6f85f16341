"""Interop fixtures: the Java client as a peer (``tests/_java_peer.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _java_peer import JavaPeer


@pytest.fixture(scope="session")
def java_peer(kafka: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaPeer]:
    """One JVM running ``tests/interop/java/KafkaPeer.java``, compiled against the Kafka fixture's jars."""
    peer = JavaPeer(Path(kafka.lib), tmp_path_factory.mktemp("java-peer") / "peer.log")
    try:
        yield peer
    finally:
        peer.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the Java peer gets the end of its log in the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    peer = getattr(item, "funcargs", {}).get("java_peer")
    if report.failed and isinstance(peer, JavaPeer):
        report.sections.append(("Java peer log", peer.log_tail()))

"""Shared fixtures: a real Tansu broker per test session, hypothesis profiles."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _broker import TansuBroker  # noqa: E402

# Deterministic hypothesis in CI; a wider random search on a developer's machine.
settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

@pytest.fixture(scope="session")
def broker() -> Iterator[TansuBroker]:
    """A real Tansu broker on a free loopback port, for the whole session."""
    with TansuBroker() as b:
        yield b


@pytest.fixture
def bootstrap(broker: TansuBroker) -> str:
    """``host:port`` of the session's broker."""
    return broker.bootstrap


@pytest.fixture
def topic() -> str:
    """A fresh topic name; Tansu auto-creates it with 4 partitions on first use."""
    return f"t-{uuid.uuid4().hex[:12]}"

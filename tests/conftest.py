"""Shared fixtures: real brokers (Tansu; Apache Kafka single node and 3 nodes), hypothesis profiles.

Each broker setup starts at most once per test run, the first time a test asks for it.
"""

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
from _kafka import BROKERS, KafkaCluster, ready_topic  # noqa: E402

# Deterministic hypothesis in CI; a wider random search on a developer's machine.
settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    """A real Tansu broker on a free loopback port, for the whole session."""
    with TansuBroker() as b:
        yield b


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest) -> TansuBroker | KafkaCluster:
    """Each broker implementation in turn: Tansu, then a single Apache Kafka node (``kafka``).

    Both have ``.bootstrap``; where they behave differently, the test follows
    Apache Kafka, the broker kproto is built for.
    """
    b: TansuBroker | KafkaCluster = request.getfixturevalue(request.param)
    return b


@pytest.fixture
def bootstrap(broker: TansuBroker | KafkaCluster) -> str:
    """``host:port`` (PLAINTEXT) of the broker under test."""
    return broker.bootstrap


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A fresh topic name with 4 partitions.

    Tansu auto-creates it on first use; on Apache Kafka (the ``broker`` of the
    test) it is created and its leaders serve it before the test starts (see
    ``KafkaCluster.create_topic``).
    """
    name = f"t-{uuid.uuid4().hex[:12]}"
    if "broker" in request.fixturenames:
        ready_topic(request.getfixturevalue("broker"), name)
    return name


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    """One Apache Kafka node (broker+controller) with PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL.

    See ``tests/_kafka.py``: ``.bootstrap``, ``.bootstrap_for(listener)``,
    ``.client_config(listener, mechanism)``, ``.username``/``.password``,
    ``.oauth_token()``, ``.ca_file``, ``.lib``, ``.version``.
    """
    with KafkaCluster(1) as k:
        yield k


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes (3-voter quorum), replication factor 3, ``min.insync.replicas=2``,
    in racks rack1..rack3 with the rack-aware replica selector (KIP-392; clients without a rack
    read from leaders as before)."""
    with KafkaCluster(3, racks=True) as k:
        yield k


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used an Apache Kafka setup gets the brokers' log tails in its report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    seen: set[int] = set()
    for arg in getattr(item, "funcargs", {}).values():
        # the cluster itself, a listener or mover of it (.cluster), or a tuple holding one
        for value in (*arg, arg) if isinstance(arg, tuple) else (arg, getattr(arg, "cluster", None)):
            if isinstance(value, KafkaCluster) and id(value) not in seen:
                seen.add(id(value))
                report.sections.append((f"Apache Kafka log ({len(value.nodes)} node(s))", value.log_tail()))

"""The admin core: the public :class:`AdminCore`, a :class:`~kproto.driving.Driven` core.

Each admin method builds its call with the module for its area and hands it
to the :class:`~kproto.admin.engine.AdminEngine`, which routes, retries and
settles it (its module docstring is the theory of operation):

- :mod:`kproto.admin.topics`: topics and partitions (CreateTopics, DeleteTopics,
  CreatePartitions, Metadata);
- :mod:`kproto.admin.cluster`: DescribeCluster, DescribeLogDirs;
- :mod:`kproto.admin.configs`: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs;
- :mod:`kproto.admin.groups`: consumer groups and their offsets;
- :mod:`kproto.admin.records`: DeleteRecords, ListOffsets, ElectLeaders;
- :mod:`kproto.admin.acls` and :mod:`kproto.admin.scram`: ACLs, SCRAM credentials;
- :mod:`kproto.admin.transactions`: transactions and producers.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Concatenate, ParamSpec

import attrs

import kproto.admin.acls as _acls
import kproto.admin.cluster as _cluster
import kproto.admin.configs as _configs
import kproto.admin.groups as _groups
import kproto.admin.records as _records
import kproto.admin.scram as _scram
import kproto.admin.topics as _topics
import kproto.admin.transactions as _transactions
from kproto.admin.engine import AdminConfig, AdminEngine, AdminEvent, AdminOp
from kproto.client import Client
from kproto.driving import Command

__all__ = ["AdminConfig", "AdminCore", "AdminOp"]

_P = ParamSpec("_P")


def _area(
    call: Callable[Concatenate[AdminEngine, _P], AdminOp],
) -> Callable[Concatenate[AdminCore, _P], AdminOp]:
    """An :class:`AdminCore` method that runs ``call`` (an area module's function) on the core's engine."""

    def method(self: AdminCore, /, *args: _P.args, **kwargs: _P.kwargs) -> AdminOp:
        return call(self._engine, *args, **kwargs)

    method.__name__ = call.__name__
    method.__qualname__ = f"AdminCore.{call.__name__}"
    method.__doc__ = call.__doc__
    method.__module__ = __name__
    sig = inspect.signature(call)
    params = list(sig.parameters.values())
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = sig.replace(parameters=[self_param, *params[1:]])  # type: ignore[attr-defined]
    return method


class AdminCore:
    """The admin core (see the module docstring): a :class:`~kproto.driving.Driven`.

    Args:
        config: Settings.
        now: The driver's clock now, in seconds.
        rng: Randomness of the client (reconnect jitter, least-loaded start); seed it to replay.
            The admin calls draw none (SCRAM salts come with each upsertion).
        client: A client to use instead of a new one (tests, simulations).
    """

    def __init__(
        self,
        config: AdminConfig | None = None,
        *,
        now: float,
        rng: random.Random | None = None,
        client: Client | None = None,
    ) -> None:
        cfg = config if config is not None else AdminConfig()
        if cfg.allow_auto_create_topics:
            cfg = attrs.evolve(cfg, allow_auto_create_topics=False)
        self.config = cfg
        if client is None:
            client = Client(cfg, now=now, rng=rng if rng is not None else random.Random())
        self._engine = AdminEngine(cfg, client, now)

    # --- the driving surface (the engine's) -------------------------------------------

    def connection_made(self, node_id: int, now: float) -> None:
        """A connection the core asked for is open."""
        self._engine.connection_made(node_id, now)

    def connection_lost(self, node_id: int, exc: BaseException | None, now: float) -> None:
        """A connection failed or closed."""
        self._engine.connection_lost(node_id, exc, now)

    def receive_data(self, node_id: int, data: bytes, now: float) -> None:
        """Bytes arrived from ``node_id``."""
        self._engine.receive_data(node_id, data, now)

    def handle_timer(self, now: float) -> None:
        """Run what is due: the client's timers, retries, op deadlines."""
        self._engine.handle_timer(now)

    def commands(self) -> list[Command]:
        """Connections to open or close, oldest first (drains)."""
        return self._engine.commands()

    def data_to_send(self) -> list[tuple[int, bytes]]:
        """Bytes to write per node (drains)."""
        return self._engine.data_to_send()

    def get_timer(self) -> float | None:
        """The earliest of the client's deadline, a unit's retry time and an op's deadline."""
        return self._engine.get_timer()

    def events(self) -> list[AdminEvent]:
        """The client's events (:mod:`kproto.events`), oldest first (drains)."""
        return self._engine.events()

    @property
    def client(self) -> Client:
        """The cluster client underneath (metadata, connection state)."""
        return self._engine.client

    def close(self, now: float) -> None:
        """Fail every open resource with ``Cancelled`` and close the client (and its connections)."""
        self._engine.close(now)

    # --- the admin calls: each is its area module's function, on this core's engine ---

    # topics and partitions (topics.py)
    create_topics = _area(_topics.create_topics)
    delete_topics = _area(_topics.delete_topics)
    create_partitions = _area(_topics.create_partitions)
    list_topics = _area(_topics.list_topics)
    describe_topics = _area(_topics.describe_topics)

    # the cluster and its log dirs (cluster.py)
    describe_cluster = _area(_cluster.describe_cluster)
    describe_log_dirs = _area(_cluster.describe_log_dirs)

    # configs (configs.py)
    describe_configs = _area(_configs.describe_configs)
    alter_configs = _area(_configs.alter_configs)

    # consumer groups and their offsets (groups.py)
    list_consumer_groups = _area(_groups.list_consumer_groups)
    describe_consumer_groups = _area(_groups.describe_consumer_groups)
    list_consumer_group_offsets = _area(_groups.list_consumer_group_offsets)
    alter_consumer_group_offsets = _area(_groups.alter_consumer_group_offsets)
    delete_consumer_group_offsets = _area(_groups.delete_consumer_group_offsets)
    delete_consumer_groups = _area(_groups.delete_consumer_groups)

    # records, offsets, leaders (records.py)
    delete_records = _area(_records.delete_records)
    list_offsets = _area(_records.list_offsets)
    elect_leaders = _area(_records.elect_leaders)

    # ACLs (acls.py)
    describe_acls = _area(_acls.describe_acls)
    create_acls = _area(_acls.create_acls)
    delete_acls = _area(_acls.delete_acls)

    # transactions and producers (transactions.py)
    list_transactions = _area(_transactions.list_transactions)
    describe_transactions = _area(_transactions.describe_transactions)
    fence_producers = _area(_transactions.fence_producers)
    describe_producers = _area(_transactions.describe_producers)

    # SCRAM credentials (scram.py)
    describe_user_scram_credentials = _area(_scram.describe_user_scram_credentials)
    alter_user_scram_credentials = _area(_scram.alter_user_scram_credentials)

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

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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
from kproto.admin.types import (
    ACL,
    ACLFilter,
    ConfigResource,
    NewPartitions,
    NewTopic,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kproto.client import Client
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.driving import Command

__all__ = ["AdminConfig", "AdminCore", "AdminOp"]


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

    # --- the admin calls ----------------------------------------------------------------

    def create_topics(
        self,
        new_topics: Sequence[NewTopic | str] | Mapping[str, Mapping[str, Any]],
        *,
        now: float,
        timeout_ms: int | None = None,
        validate_only: bool = False,
    ) -> AdminOp:
        """CreateTopics at the controller; one entry per topic name.

        ``new_topics``: :class:`NewTopic` objects, names (the broker's defaults,
        KIP-464), or ``{name: {num_partitions, replication_factor, assignments,
        configs}}`` as kafka-python 3 takes. A result is a dict with
        ``num_partitions``, ``replication_factor``, ``topic_id`` and ``configs``
        as the broker reports them (v5+; -1/None before).
        """
        return _topics.create_topics(
            self._engine,
            new_topics,
            now=now,
            timeout_ms=timeout_ms,
            validate_only=validate_only,
        )

    def delete_topics(
        self, topics: Iterable[str | uuid.UUID], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteTopics at the controller; topics by name, or by id (a ``uuid.UUID``, v6+, KIP-516)."""
        return _topics.delete_topics(self._engine, topics, now=now, timeout_ms=timeout_ms)

    def create_partitions(
        self,
        topic_partitions: Mapping[str, NewPartitions],
        *,
        now: float,
        timeout_ms: int | None = None,
        validate_only: bool = False,
    ) -> AdminOp:
        """CreatePartitions at the controller; one entry per topic (value None on success)."""
        return _topics.create_partitions(
            self._engine,
            topic_partitions,
            now=now,
            timeout_ms=timeout_ms,
            validate_only=validate_only,
        )

    def list_topics(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """All topic names (internal ones too, as kafka-python): result ``{None: [names]}``."""
        return _topics.list_topics(self._engine, now=now, timeout_ms=timeout_ms)

    def describe_topics(
        self, topics: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """Metadata of ``topics``; one entry per topic, a dict in kafka-python's
        shape (``name``, ``topic_id``, ``is_internal``, ``partitions``). With
        ``topics=None``, one entry ``None: [dict per topic]`` (a topic the broker
        answered with an error appears as ``{"name", "error"}``)."""
        return _topics.describe_topics(self._engine, topics, now=now, timeout_ms=timeout_ms)

    def describe_cluster(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeCluster (KIP-700) at any broker, or Metadata without topics where
        the broker lacks it (Java and kafka-python 3 do the same). Result ``{None:
        {"cluster_id", "controller_id", "brokers": [{"broker_id", "host", "port",
        "rack", "is_fenced"}]}}``."""
        return _cluster.describe_cluster(self._engine, now=now, timeout_ms=timeout_ms)

    def describe_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        include_synonyms: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """DescribeConfigs; a BROKER/BROKER_LOGGER resource goes to that broker
        (Java: only it knows its static configs), others to any broker. Result per
        ``(type, name)``: ``{key: {value, read_only, config_source, is_sensitive, synonyms}}``."""
        return _configs.describe_configs(
            self._engine,
            config_resources,
            now=now,
            include_synonyms=include_synonyms,
            timeout_ms=timeout_ms,
        )

    def alter_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        validate_only: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """AlterConfigs (replaces every dynamic config of each resource); value None per success."""
        return _configs.alter_configs(
            self._engine,
            config_resources,
            now=now,
            validate_only=validate_only,
            timeout_ms=timeout_ms,
        )

    def incremental_alter_configs(
        self,
        config_resources: Iterable[ConfigResource],
        *,
        now: float,
        validate_only: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """IncrementalAlterConfigs (KIP-339); each resource's ``configs`` maps a key
        to ``(AlterConfigOp, value)`` or to a value (SET). Value None per success."""
        return _configs.incremental_alter_configs(
            self._engine,
            config_resources,
            now=now,
            validate_only=validate_only,
            timeout_ms=timeout_ms,
        )

    def list_consumer_groups(
        self, *, now: float, states: Iterable[str] = (), timeout_ms: int | None = None
    ) -> AdminOp:
        """ListGroups on every broker, as Java does (each broker lists the groups it
        coordinates). One entry per broker id: ``[(group_id, protocol_type, state)]``."""
        return _groups.list_consumer_groups(self._engine, now=now, states=states, timeout_ms=timeout_ms)

    def describe_consumer_groups(
        self,
        group_ids: Iterable[str],
        *,
        now: float,
        include_authorized_operations: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """DescribeGroups at each group's coordinator; one entry per group, a dict
        (``group_id``, ``state``, ``protocol_type``, ``protocol``, ``members``)."""
        return _groups.describe_consumer_groups(
            self._engine,
            group_ids,
            now=now,
            include_authorized_operations=include_authorized_operations,
            timeout_ms=timeout_ms,
        )

    def list_consumer_group_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        now: float,
        require_stable: bool = False,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """OffsetFetch at the group's coordinator: result ``{group_id: {TopicPartition:
        OffsetAndMetadata}}``. Partitions without a committed offset, or whose answer
        carries a final error, are left out (as Java's handler does);
        UNSTABLE_OFFSET_COMMIT (KIP-447) and coordinator errors retry the group."""
        return _groups.list_consumer_group_offsets(
            self._engine,
            group_id,
            partitions,
            now=now,
            require_stable=require_stable,
            timeout_ms=timeout_ms,
        )

    def alter_consumer_group_offsets(
        self,
        group_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """OffsetCommit as a simple (non-member) commit at the coordinator; the group
        must be empty. Result ``{group_id: {TopicPartition: None | KafkaError}}``."""
        return _groups.alter_consumer_group_offsets(
            self._engine,
            group_id,
            offsets,
            now=now,
            timeout_ms=timeout_ms,
        )

    def delete_consumer_group_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """OffsetDelete (KIP-496) at the coordinator: ``{group_id: {TopicPartition: None | KafkaError}}``."""
        return _groups.delete_consumer_group_offsets(
            self._engine,
            group_id,
            partitions,
            now=now,
            timeout_ms=timeout_ms,
        )

    def delete_consumer_groups(
        self, group_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteGroups at each group's coordinator; value None per deleted group."""
        return _groups.delete_consumer_groups(self._engine, group_ids, now=now, timeout_ms=timeout_ms)

    def delete_records(
        self, offsets: Mapping[TopicPartition, int], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteRecords at each partition's leader (one request per leader); value
        ``{"low_watermark": n}`` per partition. Offset -1 deletes up to the high watermark."""
        return _records.delete_records(self._engine, offsets, now=now, timeout_ms=timeout_ms)

    def list_offsets(
        self,
        specs: Mapping[TopicPartition, int],
        *,
        now: float,
        isolation_level: int = 0,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """ListOffsets at each partition's leader; ``specs`` maps a partition to an
        :class:`~kproto.admin.types.OffsetSpec` value or a timestamp. Value per
        partition: :class:`~kproto.admin.types.ListOffsetsResultInfo`."""
        return _records.list_offsets(
            self._engine,
            specs,
            now=now,
            isolation_level=isolation_level,
            timeout_ms=timeout_ms,
        )

    def elect_leaders(
        self,
        election_type: int,
        partitions: Iterable[TopicPartition],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """ElectLeaders (KIP-460) at the controller; 0 preferred, 1 unclean. Value None
        per partition elected (ELECTION_NOT_NEEDED is an error entry, as Java reports it)."""
        return _records.elect_leaders(self._engine, election_type, partitions, now=now, timeout_ms=timeout_ms)

    def describe_acls(self, acl_filter: ACLFilter, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeAcls at any broker: result ``{acl_filter: [ACL]}`` (an error entry
        such as SecurityDisabledError when the cluster has no authorizer)."""
        return _acls.describe_acls(self._engine, acl_filter, now=now, timeout_ms=timeout_ms)

    def create_acls(self, acls: Iterable[ACL], *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """CreateAcls at any broker; value None per ACL created (results come back in request order)."""
        return _acls.create_acls(self._engine, acls, now=now, timeout_ms=timeout_ms)

    def delete_acls(
        self, acl_filters: Iterable[ACLFilter], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DeleteAcls at any broker; per filter, the ACLs it deleted (``[ACL]``) or its error."""
        return _acls.delete_acls(self._engine, acl_filters, now=now, timeout_ms=timeout_ms)

    def describe_log_dirs(self, *, now: float, timeout_ms: int | None = None) -> AdminOp:
        """DescribeLogDirs (all topics) on every broker; per broker id,
        ``{log_dir: {"total_bytes", "usable_bytes", "partitions": {TopicPartition:
        {"size", "offset_lag", "is_future"}}}}``; a failed log dir maps to its error."""
        return _cluster.describe_log_dirs(self._engine, now=now, timeout_ms=timeout_ms)

    def list_transactions(
        self,
        *,
        now: float,
        state_filters: Iterable[str] = (),
        producer_id_filters: Iterable[int] = (),
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """ListTransactions (KIP-664) on every broker; per broker id,
        ``[(transactional_id, producer_id, state)]``."""
        return _transactions.list_transactions(
            self._engine,
            now=now,
            state_filters=state_filters,
            producer_id_filters=producer_id_filters,
            timeout_ms=timeout_ms,
        )

    def describe_transactions(
        self, transactional_ids: Iterable[str], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeTransactions (KIP-664) at each id's transaction coordinator; a dict per id."""
        return _transactions.describe_transactions(
            self._engine,
            transactional_ids,
            now=now,
            timeout_ms=timeout_ms,
        )

    def fence_producers(
        self,
        transactional_ids: Iterable[str],
        *,
        now: float,
        transaction_timeout_ms: int = 60000,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """Fence each transactional id's producers (KIP-618): InitProducerId at its
        coordinator bumps the epoch, as Java's ``fenceProducers``. Value per id:
        ``{"producer_id", "producer_epoch"}``."""
        return _transactions.fence_producers(
            self._engine,
            transactional_ids,
            now=now,
            transaction_timeout_ms=transaction_timeout_ms,
            timeout_ms=timeout_ms,
        )

    def describe_producers(
        self, partitions: Iterable[TopicPartition], *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeProducers (KIP-664) at each partition's leader; per partition, a list
        of ``{"producer_id", "producer_epoch", "last_sequence", "last_timestamp",
        "coordinator_epoch", "current_txn_start_offset"}``."""
        return _transactions.describe_producers(self._engine, partitions, now=now, timeout_ms=timeout_ms)

    def describe_user_scram_credentials(
        self, users: Iterable[str] | None = None, *, now: float, timeout_ms: int | None = None
    ) -> AdminOp:
        """DescribeUserScramCredentials at any broker; per user, ``[(ScramMechanism,
        iterations)]``. With ``users=None`` one entry ``None: {user: [...]}`` for all."""
        return _scram.describe_user_scram_credentials(self._engine, users, now=now, timeout_ms=timeout_ms)

    def alter_user_scram_credentials(
        self,
        alterations: Iterable[UserScramCredentialUpsertion | UserScramCredentialDeletion],
        *,
        now: float,
        timeout_ms: int | None = None,
    ) -> AdminOp:
        """AlterUserScramCredentials at any broker (it forwards to the controller,
        KIP-590); value None per user altered. Each upsertion must carry its
        ``salt`` (kproto draws no randomness; a facade passes
        ``secrets.token_bytes(24)``): one without fails the call with
        :class:`~kproto.errors.IllegalArgumentError` before anything is sent."""
        return _scram.alter_user_scram_credentials(self._engine, alterations, now=now, timeout_ms=timeout_ms)

"""KafkaAdminClient on each transport (sync, asyncio, trio) against real brokers.

Tansu covers what it implements (topics, cluster, groups and their offsets);
Apache Kafka covers every call: a single node with the ACL authorizer
(``KafkaCluster(authorizer=True)``, started once for this module) and the
shared three-node cluster for ``elect_leaders``. Each test runs one scenario
through the three facades; the scenario awaits every call through :func:`aw`,
so the blocking facade's calls simply block inside it. Test data comes from
kafka-python, an independent client. Calls are grouped into few tests per
broker to keep the broker work (and CI time) small.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
from _broker import TansuBroker
from _kafka import BROKERS, KafkaCluster
from kafka import KafkaProducer

import transports.asyncio as t_asyncio
import transports.sync as t_sync
import transports.trio as t_trio
from kproto.consumer import OffsetAndMetadata, TopicPartition
from kproto.errors import (
    AuthenticationFailedError,
    ElectionNotNeededError,
    GroupIdNotFoundError,
    IllegalArgumentError,
    IllegalStateError,
    InvalidReplicationFactorError,
    KafkaError,
    KafkaTimeoutError,
    NoError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

TRANSPORTS = ["sync", "asyncio", "trio"]
MODULES = {"sync": t_sync, "asyncio": t_asyncio, "trio": t_trio}
BASE_TS = 1_700_000_000_000

Scenario = Callable[[Any, Any], Awaitable[None]]


async def aw(result: Any) -> Any:
    """The value of an admin call on any transport (awaited on asyncio and trio)."""
    if inspect.isawaitable(result):
        return await result
    return result


async def eventually(call: Callable[[], Any], check: Callable[[Any], bool], tries: int = 100) -> Any:
    """``call()``'s value once ``check`` accepts it: Kafka answers CreateTopics
    before every broker's metadata shows the topic (kafka-python's
    ``wait_for_metadata`` polls the same way)."""
    for _ in range(tries):
        value = await aw(call())
        if check(value):
            return value
        await sleep(0.1)
    raise AssertionError(f"never accepted: {value!r}")


async def sleep(seconds: float) -> None:
    """Sleep on whichever loop runs the scenario (the sync facade's scenarios run on asyncio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


def run_admin(transport: str, scenario: Scenario, **configs: Any) -> None:
    """Run ``scenario(admin, module)`` with a ``KafkaAdminClient`` of ``transport``."""
    mod = MODULES[transport]
    configs.setdefault("default_api_timeout_ms", 30000)
    if transport == "sync":
        with t_sync.KafkaAdminClient(**configs) as admin:
            asyncio.run(scenario(admin, mod))
        return

    async def main() -> None:
        async with mod.KafkaAdminClient(**configs) as admin:
            await scenario(admin, mod)

    if transport == "asyncio":
        asyncio.run(main())
    else:
        trio.run(main)


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def kafka_acl() -> Iterator[KafkaCluster]:
    """One Apache Kafka node with the ACL authorizer (every client a super user)."""
    with KafkaCluster(1, authorizer=True) as k:
        yield k


@pytest.fixture(params=BROKERS)
def any_broker(request: pytest.FixtureRequest) -> TansuBroker | KafkaCluster:
    b: TansuBroker | KafkaCluster = request.getfixturevalue("tansu" if request.param == "tansu" else "kafka_acl")
    return b


def produce(bootstrap: str, topic: str, n: int, partition: int = 0) -> None:
    """``n`` records to ``topic``/``partition`` with timestamps BASE_TS + i*1000 (the last one the largest)."""
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        for i in range(n):
            p.send(topic, b"v%d" % i, partition=partition, timestamp_ms=BASE_TS + i * 1000).get(30)
    finally:
        p.close()


# --- everywhere: topics, cluster, groups --------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_topics_cluster_and_groups(any_broker: TansuBroker | KafkaCluster, transport: str) -> None:
    kafka = isinstance(any_broker, KafkaCluster)
    topic, other, group = name("adm"), name("adm2"), name("g")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)

    async def scenario(admin: Any, mod: Any) -> None:
        created = await aw(admin.create_topics([mod.NewTopic(topic, 2, 1)]))
        (row,) = created["topics"]
        assert (row["name"], row["error_code"], row["num_partitions"]) == (topic, 0, 2)

        # One bad topic fails its own entry; the other is created.
        mixed = await aw(
            admin.create_topics([mod.NewTopic(topic, 2, 1), mod.NewTopic(other, 1, 1)], raise_errors=False)
        )
        by_name = {r["name"]: r for r in mixed["topics"]}
        assert by_name[topic]["error_code"] == TopicAlreadyExistsError.errno
        assert by_name[other]["error_code"] == 0
        with pytest.raises(TopicAlreadyExistsError):
            await aw(admin.create_topics([topic]))

        await eventually(admin.list_topics, lambda names: {topic, other} <= set(names))
        described = await aw(admin.describe_topics([topic, "missing-" + topic]))
        assert described[0]["name"] == topic
        assert sorted(p["partition_index"] for p in described[0]["partitions"]) == [0, 1]
        assert described[1]["error_code"] == UnknownTopicOrPartitionError.errno
        assert isinstance(described[1]["error"], UnknownTopicOrPartitionError)
        every = await aw(admin.describe_topics())
        assert topic in {t["name"] for t in every}

        cluster = await aw(admin.describe_cluster())
        assert cluster["cluster_id"]
        assert cluster["controller_id"] in {b["broker_id"] for b in cluster["brokers"]}
        assert all(b["host"] == "127.0.0.1" and b["port"] > 0 for b in cluster["brokers"])

        if kafka:  # validate_only creates nothing; Tansu has no CreatePartitions
            dry = name("dry")
            checked = await aw(admin.create_topics({dry: {"num_partitions": 3}}, validate_only=True))
            assert checked["topics"][0]["error_code"] == 0
            assert dry not in await aw(admin.list_topics())
            grown = await aw(admin.create_partitions({topic: mod.NewPartitions(3)}))
            assert grown["results"][0]["error_code"] == 0
            await eventually(lambda: admin.describe_topics([topic]), lambda d: len(d[0]["partitions"]) == 3)

        # An empty group gets offsets from the admin client (a simple commit).
        altered = await aw(admin.alter_consumer_group_offsets(group, {tp0: 5, tp1: OffsetAndMetadata(7, "m", -1)}))
        assert altered == {tp0: None, tp1: None}
        offsets = await aw(admin.list_consumer_group_offsets(group, partitions=[tp0, tp1]))
        assert {tp: om.offset for tp, om in offsets.items()} == {tp0: 5, tp1: 7}
        assert offsets[tp1].metadata == ("m" if kafka else "")  # Tansu keeps no commit metadata
        if kafka:  # Tansu answers "all partitions" (OffsetFetch topics=null) with a null array
            assert {tp: om.offset for tp, om in (await aw(admin.list_consumer_group_offsets(group))).items()} == {
                tp0: 5,
                tp1: 7,
            }
        groups = await aw(admin.list_consumer_groups())
        assert group in {g for g, _ptype in groups}
        (desc,) = await aw(admin.describe_consumer_groups([group]))
        assert (desc["group_id"], desc["state"], desc["members"]) == (group, "Empty", [])

        # kafka-python 3.0's names and shapes for the same calls
        assert await aw(admin.alter_group_offsets(group, {tp0: 6})) == {tp0: NoError}
        both = await aw(admin.list_group_offsets({group: [tp0], name("none"): [tp0]}))
        assert both[group][tp0].offset == 6 and [v for k, v in both.items() if k != group] == [{}]
        listed3 = {g["group_id"]: g for g in await aw(admin.list_groups())}
        assert set(listed3[group]) == {"group_id", "protocol_type", "group_state"}
        if kafka:  # Tansu says "consumer" and "Unknown" for a group made by a simple commit
            assert (listed3[group]["protocol_type"], listed3[group]["group_state"]) == ("", "Empty")
        described3 = await aw(admin.describe_groups([group]))
        assert (described3[group]["state"], described3[group]["error"]) == ("Empty", None)
        assert (await aw(admin.list_partition_offsets({tp0: mod.OffsetSpec.EARLIEST})))[tp0].offset == 0

        if kafka:  # OffsetDelete and DeleteGroups
            other_group = name("g3")
            await aw(admin.alter_group_offsets(other_group, {tp0: 1}))
            assert await aw(admin.delete_group_offsets(other_group, [tp0])) == {tp0: NoError}
            unknown = name("none")
            assert await aw(admin.delete_groups([other_group, unknown])) == {
                other_group: "OK",
                unknown: "GroupIdNotFoundError",
            }
            assert await aw(admin.delete_consumer_group_offsets(group, [tp0])) == {tp0: None}
            left = await aw(admin.list_consumer_group_offsets(group))
            assert set(left) == {tp1}
            missing = name("nogroup")
            deleted = await aw(admin.delete_consumer_groups([group, missing]))
            assert deleted[1][0] == missing and isinstance(deleted[1][1], GroupIdNotFoundError)
        else:  # DeleteGroups only: Tansu has no OffsetDelete, and knows no "group not found"
            deleted = await aw(admin.delete_consumer_groups([group]))
        assert deleted[0] == (group, None)
        await eventually(admin.list_consumer_groups, lambda gs: group not in {g for g, _ in gs})

        gone = await aw(admin.delete_topics([topic, other]))
        assert [(r["name"], r["error_code"]) for r in gone["topics"]] == [(topic, 0), (other, 0)]
        with pytest.raises(UnknownTopicOrPartitionError):
            await aw(admin.delete_topics([topic]))

    run_admin(transport, scenario, bootstrap_servers=any_broker.bootstrap)


def test_concurrent_calls_on_one_async_client(tansu: TansuBroker) -> None:
    """Calls awaited together share the client's one driver (asyncio.gather, a trio nursery)."""
    topics = [name("cc"), name("cc")]

    async def on_asyncio() -> None:
        async with t_asyncio.KafkaAdminClient(bootstrap_servers=tansu.bootstrap) as admin:
            created, cluster = await asyncio.gather(admin.create_topics(topics), admin.describe_cluster())
            assert [r["error_code"] for r in created["topics"]] == [0, 0] and cluster["brokers"]

    async def on_trio() -> None:
        got: dict[str, Any] = {}
        async with t_trio.KafkaAdminClient(bootstrap_servers=tansu.bootstrap) as admin:

            async def call(key: str, fn: Callable[[], Awaitable[Any]]) -> None:
                got[key] = await fn()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, "deleted", lambda: admin.delete_topics(topics))
                nursery.start_soon(call, "cluster", admin.describe_cluster)
        assert [r["error_code"] for r in got["deleted"]["topics"]] == [0, 0] and got["cluster"]["brokers"]

    asyncio.run(on_asyncio())
    trio.run(on_trio)


# --- Apache Kafka: everything else ------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_configs_records_acls_scram_log_dirs(kafka_acl: KafkaCluster, transport: str) -> None:
    topic = name("adm")
    kafka_acl.create_topic(topic, partitions=2)
    produce(kafka_acl.bootstrap, topic, 5)
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    user = name("user")

    async def scenario(admin: Any, mod: Any) -> None:
        CR, T = mod.ConfigResource, mod.ConfigResourceType
        # --- configs: describe, incremental alter, alter; one missing topic fails its own entry
        described = await aw(admin.describe_configs([CR(T.TOPIC, topic), CR(T.TOPIC, "missing-" + topic)]))
        assert described["topic"][topic] == {}  # nothing modified yet
        assert isinstance(described["topic"]["missing-" + topic], UnknownTopicOrPartitionError)
        everything = await aw(admin.describe_configs([CR(T.TOPIC, topic, ["retention.ms"])], config_filter="all"))
        assert set(everything["topic"][topic]) == {"retention.ms"}
        changed = await aw(
            admin.alter_configs(
                [CR(T.TOPIC, topic, {"retention.ms": "123456"}), CR(T.TOPIC, "missing-" + topic, {"retention.ms": "1"})],
                incremental=True,
            )
        )
        assert changed["topic"][topic] is None
        assert isinstance(changed["topic"]["missing-" + topic], UnknownTopicOrPartitionError)
        # The broker applies a config change when the controller's record reaches it.
        def topic_configs() -> Any:
            return admin.describe_configs([CR(T.TOPIC, topic)])

        modified = await eventually(topic_configs, lambda r: "retention.ms" in r["topic"][topic])
        assert modified["topic"][topic]["retention.ms"]["value"] == "123456"
        await aw(admin.alter_configs([CR(T.TOPIC, topic, {"cleanup.policy": "compact"})]))  # incremental
        await eventually(topic_configs, lambda r: {"retention.ms", "cleanup.policy"} <= set(r["topic"][topic]))
        deleted = await aw(
            admin.incremental_alter_configs([CR(T.TOPIC, topic, {"retention.ms": (mod.AlterConfigOp.DELETE, None)})])
        )
        assert deleted == {"topic": {topic: None}}
        # AlterConfigs proper: every dynamic config not named goes back to its default.
        assert await aw(admin.alter_configs([CR(T.TOPIC, topic, {"segment.ms": "3600000"})], incremental=False)) == {
            "topic": {topic: None}
        }
        modified = await eventually(topic_configs, lambda r: set(r["topic"][topic]) == {"segment.ms"})
        assert modified["topic"][topic]["segment.ms"]["value"] == "3600000"
        broker = await aw(admin.describe_configs([CR(T.BROKER, "1", ["num.io.threads"])], config_filter="all"))
        assert broker["broker"]["1"]["num.io.threads"]["value"] == "4"

        # --- list_offsets (latest, earliest, timestamp, max timestamp), delete_records
        latest = await aw(admin.list_offsets({tp0: mod.OffsetSpec.LATEST, tp1: mod.OffsetSpec.LATEST}))
        assert (latest[tp0].offset, latest[tp1].offset) == (5, 0)
        assert (await aw(admin.list_offsets({tp0: mod.OffsetSpec.EARLIEST})))[tp0].offset == 0
        by_time = await aw(admin.list_offsets({tp0: BASE_TS + 2500}))
        assert (by_time[tp0].offset, by_time[tp0].timestamp) == (3, BASE_TS + 3000)
        top = await aw(admin.list_offsets({tp0: mod.OffsetSpec.MAX_TIMESTAMP}))
        assert (top[tp0].offset, top[tp0].timestamp) == (4, BASE_TS + 4000)
        bad_tp = TopicPartition(topic, 9)
        with pytest.raises(UnknownTopicOrPartitionError):
            await aw(admin.list_offsets({tp0: -1, bad_tp: -1}))
        mixed = await aw(admin.list_offsets({tp0: -1, bad_tp: -1}, raise_errors=False))
        assert mixed[tp0].offset == 5 and isinstance(mixed[bad_tp], UnknownTopicOrPartitionError)
        assert await aw(admin.delete_records({tp0: 2})) == {tp0: {"low_watermark": 2}}
        assert (await aw(admin.list_offsets({tp0: mod.OffsetSpec.EARLIEST})))[tp0].offset == 2

        # --- log dirs: the topic's partitions are on broker 1
        dirs = await aw(admin.describe_log_dirs())
        assert set(dirs) == {1}
        parts = {tp for d in dirs[1].values() for tp in d["partitions"]}
        assert {tp0, tp1} <= parts
        only = await aw(admin.describe_log_dirs(topic_partitions=[tp0], brokers=[1]))
        assert [tp for d in only[1].values() for tp in d["partitions"]] == [tp0]

        # --- ACLs
        pattern = mod.ResourcePattern(mod.ResourceType.TOPIC, topic, mod.ACLResourcePatternType.LITERAL)
        acl = mod.ACL(f"User:{user}", "*", mod.ACLOperation.READ, mod.ACLPermissionType.ALLOW, pattern)
        flt = mod.ACLFilter(
            f"User:{user}",
            None,
            mod.ACLOperation.ANY,
            mod.ACLPermissionType.ANY,
            mod.ResourcePatternFilter(mod.ResourceType.TOPIC, topic, mod.ACLResourcePatternType.ANY),
        )
        assert await aw(admin.create_acls([acl])) == {"succeeded": [acl], "failed": []}
        # ACLs and SCRAM credentials reach the broker with the controller's records.
        assert await eventually(lambda: admin.describe_acls(flt), lambda r: r[0]) == ([acl], None)
        (deleted,) = await aw(admin.delete_acls([flt]))
        assert deleted == (flt, [acl], None)
        assert await eventually(lambda: admin.describe_acls(flt), lambda r: not r[0]) == ([], None)

        # --- SCRAM credentials: the new user can log in
        up = mod.UserScramCredentialUpsertion(user, mod.ScramMechanism.SCRAM_SHA_256, "s3cret", iterations=8192)
        assert await aw(admin.alter_user_scram_credentials([up])) == {user: None}
        creds = await eventually(
            lambda: admin.describe_user_scram_credentials([user]), lambda r: r[user]["error"] is None
        )
        assert creds == {
            user: {"error": None, "credential_infos": [{"mechanism": mod.ScramMechanism.SCRAM_SHA_256, "iterations": 8192}]}
        }
        assert user in await aw(admin.describe_user_scram_credentials())
        with t_sync.KafkaAdminClient(
            bootstrap_servers=kafka_acl.bootstrap_for("SASL_PLAINTEXT"),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username=user,
            sasl_plain_password="s3cret",
        ) as as_user:
            assert topic in as_user.list_topics()
        with t_sync.KafkaAdminClient(
            bootstrap_servers=kafka_acl.bootstrap_for("SASL_PLAINTEXT"),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username=user,
            sasl_plain_password="wrong",
        ) as refused:  # raised at once, not at the call's deadline
            with pytest.raises(AuthenticationFailedError):
                refused.list_topics()
        gone = mod.UserScramCredentialDeletion(user, "SCRAM-SHA-256")
        assert await aw(admin.alter_user_scram_credentials([gone])) == {user: None}
        after = await eventually(
            lambda: admin.describe_user_scram_credentials([user]), lambda r: r[user]["error"] is not None
        )
        assert after[user]["credential_infos"] == []

    run_admin(transport, scenario, bootstrap_servers=kafka_acl.bootstrap)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_transactions_and_producers(kafka_acl: KafkaCluster, transport: str) -> None:
    topic = name("txn")
    kafka_acl.create_topic(topic, partitions=1)
    tp = TopicPartition(topic, 0)
    tid = name("tid")
    producer = KafkaProducer(bootstrap_servers=kafka_acl.bootstrap, transactional_id=tid)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"open", partition=0).get(30)
    producer.flush()

    async def scenario(admin: Any, mod: Any) -> None:
        listed = await aw(admin.list_transactions())
        mine = [t for ts in listed.values() for t in ts if t[0] == tid]
        assert len(mine) == 1 and mine[0][2] == "Ongoing"
        (pid,) = {t[1] for t in mine}
        desc = (await aw(admin.describe_transactions([tid])))[tid]
        assert (desc["state"], desc["producer_id"], desc["partitions"]) == ("Ongoing", pid, [tp])
        producers = (await aw(admin.describe_producers([tp])))[tp]
        assert [p["producer_id"] for p in producers] == [pid]
        fenced = (await aw(admin.fence_producers([tid])))[tid]
        assert fenced["producer_id"] == pid and fenced["producer_epoch"] > desc["producer_epoch"]
        with pytest.raises(KafkaError):
            await aw(admin.describe_transactions([name("unknown-tid")]))

    try:
        run_admin(transport, scenario, bootstrap_servers=kafka_acl.bootstrap)
    finally:
        producer.close(timeout=1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_elect_leaders_on_three_brokers(kafka_cluster: KafkaCluster, transport: str) -> None:
    topic = kafka_cluster.create_topic(name("elect"), partitions=2)
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]

    async def scenario(admin: Any, mod: Any) -> None:
        # Every preferred leader already leads: each partition says so in its own entry.
        result = await aw(admin.elect_leaders(0, tps))
        assert set(result) == set(tps)
        assert all(isinstance(e, ElectionNotNeededError) for e in result.values())
        bad = TopicPartition(topic, 7)
        mixed = await aw(admin.elect_leaders(0, [*tps, bad], raise_errors=False))
        assert isinstance(mixed[bad], UnknownTopicOrPartitionError)
        with pytest.raises(InvalidReplicationFactorError):
            await aw(admin.create_topics([mod.NewTopic(name("rf"), 1, 5)]))

    run_admin(transport, scenario, bootstrap_servers=kafka_cluster.bootstrap)


# --- no broker needed: bad options and arguments fail before any I/O --------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_options_and_arguments_are_named(transport: str) -> None:
    mod = MODULES[transport]

    async def main() -> None:
        with pytest.raises(TypeError, match="bootstrap_server"):
            mod.KafkaAdminClient(bootstrap_server="127.0.0.1:1")
        with pytest.raises(ValueError, match="request_timeout_ms"):
            mod.KafkaAdminClient(bootstrap_servers="127.0.0.1:1", request_timeout_ms=-1)
        admin = mod.KafkaAdminClient(bootstrap_servers="127.0.0.1:1")
        try:
            for call, needle in [
                (lambda: admin.create_topics("topic"), "new_topics"),
                (lambda: admin.delete_topics("topic"), "topics"),
                (lambda: admin.create_topics(["t"], timeout_ms=-5), "timeout_ms"),
                (lambda: admin.describe_configs(["t"]), "config_resources"),
                (lambda: admin.describe_configs([], config_filter="bogus"), "config_filter"),
                (lambda: admin.list_offsets({TopicPartition("t", 0): -7}), "topic_partition_specs"),
                (lambda: admin.list_offsets({}, isolation_level=3), "isolation_level"),
                (lambda: admin.elect_leaders(2, []), "election_type"),
                (lambda: admin.delete_records({("t", "x"): 1}), "records_to_delete"),
                (lambda: admin.alter_consumer_group_offsets("g", {TopicPartition("t", 0): "1"}), "offsets"),
                (lambda: admin.describe_acls("filter"), "acl_filter"),
                (lambda: admin.create_acls(["acl"]), "acls"),
                (lambda: admin.alter_user_scram_credentials([object()]), "alterations"),
            ]:
                with pytest.raises(IllegalArgumentError, match=needle):
                    call()
        finally:
            await aw(admin.close())
        with pytest.raises(IllegalStateError, match="closed"):
            await aw(admin.list_topics())

    async def unreachable() -> None:
        # A call that cannot be made fails at the client's deadline, naming why.
        async with mod.KafkaAdminClient(bootstrap_servers="127.0.0.1:1", default_api_timeout_ms=300) as admin:
            with pytest.raises(KafkaTimeoutError, match="list_topics"):
                await aw(admin.list_topics())

    if transport == "trio":
        trio.run(main)
        trio.run(unreachable)
    elif transport == "asyncio":
        asyncio.run(main())
        asyncio.run(unreachable())
    else:
        asyncio.run(main())
        with t_sync.KafkaAdminClient(bootstrap_servers="127.0.0.1:1", default_api_timeout_ms=300) as admin:
            with pytest.raises(KafkaTimeoutError, match="list_topics"):
                admin.list_topics()


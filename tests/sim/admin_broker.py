"""Admin APIs for the simulated brokers (``tests/sim/harness.py``).

``install(cluster)`` makes every broker serve CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
ListGroups, DescribeGroups, DeleteGroups, OffsetDelete, DeleteRecords and
ElectLeaders from the cluster's state, as Kafka does:

- controller APIs answer NOT_CONTROLLER on any broker but
  ``cluster.controller_id`` (the pre-KRaft rule; a KRaft broker forwards, but
  the client's retry path is the one to exercise);
- group APIs answer NOT_COORDINATOR on any broker but the group's coordinator;
- DeleteRecords answers NOT_LEADER_OR_FOLLOWER on any broker but the leader;
- DescribeConfigs/AlterConfigs of a BROKER resource naming another broker
  answer INVALID_REQUEST (a broker only describes itself).

``AdminState.requests`` records ``(broker id, api key)`` of every admin request
served, so scenarios can check the routing. ``inject`` (the harness's) works
for these APIs too: the next answers of that API carry the injected code.
"""

from __future__ import annotations

from typing import Any

from kproto.protocol.messages import alter_configs as _ac
from kproto.protocol.messages import alter_user_scram_credentials as _aus
from kproto.protocol.messages import create_acls as _cra
from kproto.protocol.messages import create_partitions as _cp
from kproto.protocol.messages import create_topics as _ct
from kproto.protocol.messages import delete_acls as _dla
from kproto.protocol.messages import delete_groups as _dg
from kproto.protocol.messages import delete_records as _dr
from kproto.protocol.messages import delete_topics as _dt
from kproto.protocol.messages import describe_acls as _dsa
from kproto.protocol.messages import describe_cluster as _dcl
from kproto.protocol.messages import describe_configs as _dc
from kproto.protocol.messages import describe_groups as _dsg
from kproto.protocol.messages import describe_log_dirs as _dld
from kproto.protocol.messages import describe_producers as _dp
from kproto.protocol.messages import describe_transactions as _dtx
from kproto.protocol.messages import describe_user_scram_credentials as _dus
from kproto.protocol.messages import elect_leaders as _el
from kproto.protocol.messages import incremental_alter_configs as _iac
from kproto.protocol.messages import list_groups as _lg
from kproto.protocol.messages import list_transactions as _lt
from kproto.protocol.messages import offset_delete as _od

from .harness import SimCluster, _Partition

NONE, UNKNOWN_TOPIC, NOT_LEADER, NOT_COORDINATOR = 0, 3, 6, 16
TOPIC_EXISTS, NOT_CONTROLLER, INVALID_REQUEST, INVALID_PARTITIONS = 36, 41, 42, 37
GROUP_NOT_EMPTY, GROUP_ID_NOT_FOUND = 68, 69

API_CREATE_TOPICS, API_DELETE_TOPICS, API_CREATE_PARTITIONS = 19, 20, 37
API_DESCRIBE_CONFIGS, API_ALTER_CONFIGS, API_INCREMENTAL_ALTER_CONFIGS = 32, 33, 44
API_LIST_GROUPS, API_DESCRIBE_GROUPS, API_DELETE_GROUPS, API_OFFSET_DELETE = 16, 15, 42, 47
API_DELETE_RECORDS, API_ELECT_LEADERS = 21, 43
API_DESCRIBE_ACLS, API_CREATE_ACLS, API_DELETE_ACLS, API_DESCRIBE_LOG_DIRS = 29, 30, 31, 35
API_DESCRIBE_PRODUCERS, API_DESCRIBE_TRANSACTIONS, API_LIST_TRANSACTIONS = 61, 65, 66
API_DESCRIBE_USER_SCRAM, API_ALTER_USER_SCRAM, API_DESCRIBE_CLUSTER = 50, 51, 60
TRANSACTIONAL_ID_NOT_FOUND, RESOURCE_NOT_FOUND = 105, 91

#: Topic configs every topic reports (the broker's defaults).
DEFAULT_TOPIC_CONFIGS = {"cleanup.policy": "delete", "retention.ms": "604800000"}


class AdminState:
    """Configs and the request log the admin handlers share."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        #: (resource type, name) -> {key: value}: configs set by AlterConfigs.
        self.configs: dict[tuple[int, str], dict[str, str]] = {}
        #: (broker id, api key) of every admin request served.
        self.requests: list[tuple[int, int]] = []
        #: topic -> partition -> log start offset set by DeleteRecords.
        self.log_start: dict[tuple[str, int], int] = {}
        #: ACLs: (resource type, name, pattern type, principal, host, operation, permission).
        self.acls: list[tuple[int, str, int, str, str, int, int]] = []
        #: user -> mechanism -> (iterations, salt, salted password).
        self.scram: dict[str, dict[int, tuple[int, bytes, bytes]]] = {}


def install(cluster: SimCluster) -> AdminState:
    """Make every broker of ``cluster`` serve the admin APIs; returns their shared state."""
    state = AdminState(cluster)
    for broker_id, broker in cluster.brokers.items():
        handlers = _Handlers(state, broker_id)
        broker.extra_handlers.update(
            {
                API_CREATE_TOPICS: handlers.create_topics,
                API_DELETE_TOPICS: handlers.delete_topics,
                API_CREATE_PARTITIONS: handlers.create_partitions,
                API_DESCRIBE_CONFIGS: handlers.describe_configs,
                API_ALTER_CONFIGS: handlers.alter_configs,
                API_INCREMENTAL_ALTER_CONFIGS: handlers.incremental_alter_configs,
                API_LIST_GROUPS: handlers.list_groups,
                API_DESCRIBE_GROUPS: handlers.describe_groups,
                API_DELETE_GROUPS: handlers.delete_groups,
                API_OFFSET_DELETE: handlers.offset_delete,
                API_DELETE_RECORDS: handlers.delete_records,
                API_ELECT_LEADERS: handlers.elect_leaders,
                API_DESCRIBE_ACLS: handlers.describe_acls,
                API_CREATE_ACLS: handlers.create_acls,
                API_DELETE_ACLS: handlers.delete_acls,
                API_DESCRIBE_LOG_DIRS: handlers.describe_log_dirs,
                API_DESCRIBE_PRODUCERS: handlers.describe_producers,
                API_DESCRIBE_TRANSACTIONS: handlers.describe_transactions,
                API_LIST_TRANSACTIONS: handlers.list_transactions,
                API_DESCRIBE_USER_SCRAM: handlers.describe_user_scram_credentials,
                API_ALTER_USER_SCRAM: handlers.alter_user_scram_credentials,
                API_DESCRIBE_CLUSTER: handlers.describe_cluster,
            }
        )
    return state


class _Handlers:
    def __init__(self, state: AdminState, broker_id: int) -> None:
        self.state = state
        self.c = state.cluster
        self.id = broker_id

    def _log(self, api_key: int) -> int:
        """Record the request; return an injected code for it, else 0."""
        self.state.requests.append((self.id, api_key))
        code = self.c.take_injected(api_key)
        return int(code or 0)

    def _controller_code(self, api_key: int) -> int:
        code = self._log(api_key)
        controller = min(self.c.brokers) if self.c.controller_id is None else self.c.controller_id
        return code or (NONE if controller == self.id else NOT_CONTROLLER)

    def _owner_code(self, api_key: int, group: str) -> int:
        return NONE if self.c.coordinator_of(0, group) == self.id else NOT_COORDINATOR

    def describe_cluster(self, request: Any, version: int, now: float) -> Any:
        self._log(API_DESCRIBE_CLUSTER)
        controller = min(self.c.brokers) if self.c.controller_id is None else self.c.controller_id
        return _dcl.DescribeClusterResponse(
            cluster_id="sim",
            controller_id=controller,
            brokers=[
                _dcl.DescribeClusterBroker(broker_id=b.node_id, host=b.host, port=b.port)
                for b in self.c.brokers.values()
                if b.up
            ],
        )

    # --- controller APIs ---------------------------------------------------------------

    def create_topics(self, request: Any, version: int, now: float) -> Any:
        top = self._controller_code(API_CREATE_TOPICS)
        results = []
        for t in request.topics:
            code = top
            if not code and t.name in self.c.topics:
                code = TOPIC_EXISTS
            if not code and not request.validate_only:
                n = len(t.assignments) if t.assignments else t.num_partitions
                self.c.create_topic(t.name, now, None if n == -1 else n)
                if t.configs:
                    self.state.configs[(2, t.name)] = {cfg.name: cfg.value or "" for cfg in t.configs}
            n_parts = len(self.c.topics.get(t.name, [])) if not code else -1
            results.append(
                _ct.CreatableTopicResult(
                    name=t.name,
                    error_code=code,
                    error_message=None,
                    num_partitions=n_parts if not code else -1,
                    replication_factor=len(self.c.brokers) if not code else -1,
                    configs=None if code else [],
                )
            )
        return _ct.CreateTopicsResponse(topics=results)

    def delete_topics(self, request: Any, version: int, now: float) -> Any:
        top = self._controller_code(API_DELETE_TOPICS)
        names = [t.name for t in request.topics] if version >= 6 else list(request.topic_names)
        results = []
        for name in names:
            code = top or (NONE if name in self.c.topics else UNKNOWN_TOPIC)
            if not code:
                del self.c.topics[name]
            results.append(_dt.DeletableTopicResult(name=name, error_code=code))
        return _dt.DeleteTopicsResponse(responses=results)

    def create_partitions(self, request: Any, version: int, now: float) -> Any:
        top = self._controller_code(API_CREATE_PARTITIONS)
        results = []
        for t in request.topics:
            parts = self.c.topics.get(t.name)
            code = top or (UNKNOWN_TOPIC if parts is None else NONE)
            if not code and parts is not None and t.count <= len(parts):
                code = INVALID_PARTITIONS
            if not code and parts is not None and not request.validate_only:
                ids = sorted(self.c.brokers)
                parts.extend(_Partition(ids[i % len(ids)], now) for i in range(len(parts), t.count))
            results.append(_cp.CreatePartitionsTopicResult(name=t.name, error_code=code))
        return _cp.CreatePartitionsResponse(results=results)

    def elect_leaders(self, request: Any, version: int, now: float) -> Any:
        top = self._controller_code(API_ELECT_LEADERS)
        if top:
            return _el.ElectLeadersResponse(error_code=top)
        out = []
        for t in request.topic_partitions or []:
            known = self.c.topics.get(t.topic, [])
            out.append(
                _el.ReplicaElectionResult(
                    topic=t.topic,
                    partition_result=[
                        _el.PartitionResult(
                            partition_id=p, error_code=NONE if p < len(known) else UNKNOWN_TOPIC
                        )
                        for p in t.partitions
                    ],
                )
            )
        return _el.ElectLeadersResponse(replica_election_results=out)

    # --- configs ----------------------------------------------------------------------------

    def _config_code(self, resource_type: int, name: str) -> int:
        if resource_type in (4, 8):
            return NONE if name == str(self.id) else INVALID_REQUEST
        if resource_type == 2:
            return NONE if name in self.c.topics else UNKNOWN_TOPIC
        return INVALID_REQUEST

    def describe_configs(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DESCRIBE_CONFIGS)
        results = []
        for r in request.resources:
            code = top or self._config_code(r.resource_type, r.resource_name)
            values = dict(DEFAULT_TOPIC_CONFIGS) if r.resource_type == 2 else {"broker.id": str(self.id)}
            values.update(self.state.configs.get((r.resource_type, r.resource_name), {}))
            keys = sorted(values) if r.configuration_keys is None else r.configuration_keys
            results.append(
                _dc.DescribeConfigsResult(
                    error_code=code,
                    resource_type=r.resource_type,
                    resource_name=r.resource_name,
                    configs=[]
                    if code
                    else [
                        _dc.DescribeConfigsResourceResult(name=k, value=values.get(k), config_source=5)
                        for k in keys
                        if k in values
                    ],
                )
            )
        return _dc.DescribeConfigsResponse(results=results)

    def alter_configs(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_ALTER_CONFIGS)
        results = []
        for r in request.resources:
            code = top or self._config_code(r.resource_type, r.resource_name)
            if not code and not request.validate_only:
                self.state.configs[(r.resource_type, r.resource_name)] = {
                    cfg.name: cfg.value or "" for cfg in r.configs
                }
            results.append(
                _ac.AlterConfigsResourceResponse(
                    error_code=code, resource_type=r.resource_type, resource_name=r.resource_name
                )
            )
        return _ac.AlterConfigsResponse(responses=results)

    def incremental_alter_configs(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_INCREMENTAL_ALTER_CONFIGS)
        results = []
        for r in request.resources:
            code = top or self._config_code(r.resource_type, r.resource_name)
            if not code and not request.validate_only:
                stored = self.state.configs.setdefault((r.resource_type, r.resource_name), {})
                for cfg in r.configs:
                    if cfg.config_operation == 1:
                        stored.pop(cfg.name, None)
                    else:
                        stored[cfg.name] = cfg.value or ""
            results.append(
                _iac.AlterConfigsResourceResponse(
                    error_code=code, resource_type=r.resource_type, resource_name=r.resource_name
                )
            )
        return _iac.IncrementalAlterConfigsResponse(responses=results)

    # --- groups -----------------------------------------------------------------------------

    def list_groups(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_LIST_GROUPS)
        if top:
            return _lg.ListGroupsResponse(error_code=top)
        groups = [
            _lg.ListedGroup(group_id=g.id, protocol_type="consumer", group_state=g.state)
            for g in self.c.groups.values()
            if self.c.coordinator_of(0, g.id) == self.id
        ]
        return _lg.ListGroupsResponse(groups=sorted(groups, key=lambda g: g.group_id))

    def describe_groups(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DESCRIBE_GROUPS)
        out = []
        for gid in request.groups:
            code = top or self._owner_code(API_DESCRIBE_GROUPS, gid)
            g = self.c.groups.get(gid)
            out.append(
                _dsg.DescribedGroup(
                    error_code=code,
                    group_id=gid,
                    group_state="Dead" if g is None else g.state,
                    protocol_type="consumer" if g is not None else "",
                    protocol_data=(g.protocol or "") if g is not None else "",
                    members=[
                        _dsg.DescribedGroupMember(member_id=m, client_id="c", client_host="/h")
                        for m in (g.members if g is not None else {})
                    ],
                )
            )
        return _dsg.DescribeGroupsResponse(groups=out)

    def delete_groups(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DELETE_GROUPS)
        out = []
        for gid in request.groups_names:
            code = top or self._owner_code(API_DELETE_GROUPS, gid)
            g = self.c.groups.get(gid)
            if not code:
                code = GROUP_ID_NOT_FOUND if g is None else GROUP_NOT_EMPTY if g.members else NONE
            if not code:
                del self.c.groups[gid]
            out.append(_dg.DeletableGroupResult(group_id=gid, error_code=code))
        return _dg.DeleteGroupsResponse(results=out)

    def offset_delete(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_OFFSET_DELETE) or self._owner_code(API_OFFSET_DELETE, request.group_id)
        if top:
            return _od.OffsetDeleteResponse(error_code=top)
        g = self.c.groups.get(request.group_id)
        if g is None:
            return _od.OffsetDeleteResponse(error_code=GROUP_ID_NOT_FOUND)
        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                g.offsets.pop((t.name, p.partition_index), None)
                parts.append(_od.OffsetDeleteResponsePartition(partition_index=p.partition_index))
            topics.append(_od.OffsetDeleteResponseTopic(name=t.name, partitions=parts))
        return _od.OffsetDeleteResponse(topics=topics)

    # --- partitions -------------------------------------------------------------------------

    def delete_records(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DELETE_RECORDS)
        topics = []
        for t in request.topics:
            parts = []
            plist = self.c.topics.get(t.name, [])
            for p in t.partitions:
                i = p.partition_index
                part = plist[i] if 0 <= i < len(plist) else None
                code = top or (
                    UNKNOWN_TOPIC if part is None else NONE if part.leader == self.id else NOT_LEADER
                )
                low = -1
                if not code and part is not None:
                    low = part.log.end_offset if p.offset == -1 else p.offset
                    self.state.log_start[(t.name, i)] = low
                parts.append(
                    _dr.DeleteRecordsPartitionResult(partition_index=i, low_watermark=low, error_code=code)
                )
            topics.append(_dr.DeleteRecordsTopicResult(name=t.name, partitions=parts))
        return _dr.DeleteRecordsResponse(topics=topics)

    # --- ACLs -------------------------------------------------------------------------------

    @staticmethod
    def _matches(f: Any, acl: tuple[int, str, int, str, str, int, int]) -> bool:
        rtype, name, ptype, principal, host, op, perm = acl
        return (
            f.resource_type_filter in (1, rtype)
            and f.resource_name_filter in (None, name)
            and f.pattern_type_filter in (1, ptype)
            and f.principal_filter in (None, principal)
            and f.host_filter in (None, host)
            and f.operation in (1, op)
            and f.permission_type in (1, perm)
        )

    def describe_acls(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DESCRIBE_ACLS)
        if top:
            return _dsa.DescribeAclsResponse(error_code=top, error_message="injected")
        found: dict[tuple[int, str, int], list[Any]] = {}
        for acl in self.state.acls:
            if self._matches(request, acl):
                found.setdefault(acl[:3], []).append(
                    _dsa.AclDescription(
                        principal=acl[3], host=acl[4], operation=acl[5], permission_type=acl[6]
                    )
                )
        return _dsa.DescribeAclsResponse(
            resources=[
                _dsa.DescribeAclsResource(resource_type=t, resource_name=n, pattern_type=p, acls=acls)
                for (t, n, p), acls in found.items()
            ]
        )

    def create_acls(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_CREATE_ACLS)
        results = []
        for a in request.creations:
            code = top or (INVALID_REQUEST if not a.principal.startswith("User:") else NONE)
            if not code:
                self.state.acls.append(
                    (
                        a.resource_type,
                        a.resource_name,
                        a.resource_pattern_type,
                        a.principal,
                        a.host,
                        a.operation,
                        a.permission_type,
                    )
                )
            results.append(_cra.AclCreationResult(error_code=code))
        return _cra.CreateAclsResponse(results=results)

    def delete_acls(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DELETE_ACLS)
        results = []
        for f in request.filters:
            if top:
                results.append(_dla.DeleteAclsFilterResult(error_code=top))
                continue
            gone = [a for a in self.state.acls if self._matches(f, a)]
            self.state.acls = [a for a in self.state.acls if a not in gone]
            results.append(
                _dla.DeleteAclsFilterResult(
                    matching_acls=[
                        _dla.DeleteAclsMatchingAcl(
                            resource_type=a[0],
                            resource_name=a[1],
                            pattern_type=a[2],
                            principal=a[3],
                            host=a[4],
                            operation=a[5],
                            permission_type=a[6],
                        )
                        for a in gone
                    ]
                )
            )
        return _dla.DeleteAclsResponse(filter_results=results)

    # --- log dirs, transactions, producers ----------------------------------------------------

    def describe_log_dirs(self, request: Any, version: int, now: float) -> Any:
        self._log(API_DESCRIBE_LOG_DIRS)
        topics = []
        for name, parts in sorted(self.c.topics.items()):
            led = [
                _dld.DescribeLogDirsPartition(partition_index=i, partition_size=p.log.end_offset * 100)
                for i, p in enumerate(parts)
                if p.leader == self.id
            ]
            if led:
                topics.append(_dld.DescribeLogDirsTopic(name=name, partitions=led))
        return _dld.DescribeLogDirsResponse(
            results=[
                _dld.DescribeLogDirsResult(
                    log_dir=f"/data/{self.id}", topics=topics, total_bytes=10**9, usable_bytes=10**8
                )
            ]
        )

    def list_transactions(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_LIST_TRANSACTIONS)
        if top:
            return _lt.ListTransactionsResponse(error_code=top)
        states = []
        for txn_id, (pid, _epoch) in sorted(self.c.txn_producers.items()):
            if self.c.coordinator_of(1, txn_id) != self.id:
                continue
            state = "Ongoing" if txn_id in self.c.transactions else "Empty"
            if request.state_filters and state not in request.state_filters:
                continue
            states.append(
                _lt.TransactionState(transactional_id=txn_id, producer_id=pid, transaction_state=state)
            )
        return _lt.ListTransactionsResponse(transaction_states=states)

    def describe_transactions(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DESCRIBE_TRANSACTIONS)
        out = []
        for txn_id in request.transactional_ids:
            code = top or (NONE if self.c.coordinator_of(1, txn_id) == self.id else NOT_COORDINATOR)
            known = self.c.txn_producers.get(txn_id)
            if not code and known is None:
                code = TRANSACTIONAL_ID_NOT_FOUND
            pid, epoch = known or (-1, -1)
            txn = self.c.transactions.get(txn_id)
            by_topic: dict[str, list[int]] = {}
            for t, p in sorted(txn.partitions if txn is not None else ()):
                by_topic.setdefault(t, []).append(p)
            out.append(
                _dtx.TransactionState(
                    error_code=code,
                    transactional_id=txn_id,
                    transaction_state="Ongoing" if txn is not None else "Empty",
                    transaction_timeout_ms=60000,
                    transaction_start_time_ms=-1,
                    producer_id=pid,
                    producer_epoch=epoch,
                    topics=[_dtx.TopicData(topic=t, partitions=ps) for t, ps in by_topic.items()],
                )
            )
        return _dtx.DescribeTransactionsResponse(transaction_states=out)

    def describe_producers(self, request: Any, version: int, now: float) -> Any:
        top = self._log(API_DESCRIBE_PRODUCERS)
        topics = []
        for t in request.topics:
            plist = self.c.topics.get(t.name, [])
            parts = []
            for i in t.partition_indexes:
                part = plist[i] if 0 <= i < len(plist) else None
                code = top or (
                    UNKNOWN_TOPIC if part is None else NONE if part.leader == self.id else NOT_LEADER
                )
                producers = []
                if not code and part is not None:
                    for pid, (epoch, recent) in sorted(part.log.producers.items()):
                        last = recent[-1] if recent else (0, -1, 0)
                        producers.append(
                            _dp.ProducerState(
                                producer_id=pid,
                                producer_epoch=epoch,
                                last_sequence=last[1],
                                last_timestamp=-1,
                            )
                        )
                parts.append(
                    _dp.PartitionResponse(partition_index=i, error_code=code, active_producers=producers)
                )
            topics.append(_dp.TopicResponse(name=t.name, partitions=parts))
        return _dp.DescribeProducersResponse(topics=topics)

    # --- SCRAM credentials ---------------------------------------------------------------------

    def describe_user_scram_credentials(self, request: Any, version: int, now: float) -> Any:
        self._log(API_DESCRIBE_USER_SCRAM)
        names = sorted(self.state.scram) if request.users is None else [u.name for u in request.users]
        results = []
        for name in names:
            creds = self.state.scram.get(name)
            results.append(
                _dus.DescribeUserScramCredentialsResult(
                    user=name,
                    error_code=NONE if creds else RESOURCE_NOT_FOUND,
                    credential_infos=[
                        _dus.CredentialInfo(mechanism=m, iterations=it)
                        for m, (it, _s, _p) in sorted((creds or {}).items())
                    ],
                )
            )
        return _dus.DescribeUserScramCredentialsResponse(results=results)

    def alter_user_scram_credentials(self, request: Any, version: int, now: float) -> Any:
        self._log(API_ALTER_USER_SCRAM)
        codes: dict[str, int] = {}
        for d in request.deletions:
            creds = self.state.scram.get(d.name, {})
            codes[d.name] = NONE if creds.pop(d.mechanism, None) is not None else RESOURCE_NOT_FOUND
        for u in request.upsertions:
            self.state.scram.setdefault(u.name, {})[u.mechanism] = (u.iterations, u.salt, u.salted_password)
            codes.setdefault(u.name, NONE)
        return _aus.AlterUserScramCredentialsResponse(
            results=[_aus.AlterUserScramCredentialsResult(user=n, error_code=c) for n, c in codes.items()]
        )

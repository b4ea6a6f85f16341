"""ACLs: DescribeAcls, CreateAcls and DeleteAcls at any broker."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kproto.admin.answers import error_for
from kproto.admin.engine import (
    ANY,
    AdminEngine,
    AdminOp,
)
from kproto.admin.types import (
    ACL,
    ACLFilter,
    ResourcePattern,
)
from kproto.errors import (
    IllegalArgumentError,
)
from kproto.protocol.messages import create_acls as _cra
from kproto.protocol.messages import delete_acls as _dla
from kproto.protocol.messages import describe_acls as _dsa


def describe_acls(
    engine: AdminEngine, acl_filter: ACLFilter, *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DescribeAcls at any broker: result ``{acl_filter: [ACL]}`` (an error entry
    such as SecurityDisabledError when the cluster has no authorizer)."""
    f = acl_filter

    def build(_keys: list[Any], _t: int) -> Any:
        return _dsa.DescribeAclsRequest(**_acl_filter_fields(f))

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        if resp.error_code:
            return {f: error_for(resp.error_code, resp.error_message, "describe ACLs")}
        return {
            f: [
                _acl(a, r.resource_type, r.resource_name, r.pattern_type)
                for r in resp.resources
                for a in r.acls
            ]
        }

    return engine.start("describe_acls", [f], ANY, build, parse, now, timeout_ms)


def create_acls(
    engine: AdminEngine, acls: Iterable[ACL], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """CreateAcls at any broker; value None per ACL created (results come back in request order)."""
    wanted = list(dict.fromkeys(acls))
    for acl in wanted:
        if not isinstance(acl, ACL):
            raise IllegalArgumentError(f"create_acls takes ACL objects, got {acl!r}")

    def build(keys: list[ACL], _t: int) -> Any:
        return _cra.CreateAclsRequest(
            creations=[
                _cra.AclCreation(
                    resource_type=int(a.resource_pattern.resource_type),
                    resource_name=a.resource_pattern.resource_name,
                    resource_pattern_type=int(a.resource_pattern.pattern_type),
                    principal=a.principal,
                    host=a.host,
                    operation=int(a.operation),
                    permission_type=int(a.permission_type),
                )
                for a in keys
            ]
        )

    def parse(resp: Any, keys: list[ACL]) -> dict[ACL, Any]:
        return {
            k: error_for(r.error_code, r.error_message, f"create ACL {k}") if r.error_code else None
            for k, r in zip(keys, resp.results, strict=False)
        }

    return engine.start("create_acls", wanted, ANY, build, parse, now, timeout_ms)


def delete_acls(
    engine: AdminEngine, acl_filters: Iterable[ACLFilter], *, now: float, timeout_ms: int | None = None
) -> AdminOp:
    """DeleteAcls at any broker; per filter, the ACLs it deleted (``[ACL]``) or its error."""
    filters = list(dict.fromkeys(acl_filters))

    def build(keys: list[ACLFilter], _t: int) -> Any:
        return _dla.DeleteAclsRequest(filters=[_dla.DeleteAclsFilter(**_acl_filter_fields(f)) for f in keys])

    def parse(resp: Any, keys: list[ACLFilter]) -> dict[ACLFilter, Any]:
        out: dict[ACLFilter, Any] = {}
        for k, r in zip(keys, resp.filter_results, strict=False):
            if r.error_code:
                out[k] = error_for(r.error_code, r.error_message, "delete ACLs")
                continue
            out[k] = [
                _acl(m, m.resource_type, m.resource_name, m.pattern_type)
                for m in r.matching_acls
                if not m.error_code
            ]
        return out

    return engine.start("delete_acls", filters, ANY, build, parse, now, timeout_ms)


def _acl_filter_fields(f: ACLFilter) -> dict[str, Any]:
    """An ACL filter as the fields DescribeAcls and DeleteAcls share."""
    pattern = f.resource_pattern
    return {
        "resource_type_filter": int(pattern.resource_type),
        "resource_name_filter": pattern.resource_name,
        "pattern_type_filter": int(pattern.pattern_type),
        "principal_filter": f.principal,
        "host_filter": f.host,
        "operation": int(f.operation),
        "permission_type": int(f.permission_type),
    }


def _acl(entry: Any, resource_type: int, resource_name: str, pattern_type: int) -> ACL:
    """An :class:`ACL` from a DescribeAcls/DeleteAcls answer (unknown enum values raise ValueError)."""
    return ACL(
        entry.principal,
        entry.host,
        entry.operation,
        entry.permission_type,
        ResourcePattern(resource_type, resource_name, pattern_type),
    )

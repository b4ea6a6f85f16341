"""Configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs (KIP-339),
routed to the named broker for BROKER/BROKER_LOGGER resources, else anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kproto.admin.answers import error_for
from kproto.admin.engine import (
    ANY,
    BROKER,
    AdminEngine,
    AdminOp,
)
from kproto.admin.types import (
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
)
from kproto.errors import (
    IllegalArgumentError,
)
from kproto.protocol.messages import alter_configs as _ac
from kproto.protocol.messages import describe_configs as _dc
from kproto.protocol.messages import incremental_alter_configs as _iac


def describe_configs(
    engine: AdminEngine,
    config_resources: Iterable[ConfigResource],
    *,
    now: float,
    include_synonyms: bool = False,
    timeout_ms: int | None = None,
) -> AdminOp:
    """DescribeConfigs; a BROKER/BROKER_LOGGER resource goes to that broker
    (Java: only it knows its static configs), others to any broker. Result per
    ``(type, name)``: ``{key: {value, read_only, config_source, is_sensitive, synonyms}}``."""
    resources = {r.key: r for r in config_resources}

    def build(keys: list[Any], _t: int) -> Any:
        return _dc.DescribeConfigsRequest(
            resources=[
                _dc.DescribeConfigsResource(
                    resource_type=int(t),
                    resource_name=n,
                    configuration_keys=_config_keys(resources[(t, n)].configs),
                )
                for t, n in keys
            ],
            include_synonyms=include_synonyms,
        )

    def parse(resp: Any, keys: list[Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for r in resp.results:
            key = (ConfigResourceType(r.resource_type), r.resource_name)
            if r.error_code:
                # Final, as Java's describeConfigs: a resource error completes
                # that resource (only call-level failures are retried).
                out[key] = error_for(r.error_code, r.error_message, f"describe configs of {key[1]!r}")
                continue
            out[key] = {
                c.name: {
                    "value": c.value,
                    "read_only": c.read_only,
                    "config_source": c.config_source,
                    "is_sensitive": c.is_sensitive,
                    "synonyms": [(s.name, s.value, s.source) for s in c.synonyms],
                }
                for c in r.configs
            }
        return out

    return _config_call(engine, "describe_configs", resources, build, parse, now, timeout_ms)


def alter_configs(
    engine: AdminEngine,
    config_resources: Iterable[ConfigResource],
    *,
    now: float,
    validate_only: bool = False,
    incremental: bool = False,
    timeout_ms: int | None = None,
) -> AdminOp:
    """AlterConfigs (replaces every dynamic config of each resource), or with
    ``incremental`` IncrementalAlterConfigs (KIP-339: each resource's
    ``configs`` maps a key to ``(AlterConfigOp, value)`` or to a value (SET)).
    Value None per success."""
    resources = {r.key: r for r in config_resources}
    items = {k: _config_items(r) for k, r in resources.items()}  # bad input fails here, not mid-send

    def build(keys: list[Any], _t: int) -> Any:
        return _ac.AlterConfigsRequest(
            resources=[
                _ac.AlterConfigsResource(
                    resource_type=int(t),
                    resource_name=n,
                    configs=[
                        _ac.AlterableConfig(name=k, value=None if v is None else str(v))
                        for k, v in items[(t, n)]
                    ],
                )
                for t, n in keys
            ],
            validate_only=validate_only,
        )

    def build_incremental(keys: list[Any], _t: int) -> Any:
        out = []
        for t, n in keys:
            configs = []
            for k, v in items[(t, n)]:
                op, value = v if isinstance(v, tuple) else (AlterConfigOp.SET, v)
                configs.append(
                    _iac.AlterableConfig(
                        name=k, config_operation=int(op), value=None if value is None else str(value)
                    )
                )
            out.append(_iac.AlterConfigsResource(resource_type=int(t), resource_name=n, configs=configs))
        return _iac.IncrementalAlterConfigsRequest(resources=out, validate_only=validate_only)

    name, make = ("incremental_alter_configs", build_incremental) if incremental else ("alter_configs", build)
    return _config_call(engine, name, resources, make, _parse_alter_configs, now, timeout_ms)


def _config_call(
    engine: AdminEngine,
    name: str,
    resources: dict[Any, ConfigResource],
    build: Callable[[list[Any], int], Any],
    parse: Callable[[Any, list[Any]], Mapping[Any, Any]],
    now: float,
    timeout_ms: int | None,
) -> AdminOp:
    broker_keys = [
        k for k in resources if k[0] in (ConfigResourceType.BROKER, ConfigResourceType.BROKER_LOGGER)
    ]
    for t, n in broker_keys:
        if not n.isdigit():
            raise IllegalArgumentError(f"a {t.name} config resource is named by a broker id, got {n!r}")
    other = [k for k in resources if k not in broker_keys]
    # One op, two routes: broker resources to their broker, others anywhere
    # (Java's describeConfigs/incrementalAlterConfigs split the same way).
    op = engine.new_op(name, now, timeout_ms)
    if broker_keys:
        engine.add_call(op, broker_keys, BROKER, build, parse, now, target=lambda k: int(k[1]))
    if other:
        engine.add_call(op, other, ANY, build, parse, now)
    return engine.finish_start(op, now)


def _config_keys(configs: Mapping[str, object] | Sequence[str] | None) -> list[str] | None:
    if configs is None:
        return None
    return list(configs.keys()) if isinstance(configs, Mapping) else list(configs)


def _config_items(resource: ConfigResource) -> list[tuple[str, Any]]:
    configs = resource.configs
    if not isinstance(configs, Mapping):
        raise IllegalArgumentError(f"{resource!r}: altering configs needs configs={{key: value}}")
    return list(configs.items())


def _parse_alter_configs(resp: Any, keys: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for r in resp.responses:
        key = (ConfigResourceType(r.resource_type), r.resource_name)
        out[key] = (
            error_for(r.error_code, r.error_message, f"alter configs of {key[1]!r}") if r.error_code else None
        )
    return out

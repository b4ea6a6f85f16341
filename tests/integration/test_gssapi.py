"""SASL GSSAPI (Kerberos) against Apache Kafka with an MIT KDC on loopback, on every transport.

An MIT KDC (Debian's ``krb5-kdc``, ``tests/_kdc.py``) holds the realm
``KPROTO.TEST``: the broker's ``kafka/127.0.0.1`` (its JAAS ``Krb5LoginModule``
reads the service keytab) and the client ``client``, whose keytab this
process's libkrb5 uses (``KRB5_CLIENT_KTNAME``). The client authenticates
with ``sasl_mechanism='GSSAPI'`` and ``sasl_kerberos_service_name='kafka'``
(the target ``kafka@127.0.0.1``, the broker's advertised host), produces
and consumes; ``sasl_kerberos_domain_name`` and ``sasl_kerberos_name`` name
the same principal other ways; a service principal the KDC does not know
fails with an authentication error at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _adapters import TRANSPORTS, open_consumer, open_producer, run
from _kafka import KafkaCluster
from _kdc import MitKdc

from kproto.errors import AuthenticationFailedError

N = 20


@pytest.fixture(scope="module")
def kerberized() -> Iterator[tuple[KafkaCluster, MitKdc]]:
    """One Kafka node whose SASL listeners offer GSSAPI, and the KDC of its realm."""
    with MitKdc() as kdc:
        kdc.add_client("client")
        with KafkaCluster(1, kerberos=kdc) as cluster, kdc.client_env():
            yield cluster, kdc


def gssapi_config(cluster: KafkaCluster, **kw: Any) -> dict[str, Any]:
    return {"bootstrap_servers": cluster.bootstrap_for("SASL_PLAINTEXT"), "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "GSSAPI", **kw}  # fmt: skip


@pytest.mark.parametrize(
    "naming",
    [{"sasl_kerberos_service_name": "kafka"}, {"sasl_kerberos_domain_name": "127.0.0.1"},
     {"sasl_kerberos_name": "kafka@127.0.0.1"}],  # fmt: skip
    ids=["service", "domain", "name"],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_produce_and_consume_with_kerberos(
    transport: str, naming: dict[str, str], kerberized: tuple[KafkaCluster, MitKdc]
) -> None:
    cluster, _kdc = kerberized
    cfg = gssapi_config(cluster, **naming)
    # Created and served first (retries=0: see KafkaCluster.create_topic).
    topic = cluster.create_topic(f"krb-{uuid.uuid4().hex[:10]}")
    got: list[bytes] = []

    async def scenario() -> None:
        async with open_producer(transport, **cfg) as p:
            for i in range(N):
                await p.get(await p.send(topic, b"k%d" % i), 30)
        async with open_consumer(transport, topic, auto_offset_reset="earliest", **cfg) as c:
            got.extend(await c.poll_values(N, timeout=60))

    run(transport, scenario)
    assert sorted(got) == sorted(b"k%d" % i for i in range(N))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_service_principal_is_an_authentication_error(
    transport: str, kerberized: tuple[KafkaCluster, MitKdc]
) -> None:
    cluster, _kdc = kerberized
    errors: list[BaseException] = []

    async def scenario() -> None:
        async with open_producer(transport, max_block_ms=5000, **gssapi_config(
                cluster, sasl_kerberos_service_name="nosuchservice")) as p:  # fmt: skip
            try:
                await p.get(await p.send("krb-never", b"x"), 10)
            except Exception as exc:
                errors.append(exc)

    run(transport, scenario)
    (error,) = errors
    assert isinstance(error, AuthenticationFailedError), repr(error)
    assert "GSSAPI" in str(error)

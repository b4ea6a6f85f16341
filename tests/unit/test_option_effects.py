"""kafka-python options reaching what they change (issue 11 item 1): the Fetch request's
fields, the TLS context, the consumer's metric group names.

The options with their own test files: tests/unit/test_client_options.py
(api_version, connections_max_idle_ms, receive_message_max_bytes,
bootstrap_timeout_ms) and tests/unit/test_sockopts.py (socket options, DNS).
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_consumer_core import TP0, TP1, answer_list_offsets, make  # noqa: E402

from transports._tls import security_from_configs  # noqa: E402


def test_fetch_options_reach_every_fetch_request() -> None:
    core, client = make(
        auto_offset_reset="earliest",
        fetch_min_bytes=4096,
        fetch_max_wait_ms=250,
        fetch_max_bytes=8 * 2**20,
        max_partition_fetch_bytes=2 * 2**20,
        isolation_level="read_committed",
        enable_incremental_fetch_sessions=False,
    )
    core.assign([TP0, TP1], now=0.0)
    answer_list_offsets(client, {0: 0, 1: 0})
    fetches = client.take("FetchRequest")
    assert len(fetches) == 2
    for req, _cb, _node, _mv in fetches:
        assert (req.min_bytes, req.max_wait_ms, req.max_bytes) == (4096, 250, 8 * 2**20)
        assert req.isolation_level == 1  # read_committed (KIP-98)
        assert req.session_epoch == -1  # sessions off (KIP-227)
        assert {p.partition_max_bytes for t in req.topics for p in t.partitions} == {2 * 2**20}


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ca = trustme.CA()
    d = tmp_path_factory.mktemp("ca")
    cafile = str(d / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    return cafile, str(d)


def test_ssl_ciphers_and_check_hostname_shape_the_context(ca_files: tuple[str, str]) -> None:
    cafile, _ = ca_files
    sec = security_from_configs(
        {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_ciphers": "ECDHE-RSA-AES128-GCM-SHA256", "ssl_check_hostname": False},
        allow_async_provider=False,
    )
    ctx = sec.ssl_context
    assert isinstance(ctx, ssl.SSLContext) and ctx.check_hostname is False
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-RSA-AES128-GCM-SHA256"}


def test_ssl_crlfile_turns_on_crl_checks(ca_files: tuple[str, str]) -> None:
    cafile, _ = ca_files
    sec = security_from_configs(
        {"security_protocol": "SSL", "ssl_cafile": cafile, "ssl_crlfile": cafile}, allow_async_provider=False
    )
    assert sec.ssl_context is not None and sec.ssl_context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_metric_group_prefix_names_the_consumer_metrics() -> None:
    from transports.sync import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", metric_group_prefix="billing")
    try:
        assert "billing-metrics" in consumer.metrics()
    finally:
        consumer.close(autocommit=False)


def test_sync_facade_runs_on_the_selector_class_given() -> None:
    """``selector``: the sync transport's selectors class (kafka-python's option)."""
    import selectors

    from transports.sync import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9", selector=selectors.SelectSelector)
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:9", selector=selectors.PollSelector)
    try:
        assert type(producer._loop._sel) is selectors.SelectSelector
        assert consumer._driver is not None and type(consumer._driver._sel) is selectors.PollSelector
    finally:
        producer.close(0)
        consumer.close(autocommit=False)
    default = KafkaProducer(bootstrap_servers="127.0.0.1:9")
    try:
        assert type(default._loop._sel) is selectors.DefaultSelector
    finally:
        default.close(0)

"""The error table: every wire code has a class, flags match the table, lookups work."""

from __future__ import annotations

import csv
from pathlib import Path

from kproto import errors

TABLE = Path(__file__).resolve().parents[2] / "tools" / "kafka-protocol" / "errors.tsv"


def _rows() -> list[dict[str, str]]:
    with TABLE.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_every_code_in_the_table_has_a_class_with_its_flags() -> None:
    rows = _rows()
    assert len(rows) > 100
    for row in rows:
        code = int(row["code"])
        cls = errors.for_code(code)
        assert cls is not None, row
        assert cls.errno == code
        assert cls.message == row["name"]
        assert cls.retriable is (row["retriable"] == "true"), row
        assert cls.refresh_metadata is (row["refresh_metadata"] == "true"), row


def test_generated_table_is_current() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "tools/gen_errors.py", "--check"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_kafka_python_names_exist() -> None:
    assert errors.NotLeaderForPartitionError.errno == 6
    assert errors.NotLeaderOrFollowerError is errors.NotLeaderForPartitionError
    assert errors.MessageSizeTooLargeError.errno == 10
    assert errors.UnknownTopicOrPartitionError.refresh_metadata is True
    assert errors.CorruptRecordException is errors.CorruptRecordError
    assert errors.UnsupportedVersionError.errno == 35
    assert errors.IncompatibleBrokerVersion is errors.UnsupportedVersionError
    assert errors.NoError.errno == 0


def test_error_from_code_keeps_the_message() -> None:
    exc = errors.error_from_code(6, "moved to broker 2")
    assert isinstance(exc, errors.NotLeaderForPartitionError)
    assert exc.retriable and exc.refresh_metadata
    assert str(exc) == "[Error 6] NOT_LEADER_OR_FOLLOWER: moved to broker 2"


def test_unknown_code_keeps_the_number() -> None:
    assert errors.for_code(4242) is None
    exc = errors.error_from_code(4242)
    assert isinstance(exc, errors.UnknownBrokerError)
    assert isinstance(exc, errors.BrokerResponseError)
    assert exc.errno == 4242
    assert "4242" in str(exc)
    assert not errors.is_retriable(4242)
    assert not errors.needs_metadata_refresh(4242)


def test_flags_by_code() -> None:
    assert errors.is_retriable(6) and errors.needs_metadata_refresh(6)
    assert errors.is_retriable(15) and not errors.needs_metadata_refresh(15)
    assert not errors.is_retriable(22)


def test_hierarchy_lets_one_except_catch_both_flavours() -> None:
    assert issubclass(errors.CorruptRecordError, errors.DecodeError)
    assert issubclass(errors.DecodeError, errors.KafkaProtocolError)
    assert issubclass(errors.UnsupportedCodecError, errors.DecodeError)
    assert issubclass(errors.RecordTooLargeError, errors.MessageSizeTooLargeError)
    assert issubclass(errors.SaslAuthenticationFailedError, errors.AuthenticationFailedError)
    assert issubclass(errors.KafkaConfigurationError, ValueError)
    assert errors.KafkaConnectionError.retriable
    assert errors.KafkaTimeoutError.retriable
    assert errors.NoBrokersAvailable().invalid_metadata is True
    assert not errors.IllegalStateError.retriable

"""The ``kproto`` command end to end: subprocesses against Tansu and Apache Kafka, and a real terminal (tmux).

Every command runs as a user would run it (``python -m kproto ...``, and the
console script pyproject.toml declares), with stdin, stdout and stderr as
pipes, and is judged by its output and exit status only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _broker import TansuBroker, free_port
from _kafka import KafkaCluster

from kproto.consumer import TopicPartition
from transports.sync import KafkaConsumer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KPROTO = [sys.executable, "-m", "kproto"]


def kproto(*args: str, stdin: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m kproto ARGS`` from the repository root; stdout and stderr captured (piped)."""
    return subprocess.run(
        [*KPROTO, *args], input=stdin, capture_output=True, cwd=ROOT, timeout=timeout, check=False
    )


def ok(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    done = kproto(*args, stdin=stdin)
    assert done.returncode == 0, (args, done.returncode, done.stderr.decode())
    return done


def one_line_error(done: subprocess.CompletedProcess[bytes]) -> str:
    """The error a failed command printed: exactly one line starting ``kproto:``, no traceback."""
    err = done.stderr.decode()
    assert err.startswith("kproto: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def end_offsets(bootstrap: str, topic: str, partitions: int = 4) -> dict[int, int]:
    """The broker's ListOffsets(latest) per partition, through kproto's own consumer."""
    with KafkaConsumer(bootstrap_servers=bootstrap) as c:
        ends = c.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return {tp.partition: offset for tp, offset in ends.items()}


def test_produce_then_consume_with_a_format_and_as_json(bootstrap: str, topic: str) -> None:
    n = 500
    lines = b"".join(b"k%d:v%d\n" % (i, i) for i in range(n))
    done = ok("produce", "-b", bootstrap, topic, "-K", ":", "-H", "source=cli", "--acks", "all", stdin=lines)
    summary = done.stderr.decode()
    assert summary.startswith(f"produced {n} records") and summary.count("\n") == 1, summary
    assert "0 errors" in summary and "\r" not in summary  # piped: a summary, no progress line

    out = ok("consume", "-b", bootstrap, topic, "-e", "-f", "%k=%v %p:%o %T %h\\n")
    assert out.stderr == b""  # piped: no progress, no summary
    rows = [line.split(" ") for line in out.stdout.decode().splitlines()]
    assert sorted(r[0] for r in rows) == sorted(f"k{i}=v{i}" for i in range(n))
    assert {r[2] for r in rows} == {topic} and {r[3] for r in rows} == {"source=cli"}
    per_partition: dict[int, list[int]] = {}
    for r in rows:
        p, o = r[1].split(":")
        per_partition.setdefault(int(p), []).append(int(o))
    for offsets in per_partition.values():  # each partition read once, in order, from its start
        assert offsets == list(range(len(offsets)))
    # kproto partitions keys as Java does (murmur2): the same key, the same partition, every time
    again = ok("consume", "-b", bootstrap, topic, "-e", "-f", "%k %p\\n").stdout.decode().splitlines()
    assert sorted(again) == sorted(f"{r[0].split('=')[0]} {r[1].split(':')[0]}" for r in rows)

    out = ok("consume", "-b", bootstrap, topic, "-e", "--json")
    records = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert len(records) == n
    assert {(r["key"], r["value"]) for r in records} == {(f"k{i}", f"v{i}") for i in range(n)}
    assert all(r["topic"] == topic and r["headers"] == {"source": "cli"} for r in records)
    assert all(isinstance(r["timestamp"], int) and r["timestamp"] > 0 for r in records)

    # -n stops early; -o picks the start; -p one partition
    first = ok("consume", "-b", bootstrap, topic, "-n", "7", "-p", "0", "-f", "%o\\n").stdout.split()
    assert first == [b"%d" % i for i in range(7)]
    end = ok("consume", "-b", bootstrap, topic, "-p", "0", "-o", "-3", "-e", "-f", "%o\\n").stdout.split()
    # -3: three before the end the broker reports (Kafka: the last three; Tansu's ListOffsets
    # can answer below the last offset, and the read goes on from there to the end)
    count0, reported = len(per_partition[0]), end_offsets(bootstrap, topic)[0]
    assert end == [b"%d" % i for i in range(max(0, reported - 3), count0)]


def test_compression_and_a_start_by_time(broker: Any, bootstrap: str, topic: str) -> None:
    """Every codec round-trips; ``-o s@MS`` starts at the first record at or after that time."""
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        lines = b"".join(b"%s-%d\n" % (codec.encode(), i) for i in range(20))
        ok("produce", "-b", bootstrap, topic, "-z", codec, "-q", stdin=lines)
    time.sleep(0.01)  # a later millisecond than every record above (not a timing assertion)
    since = int(time.time() * 1000)
    ok("produce", "-b", bootstrap, topic, "-z", "none", "-q", stdin=b"late-1\nlate-2\n")
    rows = [
        r.split()
        for r in ok("consume", "-b", bootstrap, topic, "-e", "-f", "%p %o %v\\n").stdout.splitlines()
    ]
    expected = [b"%s-%d" % (c, i) for c in (b"gzip", b"snappy", b"lz4", b"zstd") for i in range(20)]
    assert sorted(r[2] for r in rows) == sorted([*expected, b"late-1", b"late-2"])
    late = ok("consume", "-b", bootstrap, topic, "-e", "-o", f"s@{since}", "-f", "%v\\n").stdout.split()
    # what the broker's ListOffsets(timestamp) answers, read on from there
    with KafkaConsumer(bootstrap_servers=bootstrap) as c:
        found = c.offsets_for_times({TopicPartition(topic, p): since for p in range(4)})
    start = {tp.partition: (at.offset if at is not None else 1 << 62) for tp, at in found.items()}
    assert sorted(late) == sorted(r[2] for r in rows if int(r[1]) >= start[int(r[0])])
    if isinstance(broker, KafkaCluster):  # (Tansu can answer an earlier offset)
        assert sorted(late) == [b"late-1", b"late-2"]


def test_group_lag_after_a_partial_consume(broker: Any, bootstrap: str, topic: str) -> None:
    n, taken = 400, 150
    ok("produce", "-b", bootstrap, topic, "-q", stdin=b"".join(b"line %d\n" % i for i in range(n)))
    group = f"g-{uuid.uuid4().hex[:8]}"
    out = ok("consume", "-b", bootstrap, topic, "-G", group, "-n", str(taken))
    assert len(out.stdout.splitlines()) == taken

    report = json.loads(ok("lag", "-b", bootstrap, group, "--json").stdout)
    rows = report["partitions"]
    assert {r["topic"] for r in rows} == {topic}
    # every partition of the topic; the group committed exactly what it printed (all start at 0)
    assert sorted(r["partition"] for r in rows) == [0, 1, 2, 3]
    assert sum(r["committed"] or 0 for r in rows) == taken
    ends = end_offsets(bootstrap, topic)
    for r in rows:
        assert r["end"] == ends[r["partition"]]
        if r["committed"] is None:  # nothing printed from it: no commit, no lag figure (as the Java tool)
            assert r["lag"] is None
        else:
            assert r["lag"] == max(0, r["end"] - r["committed"])
    assert report["lag"] == sum(r["lag"] or 0 for r in rows)
    if isinstance(broker, KafkaCluster):
        # (Tansu's ListOffsets(latest) can answer below the last offset; the table shows what it says)
        uncommitted = sum(r["end"] for r in rows if r["committed"] is None)
        assert sum(ends.values()) == n and report["lag"] + uncommitted == n - taken

    table = ok("lag", "-b", bootstrap, group).stdout.decode().splitlines()
    assert table[0].split() == ["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
    assert table[-1] == f"total lag {report['lag']:,}"

    groups = json.loads(ok("groups", "-b", bootstrap, "--json").stdout)
    assert group in {g["group"] for g in groups}

    missing = kproto("lag", "-b", bootstrap, f"no-such-{group}")
    assert missing.returncode == 3
    assert "no committed offsets" in one_line_error(missing)


def test_topic_admin_commands(broker: Any, bootstrap: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    assert ok("create-topic", "-b", bootstrap, name, "-p", "3").stdout.decode() == f"created topic {name}\n"
    again = kproto("create-topic", "-b", bootstrap, name, "-p", "3")
    assert again.returncode == 1 and "already exists" in one_line_error(again)
    ok("create-topic", "-b", bootstrap, name, "-p", "3", "--if-not-exists")

    assert name in ok("topics", "-b", bootstrap).stdout.decode().split()
    listed = json.loads(ok("topics", "-b", bootstrap, "-l", "--json").stdout)
    assert {"topic": name, "partitions": 3, "replication_factor": 1} in listed

    ok("produce", "-b", bootstrap, name, "-p", "2", "-q", stdin=b"a\nb\n")
    described = json.loads(ok("describe", "-b", bootstrap, name, "--json").stdout)
    parts = described["partitions"]
    assert [p["partition"] for p in parts] == [0, 1, 2]
    assert [p["start"] for p in parts] == [0, 0, 0]
    assert all(p["leader"] >= 0 and p["replicas"] == p["isr"] == str(p["leader"]) for p in parts)
    assert parts[2]["end"] == end_offsets(bootstrap, name, 3)[2]
    text = ok("describe", "-b", bootstrap, name).stdout.decode().splitlines()
    assert text[0].startswith(f"topic {name}: 3 partitions, replication 1")

    if isinstance(broker, KafkaCluster):  # Tansu has no topic configs to change
        ok(
            "config",
            "-b",
            bootstrap,
            "topic",
            name,
            "--set",
            "retention.ms=123456",
            "--set",
            "cleanup.policy=compact",
        )
        configs = json.loads(ok("config", "-b", bootstrap, "topic", name, "--json").stdout)
        assert configs["retention.ms"] == {"value": "123456", "source": "dynamic-topic"}
        assert configs["cleanup.policy"] == {"value": "compact", "source": "dynamic-topic"}
        assert configs["segment.bytes"]["source"] in ("default", "static-broker")
        ok("config", "-b", bootstrap, "topic", name, "--delete", "retention.ms")
        overrides = json.loads(ok("config", "-b", bootstrap, "topic", name, "--overrides", "--json").stdout)
        assert set(overrides) == {"cleanup.policy"}
        broker_cfg = json.loads(ok("config", "-b", bootstrap, "broker", "1", "--json").stdout)
        assert broker_cfg["auto.create.topics.enable"]["value"] == "true"
    else:
        assert ok("config", "-b", bootstrap, "topic", name).stdout.decode().startswith("KEY")

    assert ok("delete-topic", "-b", bootstrap, name).stdout.decode() == f"deleted topic {name}\n"
    gone = kproto("describe", "-b", bootstrap, name)
    assert gone.returncode == 3 and f"topic {name!r} not found" in one_line_error(gone)
    assert kproto("delete-topic", "-b", bootstrap, name).returncode == 3
    ok("delete-topic", "-b", bootstrap, name, "--if-exists")


def test_error_exit_statuses(bootstrap: str) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    for args in (["consume", missing, "-e"], ["describe", missing], ["config", "topic", missing]):
        done = kproto(*args, "-b", bootstrap)
        assert done.returncode == 3, (args, done.stderr)
        assert f"topic {missing!r} not found" in one_line_error(done)

    dead = f"127.0.0.1:{free_port()}"
    for args in (["produce", "t"], ["consume", "t"], ["topics"], ["lag", "g"]):
        done = kproto(*args, "-b", dead)
        assert done.returncode == 4, (args, done.stderr)
        assert "cannot connect to" in one_line_error(done) and "refused" in done.stderr.decode()

    bad = kproto("consume", "-b", bootstrap, "t", "-X", "fetch_max_wait_ms=soon")
    assert bad.returncode == 2 and "fetch_max_wait_ms" in one_line_error(bad)
    bad = kproto("topics", "-b", bootstrap, "-X", "no_such_option=1")
    assert bad.returncode == 2 and "no_such_option" in one_line_error(bad)
    bad = kproto("produce", "-b", bootstrap, "t", "-X", "acks")
    assert bad.returncode == 2 and "not key=value" in one_line_error(bad)
    bad = kproto("consume", "-b", bootstrap, "t", "-f", "%z")
    assert bad.returncode == 2 and "unknown token %z" in one_line_error(bad)
    usage = kproto("consume", "--no-such-flag")
    assert usage.returncode == 2 and b"usage: kproto consume" in usage.stderr


def test_config_file_and_console_script(tansu: TansuBroker, tmp_path: Path) -> None:
    """``-F`` supplies options (bootstrap_servers too); the console script runs the same ``main``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the test extra installs tomli there
        import tomli as tomllib
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["kproto"].split(":")
    # The launcher pip writes for a console script, pointed at this checkout.
    launcher = tmp_path / "kproto"
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        f"from {module} import {func}\nsys.exit({func}())\n"
    )
    launcher.chmod(0o755)
    config = tmp_path / "client.properties"
    config.write_text(
        f"# the broker\nbootstrap.servers={tansu.bootstrap}\nclient.id=cli-test\n\nretry_backoff_ms=50\n"
    )
    topic = f"cfg-{uuid.uuid4().hex[:8]}"

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(launcher), *args], input=stdin, capture_output=True, timeout=120, check=False
        )

    produced = run("produce", "-F", str(config), topic, stdin=b"one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = run("consume", "-F", str(config), topic, "-e")
    assert consumed.returncode == 0 and sorted(consumed.stdout.split()) == [b"one", b"two"]
    assert run("--version").stdout.decode().startswith("kproto ")
    unreadable = run("topics", "-F", str(tmp_path / "missing.properties"))
    assert unreadable.returncode == 2 and "cannot read config file" in one_line_error(unreadable)


def test_security_options_by_x_and_by_file(kafka: KafkaCluster, tmp_path: Path) -> None:
    """SASL_SSL (SCRAM-SHA-512 over TLS) with kafka-python's names on -X, and librdkafka's in a -F file."""
    cfg = kafka.client_config("SASL_SSL", "SCRAM-SHA-512")
    topic = kafka.listener("SASL_SSL").create_topic(f"sec-{uuid.uuid4().hex[:8]}")
    xs = [f"-X{k}={v}" for k, v in cfg.items() if k != "bootstrap_servers"]
    ok("produce", "-b", cfg["bootstrap_servers"], topic, *xs, "-q", stdin=b"s1\ns2\n")
    rdkafka = tmp_path / "sasl.properties"
    rdkafka.write_text(
        f"bootstrap.servers={cfg['bootstrap_servers']}\nsecurity.protocol=SASL_SSL\n"
        f"sasl.mechanisms=SCRAM-SHA-512\nsasl.username={kafka.username}\nsasl.password={kafka.password}\n"
        f"ssl.ca.location={kafka.ca_file}\n"
    )
    got = ok("consume", "-F", str(rdkafka), topic, "-e").stdout.split()
    assert sorted(got) == [b"s1", b"s2"]
    assert topic in ok("topics", "-F", str(rdkafka)).stdout.decode().split()
    wrong = kproto("topics", "-F", str(rdkafka), "-X", "sasl.password=wrong")
    assert wrong.returncode == 1 and "Authentication" in one_line_error(wrong)


def test_demo_starts_its_own_broker() -> None:
    """``kproto demo`` and the README's ``python examples/demo.py`` start Tansu and measure (here: small)."""
    for cmd in ([*KPROTO, "demo"], [sys.executable, "examples/demo.py"]):
        done = subprocess.run(
            [*cmd, "--records", "2000", "--only", "sync"],
            capture_output=True,
            cwd=ROOT,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        lines = done.stdout.decode().splitlines()
        assert lines[0].startswith("broker 127.0.0.1:") and "2000 records of 100 bytes" in lines[0]
        assert [line.split()[:2] for line in lines if line.startswith("kproto")] == [["kproto", "sync"]] * 2


# --- a real terminal -----------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket) with one 200-column pane running a shell."""

    def __init__(self) -> None:
        self.socket = f"kproto-test-{uuid.uuid4().hex[:8]}"
        self.run("new-session", "-d", "-x", "200", "-y", "20", "-s", "t", "sh")

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, timeout=30, check=True)
        return done.stdout.decode()

    def type(self, text: str, *keys: str) -> None:
        self.run("send-keys", "-t", "t", "-l", text)
        for key in keys:
            self.run("send-keys", "-t", "t", key)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        """The screen once ``pattern`` (a regular expression) is on it."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if re.search(pattern, screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the screen within {timeout}s:\n{screen}")
            time.sleep(0.1)

    def interrupted(self, command: str, shows: str) -> tuple[str, str]:
        """Run ``command`` until ``shows`` is on the screen, press Ctrl-C; the screen then and at the end.

        The command must then exit with 130 (interrupted) and no traceback.
        """
        self.type(f"{command}; echo EXIT=$?", "Enter")
        shown = self.wait_for(shows)
        self.run("send-keys", "-t", "t", "C-c")
        screen = self.wait_for(r"EXIT=\d")
        assert "EXIT=130" in screen and "Traceback" not in screen
        return shown, screen

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30, check=False
        )


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the terminal tests (Debian package tmux)")
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def test_progress_line_in_a_terminal(tansu: TansuBroker, tmux: Tmux) -> None:
    topic = f"tty-{uuid.uuid4().hex[:8]}"
    cmd = " ".join([sys.executable, "-m", "kproto"])
    # An endless feed (Ctrl-C ends it silently): the live line shows records and MB/s until Ctrl-C.
    feed = (
        f'{sys.executable} -c "import signal, sys\nsignal.signal(signal.SIGINT, signal.SIG_DFL)\n'
        "while True: sys.stdout.write('x' * 100 + chr(10))\""
    )
    shown, end = tmux.interrupted(
        f"cd {ROOT} && {feed} | {cmd} produce -b {tansu.bootstrap} {topic}", "records/s"
    )
    assert "MB/s" in shown
    assert re.search(
        r"produced [\d,]+ records, .*; 0 errors", end
    )  # what was read is delivered and summed up
    # A consumer that keeps waiting for more: its line carries the lag; stdout goes to /dev/null.
    shown, end = tmux.interrupted(f"clear; {cmd} consume -b {tansu.bootstrap} {topic} > /dev/null", " lag ")
    assert "records/s" in shown

    # The same consume piped: nothing at all on stderr.
    piped = ok("consume", "-b", tansu.bootstrap, topic, "-e", "-f", "%o\\n")
    assert piped.stderr == b"" and piped.stdout.count(b"\n") > 0


def test_typed_lines_and_a_summary_in_a_terminal(tansu: TansuBroker, tmux: Tmux) -> None:
    """Lines typed at the terminal are records; Ctrl-D ends the input and prints the summary."""
    topic = f"typed-{uuid.uuid4().hex[:8]}"
    cmd = f"cd {ROOT} && {sys.executable} -m kproto"
    tmux.type(f"{cmd} produce -b {tansu.bootstrap} {topic} -K =; echo EXIT=$?", "Enter")
    tmux.wait_for("Ctrl-D ends")
    tmux.type("a=1", "Enter")
    tmux.type("b=2", "Enter")
    tmux.run("send-keys", "-t", "t", "C-d")
    screen = tmux.wait_for(r"EXIT=\d")
    assert "produced 2 records" in screen and "EXIT=0" in screen
    got = ok("consume", "-b", tansu.bootstrap, topic, "-e", "-f", "%k=%v\\n").stdout.split()
    assert sorted(got) == [b"a=1", b"b=2"]

"""A producer's import does not load the consumer: ``transports.<runtime>`` loads
``KafkaConsumer`` and its core on first use (import time, memory and the objects each
full garbage collection walks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio"])
def test_the_consumer_loads_on_first_use(transport: str) -> None:
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module('transports.{transport}')\n"
        "p = m.KafkaProducer(bootstrap_servers='127.0.0.1:9')\n"
        "loaded = sorted(n for n in sys.modules if n.startswith(('kproto.consumer.', 'transports._consumer')))\n"
        "assert loaded in ([], ['kproto.consumer.types']), loaded\n"
        "c = m.KafkaConsumer\n"
        "assert 'kproto.consumer.core' in sys.modules\n"
        f"assert c.__module__ == 'transports._consumer_{transport}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

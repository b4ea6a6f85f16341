"""The admin names on each transport module: there, typed, and loaded only when asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kproto.admin.types

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("transport", ["sync", "asyncio", "trio"])
def test_admin_names_load_on_first_use(transport: str) -> None:
    code = (
        "import sys, importlib\n"
        f"m = importlib.import_module('transports.{transport}')\n"
        "assert 'kproto.admin' not in sys.modules, 'a plain import loaded the admin client'\n"
        f"names = ['KafkaAdminClient', *{kproto.admin.types.__all__!r}]\n"
        "got = {n: getattr(m, n) for n in names}\n"
        f"assert got['KafkaAdminClient'].__module__ == 'transports._admin_{transport}'\n"
        "import kproto.admin.types as t\n"
        "assert all(got[n] is getattr(t, n) for n in t.__all__)\n"
        "try:\n    m.NoSuchName\nexcept AttributeError:\n    pass\nelse:\n    raise AssertionError('NoSuchName')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

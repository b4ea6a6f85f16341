"""End-to-end demo: start a local Tansu broker, produce and consume with each transport, print records/s.

::

    python examples/demo.py                 # 200k records of 100 bytes per transport
    python examples/demo.py --records 50000 --no-peers

The same as ``kproto demo``; the code is in :mod:`kproto_cli.demo`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kproto_cli.demo import main  # noqa: E402

if __name__ == "__main__":
    main()

"""What the atheris harnesses share: instrumenting kproto and the command line.

Each ``fuzz/fuzz_*.py`` imports kproto inside ``with instrumented(__name__):``
so that, when it is run to fuzz, only kproto gets coverage instrumentation
(instrumenting the whole interpreter costs minutes of start-up), and ends
with ``main(test_one_input, seed_inputs)``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def instrumented(module_name: str) -> contextlib.AbstractContextManager[object]:
    """Instrument the kproto imports under it when ``module_name`` runs as a fuzzer.

    Imported by a test, or run with ``--write-seeds``, it does nothing.
    """
    if module_name == "__main__" and "--write-seeds" not in sys.argv:
        import atheris

        return atheris.instrument_imports(include=["kproto"])  # type: ignore[no-any-return]
    return contextlib.nullcontext()


def main(
    test_one_input: Callable[[bytes], None],
    seed_inputs: Callable[[], Mapping[str, bytes]] | None = None,
) -> None:
    """``--write-seeds DIR`` writes the seed corpus; anything else goes to atheris (libFuzzer flags)."""
    if seed_inputs is not None and len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        for name, blob in seed_inputs().items():
            (out / name).write_bytes(blob)
        return
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()

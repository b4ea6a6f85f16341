"""The trio producer's core clock: perf_counter under trio's default clock, the run's clock otherwise."""

from __future__ import annotations

import time

import trio
import trio.testing

from transports.trio import core_clock as _core_clock


def test_default_clock_is_perf_counter_plus_offset() -> None:
    async def main() -> None:
        now, offset = _core_clock()
        assert now is time.perf_counter
        assert abs(now() + offset - trio.current_time()) < 0.01

    trio.run(main)


def test_mock_clock_is_used_as_is() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        now, offset = _core_clock()
        assert offset == 0.0
        await trio.sleep(5)
        assert now() == trio.current_time() == clock.current_time()

    trio.run(main, clock=clock)

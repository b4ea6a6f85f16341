"""Windowed statistics in the shape of the Java client's ``SampledStat`` (no clock inside).

A :class:`Sampled` keeps ``num_samples`` samples of ``sample_window`` seconds
each (kafka-python's ``metrics_num_samples`` / ``metrics_sample_window_ms``,
defaults 2 and 30 s). A value goes into the current sample; a sample older
than the window is started afresh; a reading combines the samples that are
younger than ``num_samples * sample_window``. So a reading covers between
``(num_samples - 1) * window`` and ``num_samples * window`` of history, as in
Java's ``org.apache.kafka.common.metrics.stats``.

Every call takes ``now`` (seconds, any monotonic origin); memory is
``num_samples`` small lists per statistic whatever the traffic.
"""

from __future__ import annotations

__all__ = ["Sampled"]


class Sampled:
    """Count, sum, max and min over a sliding window of samples; rates per second.

    Args:
        num_samples: Samples kept (>= 1).
        sample_window: Length of one sample, seconds (> 0).
        now: The clock now (the window starts here).
    """

    __slots__ = ("_window", "_samples", "_current", "_created")

    def __init__(self, num_samples: int, sample_window: float, now: float) -> None:
        self._window = sample_window
        #: Each sample: [start, count, total, max, min].
        self._samples: list[list[float]] = [[now, 0.0, 0.0, float("-inf"), float("inf")] for _ in range(num_samples)]
        self._current = 0
        self._created = now

    def record(self, value: float, now: float) -> None:
        """Add one observation."""
        s = self._samples[self._current]
        if now - s[0] >= self._window:
            self._current = (self._current + 1) % len(self._samples)
            s = self._samples[self._current]
            s[0], s[1], s[2], s[3], s[4] = now, 0.0, 0.0, float("-inf"), float("inf")
        s[1] += 1
        s[2] += value
        if value > s[3]:
            s[3] = value
        if value < s[4]:
            s[4] = value

    def _live(self, now: float) -> list[list[float]]:
        horizon = now - len(self._samples) * self._window
        return [s for s in self._samples if s[0] > horizon and s[1]]

    def count(self, now: float) -> float:
        """Observations in the window."""
        return sum(s[1] for s in self._live(now))

    def total(self, now: float) -> float:
        """Sum of the values in the window."""
        return sum(s[2] for s in self._live(now))

    def avg(self, now: float) -> float:
        """Mean value in the window; NaN when there was none (Java reports NaN too)."""
        live = self._live(now)
        n = sum(s[1] for s in live)
        return sum(s[2] for s in live) / n if n else float("nan")

    def max(self, now: float) -> float:
        """Largest value in the window; NaN when there was none."""
        live = self._live(now)
        return max(s[3] for s in live) if live else float("nan")

    def min(self, now: float) -> float:
        """Smallest value in the window; NaN when there was none."""
        live = self._live(now)
        return min(s[4] for s in live) if live else float("nan")

    def _elapsed(self, now: float) -> float:
        # Java's Rate.windowSize: the span of the samples, at least (n - 1) full windows
        # (so a fresh client does not report a huge rate off one early event), but never
        # more than the time since the statistic was created.
        live = self._live(now)
        oldest = min((s[0] for s in live), default=now)
        span = max(now - oldest, (len(self._samples) - 1) * self._window)
        return max(min(span, now - self._created), 1e-3)

    def rate(self, now: float) -> float:
        """Sum of the values per second over the window."""
        return self.total(now) / self._elapsed(now)

    def count_rate(self, now: float) -> float:
        """Observations per second over the window."""
        return self.count(now) / self._elapsed(now)

"""Progress lines for long partitions: documents done, rate, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(
        self, label: str, total: int | None, log: Callable[[str], None], every: float = 10.0
    ) -> None:
        self.label = label
        self.total = total
        self.log = log
        self.every = every
        self.done_count = 0
        self.started = time.perf_counter()
        self._last = self.started

    def advance(self, n: int) -> None:
        self.done_count += n
        now = time.perf_counter()
        if now - self._last >= self.every:
            self._last = now
            self.log(self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done_count / elapsed
        text = f"{self.label}: {self.done_count:,} docs, {rate * 60:,.0f} docs/min"
        if self.total:
            remaining = max(self.total - self.done_count, 0)
            eta = remaining / rate if rate > 0 else float("inf")
            text += f", {self.done_count / self.total:.0%} of {self.total:,}, ETA {eta:,.0f}s"
        return text

    def done(self) -> None:
        if time.perf_counter() - self.started >= self.every:
            self.log(self.line(time.perf_counter()) + " (done)")

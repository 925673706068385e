"""Progress of long partition stages: documents done, rate, ETA.

Each report is a :class:`ProgressEvent`: the run's log gets its text line, and listeners in the
same process (the CLI's display, for the runs it executes in process) get the event itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    stage: str  # "normalize" or "chunk"
    partition: str
    done: int
    total: int | None  # None: not known up front (chunk)
    seconds: float
    finished: bool = False

    @property
    def docs_per_minute(self) -> float:
        return self.done / max(self.seconds, 1e-9) * 60

    @property
    def eta_seconds(self) -> float | None:
        if not self.total:
            return None
        rate = self.done / max(self.seconds, 1e-9)
        return max(self.total - self.done, 0) / rate if rate > 0 else float("inf")

    def line(self) -> str:
        text = (
            f"{self.stage} {self.partition}: {self.done:,} docs, "
            f"{self.docs_per_minute:,.0f} docs/min"
        )
        if self.total:
            text += (
                f", {self.done / self.total:.0%} of {self.total:,}, ETA {self.eta_seconds:,.0f}s"
            )
        return text + (" (done)" if self.finished else "")


ProgressListener = Callable[[ProgressEvent], None]
_listeners: list[ProgressListener] = []


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send ``listener`` every progress event reported in this process while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class Progress:
    """Reports a stage's progress at most every ``every`` seconds, and once more at the end of
    a stage that took longer than that."""

    def __init__(
        self,
        stage: str,
        partition: str,
        total: int | None,
        log: Callable[[str], None],
        every: float = 10.0,
    ) -> None:
        self.stage = stage
        self.partition = partition
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
            self._report(self.event(now))

    def event(self, now: float, *, finished: bool = False) -> ProgressEvent:
        return ProgressEvent(
            self.stage, self.partition, self.done_count, self.total, now - self.started, finished
        )

    def done(self) -> None:
        now = time.perf_counter()
        if now - self.started >= self.every:
            self._report(self.event(now, finished=True))

    def _report(self, event: ProgressEvent) -> None:
        self.log(event.line())
        for listener in list(_listeners):
            listener(event)

"""What the CLI prints: progress of in-process runs on stderr, reports on stdout."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.status import Status

# The engine's progress lines (engine/progress.py), logged every 10 s per partition and stage.
PROGRESS_LINE = re.compile(r"(?:normalize|chunk) \S+: [\d,]+ docs, .*")


class ProgressDisplay(logging.Handler):
    """Progress of in-process runs on stderr: on a terminal one live status line (what runs,
    then the engine's latest progress line: documents done, rate, ETA); elsewhere each progress
    line as it comes, at most one per partition stage every 10 s."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.console = Console(stderr=True, highlight=False)
        self.status: Status | None = None

    @contextmanager
    def running(self, what: str) -> Iterator[None]:
        if self.console.is_terminal:
            self.status = self.console.status(what)
            self.status.start()
        try:
            yield
        finally:
            if self.status is not None:
                self.status.stop()
                self.status = None

    def emit(self, record: logging.LogRecord) -> None:
        match = PROGRESS_LINE.search(record.getMessage())
        if match is None:
            return
        if self.status is not None:
            self.status.update(match.group())
        else:
            self.console.print(match.group(), markup=False, soft_wrap=True)

    def logger_defs(self) -> dict[str, Any]:
        """The job's loggers for a CLI run: Dagster's console (quieted by ``QUIET``) and this."""
        from dagster import LoggerDefinition, colored_console_logger

        progress = logging.Logger("reingest.progress", logging.INFO)
        progress.addHandler(self)
        return {"console": colored_console_logger, "progress": LoggerDefinition(lambda _: progress)}


def print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True))


def report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(
            f"{key:<{width}}  {value:,}" if isinstance(value, int) else f"{key:<{width}}  {value}"
        )

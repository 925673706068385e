"""What the CLI prints: progress and the warnings an operator can act on go to stderr, reports
(a table, or one JSON object with ``--json``) to stdout."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from reingest_assets.engine.progress import ProgressEvent

# Wide enough that a piped table keeps one line per row.
PIPE_WIDTH = 200


def stdout() -> Console:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=PIPE_WIDTH)
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


@contextmanager
def progress(what: str) -> Iterator[None]:
    """While the block runs, the engine's progress events of the runs it executes: on a
    terminal one live status line (what runs, then the latest event: documents done, rate,
    ETA); elsewhere one line per event (one per partition stage every 10 s)."""
    from reingest_assets.engine.progress import listening

    console = stderr()
    if console.is_terminal:
        with console.status(what) as status:

            def update(event: ProgressEvent) -> None:
                status.update(event.line())

            with listening(update):
                yield
    else:

        def show(event: ProgressEvent) -> None:
            console.print(event.line(), markup=False, soft_wrap=True)

        with listening(show):
            yield


class OperatorWarnings(logging.Handler):
    """The CLI's stand-in for Dagster's console logger (which prints every event at DEBUG, and
    each failure's stack): the runs' own warnings, one line each. Failures are in the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.console = stderr()

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        if record.levelno != logging.WARNING or meta.get("dagster_event") is not None:
            return
        where = meta.get("step_key") or meta.get("job_name") or "run"
        message = meta.get("orig_message") or record.getMessage()
        self.console.print(f"warning: {where}: {message}", markup=False, soft_wrap=True)


def run_loggers(verbose: bool) -> dict[str, Any]:
    """The loggers of a run the CLI executes: Dagster's console logger at DEBUG with ``-v``,
    otherwise :class:`OperatorWarnings`."""
    from dagster import LoggerDefinition, colored_console_logger

    if verbose:
        return {"console": colored_console_logger}
    logger = logging.Logger("reingest.run", logging.WARNING)
    logger.addHandler(OperatorWarnings())
    return {"console": LoggerDefinition(lambda _: logger)}


def print_json(obj: Mapping[str, Any]) -> None:
    print(json.dumps(obj, sort_keys=True, default=str))


def error(message: str) -> None:
    print(f"reingest: {message}", file=sys.stderr)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str = "") -> None:
    """Rows as a table; numbers right-aligned."""
    grid = Table(title=title or None, title_justify="left", box=None, header_style="bold")
    for name in columns:
        numeric = any(isinstance(r.get(name), int | float) for r in rows) and not any(
            isinstance(r.get(name), bool) for r in rows
        )
        grid.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(_cell(row.get(name)) for name in columns))
    stdout().print(grid)


def figures(summary: Mapping[str, Any], title: str = "") -> None:
    """A flat mapping as a two-column table."""
    grid = Table(title=title or None, title_justify="left", box=None, show_header=False)
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    for key, value in summary.items():
        grid.add_row(key, _cell(value))
    stdout().print(grid)


def line(text: str) -> None:
    stdout().print(text, markup=False, highlight=False, soft_wrap=True)

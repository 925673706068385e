"""The entry point: parse the arguments, then import what the command needs and run it.

Exit status: 0 done; 1 a run or a check failed (the report says which, and where to read
more); 2 an argument or setting must change (one message naming it). No traceback unless
``-v``."""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from reingest_assets.cli.parser import UsageError, build_parser

SETTINGS_EXIT = 2

# On the way out the interpreter collects garbage over every object Dagster's modules made,
# most of a second with nothing to reclaim: the process is ending. Frozen objects are skipped.
atexit.register(gc.freeze)

# Commands that read a few hundred rows and end. Loading Dagster makes a million objects, none
# of them garbage, and the cyclic collector walks them again and again as they pile up: a fifth
# of `reingest status`. Commands that run jobs keep the collector.
QUICK_READS = frozenset({"status", "runs"})
# Commands that make a stack of their own or need none; every other one runs on the local stack,
# whose embedded Postgres starts while Dagster's modules load.
OWN_STACK = frozenset({"bench", "bench-fetch"})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with _collector_off() if args.command in QUICK_READS else nullcontext():
        return _run(args)


@contextmanager
def _collector_off() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "store", None):
        # Before anything reads the settings: the Dagster definitions load them on import.
        os.environ["REINGEST_STORE"] = args.store
    from reingest_assets.settings import Settings, SettingsError

    try:
        settings = Settings()  # fail early on malformed settings
    except SettingsError as exc:
        return _error(str(exc), args, SETTINGS_EXIT)
    if args.command not in OWN_STACK and not settings.database_url:
        from reingest_assets.resources.embedded_pg import start_in_background

        start_in_background(settings.pg_dir)
    if not args.verbose:
        _quiet_dagster_notices()

    from reingest_assets.cli import commands
    from reingest_assets.preflight import explain

    try:
        return int(commands.COMMANDS[args.command](args))
    except UsageError as exc:
        return _error(str(exc), args, SETTINGS_EXIT)
    except Exception as exc:
        message = explain(exc, settings)
        if message is not None:
            return _error(message, args, SETTINGS_EXIT)
        if args.verbose:
            raise
        from reingest_assets.resources.redaction import redact

        text = redact(f"{type(exc).__name__}: {exc}", settings.database_url)
        return _error(f"{text.splitlines()[0]} (re-run with -v for the traceback)", args, 1)


def _quiet_dagster_notices() -> None:
    """Dagster's notices that a feature this project uses on purpose is beta or preview: the
    operator can do nothing about them (every other warning shows; ``-v``, PYTHONWARNINGS or
    -W show these too)."""
    if sys.warnoptions:
        return
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def _error(message: str, args: argparse.Namespace, status: int) -> int:
    """One message that says what to change (or what broke), no traceback."""
    from reingest_assets.cli.display import error, print_json

    if getattr(args, "json", False):
        print_json({"error": message})
    error(message)
    return status

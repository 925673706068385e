"""The entry point: parse the arguments, then import what the command needs and run it."""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from reingest_assets.cli.parser import build_parser

# Errors a wrong setting causes: the message, and exit status 2 without a traceback.
SETTINGS_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "store", None):
        # Before anything reads the settings: the Dagster definitions load them on import.
        os.environ["REINGEST_STORE"] = args.store

    _quiet_dagster_notices()
    from reingest_assets.cli import commands
    from reingest_assets.preflight import explain
    from reingest_assets.settings import Settings, SettingsError

    try:
        settings = Settings()  # fail early on malformed settings
    except SettingsError as exc:
        return _settings_error(str(exc), args)
    try:
        return int(commands.COMMANDS[args.command](args))
    except Exception as exc:
        message = explain(exc, settings)
        if message is None:
            raise
        return _settings_error(message, args)


def _quiet_dagster_notices() -> None:
    """Dagster's notices that a feature this project uses on purpose is beta or preview: the
    operator can do nothing about them (every other warning shows; PYTHONWARNINGS or -W
    overrides this)."""
    if sys.warnoptions:
        return
    from dagster import BetaWarning, PreviewWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=PreviewWarning)


def _settings_error(message: str, args: argparse.Namespace) -> int:
    """A wrong setting: one message that says what to fix, no traceback."""
    from reingest_assets.cli.display import print_json

    if getattr(args, "json", False):
        print_json({"error": message})
    print(f"reingest: {message}", file=sys.stderr)
    return SETTINGS_EXIT

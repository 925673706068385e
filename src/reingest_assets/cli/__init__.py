"""``reingest``: the operator's command line over the same engine and Dagster job the UI drives.

``parser`` declares the commands and imports nothing heavy, so ``reingest --help`` is quick;
``commands`` runs them (Dagster and the stores are imported inside each command); ``display``
prints progress and reports.
"""

from reingest_assets.cli.app import main

__all__ = ["main"]

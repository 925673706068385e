"""Sensors of the reingest code location."""

from reingest_assets.sensors.repair import repair_sensor

__all__ = ["repair_sensor"]

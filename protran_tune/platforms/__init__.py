"""Measurement of latency, energy and peak power on real platforms (needs only torch and sensors)."""

from protran_tune.platforms.base import (
    MeasurementError,
    Platform,
    SensorUnavailableError,
    Workload,
    available_platforms,
    get_platform,
    register_platform,
)
from protran_tune.platforms.measurement import MODES, Measurement

__all__ = [
    "Measurement", "MODES", "Platform", "Workload", "MeasurementError", "SensorUnavailableError",
    "available_platforms", "get_platform", "register_platform",
]

"""Measurement of latency, energy and peak power on real platforms (needs only torch and sensors)."""

from protran_tune.platforms.base import (
    MeasurementError,
    Platform,
    SensorUnavailableError,
    Workload,
    available_platforms,
    get_platform,
    platform_class,
    register_platform,
)
from protran_tune.platforms.measurement import MODES, Measurement
from protran_tune.platforms.meters import Meter, ModelledCPUMeter, PowerRecorder
from protran_tune.platforms.torch_platforms import (  # registers cpu, cuda, jetson, apple, rpi-ina219
    ApplePlatform,
    CPUPlatform,
    CUDAPlatform,
    JetsonPlatform,
    RaspberryPiINA219Platform,
    TorchPlatform,
)
from protran_tune.platforms.replay import ReplayPlatform  # registers "replay" (a recorded file)

__all__ = [
    "Measurement", "MODES", "Platform", "Workload", "MeasurementError", "SensorUnavailableError",
    "available_platforms", "get_platform", "platform_class", "register_platform", "Meter", "ModelledCPUMeter",
    "PowerRecorder",
    "TorchPlatform", "CPUPlatform", "CUDAPlatform", "JetsonPlatform", "ApplePlatform", "RaspberryPiINA219Platform",
    "ReplayPlatform",
]

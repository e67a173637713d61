"""NVIDIA GPU energy and power through NVML (``nvidia-ml-py``; Zeus's NVML wrapper when importable).

Energy: ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded, Volta and newer). On an
H200 it updates about every 100 ms (10 Hz), so a window's energy is taken between two counter
*updates*: the recorder polls the counter every 2 ms and timestamps each change, which places each
update to within ~2 ms; a window of >= 1 s then holds >= 10 updates and its mean power is resolved to
well under 1%.

Power trace and peak: NVML's power-sample buffer (``nvmlDeviceGetSamples(NVML_TOTAL_POWER_SAMPLES)``),
which holds readings about 20 ms apart with the driver's own timestamps (microseconds on the host's
wall clock, mapped onto :func:`time.perf_counter`). Where the buffer is not supported, the
instantaneous power field (``NVML_FI_DEV_POWER_INSTANT``) or ``nvmlDeviceGetPowerUsage`` is polled
every 20 ms instead; ``describe()`` says which.
"""

from __future__ import annotations

import time
from typing import Any

from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.meters import Meter


def _nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise SensorUnavailableError("NVML unavailable: install nvidia-ml-py (pip install nvidia-ml-py)") from None
    return pynvml


def _zeus_gpus() -> Any | None:
    """Zeus's GPU handle set if zeus is importable and sees NVIDIA GPUs, else ``None``."""
    try:
        from zeus.device.gpu import get_gpus
    except Exception:  # noqa: BLE001 - zeus is optional
        return None
    try:
        return get_gpus()
    except Exception:  # noqa: BLE001
        return None


class NVMLMeter(Meter):
    """One NVIDIA GPU's energy counter (mJ, ~10 Hz) and power samples (~20 ms).

    Args:
        index: NVML device index (as ``nvidia-smi`` numbers GPUs; mapped from ``CUDA_VISIBLE_DEVICES``
            by the caller).
        use_zeus: read the energy counter through Zeus when it is importable (same NVML counter).
    """

    source = "measured:nvml"
    sample_interval_s = 0.02
    counter_interval_s = 0.1
    energy_resolution_j = 1e-3

    def __init__(self, index: int = 0, use_zeus: bool = True) -> None:
        pynvml = _nvml()
        self._pynvml = pynvml
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError and library-not-found alike
            raise SensorUnavailableError(f"NVML could not start (no NVIDIA driver?): {exc}") from None
        try:
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(self.handle)
        except Exception as exc:  # noqa: BLE001
            raise SensorUnavailableError(f"NVML has no GPU {index}: {exc}") from None
        self.index = index
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except Exception as exc:  # noqa: BLE001
            raise SensorUnavailableError(f"GPU {index} ({self.name}) has no NVML energy counter: {exc}") from None
        self._zeus = _zeus_gpus() if use_zeus else None
        self.energy_backend = "zeus" if self._zeus is not None else "nvidia-ml-py"
        self._epoch_offset = time.time() - time.perf_counter()
        self._last_ts = int(time.time() * 1e6)
        self.timestamp_clock = "wall"
        self.power_backend = self._pick_power_backend()

    # ----------------------------------------------------------------- power
    def _pick_power_backend(self) -> str:
        p = self._pynvml
        try:
            _, samples = p.nvmlDeviceGetSamples(self.handle, p.NVML_TOTAL_POWER_SAMPLES, 0)
            if samples:
                newest = max(s.timeStamp for s in samples)
                self._last_ts = newest
                if abs(newest / 1e6 - time.time()) > 10:  # not wall-clock microseconds: anchor newest ~ now
                    self._epoch_offset = newest / 1e6 - time.perf_counter()
                    self.timestamp_clock = "anchored"
            return "samples-buffer"
        except Exception:  # noqa: BLE001
            pass
        try:
            value = self._field_power()
            if value > 0:
                return "instant-field"
        except Exception:  # noqa: BLE001
            pass
        try:
            p.nvmlDeviceGetPowerUsage(self.handle)
            return "power-usage"
        except Exception as exc:  # noqa: BLE001
            raise SensorUnavailableError(f"GPU {self.index} reports no power reading: {exc}") from None

    def _field_power(self) -> float:
        p = self._pynvml
        metric = p.nvmlDeviceGetFieldValues(self.handle, [p.NVML_FI_DEV_POWER_INSTANT])[0]
        if metric.nvmlReturn != p.NVML_SUCCESS:
            raise p.NVMLError(metric.nvmlReturn)
        return metric.value.uiVal / 1000.0

    def read_power_w(self) -> float:
        if self.power_backend == "instant-field":
            return self._field_power()
        return self._pynvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0

    def poll_samples(self) -> list[tuple[float, float]]:
        if self.power_backend != "samples-buffer":
            return [(time.perf_counter(), self.read_power_w())]
        p = self._pynvml
        try:
            _, samples = p.nvmlDeviceGetSamples(self.handle, p.NVML_TOTAL_POWER_SAMPLES, self._last_ts)
        except p.NVMLError_NotFound:  # no new sample since last_ts
            return []
        out = []
        for s in samples:
            if s.timeStamp <= self._last_ts:
                continue
            out.append((s.timeStamp / 1e6 - self._epoch_offset, s.sampleValue.uiVal / 1000.0))
        if out:
            self._last_ts = max(s.timeStamp for s in samples)
        return sorted(out)

    @property
    def poll_interval_s(self) -> float:
        return 0.002

    # ----------------------------------------------------------------- energy
    def read_energy_j(self) -> float:
        if self._zeus is not None:
            return self._zeus.get_total_energy_consumption(self.index) / 1000.0
        return self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0

    def describe(self) -> dict[str, Any]:
        p = self._pynvml
        info: dict[str, Any] = {
            **super().describe(),
            "gpu": self.name,
            "index": self.index,
            "energy_backend": self.energy_backend,
            "power_backend": self.power_backend,
            "sample_timestamps": self.timestamp_clock,
        }
        for key, fn in (
            ("driver", lambda: p.nvmlSystemGetDriverVersion()),
            ("power_limit_w", lambda: p.nvmlDeviceGetEnforcedPowerLimit(self.handle) / 1000.0),
            ("sm_clock_mhz", lambda: p.nvmlDeviceGetClockInfo(self.handle, p.NVML_CLOCK_SM)),
            ("mem_clock_mhz", lambda: p.nvmlDeviceGetClockInfo(self.handle, p.NVML_CLOCK_MEM)),
            ("temperature_c", lambda: p.nvmlDeviceGetTemperature(self.handle, p.NVML_TEMPERATURE_GPU)),
        ):
            try:
                value = fn()
                info[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:  # noqa: BLE001 - optional facts
                pass
        return info

    def close(self) -> None:
        try:
            self._pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass

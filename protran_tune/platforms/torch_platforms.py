"""The built-in torch platforms: ``cpu``, ``cuda``, ``jetson``, ``apple`` and ``rpi-ina219``.

All share :func:`~protran_tune.platforms.protocol.measure_model`; they differ in the torch device
and the meter. Each opens its sensor when constructed, so a missing or unreadable sensor is a
:class:`~protran_tune.platforms.base.SensorUnavailableError` at once (the ``cpu`` platform instead
falls back to the labelled ``modelled:cpu-time`` model when ``energy="auto"``). Importing this module
does not import torch.

Example::

    from protran_tune.platforms import Workload, get_platform
    from protran_tune.space import Architecture

    with get_platform("cpu", watts_per_core=12.0) as cpu:
        m = cpu.measure(Architecture.homogeneous(2, 128, 2, 512), Workload(batch_size=8))
    print(m.latency_s, m.energy_j, m.source)   # seconds and joules per batch, "modelled:cpu-time"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from protran_tune.platforms.base import Platform, SensorUnavailableError, Workload, register_platform
from protran_tune.platforms.measurement import Measurement
from protran_tune.platforms.meters import Meter, ModelledCPUMeter
from protran_tune.space import Architecture

ModelFactory = Callable[[Architecture, Workload], Any]


def default_model_factory(task: str = "classification") -> ModelFactory:
    """``build_model(arch, task)`` with the workload's vocabulary and room for its sequence length."""

    def build(arch: Architecture, workload: Workload) -> Any:
        from protran_tune.models import build_model

        return build_model(
            arch, task=task, vocab_size=workload.vocab_size,
            max_position_embeddings=max(512, workload.seq_len),
        )

    return build


class TorchPlatform(Platform):
    """A torch device plus a meter, measured with the shared protocol.

    Args:
        model_factory: ``(arch, workload) -> nn.Module`` (default: ``build_model(arch, "classification")``).
        task: task of the default factory (``classification``, ``base`` or ``mlm``).
        idle_window_s / energy_window_s: protocol windows, seconds (default: the meter's ``min_window_s``).
        warmup_s: minimum warm-up time, seconds.
        time_budget_s: cap on the latency loop, seconds.
        max_auto_batch: largest batch tried by ``batch_size=None`` (auto).
        threads: torch intra-op threads (``None``: torch's default).
    """

    default_warmup_s: float = 0.0
    first_warmup_s: float = 0.0  # extra warm-up of a process's first measurement (lazy library init)

    def __init__(
        self,
        *,
        model_factory: ModelFactory | None = None,
        task: str = "classification",
        idle_window_s: float | None = None,
        energy_window_s: float | None = None,
        warmup_s: float | None = None,
        time_budget_s: float = 60.0,
        max_auto_batch: int = 1024,
        threads: int | None = None,
    ) -> None:
        self.model_factory = model_factory or default_model_factory(task)
        self.task = task
        self.idle_window_s = idle_window_s
        self.energy_window_s = energy_window_s
        self.warmup_s = self.default_warmup_s if warmup_s is None else float(warmup_s)
        self.time_budget_s = float(time_budget_s)
        self.max_auto_batch = int(max_auto_batch)
        if threads is not None:
            import torch

            torch.set_num_threads(int(threads))
        self.device = self._device()
        self.meter = self._open_meter()
        self._measured = 0

    def _device(self) -> str:
        return "cpu"

    def _open_meter(self) -> Meter:  # pragma: no cover - every platform overrides
        raise NotImplementedError

    def measure(self, arch: Architecture, workload: Workload) -> Measurement:
        from protran_tune.platforms.protocol import measure_model

        first = self._measured == 0
        self._measured += 1
        return measure_model(
            lambda: self.model_factory(arch, workload),
            workload,
            self.meter,
            platform=self.name,
            device=self.device,
            idle_window_s=self.idle_window_s,
            energy_window_s=self.energy_window_s,
            warmup_s=self.warmup_s + (self.first_warmup_s if first else 0.0),
            time_budget_s=self.time_budget_s,
            max_auto_batch=self.max_auto_batch,
            cuda_graph=getattr(self, "cuda_graph", False),
            meta={"arch_hash": arch.content_hash(), "n_layers": arch.n_layers, "task": self.task,
                  "first_in_process": first, **self._extra_meta()},
        )

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "device": self.device, "meter": self.meter.describe()}

    def close(self) -> None:
        self.meter.close()

    def __enter__(self) -> "TorchPlatform":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@register_platform("cpu")
class CPUPlatform(TorchPlatform):
    """Host CPU. Energy from RAPL where readable, else the labelled CPU-time model.

    Args:
        energy: ``auto`` (RAPL, else model), ``rapl`` (RAPL or SensorUnavailableError) or ``model``.
        watts_per_core: parameter of the ``modelled:cpu-time`` model, watts per busy core.
        powercap_root: RAPL sysfs tree (tests point it at a fixture).
    """

    def __init__(self, *, energy: str = "auto", watts_per_core: float = 10.0, powercap_root: str | Path = "/sys/class/powercap", **kw: Any) -> None:
        if energy not in ("auto", "rapl", "model"):
            raise ValueError(f"energy must be 'auto', 'rapl' or 'model', got {energy!r}")
        self.energy, self.watts_per_core, self.powercap_root = energy, watts_per_core, powercap_root
        self.rapl_error: str | None = None
        super().__init__(**kw)

    def _open_meter(self) -> Meter:
        if self.energy != "model":
            from protran_tune.platforms.rapl import RaplMeter

            try:
                return RaplMeter(self.powercap_root)
            except SensorUnavailableError as exc:
                if self.energy == "rapl":
                    raise
                self.rapl_error = str(exc)
        return ModelledCPUMeter(self.watts_per_core)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        if self.rapl_error:
            info["rapl_unavailable"] = self.rapl_error
        return info


def _nvml_index(cuda_index: int) -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
        if cuda_index < len(ids) and ids[cuda_index].isdigit():
            return int(ids[cuda_index])
    return cuda_index


@register_platform("cuda")
class CUDAPlatform(TorchPlatform):
    """An NVIDIA GPU: CUDA events for latency, NVML's energy counter and power samples.

    Args:
        index: CUDA device index (as torch numbers them; mapped through ``CUDA_VISIBLE_DEVICES`` for NVML).
        baseline_idle_s: seconds of idle measured at construction, before this process creates a
            CUDA context (``meta['idle_power_before_context_w']``); 0 skips it.
        cuda_graph: replay a captured CUDA graph for inference instead of eager launches.
    """

    default_warmup_s = 0.5  # clocks ramp up and kernels are selected within a few hundred ms
    first_warmup_s = 1.5  # the first measurement of a process also pays CUDA/cuBLAS initialisation

    def __init__(self, *, index: int = 0, baseline_idle_s: float = 1.0, cuda_graph: bool = False, **kw: Any) -> None:
        self.index = int(index)
        self.cuda_graph = bool(cuda_graph)
        super().__init__(**kw)
        self.baseline_idle_w: float | None = None
        if baseline_idle_s > 0:  # before this process creates a CUDA context on the GPU
            from protran_tune.platforms.meters import PowerRecorder
            import time

            rec = PowerRecorder(self.meter).start()
            t0 = time.perf_counter()
            time.sleep(baseline_idle_s)
            t1 = time.perf_counter()
            rec.stop()
            self.baseline_idle_w = rec.mean_power(t0, t1)[0]

    def _extra_meta(self) -> dict[str, Any]:
        return {"idle_power_before_context_w": self.baseline_idle_w}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "idle_power_before_context_w": self.baseline_idle_w}

    def _device(self) -> str:
        import torch

        if not torch.cuda.is_available():
            raise SensorUnavailableError("platform 'cuda': torch sees no CUDA device on this machine")
        if self.index >= torch.cuda.device_count():
            raise SensorUnavailableError(f"platform 'cuda': no CUDA device {self.index} (have {torch.cuda.device_count()})")
        return f"cuda:{self.index}"

    def _open_meter(self) -> Meter:
        from protran_tune.platforms.nvml import NVMLMeter

        return NVMLMeter(_nvml_index(self.index))


@register_platform("jetson")
class JetsonPlatform(TorchPlatform):
    """NVIDIA Jetson: the integrated GPU (CPU if torch has no CUDA) and board power (INA3221 / tegrastats).

    Args:
        sysfs_root: where to look for INA3221 drivers.
        rail: power rail to report (default: the board input rail, else the sum of rails).
        interval_ms: tegrastats interval when sysfs is unreadable.
    """

    default_warmup_s = 0.5

    def __init__(self, *, sysfs_root: str | Path = "/sys/bus/i2c/drivers", rail: str | None = None, interval_ms: int = 100, **kw: Any) -> None:
        self.sysfs_root, self.rail, self.interval_ms = sysfs_root, rail, interval_ms
        super().__init__(**kw)

    def _device(self) -> str:
        import torch

        return "cuda:0" if torch.cuda.is_available() else "cpu"

    def _open_meter(self) -> Meter:
        from protran_tune.platforms.jetson import open_jetson_meter

        return open_jetson_meter(self.sysfs_root, self.rail, self.interval_ms)


@register_platform("apple")
class ApplePlatform(TorchPlatform):
    """Apple silicon: MPS (CPU if unavailable) and SoC power from ``powermetrics`` (root)."""

    default_warmup_s = 0.5

    def __init__(self, *, interval_ms: int = 100, command: Sequence[str] | None = None, **kw: Any) -> None:
        self.interval_ms, self.command = interval_ms, command
        super().__init__(**kw)

    def _device(self) -> str:
        import torch

        return "mps" if torch.backends.mps.is_available() else "cpu"

    def _open_meter(self) -> Meter:
        from protran_tune.platforms.apple import PowermetricsMeter

        return PowermetricsMeter(self.interval_ms, self.command)


@register_platform("rpi-ina219")
class RaspberryPiINA219Platform(TorchPlatform):
    """Raspberry Pi CPU with board power from an INA219 (hwmon driver, else SMBus)."""

    def __init__(self, *, hwmon_root: str | Path = "/sys/class/hwmon", bus: int = 1, address: int = 0x40, shunt_ohms: float = 0.1, **kw: Any) -> None:
        self.hwmon_root, self.bus, self.address, self.shunt_ohms = hwmon_root, bus, address, shunt_ohms
        super().__init__(**kw)

    def _open_meter(self) -> Meter:
        from protran_tune.platforms.ina219 import open_ina219_meter

        return open_ina219_meter(self.hwmon_root, self.bus, self.address, self.shunt_ohms)

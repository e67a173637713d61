"""The one result type of every platform: an immutable :class:`Measurement` in SI units.

Latency and energy are stored *per batch*; per-sequence values are derived (divide by ``batch_size``).
Where a platform cannot measure a quantity it leaves the field ``None`` and says why in
``unavailable``; a missing sensor is never reported as zero. ``source`` names where the energy and
power figures come from: ``measured:nvml``, ``measured:rapl``, ``measured:tegrastats``,
``measured:powermetrics``, ``measured:ina219``, ``modelled:cpu-time`` (a labelled model whose
parameters are in ``meta``) or ``replay:<file>``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Mapping

Mode = Literal["inference", "training"]
MODES: tuple[str, ...] = ("inference", "training")


@dataclass(frozen=True)
class Measurement:
    """Latency, energy and peak power of one architecture on one platform.

    Attributes:
        platform: registry name of the platform (``cpu``, ``cuda``, ``jetson``, ...).
        device: human-readable device (``NVIDIA H200``, ``Intel Xeon ... x2 threads``).
        mode: ``inference`` (forward) or ``training`` (forward + backward + optimiser step).
        batch_size: sequences per batch.
        seq_len: tokens per sequence.
        repeats: timed iterations behind the latency statistics.
        latency_s: median wall time of one batch, seconds.
        latency_iqr_s: inter-quartile range of the batch latency, seconds.
        latency_ci_rel: half-width of the 95% confidence interval of the median, relative to it.
        energy_j: energy of one batch, joules (total, idle included), or ``None``.
        energy_above_idle_j: ``energy_j`` less idle draw over the same time (``idle_power_w`` times the
            batch time of the energy window, ``meta['energy_window']['batch_time_s']`` where the
            protocol records it, else ``latency_s``), or ``None``.
        idle_power_w: idle draw measured before the run, watts, or ``None``.
        peak_power_w: highest sample of the power trace during the run, watts, or ``None``.
        mean_power_w: energy over time during the run, watts, or ``None``.
        energy_spread_rel: relative spread (IQR / median) of per-window energy, or ``None``.
        source: origin of energy and power figures (see module docstring).
        power_trace: ``((t_s, watts), ...)`` samples at the sensor's rate, t from run start.
        unavailable: ``{field: reason}`` for every quantity left ``None``.
        meta: anything else worth recording (model parameters, clocks, sensor rate, versions).
        wall_time_s: time the whole measurement took (warm-up, idle, repeats).
    """

    platform: str
    device: str
    mode: str
    batch_size: int
    seq_len: int
    repeats: int
    latency_s: float
    latency_iqr_s: float
    latency_ci_rel: float
    source: str
    energy_j: float | None = None
    energy_above_idle_j: float | None = None
    idle_power_w: float | None = None
    peak_power_w: float | None = None
    mean_power_w: float | None = None
    energy_spread_rel: float | None = None
    power_trace: tuple[tuple[float, float], ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("batch_size", "seq_len", "repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.latency_s, (int, float)) and math.isfinite(self.latency_s) and self.latency_s > 0):
            raise ValueError(f"latency_s must be a positive finite number, got {self.latency_s!r}")
        for name in ("energy_j", "energy_above_idle_j", "idle_power_w", "peak_power_w", "mean_power_w"):
            value = getattr(self, name)
            if value is None:
                if name not in self.unavailable:
                    raise ValueError(f"{name} is None: say why in unavailable[{name!r}]")
            elif not math.isfinite(value) or (value < 0 and name != "energy_above_idle_j"):
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        object.__setattr__(self, "power_trace", tuple((float(t), float(w)) for t, w in self.power_trace))
        object.__setattr__(self, "unavailable", dict(self.unavailable))
        object.__setattr__(self, "meta", dict(self.meta))

    # ----------------------------------------------------------------- per sequence
    @property
    def latency_per_sequence_s(self) -> float:
        return self.latency_s / self.batch_size

    @property
    def energy_per_sequence_j(self) -> float | None:
        return None if self.energy_j is None else self.energy_j / self.batch_size

    @property
    def energy_above_idle_per_sequence_j(self) -> float | None:
        return None if self.energy_above_idle_j is None else self.energy_above_idle_j / self.batch_size

    def objectives(self) -> dict[str, float | None]:
        """The hardware targets (:data:`~protran_tune.objectives.targets.HARDWARE_TARGETS`): per-sequence
        ``latency_s`` (s), ``energy_j`` (J) and the device's ``peak_power_w`` (W); ``None`` where unmeasured."""
        from protran_tune.objectives.targets import ENERGY, LATENCY, PEAK_POWER

        return {
            LATENCY.name: self.latency_per_sequence_s,
            ENERGY.name: self.energy_per_sequence_j,
            PEAK_POWER.name: self.peak_power_w,
        }

    # ----------------------------------------------------------------- serialisation
    def to_dict(self, include_trace: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["power_trace"] = [list(p) for p in self.power_trace] if include_trace else []
        data["latency_per_sequence_s"] = self.latency_per_sequence_s
        data["energy_per_sequence_j"] = self.energy_per_sequence_j
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Measurement":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names - {"latency_per_sequence_s", "energy_per_sequence_j"}
        if unknown:
            raise ValueError(f"unknown Measurement field(s): {sorted(unknown)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["power_trace"] = tuple(tuple(p) for p in kwargs.get("power_trace", ()))
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

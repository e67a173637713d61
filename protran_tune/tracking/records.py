"""What one measured trial records: values, Optuna user attrs, MLflow params/metrics/tags.

Everything here is plain data (no Optuna or MLflow import) so it is shared by Optuna recording,
MLflow logging, ``import`` and the Ray Tune path.

Objectives (all per sequence, minimised): ``latency_s``, ``energy_j`` and ``peak_power_w``.
"""

from __future__ import annotations

import math
from typing import Any

from protran_tune.objectives.targets import HARDWARE_TARGETS
from protran_tune.platforms.measurement import Measurement
from protran_tune.space import Architecture

METRIC_NAMES: list[str] = list(HARDWARE_TARGETS)
TRACE_FIELDS = ("t_s", "power_w")


def objective_values(m: Measurement) -> list[float]:
    """``[latency_s, energy_j, peak_power_w]`` per sequence; ``ValueError`` names a missing one."""
    values = [m.latency_per_sequence_s, m.energy_per_sequence_j, m.peak_power_w]
    for name, value in zip(METRIC_NAMES, values):
        if value is None or not math.isfinite(value):
            reason = m.unavailable.get(name, "not measured")
            raise ValueError(f"objective {name} is unavailable on platform {m.platform!r}: {reason}")
    return [float(v) for v in values]


def architecture_params(arch: Architecture) -> dict[str, str]:
    """Architecture fields flattened for MLflow params (one value per layer field, compact strings)."""
    from protran_tune.space import count_parameters

    params: dict[str, str] = {"n_layers": str(arch.n_layers), "hidden_sizes": ",".join(map(str, arch.hidden_sizes))}
    for j, layer in enumerate(arch.layers):
        params[f"l{j}_hidden"] = str(layer.hidden)
        params[f"l{j}_n_heads"] = str(layer.n_heads)
        params[f"l{j}_heads"] = "+".join(f"{c}x{op}" for op, c in layer.head_counts().items())
        params[f"l{j}_feed_forward"] = "-".join(map(str, layer.feed_forward))
    try:
        params["encoder_params_m"] = f"{count_parameters(arch) / 1e6:.3f}"
    except Exception:  # cost model not defined for a custom op: leave it out rather than fail
        pass
    return params


def workload_params(m: Measurement) -> dict[str, str]:
    return {"platform": m.platform, "device": m.device, "mode": m.mode, "batch_size": str(m.batch_size),
            "seq_len": str(m.seq_len), "source": m.source}


def measurement_metrics(m: Measurement) -> dict[str, float]:
    """Per-sequence and per-batch latency/energy, peak/mean/idle power and spreads (only present values)."""
    b = m.batch_size
    out: dict[str, float | None] = {
        "latency_s": m.latency_per_sequence_s,
        "latency_batch_s": m.latency_s,
        "latency_iqr_s": m.latency_iqr_s / b,
        "latency_iqr_batch_s": m.latency_iqr_s,
        "latency_ci_rel": m.latency_ci_rel,
        "energy_j": m.energy_per_sequence_j,
        "energy_batch_j": m.energy_j,
        "energy_above_idle_j": m.energy_above_idle_per_sequence_j,
        "energy_above_idle_batch_j": m.energy_above_idle_j,
        "energy_spread_rel": m.energy_spread_rel,
        "peak_power_w": m.peak_power_w,
        "mean_power_w": m.mean_power_w,
        "idle_power_w": m.idle_power_w,
        "repeats": float(m.repeats),
        "measurement_wall_time_s": m.wall_time_s,
    }
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v)}


def measurement_summary(m: Measurement) -> dict[str, Any]:
    """Short summary for Optuna user attrs and tables (no power trace)."""
    summary = {k: round(v, 9) for k, v in measurement_metrics(m).items()}
    summary.update(source=m.source, device=m.device, batch_size=m.batch_size, seq_len=m.seq_len, mode=m.mode)
    return summary


def trace_csv(m: Measurement) -> str:
    """The power trace as CSV text ``t_s,power_w``."""
    rows = [",".join(TRACE_FIELDS)] + [f"{t:.6f},{w:.6f}" for t, w in m.power_trace]
    return "\n".join(rows) + "\n"


def architecture_from_attr(value: Any) -> Architecture:
    """The architecture of a trial's ``architecture`` user attr (canonical JSON string, as the samplers
    record it, or a JSON object)."""
    return Architecture.from_json(value) if isinstance(value, str) else Architecture.from_dict(value)

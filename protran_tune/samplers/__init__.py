"""Optuna samplers that propose whole architectures: QMC/LHS seeding and active learning.

* :mod:`protran_tune.samplers.qmc`: the unit-cube -> architecture mapping and the point sets
  (numpy/scipy only);
* :class:`QMCArchitectureSampler` and :class:`LatinHypercubeSampler`, :class:`SobolSampler`,
  :class:`HaltonSampler`, :class:`HammerslySampler`, :class:`RandomArchitectureSampler`;
  :class:`PoolLatinHypercubeSampler` (the same seed, drawn from a fixed pool such as a recorded file);
* :class:`ActiveLearningSampler`: highest normalised surrogate uncertainty over a candidate pool;
* :class:`ParetoSampler`: multi-objective, hardware-aware NAS by expected hypervolume improvement.

Names are imported lazily so that ``protran_tune.samplers.qmc`` works without Optuna.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArchitectureMapping": "protran_tune.samplers.qmc",
    "sample_architectures": "protran_tune.samplers.qmc",
    "unit_points": "protran_tune.samplers.qmc",
    "METHODS": "protran_tune.samplers.qmc",
    "ArchitectureSampler": "protran_tune.samplers._base",
    "QMCArchitectureSampler": "protran_tune.samplers.qmc_sampler",
    "LatinHypercubeSampler": "protran_tune.samplers.qmc_sampler",
    "SobolSampler": "protran_tune.samplers.qmc_sampler",
    "HaltonSampler": "protran_tune.samplers.qmc_sampler",
    "HammerslySampler": "protran_tune.samplers.qmc_sampler",
    "RandomArchitectureSampler": "protran_tune.samplers.qmc_sampler",
    "PoolLatinHypercubeSampler": "protran_tune.samplers.qmc_sampler",
    "ActiveLearningSampler": "protran_tune.samplers.active_learning",
    "ParetoSampler": "protran_tune.samplers.pareto",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'protran_tune.samplers' has no attribute {name!r}")

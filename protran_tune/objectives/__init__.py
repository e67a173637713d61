"""Objectives: named targets, the one held-out scorer, and the providers of target values.

* :mod:`.targets`: every target name with its unit and direction (``latency_s``, ``energy_j``,
  ``peak_power_w``, ``glue``, ``sst2``, ..., ``params``); the rest of the package imports them from here;
* :mod:`.scoring`: the held-out split and scorer (normalised MSE, Kendall tau overall and within depth,
  top-k overlap, coverage, convergence) used by ``fit``, ``replay``, ``profile`` and the search;
* :mod:`.providers`: one interface for measured (:class:`MeasuredHardware`, :class:`PooledHardware` on Ray,
  :class:`PoolLookup`),
  predicted (:class:`PredictedObjective`) and exact (:class:`ZeroCost`) values;
* :mod:`.accuracy`: :class:`NasBenchBertAccuracy`, a GLUE predictor learned from NAS-Bench-BERT;
* :mod:`.training`: :class:`TrainedAccuracy`, real training with a fixed recipe.

Providers, accuracy and training are imported lazily (``from protran_tune.objectives import X``).
"""

from __future__ import annotations

import importlib
from typing import Any

from protran_tune.objectives.targets import (
    GLUE_TASKS,
    HARDWARE_TARGETS,
    TARGETS,
    Target,
    canonical_name,
    get_target,
    parse_constraint,
    parse_objective,
    parse_targets,
)

_LAZY = {
    "ObjectiveProvider": "providers", "ObjectiveValues": "providers", "MeasuredHardware": "providers",
    "PooledHardware": "providers", "PoolLookup": "providers", "PredictedObjective": "providers", "ZeroCost": "providers",
    "NasBenchBertAccuracy": "accuracy", "TrainedAccuracy": "training", "TrainingRecipe": "training",
    "score_heldout": "scoring", "split_test": "scoring", "HeldOutScore": "scoring",
}

__all__ = sorted(["Target", "TARGETS", "HARDWARE_TARGETS", "GLUE_TASKS", "get_target", "canonical_name",
                  "parse_targets", "parse_objective", "parse_constraint", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"protran_tune.objectives.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'protran_tune.objectives' has no attribute {name!r}")

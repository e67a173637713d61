"""Recording of studies and trials: Optuna user attrs and metric names, MLflow runs and models.

Imports are lazy: ``from protran_tune.tracking import MlflowTracker`` pulls in MLflow only then.
"""

from __future__ import annotations

from typing import Any

from protran_tune.tracking.records import (
    METRIC_NAMES,
    architecture_params,
    measurement_metrics,
    measurement_summary,
    objective_values,
)

__all__ = [
    "METRIC_NAMES", "architecture_params", "measurement_metrics", "measurement_summary", "objective_values",
    "MlflowTracker", "StudyRecorder",
]


def __getattr__(name: str) -> Any:
    if name == "MlflowTracker":
        from protran_tune.tracking.mlflow_tracking import MlflowTracker

        return MlflowTracker
    if name == "StudyRecorder":
        from protran_tune.tracking.optuna_tracking import StudyRecorder

        return StudyRecorder
    raise AttributeError(name)

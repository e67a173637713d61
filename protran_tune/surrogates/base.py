"""The surrogate interface: scikit-learn-style multi-output regressors with per-output uncertainty.

``fit(X, Y)`` takes features ``X`` (n, d) — normally :class:`protran_tune.space.FeatureEncoder`
output — and targets ``Y`` (n, k), e.g. k = 3 for (latency, energy, peak power) per sequence.
``predict(X, return_std=True)`` returns ``(mean, std)``, both (n, k), in the units of ``Y``.
Constructors store parameters only; learned state ends in ``_``; ``fit`` returns ``self``;
estimators are picklable and seeded by ``random_state``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TARGETS: tuple[str, ...] = ("latency", "energy", "peak_power")


def check_xy(X: Any, Y: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate and convert ``X`` (n, d) and ``Y`` (n, k) to float64; clear ``ValueError`` otherwise."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X contains NaN or infinite values")
    if Y is None:
        return X, None
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or len(Y) != len(X):
        raise ValueError(f"Y must be (n_samples, n_targets) with n_samples={len(X)}, got shape {Y.shape}")
    if not np.isfinite(Y).all():
        raise ValueError("Y contains NaN or infinite values")
    return X, Y


class Surrogate:
    """Base class: subclasses implement ``fit`` and ``predict(X, return_std=False)``.

    ``get_params``/``set_params`` come from scikit-learn's ``BaseEstimator`` in concrete classes.
    ``supports_std`` is False for regressors without an uncertainty model (a plain decision tree):
    they return ``std`` of ``NaN`` and active learning refuses them with a clear error.
    """

    supports_std: bool = True

    def fit(self, X: Any, Y: Any) -> "Surrogate":  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

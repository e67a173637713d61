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


# --------------------------------------------------------------------------- shared machinery
ENCODERS: tuple[str, ...] = ("features", "global", "cost", "accuracy", "layers", "embedding", "identity")
_CHUNK = 8192  # rows encoded and predicted at a time (keeps temporaries in cache, bounds memory)


class EncodedSurrogate(Surrogate):
    """Common base of the built-in surrogates: input encoding, standardisation, chunked prediction.

    The ``encoder`` parameter says what ``X`` is:

    * ``"features"`` (default): ``X`` holds ProTran embeddings ``(n, 37)`` (integers) of ``space``;
      they are turned into :class:`~protran_tune.space.FeatureEncoder` features ``(n, 190)`` inside the
      estimator, then standardised with the training mean and standard deviation;
    * ``"global"``: as ``"features"``, keeping only the whole-architecture columns (layer count,
      parameters, FLOPs, heads and head dimensions per op, hidden sizes, feed-forward widths: 22 for
      the FlexiBERT 2.0 space) and dropping the per-layer ones;
    * ``"cost"``: the compact cost set of :meth:`~protran_tune.space.FeatureEncoder.cost_transform`
      (layers, parameters, FLOPs, head dimensions per op family, feed-forward width: 7 columns);
    * ``"accuracy"``: the accuracy set of :meth:`~protran_tune.space.FeatureEncoder.accuracy_transform`
      (layers, hidden size, parameters, layer-equivalents per op, heads and feed-forward per layer);
    * ``"layers"``: the positional set of :meth:`~protran_tune.space.FeatureEncoder.layer_transform`
      (per layer: hidden size, op shares, heads, feed-forward width and depth);
    * ``"embedding"``: ``X`` holds embeddings, used as raw numbers (the original ProTran input);
    * ``"identity"``: ``X`` is any numeric matrix ``(n, d)``, standardised as is.

    Subclasses implement ``_fit(Z, Y)`` and ``_predict(Z, return_std)`` on standardised inputs ``Z``.
    After ``fit``: ``n_features_in_`` (columns of ``X``), ``n_outputs_``, ``x_mean_``/``x_scale_``
    (standardisation of the encoded inputs) and ``y_max_`` (max |Y| per output: the default
    normaliser of the acquisition, :func:`protran_tune.samplers.acquisition.select_queries`).
    """

    encoder: str = "features"
    space: str = "flexibert2"

    # ----------------------------------------------------------------- encoding
    def _feature_encoder(self) -> Any:
        from protran_tune.space.features import shared_encoder

        return shared_encoder(self.space)

    def _check_encoder(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")

    def _encode(self, X: np.ndarray) -> np.ndarray:
        """Encoded, unstandardised inputs of validated ``X`` (n, d)."""
        if self.encoder == "identity":
            return X
        from protran_tune.space import get_space

        dim = get_space(self.space).embedding_dim
        if X.shape[1] != dim:
            raise ValueError(
                f"encoder={self.encoder!r} expects ProTran embeddings of {dim} columns, got X of shape {X.shape}"
                " (pass encoder='identity' for ready-made numeric features)"
            )
        if self.encoder == "embedding":
            return X
        E = np.rint(X)
        if np.abs(E - X).max(initial=0.0) > 1e-9:
            raise ValueError(f"encoder={self.encoder!r} expects integer ProTran embeddings; X holds non-integer values")
        fe = self._feature_encoder()
        if self.encoder == "cost":
            return fe.cost_transform(E.astype(np.int64))
        if self.encoder == "accuracy":
            return fe.accuracy_transform(E.astype(np.int64))
        if self.encoder == "layers":
            return fe.layer_transform(E.astype(np.int64))
        F = fe.transform(E.astype(np.int64))
        return F[:, : fe.n_global_features_] if self.encoder == "global" else F

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (self._encode(X) - self.x_mean_) / self.x_scale_

    def _fit_standardisation(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        self._check_encoder()
        F = self._encode(X)
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = Y.shape[1]
        self.x_mean_ = F.mean(axis=0)
        scale = F.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-12, scale, 1.0)
        self.y_max_ = np.maximum(np.abs(Y).max(axis=0), 1e-12)
        return (F - self.x_mean_) / self.x_scale_

    def _check_predict_input(self, X: Any) -> np.ndarray:
        if not hasattr(self, "x_mean_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit(X, Y) first")
        X, _ = check_xy(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} columns, but the surrogate was fitted on {self.n_features_in_}")
        return X

    def transform_inputs(self, X: Any) -> np.ndarray:
        """The standardised model inputs ``Z`` (n, d') of ``X``: the space where queries are compared."""
        X = self._check_predict_input(X)
        return np.concatenate([self._standardise(X[i : i + _CHUNK]) for i in range(0, max(len(X), 1), _CHUNK)])[: len(X)]

    # ----------------------------------------------------------------- public API
    def fit(self, X: Any, Y: Any) -> "EncodedSurrogate":
        """Fit on ``X`` (n, d) and targets ``Y`` (n, k); returns ``self``."""
        X, Y = check_xy(X, Y)
        if len(X) < 2:
            raise ValueError(f"need at least 2 training samples, got {len(X)}")
        Z = self._fit_standardisation(X, Y)
        self._fit(Z, Y)
        return self

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Mean ``(n, k)`` and, with ``return_std``, per-output std ``(n, k)`` in the units of ``Y``."""
        X = self._check_predict_input(X)
        means, stds = [], []
        for i in range(0, len(X), _CHUNK):
            out = self._predict(self._standardise(X[i : i + _CHUNK]), return_std)
            if return_std:
                means.append(out[0])
                stds.append(out[1])
            else:
                means.append(out)
        k = self.n_outputs_
        mean = np.concatenate(means) if means else np.zeros((0, k))
        if not return_std:
            return mean
        return mean, (np.concatenate(stds) if stds else np.zeros((0, k)))

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _predict(self, Z: np.ndarray, return_std: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_feature_encoder_cache", None)  # older pickles: encoders are shared per process now
        return state

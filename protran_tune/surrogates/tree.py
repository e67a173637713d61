"""Tree surrogates: a plain decision tree (no uncertainty) and the original ProTran AdaBoost baseline."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import AdaBoostRegressor
from sklearn.tree import DecisionTreeRegressor

from protran_tune.surrogates.base import EncodedSurrogate


class DecisionTreeSurrogate(EncodedSurrogate, BaseEstimator):
    """One multi-output CART tree (scikit-learn). It has no uncertainty model: ``std`` is NaN.

    Args:
        max_depth, min_samples_leaf: tree size limits.
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of the tie-breaking feature permutation.
    """

    supports_std = False

    def __init__(
        self,
        max_depth: int | None = None,
        min_samples_leaf: int = 1,
        encoder: str = "features",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        self.tree_ = DecisionTreeRegressor(
            max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf, random_state=self.random_state
        ).fit(Z, Y)

    def _predict(self, Z: np.ndarray, return_std: bool):
        mean = self.tree_.predict(Z).reshape(len(Z), -1)
        return (mean, np.full_like(mean, np.nan)) if return_std else mean


class ProTranAdaBoostSurrogate(EncodedSurrogate, BaseEstimator):
    """The original ProTran regressor, as a baseline: one ``AdaBoostRegressor`` per output.

    Each output gets ``n_estimators`` (500) depth-``max_depth`` decision trees on the raw 37-dim
    embedding (``encoder="embedding"``); the uncertainty is the standard deviation of the individual
    trees' predictions (unweighted), as in the original code.
    """

    def __init__(
        self,
        n_estimators: int = 500,
        max_depth: int = 3,
        learning_rate: float = 1.0,
        encoder: str = "embedding",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        rng = np.random.RandomState(self.random_state)
        self.models_ = [
            AdaBoostRegressor(
                estimator=DecisionTreeRegressor(max_depth=self.max_depth),
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                random_state=rng.randint(2**31 - 1),
            ).fit(Z, Y[:, j])
            for j in range(Y.shape[1])
        ]

    def _predict(self, Z: np.ndarray, return_std: bool):
        mean = np.stack([m.predict(Z) for m in self.models_], axis=1)
        if not return_std:
            return mean
        Z32 = np.ascontiguousarray(Z, dtype=np.float32)
        std = np.stack(
            [np.stack([t.tree_.predict(Z32).reshape(len(Z32), -1)[:, 0] for t in m.estimators_]).std(axis=0) for m in self.models_], axis=1
        )
        return mean, std


class RandomForestSurrogate(EncodedSurrogate, BaseEstimator):
    """A random forest (scikit-learn); the std is the spread of the trees' predictions.

    Args:
        n_estimators, min_samples_leaf, max_features: forest settings.
        encoder, space: input encoding (default ``"layers"``: per-layer op shares, heads and feed-forward,
            the positional description that ranks NAS-Bench-BERT's GLUE best, ``benchmarks/bench_accuracy.py``).
        random_state: seed of the bootstrap samples and feature draws.
    """

    def __init__(
        self,
        n_estimators: int = 300,
        min_samples_leaf: int = 2,
        max_features: float | str | None = 1.0,
        encoder: str = "layers",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            random_state=self.random_state, n_jobs=1,
        ).fit(Z, Y if Y.shape[1] > 1 else Y[:, 0])

    def _predict(self, Z: np.ndarray, return_std: bool):
        per_tree = np.stack([t.predict(Z).reshape(len(Z), -1) for t in self.forest_.estimators_])  # (T, n, k)
        mean = per_tree.mean(0)
        return (mean, per_tree.std(0)) if return_std else mean

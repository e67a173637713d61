"""Helpers of the sampler tests (no tests here): a small uncertainty-aware regressor, a cost-shaped objective."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import ExtraTreesRegressor

from protran_tune.space import count_parameters, encoder_flops, suggest_architecture
from protran_tune.space.architecture import Architecture

SMALL_SPACE_YAML = """
name: small
layers: [1, 2]
hidden_sizes: [16, 32]
num_heads: [1, 2]
head_ops: [sa-sdp, l-dft, c-3]
feed_forward_dims: [32, 64]
feed_forward_stacks: [1, 2]
"""


class ForestSurrogate(BaseEstimator):
    """Extra-trees regressor on dense features; std = spread of the trees' predictions."""

    def __init__(self, n_estimators: int = 24, random_state: int | None = 0) -> None:
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: np.ndarray, Y: np.ndarray) -> "ForestSurrogate":
        self.model_ = ExtraTreesRegressor(n_estimators=self.n_estimators, random_state=self.random_state, min_samples_leaf=1)
        self.model_.fit(X, Y)
        self.y_max_ = np.maximum(np.abs(Y).max(axis=0), 1e-12)
        self.n_outputs_ = Y.shape[1]
        return self

    def predict(self, X: np.ndarray, return_std: bool = False):
        per_tree = np.stack([t.predict(X).reshape(len(X), -1) for t in self.model_.estimators_])
        mean = per_tree.mean(0)
        return (mean, per_tree.std(0)) if return_std else mean


def hardware_values(arch: Architecture) -> tuple[float, float, float]:
    """A deterministic (latency s, energy J, peak power W) stand-in shaped like real costs."""
    gflops = encoder_flops(arch) / 1e9
    params_m = count_parameters(arch) / 1e6
    return 1e-3 * gflops + 2e-4 * arch.n_layers, 0.05 * gflops + 0.01 * params_m, 40.0 + max(arch.hidden_sizes) / 16


def hardware_objective(space):
    def objective(trial) -> tuple[float, float, float]:
        return hardware_values(suggest_architecture(trial, space))

    return objective


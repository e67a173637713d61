"""Boosted decision trees with a per-prediction uncertainty (a bootstrap ensemble of boosters).

Each of ``n_members`` members is a multi-output gradient booster (squared loss, shallow CART trees
from scikit-learn fitted on the residuals of all outputs at once) trained on a bootstrap resample,
optionally starting from a ridge fit (trees alone cannot extrapolate past the largest training
target). The prediction is the members' mean; the uncertainty is their standard deviation, scaled by
a per-output factor fitted on the out-of-bag residuals (``calibration_``: the smallest factor that
gives the out-of-bag points nominal Gaussian coverage at both ±1σ and ±2σ; the held-out coverage is
reported by the benchmark).
Prediction walks the raw ``tree_`` structures on float32 inputs, one call per tree per chunk.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.tree import DecisionTreeRegressor

from protran_tune.surrogates.base import EncodedSurrogate


def _ridge(Z: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights ``(d, k)`` and intercept ``(k,)``, closed form in the smaller of n and d."""
    zm, ym = Z.mean(0), Y.mean(0)
    Zc, Yc = Z - zm, Y - ym
    n, d = Zc.shape
    if n < d:  # dual form: W = Zc' (Zc Zc' + a I)^-1 Yc
        W = Zc.T @ np.linalg.solve(Zc @ Zc.T + alpha * np.eye(n), Yc)
    else:
        W = np.linalg.solve(Zc.T @ Zc + alpha * np.eye(d), Zc.T @ Yc)
    return W, ym - zm @ W


ALPHAS: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def _ridge_alpha_loo(Z: np.ndarray, Y: np.ndarray, alphas: tuple[float, ...] = ALPHAS) -> np.ndarray:
    """Per-output ridge penalty ``(k,)`` of least leave-one-out error (closed form via the SVD)."""
    n = len(Z)
    Zc, Yc = Z - Z.mean(0), Y - Y.mean(0)
    U, s, _ = np.linalg.svd(Zc, full_matrices=False)
    UtY = U.T @ Yc
    best, best_err = np.full(Y.shape[1], alphas[-1]), np.full(Y.shape[1], np.inf)
    for a in alphas:
        shrink = s**2 / (s**2 + a)
        fitted = U @ (shrink[:, None] * UtY)
        h = (U**2) @ shrink + 1.0 / n  # leverage, intercept included
        loo = ((Yc - fitted) / np.maximum(1.0 - h, 1e-6)[:, None]) ** 2
        err = loo.mean(0)
        better = err < best_err
        best[better], best_err[better] = a, err[better]
    return best


def _ridge_multi(Z: np.ndarray, Y: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge fit with one penalty per output column."""
    if np.all(alphas == alphas[0]):
        return _ridge(Z, Y, float(alphas[0]))
    parts = [_ridge(Z, Y[:, [j]], float(a)) for j, a in enumerate(alphas)]
    return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts])


class BoostedTreesSurrogate(EncodedSurrogate, BaseEstimator):
    """Bootstrap ensemble of multi-output gradient-boosted trees (BDT) with calibrated std.

    Args:
        n_members: boosters in the ensemble (the std is taken over them).
        n_estimators: trees per booster.
        learning_rate: shrinkage of each tree.
        max_depth, min_samples_leaf, max_features: CART settings of each tree.
        linear_init: start each booster from a ridge fit instead of the mean.
        ridge_alpha: penalty of that ridge fit, or ``"loo"``: per output, the penalty of least
            leave-one-out error on the training data (grid ``ALPHAS``; ``alpha_`` after fit) — on
            small or non-linear data it grows until the linear start is nearly flat.
        calibrate: scale the std by the out-of-bag calibration factor.
        log_target: learn ``log(Y)`` (positive targets only); mean ``exp`` of the members' mean,
            std by the delta method (``mean * std_log``).
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of the bootstrap resamples and the trees.
    """

    def __init__(
        self,
        n_members: int = 6,
        n_estimators: int = 40,
        learning_rate: float = 0.15,
        max_depth: int = 3,
        min_samples_leaf: int = 2,
        max_features: float | None = 0.5,
        linear_init: bool = True,
        ridge_alpha: float | str = "loo",
        calibrate: bool = True,
        log_target: bool = False,
        encoder: str = "global",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.n_members = n_members
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.linear_init = linear_init
        self.ridge_alpha = ridge_alpha
        self.calibrate = calibrate
        self.log_target = log_target
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _check_params(self) -> None:
        for name in ("n_members", "n_estimators"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_members < 2:
            raise ValueError(f"n_members must be >= 2 for an ensemble std, got {self.n_members}")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"learning_rate must lie in (0, 1], got {self.learning_rate!r}")

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        self._check_params()
        rng = np.random.RandomState(self.random_state)
        n, k = Y.shape
        if self.log_target:
            if (Y <= 0).any():
                raise ValueError("log_target=True needs positive targets; Y holds values <= 0")
            Y = np.log(Y)
        self.y_mean_, y_std = Y.mean(0), Y.std(0)
        self.y_std_ = np.where(y_std > 1e-12, y_std, 1.0)
        T = (Y - self.y_mean_) / self.y_std_
        Z32 = np.ascontiguousarray(Z, dtype=np.float32)
        if self.ridge_alpha == "loo":
            self.alpha_ = _ridge_alpha_loo(Z, T)
        elif isinstance(self.ridge_alpha, (int, float)) and self.ridge_alpha > 0:
            self.alpha_ = np.full(k, float(self.ridge_alpha))
        else:
            raise ValueError(f"ridge_alpha must be a positive number or 'loo', got {self.ridge_alpha!r}")
        self.linear_, self.trees_ = [], []
        in_bag = np.zeros((self.n_members, n), dtype=bool)
        train_pred = np.zeros((self.n_members, n, k))
        for b in range(self.n_members):
            idx = rng.randint(0, n, n)
            in_bag[b, idx] = True
            Zb, Tb = Z[idx], T[idx]
            if self.linear_init:
                W, c = _ridge_multi(Zb, Tb, self.alpha_)
            else:
                W, c = np.zeros((Z.shape[1], k)), Tb.mean(0)
            self.linear_.append((W, c))
            F = Zb @ W + c
            trees = []
            Zb32 = Z32[idx]
            for _ in range(self.n_estimators):
                tree = DecisionTreeRegressor(
                    max_depth=self.max_depth,
                    min_samples_leaf=self.min_samples_leaf,
                    max_features=self.max_features,
                    random_state=rng.randint(2**31 - 1),
                )
                tree.fit(Zb32, np.ascontiguousarray(Tb - F), check_input=False)
                F += self.learning_rate * tree.tree_.predict(Zb32).reshape(len(Zb32), -1)
                trees.append(tree.tree_)
            self.trees_.append(trees)
            train_pred[b] = self._member_predict(b, Z, Z32)
        self.calibration_ = np.ones(k)
        oob = ~in_bag
        has_oob = oob.sum(0) >= 1
        if self.calibrate and has_oob.sum() >= 2:
            w = oob[:, has_oob, None]
            oob_mean = (train_pred[:, has_oob] * w).sum(0) / w.sum(0)
            z = np.abs(oob_mean - T[has_oob]) / np.maximum(train_pred[:, has_oob].std(0), 1e-12)
            # smallest factor giving nominal Gaussian coverage at 1 and 2 sigma on the out-of-bag points
            factor = np.maximum(np.quantile(z, 0.6827, axis=0), np.quantile(z, 0.9545, axis=0) / 2)
            self.calibration_ = factor.clip(1.0, 100.0)

    def _member_predict(self, b: int, Z: np.ndarray, Z32: np.ndarray) -> np.ndarray:
        W, c = self.linear_[b]
        out = Z @ W + c
        lr = self.learning_rate
        for tree in self.trees_[b]:
            out += lr * tree.predict(Z32).reshape(len(Z32), -1)
        return out

    def _predict(self, Z: np.ndarray, return_std: bool):
        Z32 = np.ascontiguousarray(Z, dtype=np.float32)
        P = np.stack([self._member_predict(b, Z, Z32) for b in range(self.n_members)])
        mean = P.mean(0) * self.y_std_ + self.y_mean_
        std = P.std(0) * self.calibration_ * self.y_std_ if return_std else None
        if self.log_target:
            mean = np.exp(mean)
            std = None if std is None else mean * std
        return (mean, std) if return_std else mean

"""An equal-weight mixture of surrogates (e.g. BDT on raw and on log targets, or BDT and GP).

The prediction is the mixture mean ``mean = (1/m) sum_i mean_i``; the std is that of the mixture,
``sqrt((1/m) sum_i (std_i^2 + mean_i^2) - mean^2)``: the members' own uncertainty plus their
disagreement. Members are built by name with :func:`~protran_tune.surrogates.make_surrogate`, each
seeded with ``random_state``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from protran_tune.surrogates.base import EncodedSurrogate, check_xy

DEFAULT_MEMBERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("bdt", {}),
    ("bdt", {"log_target": True}),
)


class EnsembleSurrogate(EncodedSurrogate, BaseEstimator):
    """Equal-weight mixture of surrogates given as ``(name, params)`` pairs.

    Args:
        members: ``(name, params)`` per member (default: BDT on raw targets and BDT on log targets).
        random_state: seed passed to every member.

    Inputs go to the members unchanged (each member encodes them itself; ``encoder`` is ``"identity"``
    here, so ``transform_inputs`` gives the first member's standardised inputs).
    """

    def __init__(
        self,
        members: tuple[tuple[str, dict[str, Any]], ...] | list | None = None,
        random_state: int | None = None,
    ) -> None:
        self.members = members
        self.random_state = random_state

    def _member_specs(self) -> list[tuple[str, dict[str, Any]]]:
        specs = DEFAULT_MEMBERS if self.members is None else self.members
        out = []
        for spec in specs:
            if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], dict)):
                raise ValueError(f"members must be (name, params) pairs, got {spec!r}")
            out.append((spec[0], dict(spec[1])))
        if len(out) < 1:
            raise ValueError("members must name at least one surrogate")
        return out

    def fit(self, X: Any, Y: Any) -> "EnsembleSurrogate":
        """Fit every member on ``X`` (n, d) and ``Y`` (n, k); returns ``self``."""
        from protran_tune.surrogates import make_surrogate

        X, Y = check_xy(X, Y)
        if len(X) < 2:
            raise ValueError(f"need at least 2 training samples, got {len(X)}")
        self.estimators_ = [make_surrogate(name, random_state=self.random_state, **p) for name, p in self._member_specs()]
        for est in self.estimators_:
            est.fit(X, Y)
        first = self.estimators_[0]
        self.n_features_in_ = X.shape[1]
        self.n_outputs_ = Y.shape[1]
        self.y_max_ = np.maximum(np.abs(Y).max(axis=0), 1e-12)
        self.x_mean_ = getattr(first, "x_mean_", None)
        return self

    def transform_inputs(self, X: Any) -> np.ndarray:
        """The first member's standardised inputs (the space where queries are compared)."""
        self._check_fitted()
        return self.estimators_[0].transform_inputs(X)

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimators_"):
            raise ValueError("this EnsembleSurrogate is not fitted yet: call fit(X, Y) first")

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Mixture mean ``(n, k)`` and, with ``return_std``, mixture std ``(n, k)``."""
        self._check_fitted()
        outs = [est.predict(X, return_std=True) for est in self.estimators_]
        means = np.stack([o[0] for o in outs])
        mean = means.mean(0)
        if not return_std:
            return mean
        second = np.mean([o[1] ** 2 + o[0] ** 2 for o in outs], axis=0)
        return mean, np.sqrt(np.maximum(second - mean**2, 0.0))

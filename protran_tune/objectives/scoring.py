"""The one held-out scorer: how well predictions of named targets match the truth on a test set.

Protocol: :func:`split_test` draws the random test set **first** (seeded, before any training record
is chosen); a model is fitted on other records; :func:`score_heldout` compares its predictions on the
test set with the truth and reports, per target:

* ``test_mse``: mean squared error of values divided by ``scale`` (default: the largest |value| of the
  test truth; callers pass the whole table's maximum, so 0.003 reads as 0.3% of the largest value);
* ``kendall_tau``: rank agreement of prediction and truth (``None`` when undefined: fewer than two
  rows, or a constant column);
* ``kendall_tau_within_depth``: the same within groups of equal depth (number of layers), averaged
  with weights equal to each group's number of pairs (``None`` without depths or pairs);
* ``top_k_overlap``: share of the truly best ``k`` rows (by the target's direction) among the ``k``
  predicted best, ``k = max(1, ceil(top_fraction * n))``;
* ``within_10pct``, ``coverage_1std``, ``coverage_2std`` (``None`` without a std).

Undefined values are ``None`` everywhere (JSON ``null``); :meth:`HeldOutScore.metrics` leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from protran_tune.objectives.targets import get_target

METRICS: tuple[str, ...] = (
    "test_mse", "kendall_tau", "kendall_tau_within_depth", "top_k_overlap", "within_10pct", "coverage_1std",
    "coverage_2std",
)


def split_test(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the held-out test set: ``max(2, round(test_fraction * n))`` random rows of ``n``."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    n_test = max(2, int(round(test_fraction * n)))
    if n - n_test < 2:
        raise ValueError(f"a dataset of {n} records leaves {n - n_test} for training at test_fraction={test_fraction}")
    rng = np.random.default_rng([seed, 0])
    return np.sort(rng.choice(n, n_test, replace=False))


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall's tau-b of two vectors; ``None`` when undefined."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return None
    tau = kendalltau(a, b).statistic
    return float(tau) if tau is not None and math.isfinite(tau) else None


def kendall_tau_within_groups(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> float | None:
    """Kendall's tau inside each group of equal ``groups`` value, averaged with pair-count weights."""
    total, weight = 0.0, 0.0
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        tau = kendall_tau(a[idx], b[idx])
        if tau is None:
            continue
        pairs = len(idx) * (len(idx) - 1) / 2
        total += tau * pairs
        weight += pairs
    return total / weight if weight else None


def top_k_overlap(truth: np.ndarray, pred: np.ndarray, k: int, maximize: bool) -> float | None:
    """Share of the ``k`` truly best rows among the ``k`` predicted best."""
    if len(truth) < k or k < 1:
        return None
    sign = -1.0 if maximize else 1.0
    best_true = set(np.argsort(sign * truth, kind="stable")[:k].tolist())
    best_pred = set(np.argsort(sign * pred, kind="stable")[:k].tolist())
    return len(best_true & best_pred) / k


@dataclass
class HeldOutScore:
    """Per-target held-out metrics (see module docstring); ``{metric: {target: value or None}}``."""

    n_train: int
    n_test: int
    targets: tuple[str, ...]
    test_mse: dict[str, float]
    kendall_tau: dict[str, float | None]
    kendall_tau_within_depth: dict[str, float | None]
    top_k_overlap: dict[str, float | None]
    within_10pct: dict[str, float]
    coverage_1std: dict[str, float | None]
    coverage_2std: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["targets"] = list(self.targets)
        return out

    def curve_point(self) -> dict[str, Any]:
        """``{"n_samples", <metric>: {target: value}}``: one point of a learning curve."""
        return {"n_samples": self.n_train, **{m: getattr(self, m) for m in METRICS}}

    def metrics(self) -> dict[str, float]:
        """Flat ``{"<metric>_<target>": value}`` of the defined values (MLflow metrics)."""
        return {f"{m}_{t}": float(v) for m in METRICS for t, v in getattr(self, m).items() if v is not None}

    def converged(self, threshold: float) -> bool:
        return all(v < threshold for v in self.test_mse.values())


def score_heldout(
    y_true: Any, mean: Any, std: Any = None, *, targets: Sequence[str], scale: Any = None, depth: Any = None,
    n_train: int = 0, top_fraction: float = 0.1,
) -> HeldOutScore:
    """Score predictions ``mean`` (and ``std``) ``(n, k)`` against ``y_true`` ``(n, k)``, physical units.

    Args:
        targets: the ``k`` target names (directions decide which rows are "best" for top-k).
        scale: ``(k,)`` normaliser of the MSE (default: max |y_true| per target).
        depth: ``(n,)`` layer counts for the within-depth Kendall tau.
        n_train: records the model was fitted on (recorded in the score).
        top_fraction: ``k`` of the top-k overlap as a share of the test set.
    """
    y = np.asarray(y_true, dtype=np.float64).reshape(len(y_true), -1)
    mu = np.asarray(mean, dtype=np.float64).reshape(y.shape)
    sd = None if std is None else np.asarray(std, dtype=np.float64).reshape(y.shape)
    names = tuple(get_target(t).name for t in targets)
    if len(names) != y.shape[1]:
        raise ValueError(f"{len(names)} target names for {y.shape[1]} columns")
    scale = np.max(np.abs(y), axis=0) if scale is None else np.broadcast_to(np.asarray(scale, dtype=np.float64), (y.shape[1],))
    scale = np.where(scale > 0, scale, 1.0)
    groups = None if depth is None else np.asarray(depth)
    k_top = max(1, math.ceil(top_fraction * len(y)))
    out: dict[str, dict[str, Any]] = {m: {} for m in METRICS}
    for j, name in enumerate(names):
        err = mu[:, j] - y[:, j]
        out["test_mse"][name] = float(np.mean((err / scale[j]) ** 2))
        out["kendall_tau"][name] = kendall_tau(mu[:, j], y[:, j])
        out["kendall_tau_within_depth"][name] = None if groups is None else kendall_tau_within_groups(mu[:, j], y[:, j], groups)
        out["top_k_overlap"][name] = top_k_overlap(y[:, j], mu[:, j], k_top, get_target(name).direction == "maximize")
        out["within_10pct"][name] = float(np.mean(np.abs(err) <= 0.1 * np.abs(y[:, j])))
        if sd is not None and np.isfinite(sd[:, j]).all():
            z = np.abs(err) / np.maximum(sd[:, j], 1e-300)
            out["coverage_1std"][name] = float(np.mean(z <= 1))
            out["coverage_2std"][name] = float(np.mean(z <= 2))
        else:
            out["coverage_1std"][name] = out["coverage_2std"][name] = None
    return HeldOutScore(n_train=int(n_train), n_test=len(y), targets=names, **out)


def samples_to_convergence(curve: Sequence[Mapping[str, Any]], threshold: float, targets: Sequence[str]) -> dict[str, Any]:
    """First ``n_samples`` of a curve with test MSE below ``threshold``, per target and for all at once,
    and the floor (lowest MSE and where) of each target."""
    convergence: dict[str, int | None] = {}
    floor: dict[str, dict[str, float]] = {}
    for name in targets:
        hit = [p["n_samples"] for p in curve if p["test_mse"][name] < threshold]
        convergence[name] = hit[0] if hit else None
        best = min(curve, key=lambda p: p["test_mse"][name])
        floor[name] = {"test_mse": best["test_mse"][name], "n_samples": best["n_samples"]}
    both = [p["n_samples"] for p in curve if all(p["test_mse"][t] < threshold for t in targets)]
    return {"samples_to_convergence": convergence, "samples_to_convergence_all": both[0] if both else None, "floor": floor}

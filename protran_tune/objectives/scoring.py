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

Convergence (:func:`samples_to_convergence`): the first sample count of a learning curve at which the
test MSE is below a threshold. Two metrics are in use for the ProTran measurements:

* the paper's text: MSE below 0.3% of targets divided by their maximum over the dataset
  (``normaliser="max"``, ``threshold=0.003``, ``patience=0``);
* the original ProTran code: MSE below 0.5% of targets divided by twice the maximum of the 16 seed
  records (``normaliser="seed-max-2x"``, or the shipped ``*.max_values.json``: ``"recorded"``;
  ``threshold=0.005``), declared only after the criterion held on more than 10 samples (``patience=10``).

A twice larger normaliser divides the MSE by four: the second metric is far easier to meet.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from protran_tune.objectives.targets import get_target

#: rules for the divisor of targets before the MSE (see :func:`normaliser`)
NORMALISERS: tuple[str, ...] = ("max", "seed-max-2x", "recorded")

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


def check_convergence_options(normaliser_rule: str = "max", patience: int = 0) -> None:
    """``ValueError`` unless ``normaliser_rule`` is one of :data:`NORMALISERS` and ``patience`` a
    non-negative integer (samples)."""
    if normaliser_rule not in NORMALISERS:
        raise ValueError(f"normaliser must be one of {NORMALISERS}, got {normaliser_rule!r}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience must be a non-negative integer (samples), got {patience!r}")


def normaliser(
    values: Any, rule: str = "max", *, seed_rows: Sequence[int] | None = None, recorded: Any = None
) -> np.ndarray:
    """``(k,)`` divisor of each target column of ``values`` ``(n, k)`` (physical units) by ``rule``.

    * ``"max"``: the largest |value| over all rows (the paper's text);
    * ``"seed-max-2x"``: twice the largest |value| over ``seed_rows`` (the original ProTran loop: only
      its seed was measured when it fixed the normaliser);
    * ``"recorded"``: ``recorded`` ``(k,)``, a normaliser stored with the data (the ProTran files'
      ``*.max_values.json``: the original loop's values).

    Raises:
        ValueError: an unknown rule, no seed rows, no recorded normaliser, or a non-positive divisor.
    """
    check_convergence_options(rule)
    y = np.asarray(values, dtype=np.float64)
    y = y.reshape(len(y), -1)
    if rule == "max":
        scale = np.abs(y).max(0)
    elif rule == "seed-max-2x":
        if seed_rows is None or len(seed_rows) == 0:
            raise ValueError("normaliser 'seed-max-2x' needs the seed rows")
        scale = 2.0 * np.abs(y[np.asarray(seed_rows, dtype=int)]).max(0)
    elif rule == "recorded":
        if recorded is None:
            raise ValueError("normaliser 'recorded': this dataset has no recorded normaliser (ProTran files: *.max_values.json)")
        scale = np.asarray(recorded, dtype=np.float64).reshape(-1)
        if scale.shape != (y.shape[1],):
            raise ValueError(f"normaliser 'recorded' has {scale.size} values for {y.shape[1]} targets")
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"normaliser {rule!r} must be finite and positive, got {scale.tolist()}")
    return scale


def renormalise_curve(
    curve: Sequence[Mapping[str, Any]], targets: Sequence[str], scale_from: Any, scale_to: Any
) -> list[dict[str, Any]]:
    """The curve with each point's ``test_mse`` re-expressed under another normaliser.

    The MSE of errors divided by ``scale_from`` times ``(scale_from / scale_to)**2`` is the MSE of the same
    errors divided by ``scale_to`` (both ``(k,)``, in the order of ``targets``); other fields are kept.
    """
    factor = (np.asarray(scale_from, dtype=np.float64) / np.asarray(scale_to, dtype=np.float64)) ** 2
    return [{**p, "test_mse": {t: p["test_mse"][t] * float(f) for t, f in zip(targets, factor)}} for p in curve]


def _first_converged(points: Sequence[tuple[int, bool]], patience: int) -> int | None:
    """First sample count at which the criterion has held on more than ``patience`` samples.

    Each passing point counts for the samples added since the previous point (the first point for one),
    so a curve with a point per query counts passing checks; a failing point does not reset the count
    (the original ProTran loop's patience counter, which tested before it incremented and so stopped one
    check later, was not reset either).
    """
    held, previous = 0, None
    for n, ok in points:
        if ok:
            held += 1 if previous is None else n - previous
            if held > patience:
                return n
        previous = n
    return None


def samples_to_convergence(
    curve: Sequence[Mapping[str, Any]], threshold: float, targets: Sequence[str], patience: int = 0
) -> dict[str, Any]:
    """First ``n_samples`` of a curve with test MSE below ``threshold``, per target and for all at once,
    and the floor (lowest MSE and where) of each target.

    ``patience``: samples on which the criterion must have held first (see :func:`_first_converged`;
    0: the first point below the threshold). ``None`` where convergence is not reached.
    """
    check_convergence_options(patience=patience)
    convergence: dict[str, int | None] = {}
    floor: dict[str, dict[str, float]] = {}
    for name in targets:
        convergence[name] = _first_converged([(p["n_samples"], p["test_mse"][name] < threshold) for p in curve], patience)
        best = min(curve, key=lambda p: p["test_mse"][name])
        floor[name] = {"test_mse": best["test_mse"][name], "n_samples": best["n_samples"]}
    both = _first_converged([(p["n_samples"], all(p["test_mse"][t] < threshold for t in targets)) for p in curve], patience)
    return {"samples_to_convergence": convergence, "samples_to_convergence_all": both, "floor": floor}

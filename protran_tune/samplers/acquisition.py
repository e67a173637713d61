"""Query selection for active learning: the candidates of highest normalised uncertainty.

Score of a candidate ``x``: ``sum_j std_j(x) / normaliser_j`` over the outputs ``j`` (latency, energy,
peak power) with ``reduce="sum"`` (the default; ``reduce="max"`` takes the largest term instead).
The normaliser is the per-output scale of the targets, by default the surrogate's ``y_max_`` (the
maximum |Y| of its training data), so that outputs in seconds, joules and watts weigh alike.

Batches (``k > 1``, e.g. one query per device or worker) are ``k`` distinct candidates chosen greedily:

* ``diversity="kriging-believer"`` (GP surrogates, those with ``condition_on``): after each pick the
  surrogate is conditioned on a fantasy observation (its own mean) there and the std recomputed;
* ``diversity="penalty"``: after each pick, scores are multiplied by ``1 - exp(-d^2 / (2 r^2))``, ``d``
  the distance to the pick in the surrogate's standardised input space and ``r`` the median
  nearest-pick distance scale (``penalty_radius`` times the median distance of candidates to it);
* ``diversity="auto"`` (default): kriging-believer when available, else penalty.

``density_weight=beta > 0`` multiplies the score by the candidate's representativeness to the power
beta (information density: mean Gaussian similarity to up to 512 reference candidates in the
surrogate's standardised input space), so that isolated outliers, whose uncertainty is high but whose
measurement teaches little about the rest of the pool, rank lower. ``0`` (default) is pure uncertainty.

Surrogates with a ``gobi_select`` method (BOSHNAS) choose by GOBI when ``method="auto"`` or ``"gobi"``.

``method="variance-reduction"`` (GP surrogates, those with ``variance_reduction``) scores a candidate
by how much observing it would shrink the posterior variance summed over a reference set (up to
``n_reference`` of the candidates themselves, a proxy of where predictions will be asked): Cohn's
"active learning Cohn" (ALC), normalised by ``normaliser**2`` per output and summed (or maxed). Unlike
the largest std, which favours isolated extremes of the input space, it favours candidates that
inform many others. Batches condition exactly on the earlier picks (a GP's posterior covariance does
not depend on the observed values).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

REDUCTIONS = ("sum", "max")
ACQUISITIONS = ("uncertainty", "variance-reduction")  # named query rules (method "auto" / "variance-reduction")
DIVERSITY = ("auto", "penalty", "kriging-believer", "none")
METHODS = ("auto", "std", "gobi", "variance-reduction")


def normalised_uncertainty(
    surrogate: Any, X_candidates: Any, normaliser: Any = None, reduce: str = "sum"
) -> np.ndarray:
    """Per-candidate score ``(n,)``: std over normaliser, summed (or maxed) over outputs."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if not getattr(surrogate, "supports_std", True):
        raise ValueError(
            f"{type(surrogate).__name__} has no uncertainty model (supports_std=False); "
            "use a surrogate with std (gp, bdt, boshnas, protran-adaboost) or random querying"
        )
    _, std = surrogate.predict(X_candidates, return_std=True)
    norm = _normaliser(surrogate, normaliser, std.shape[1])
    s = std / norm
    if not np.isfinite(s).all():
        raise ValueError(f"{type(surrogate).__name__} returned non-finite std for some candidates")
    return s.sum(1) if reduce == "sum" else s.max(1)


def representativeness(Z: np.ndarray, n_reference: int = 512, seed: int = 0) -> np.ndarray:
    """Mean Gaussian similarity ``(n,)`` of each row of ``Z`` to up to ``n_reference`` rows (in (0, 1])."""
    ref = Z
    if len(Z) > n_reference:
        ref = Z[np.random.default_rng(seed).choice(len(Z), n_reference, replace=False)]
    d2 = np.maximum((Z**2).sum(1)[:, None] + (ref**2).sum(1)[None, :] - 2 * Z @ ref.T, 0.0)
    scale = max(float(np.median(d2)), 1e-12)
    return np.exp(-d2 / scale).mean(1)


def _normaliser(surrogate: Any, normaliser: Any, k: int) -> np.ndarray:
    if normaliser is None:
        normaliser = getattr(surrogate, "y_max_", None)
        if normaliser is None:
            return np.ones(k)
    norm = np.broadcast_to(np.asarray(normaliser, dtype=np.float64), (k,))
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise ValueError(f"normaliser must be positive and finite per output, got {norm.tolist()}")
    return norm


def select_queries(
    surrogate: Any,
    X_candidates: Any,
    k: int = 1,
    normaliser: Any = None,
    *,
    reduce: str = "sum",
    diversity: str = "auto",
    method: str = "auto",
    exclude: Any = None,
    penalty_radius: float = 0.5,
    density_weight: float = 0.0,
    n_reference: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """Indices ``(k,)`` of ``k`` distinct candidates to measure next, best first.

    Args:
        surrogate: a fitted surrogate with ``predict(X, return_std=True)``.
        X_candidates: candidate inputs ``(n, d)`` in the surrogate's input format (embeddings).
        k: number of distinct queries (e.g. one per device).
        normaliser: per-output scale ``(n_outputs,)``; default the surrogate's ``y_max_``.
        reduce: ``sum`` or ``max`` of the normalised stds over outputs.
        diversity: batch rule (see module docstring).
        method: ``auto`` (GOBI where the surrogate has it), ``std`` (score candidates only), ``gobi``,
            ``variance-reduction`` (integrated variance reduction, GP surrogates).
        exclude: indices never to return (already measured).
        penalty_radius: radius of the distance penalty, relative to the median candidate distance.
        density_weight: exponent of the representativeness factor (0: pure uncertainty).
        n_reference: size of the reference set of ``variance-reduction`` (random candidates, seeded by ``seed``).
        seed: seed of that reference subset.
    """
    X, allowed = _candidates(X_candidates, k, exclude, diversity, method)
    k = int(k)
    if method == "gobi" and not hasattr(surrogate, "gobi_select"):
        raise ValueError(f"method='gobi' needs a surrogate with gobi_select (boshnas), got {type(surrogate).__name__}")
    if method == "variance-reduction":
        _require_variance_reduction(surrogate)
        if density_weight:
            raise ValueError("density_weight applies to method='std'; 'variance-reduction' already weighs the pool")
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        norm = _normaliser(surrogate, normaliser, surrogate.n_outputs_)
        return _select_by_variance_reduction(surrogate, X, k, allowed, norm, reduce, n_reference, seed)
    if method in ("auto", "gobi") and hasattr(surrogate, "gobi_select"):
        norm = _normaliser(surrogate, normaliser, getattr(surrogate, "n_outputs_", 1))
        return surrogate.gobi_select(X, k=k, normaliser=norm, exclude=np.flatnonzero(~allowed))
    if diversity == "auto":
        diversity = "kriging-believer" if hasattr(surrogate, "condition_on") else "penalty"
    if diversity == "kriging-believer" and not hasattr(surrogate, "condition_on"):
        raise ValueError(f"diversity='kriging-believer' needs a surrogate with condition_on (gp), got {type(surrogate).__name__}")
    if density_weight < 0:
        raise ValueError(f"density_weight must be >= 0, got {density_weight!r}")
    score = normalised_uncertainty(surrogate, X, normaliser, reduce)
    if density_weight > 0:
        score = score * representativeness(surrogate.transform_inputs(X)) ** density_weight
    score = np.where(allowed, score, -np.inf)
    if diversity == "kriging-believer":
        return _select_kriging_believer(surrogate, X, k, allowed, score, normaliser, reduce)
    return _select_penalised(surrogate, X, k, allowed, score, diversity, penalty_radius)


def _candidates(X_candidates: Any, k: Any, exclude: Any, diversity: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The candidate matrix and the mask of those that may be chosen, after checking the arguments."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if diversity not in DIVERSITY:
        raise ValueError(f"diversity must be one of {DIVERSITY}, got {diversity!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X = np.asarray(X_candidates)
    if X.ndim != 2:
        raise ValueError(f"X_candidates must be 2-D (n_candidates, n_features), got shape {X.shape}")
    allowed = np.ones(len(X), dtype=bool)
    if exclude is not None and len(np.atleast_1d(exclude)):
        allowed[np.asarray(exclude, dtype=np.int64)] = False
    if allowed.sum() < k:
        raise ValueError(f"k={k} queries requested but only {int(allowed.sum())} candidates are available")
    return X, allowed


def _select_kriging_believer(surrogate: Any, X: np.ndarray, k: int, allowed: np.ndarray, score: np.ndarray,
                             normaliser: Any, reduce: str) -> np.ndarray:
    """Greedy batch: after each pick, condition on a fantasy observation there and score the rest again."""
    chosen: list[int] = []
    model = surrogate
    cand = np.flatnonzero(allowed)
    for _ in range(k):
        idx = int(np.argmax(score))
        chosen.append(idx)
        score[idx] = -np.inf
        if len(chosen) == k:
            break
        model = model.condition_on(X[[idx]])
        live = cand[np.isfinite(score[cand])]
        score[live] = normalised_uncertainty(model, X[live], _normaliser(surrogate, normaliser, model.n_outputs_), reduce)
    return np.asarray(chosen, dtype=np.int64)


def _select_penalised(surrogate: Any, X: np.ndarray, k: int, allowed: np.ndarray, score: np.ndarray,
                      diversity: str, penalty_radius: float) -> np.ndarray:
    """Greedy batch: after each pick, scores shrink near it (``diversity="penalty"``; ``"none"``: top ``k``)."""
    use_penalty = diversity == "penalty" and k > 1 and hasattr(surrogate, "transform_inputs")
    Z = surrogate.transform_inputs(X) if use_penalty else None
    chosen: list[int] = []
    radius2 = None
    for _ in range(k):
        idx = int(np.argmax(score))
        chosen.append(idx)
        score[idx] = -np.inf
        if len(chosen) == k or diversity == "none" or Z is None:
            continue
        d2 = ((Z - Z[idx]) ** 2).sum(1)
        if radius2 is None:
            radius2 = max(float(np.median(d2[allowed])) * penalty_radius**2, 1e-12)
        live = np.isfinite(score)
        score[live] *= 1.0 - np.exp(-d2[live] / (2 * radius2))
    return np.asarray(chosen, dtype=np.int64)


def named_acquisition(name: str, surrogate: Any = None, seed: int = 0) -> Any:
    """``select_queries`` configured for the query rule ``name`` of :data:`ACQUISITIONS`.

    ``surrogate``, when given, is checked to support the rule (``variance-reduction`` needs a GP).
    """
    if name not in ACQUISITIONS:
        raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {name!r}")
    if name == "uncertainty":
        return select_queries
    if surrogate is not None:
        _require_variance_reduction(surrogate)
    return functools.partial(select_queries, method="variance-reduction", seed=seed)


def _require_variance_reduction(surrogate: Any) -> None:
    if not hasattr(surrogate, "variance_reduction"):
        raise ValueError(
            "variance-reduction needs a GP surrogate (posterior covariances: a variance_reduction method), "
            f"got {type(surrogate).__name__}"
        )


def _select_by_variance_reduction(
    surrogate: Any, X: np.ndarray, k: int, allowed: np.ndarray, norm: np.ndarray, reduce: str, n_reference: int, seed: int
) -> np.ndarray:
    """Greedy batch of ``k`` allowed rows of ``X`` by integrated variance reduction (see module docstring)."""
    if isinstance(n_reference, bool) or not isinstance(n_reference, (int, np.integer)) or n_reference < 1:
        raise ValueError(f"n_reference must be a positive integer, got {n_reference!r}")
    live = np.flatnonzero(allowed)
    ref = live if len(live) <= n_reference else np.sort(np.random.default_rng(seed).choice(live, n_reference, replace=False))
    chosen: list[int] = []
    for _ in range(k):
        cand = np.setdiff1d(live, chosen)
        vr = surrogate.variance_reduction(X[cand], X[ref], X[chosen] if chosen else None) / norm**2
        score = vr.sum(1) if reduce == "sum" else vr.max(1)
        if not np.isfinite(score).all():
            raise ValueError(f"{type(surrogate).__name__} returned non-finite variance reductions")
        chosen.append(int(cand[int(np.argmax(score))]))
    return np.asarray(chosen, dtype=np.int64)


__all__ = [
    "select_queries", "named_acquisition", "normalised_uncertainty", "representativeness",
    "ACQUISITIONS", "REDUCTIONS", "DIVERSITY", "METHODS",
]

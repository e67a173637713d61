"""Pool-based active learning replayed on a recorded measurement file.

Protocol (honest split):

1. a random test set (``test_fraction`` of the file, seeded by ``seed``) is drawn from the whole file
   **before** any query and never queried;
2. the seed set: ``seed_mode="recorded"`` takes the file's first ``seed_samples`` records (the recorded
   Latin-hypercube seed) that are not in the test set and tops them up with random pool records to
   ``seed_samples``; ``seed_mode="lhs"`` draws a fresh Latin hypercube over the rank-normalised global
   features of the pool and takes the nearest unused pool record to each point;
3. until ``budget`` samples: fit the surrogate on the revealed records (in file order, so that the
   same records give the same model whatever the query order), score it on the test set, and
   query ``batch_size`` more records from the rest of the pool — by ``strategy="uncertainty"``
   (:func:`~protran_tune.samplers.acquisition.select_queries`, optionally among ``candidates`` random
   pool records, as the original ProTran loop did with 64), by ``strategy="variance-reduction"``
   (GP surrogates: the candidate whose observation most shrinks the posterior variance summed over the
   candidates, ``method="variance-reduction"`` of ``select_queries``) or ``strategy="random"``; each query is
   answered by the :class:`~protran_tune.platforms.replay.ReplayPlatform`.

Targets are normalised by their maximum over the whole file. At every step the curve records test
MSE, Kendall tau, the fraction of predictions within 10% and the ±1σ/±2σ coverage per measure;
``samples_to_convergence`` is the first sample count with test MSE below ``threshold`` (``None`` when
never reached; ``floor`` then reports the lowest MSE reached and where).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from protran_tune.datasets import TARGETS, RecordedDataset
from protran_tune.platforms.replay import ReplayPlatform
from protran_tune.samplers.acquisition import ACQUISITIONS

STRATEGIES = (*ACQUISITIONS, "random")
SEED_MODES = ("recorded", "lhs")


@dataclass
class ReplayConfig:
    """Settings of one replay run (all recorded in the result)."""

    regressor: str = "bdt"
    strategy: str = "uncertainty"
    seed_samples: int = 16
    seed_mode: str = "recorded"
    budget: int = 64
    test_fraction: float = 0.2
    seed: int = 0
    batch_size: int = 1
    candidates: int | None = None
    threshold: float = 0.003
    regressor_params: dict[str, Any] = field(default_factory=dict)
    density_weight: float = 0.0
    query_seed: int | None = None  # seed of random picks and candidate subsets; None: from ``seed``

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.seed_mode not in SEED_MODES:
            raise ValueError(f"seed_mode must be one of {SEED_MODES}, got {self.seed_mode!r}")
        for name in ("seed_samples", "budget", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.seed_samples < 2:
            raise ValueError(f"seed_samples must be >= 2 (a surrogate needs 2 samples), got {self.seed_samples}")
        if self.budget < self.seed_samples:
            raise ValueError(f"budget={self.budget} must be >= seed_samples={self.seed_samples}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction!r}")
        if self.candidates is not None and self.candidates < 1:
            raise ValueError(f"candidates must be a positive integer or None (whole pool), got {self.candidates!r}")
        if self.query_seed is not None and (isinstance(self.query_seed, bool) or not isinstance(self.query_seed, int)):
            raise ValueError(f"query_seed must be an integer or None, got {self.query_seed!r}")
        if self.density_weight < 0:
            raise ValueError(f"density_weight must be >= 0, got {self.density_weight!r}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be positive, got {self.threshold!r}")


def _metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, dict[str, float | None]]:
    from scipy.stats import kendalltau

    out: dict[str, dict[str, float | None]] = {
        "test_mse": {}, "kendall_tau": {}, "within_10pct": {}, "coverage_1std": {}, "coverage_2std": {}
    }
    for j, name in enumerate(TARGETS):
        err = mean[:, j] - y[:, j]
        out["test_mse"][name] = float(np.mean(err**2))
        tau = kendalltau(mean[:, j], y[:, j]).statistic if len(y) >= 2 else float("nan")
        out["kendall_tau"][name] = float(tau) if tau is not None and math.isfinite(tau) else None
        out["within_10pct"][name] = float(np.mean(np.abs(err) <= 0.1 * np.abs(y[:, j])))
        if np.isfinite(std[:, j]).all():
            z = np.abs(err) / np.maximum(std[:, j], 1e-300)
            out["coverage_1std"][name] = float(np.mean(z <= 1))
            out["coverage_2std"][name] = float(np.mean(z <= 2))
        else:
            out["coverage_1std"][name] = out["coverage_2std"][name] = None
    return out


def split_test(n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the held-out test set: ``max(2, round(test_fraction * n))`` random records."""
    n_test = max(2, int(round(test_fraction * n)))
    if n - n_test < 2:
        raise ValueError(f"a dataset of {n} records leaves {n - n_test} for training at test_fraction={test_fraction}")
    rng = np.random.default_rng([seed, 0])
    return np.sort(rng.choice(n, n_test, replace=False))


def _lhs_seed(ds: RecordedDataset, pool: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    from scipy.stats import qmc, rankdata

    from protran_tune.space import FeatureEncoder

    fe = FeatureEncoder(ds.space)
    F = fe.transform(ds.embeddings[pool])[:, : fe.n_global_features_]  # whole-architecture columns
    F = F[:, np.ptp(F, axis=0) > 0]
    U = np.column_stack([(rankdata(c) - 0.5) / len(c) for c in F.T])  # rank-normalised to (0, 1)
    points = qmc.LatinHypercube(d=U.shape[1], seed=rng).random(k)
    free = np.ones(len(pool), dtype=bool)
    chosen = []
    for p in points:
        d = ((U - p) ** 2).sum(1)
        d[~free] = np.inf
        i = int(np.argmin(d))
        free[i] = False
        chosen.append(int(pool[i]))
    return chosen


def run_replay(
    dataset: RecordedDataset, config: ReplayConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run one active-learning replay; returns the JSON-ready result (see module docstring)."""
    from protran_tune.samplers.acquisition import named_acquisition
    from protran_tune.surrogates import make_surrogate

    config.validate()
    surrogate = make_surrogate(config.regressor, random_state=config.seed, **config.regressor_params)
    if config.strategy != "random" and not surrogate.supports_std:
        raise ValueError(
            f"regressor {config.regressor!r} has no uncertainty model: use --strategy random with it"
        )
    select_queries = named_acquisition(config.strategy, surrogate, config.seed) if config.strategy != "random" else None
    t_start = time.perf_counter()
    ds = dataset
    platform = ReplayPlatform(ds)
    n = len(ds)
    E = ds.embeddings.astype(np.float64)
    norm = ds.normaliser
    test = split_test(n, config.test_fraction, config.seed)
    in_test = np.zeros(n, dtype=bool)
    in_test[test] = True
    pool = np.flatnonzero(~in_test)  # file order
    budget = min(config.budget, len(pool))
    rng = np.random.default_rng([config.seed, 1])
    n_seed = min(config.seed_samples, budget)
    if config.seed_mode == "recorded":
        seed_idx = [int(i) for i in range(min(config.seed_samples, n)) if not in_test[i]][:n_seed]
        rest = np.setdiff1d(pool, seed_idx)
        if len(seed_idx) < n_seed:
            seed_idx += [int(i) for i in rng.choice(rest, n_seed - len(seed_idx), replace=False)]
    else:
        seed_idx = _lhs_seed(ds, pool, n_seed, rng)
    revealed: list[int] = []
    Y_seen: list[np.ndarray] = []

    def reveal(i: int) -> None:
        if in_test[i]:  # guarded by construction; a violation would invalidate the experiment
            raise AssertionError(f"record {ds.keys[i]!r} of the test set was about to be queried")
        m = platform.measure_index(i)
        obj = m.objectives()
        Y_seen.append(np.array([obj[t] for t in TARGETS], dtype=np.float64) / norm)
        revealed.append(i)

    for i in seed_idx:
        reveal(i)
    # the same split and seed set with another stream of random queries (e.g. an A/A comparison)
    query_rng = rng if config.query_seed is None else np.random.default_rng([config.query_seed, 3])
    y_test = ds.Y[test]
    curve: list[dict[str, Any]] = []
    fit_s: list[float] = []
    query_s: list[float] = []
    final: dict[str, Any] = {}
    while True:
        # fit on the revealed records in file order: the same records give the same model whatever
        # the order in which they were queried (bootstrap resamples are drawn by position)
        order = np.argsort(revealed, kind="stable")
        X_tr, Y_tr = E[np.asarray(revealed)[order]], np.stack(Y_seen)[order]
        t0 = time.perf_counter()
        surrogate.fit(X_tr, Y_tr)
        fit_s.append(time.perf_counter() - t0)
        mean, std = surrogate.predict(E[test], return_std=True)
        point = {"n_samples": len(revealed), **_metrics(y_test, mean, std)}
        curve.append(point)
        if progress:
            mse = " ".join(f"{k}={v:.4g}" for k, v in point["test_mse"].items())
            progress(f"[{ds.device} {config.regressor}/{config.strategy} seed={config.seed}] n={len(revealed)} test MSE {mse}")
        remaining = np.setdiff1d(pool, revealed)
        if len(revealed) >= budget or len(remaining) == 0:
            final = {"y_true": y_test.tolist(), "y_pred": mean.tolist(), "y_std": std.tolist()}
            break
        k = min(config.batch_size, budget - len(revealed), len(remaining))
        t0 = time.perf_counter()
        if config.strategy == "random":
            picks = query_rng.choice(remaining, k, replace=False)
        else:
            cand = remaining
            if config.candidates is not None and config.candidates < len(remaining):
                cand = np.sort(query_rng.choice(remaining, config.candidates, replace=False))
            picks = cand[select_queries(surrogate, E[cand], k=k, density_weight=config.density_weight)]
        query_s.append(time.perf_counter() - t0)
        for i in picks:
            reveal(int(i))

    convergence: dict[str, int | None] = {}
    floor: dict[str, dict[str, float]] = {}
    for name in TARGETS:
        hit = [p["n_samples"] for p in curve if p["test_mse"][name] < config.threshold]
        convergence[name] = hit[0] if hit else None
        best = min(curve, key=lambda p: p["test_mse"][name])
        floor[name] = {"test_mse": best["test_mse"][name], "n_samples": best["n_samples"]}
    both = [p["n_samples"] for p in curve if all(p["test_mse"][t] < config.threshold for t in TARGETS)]
    last = curve[-1]
    return {
        "config": asdict(config),
        "dataset": {**ds.describe(), "n_test": int(len(test)), "n_pool": int(len(pool))},
        "test_keys": [ds.keys[i] for i in test],
        "seed_keys": [ds.keys[i] for i in revealed[: len(seed_idx)]],
        "queried_keys": [ds.keys[i] for i in revealed[len(seed_idx):]],
        "curve": curve,
        "samples_to_convergence": convergence,
        "samples_to_convergence_all": both[0] if both else None,
        "threshold": config.threshold,
        "floor": floor,
        "coverage": {"1std": last["coverage_1std"], "2std": last["coverage_2std"]},
        "final_predictions": final,
        "timings": {
            "total_s": time.perf_counter() - t_start,
            "fit_s_mean": float(np.mean(fit_s)),
            "fit_s_last": fit_s[-1],
            "query_s_mean": float(np.mean(query_s)) if query_s else None,
            "n_fits": len(fit_s),
        },
    }


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

"""Pool-based active learning replayed on a recorded table (any targets of it).

Protocol (honest split):

1. a random test set (``test_fraction`` of the table, seeded by ``seed``,
   :func:`~protran_tune.objectives.scoring.split_test`) is drawn from the whole table **before** any
   query and never queried;
2. the seed set: ``seed_mode="recorded"`` takes the table's first ``seed_samples`` rows (for the ProTran
   files, the recorded Latin-hypercube seed) that are not in the test set and tops them up with random
   pool rows to ``seed_samples``; ``seed_mode="lhs"`` draws a fresh Latin hypercube over the
   rank-normalised global features of the pool and takes the nearest unused pool row to each point;
3. until ``budget`` samples: fit the surrogate on the revealed rows (in table order, so that the same
   rows give the same model whatever the query order), score it on the test set with the one held-out
   scorer (:func:`~protran_tune.objectives.scoring.score_heldout`), and query ``batch_size`` more rows
   from the rest of the pool — by ``strategy="uncertainty"``
   (:func:`~protran_tune.samplers.acquisition.select_queries`, optionally among ``candidates`` random
   pool rows, as the original ProTran loop did with 64), by ``strategy="variance-reduction"`` (GP
   surrogates) or ``strategy="random"``; each query is answered by a
   :class:`~protran_tune.objectives.providers.PoolLookup` of the table.

Targets (``targets``, default the ProTran three: ``latency_s``, ``energy_j``, ``peak_power_w``) are
divided by a normaliser (``normaliser``, :func:`~protran_tune.objectives.scoring.normaliser`): by default
their maximum |value| over the whole table (the paper's text); ``"seed-max-2x"``, twice the maximum over
the seed rows, or ``"recorded"``, the table's own (ProTran files: ``*.max_values.json``), as the original
loop did. Every curve point holds, per target, the test MSE, Kendall tau (overall and within fixed depth),
top-k overlap, the share within 10% and the ±1σ/±2σ coverage (``curve[i]["test_mse"][t]``,
``curve[i]["kendall_tau"][t]``, ...); ``samples_to_convergence`` is the first sample count with test MSE
below ``threshold`` once it has held on more than ``patience`` samples (``None`` when never reached;
``floor`` then reports the lowest MSE reached and where).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from protran_tune.datasets.protran import RecordedDataset
from protran_tune.datasets.table import Table
from protran_tune.objectives.providers import PoolLookup
from protran_tune.objectives.scoring import (
    check_convergence_options, normaliser, samples_to_convergence, score_heldout, split_test,
)
from protran_tune.objectives.targets import HARDWARE_TARGETS, parse_targets
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
    normaliser: str = "max"  # divisor of the targets: "max", "seed-max-2x" or "recorded" (module docstring)
    patience: int = 0  # samples on which the test MSE must have been below the threshold before convergence
    regressor_params: dict[str, Any] = field(default_factory=dict)
    density_weight: float = 0.0
    query_seed: int | None = None  # seed of random picks and candidate subsets; None: from ``seed``
    targets: tuple[str, ...] = HARDWARE_TARGETS

    def validate(self) -> None:
        self.targets = tuple(t.name for t in parse_targets(self.targets))
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
        check_convergence_options(self.normaliser, self.patience)


def _lhs_seed(E: np.ndarray, pool: np.ndarray, k: int, rng: np.random.Generator, space: str) -> list[int]:
    from protran_tune.samplers.qmc import lhs_pool_rows

    return [int(pool[i]) for i in lhs_pool_rows(E[pool], k, rng, space)]


def as_table(dataset: Table | RecordedDataset) -> Table:
    """The replay pool as a :class:`Table` (a ProTran :class:`RecordedDataset` is converted)."""
    return dataset.to_table() if isinstance(dataset, RecordedDataset) else dataset


@dataclass
class _Split:
    test: np.ndarray  # sorted test rows
    pool: np.ndarray  # the other rows, table order
    seed: list[int]  # seed rows, in reveal order


def _draw_split(table: Table, E: np.ndarray, config: ReplayConfig, rng: np.random.Generator) -> _Split:
    n = len(table)
    test = split_test(n, config.test_fraction, config.seed)
    in_test = np.zeros(n, dtype=bool)
    in_test[test] = True
    pool = np.flatnonzero(~in_test)
    n_seed = min(config.seed_samples, config.budget, len(pool))
    if config.seed_mode == "recorded":
        seed = [int(i) for i in range(min(config.seed_samples, n)) if not in_test[i]][:n_seed]
        if len(seed) < n_seed:
            seed += [int(i) for i in rng.choice(np.setdiff1d(pool, seed), n_seed - len(seed), replace=False)]
    else:
        seed = _lhs_seed(E.astype(np.int64), pool, n_seed, rng, "flexibert2")
    return _Split(test, pool, seed)


def _make_surrogate(config: ReplayConfig) -> tuple[Any, Any]:
    from protran_tune.samplers.acquisition import named_acquisition
    from protran_tune.surrogates import make_surrogate

    surrogate = make_surrogate(config.regressor, random_state=config.seed, **config.regressor_params)
    if config.strategy == "random":
        return surrogate, None
    if not surrogate.supports_std:
        raise ValueError(f"regressor {config.regressor!r} has no uncertainty model: use --strategy random with it")
    return surrogate, named_acquisition(config.strategy, surrogate, config.seed)


def run_replay(
    dataset: Table | RecordedDataset, config: ReplayConfig, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run one active-learning replay on a table (or ProTran file); the JSON-ready result (module docstring)."""
    config.validate()
    surrogate, select_queries = _make_surrogate(config)
    t_start = time.perf_counter()
    table = as_table(dataset)
    oracle = PoolLookup(table, config.targets)
    E = table.embeddings().astype(np.float64)
    depth = np.array([a.n_layers for a in table.archs])
    rng = np.random.default_rng([config.seed, 1])
    split = _draw_split(table, E, config, rng)
    scale = _scale(table, config, split.seed)
    budget = min(config.budget, len(split.pool))
    revealed: list[int] = []
    Y_seen: list[np.ndarray] = []

    def reveal(rows: Any) -> None:
        rows = [int(i) for i in rows]
        if set(rows) & set(split.test.tolist()):  # guarded by construction; a violation would invalidate the run
            raise AssertionError(f"a test row of {table.name!r} was about to be queried")
        Y_seen.extend(oracle.lookup(rows) / scale)
        revealed.extend(rows)

    reveal(split.seed)
    # the same split and seed set with another stream of random queries (e.g. an A/A comparison)
    query_rng = rng if config.query_seed is None else np.random.default_rng([config.query_seed, 3])
    y_test = oracle.lookup(split.test)
    curve: list[dict[str, Any]] = []
    fit_s: list[float] = []
    query_s: list[float] = []
    while True:
        # fit on the revealed rows in table order: the same rows give the same model whatever the
        # order in which they were queried (bootstrap resamples are drawn by position)
        order = np.argsort(revealed, kind="stable")
        t0 = time.perf_counter()
        surrogate.fit(E[np.asarray(revealed)[order]], np.stack(Y_seen)[order])
        fit_s.append(time.perf_counter() - t0)
        mean, std = surrogate.predict(E[split.test], return_std=True)
        mean, std = np.asarray(mean) * scale, np.asarray(std) * scale
        curve.append(score_heldout(y_test, mean, std, targets=config.targets, scale=scale, depth=depth[split.test],
                                   n_train=len(revealed)).curve_point())
        if progress:
            mse = " ".join(f"{k}={v:.4g}" for k, v in curve[-1]["test_mse"].items())
            progress(f"[{table.name} {config.regressor}/{config.strategy} seed={config.seed}] n={len(revealed)} test MSE {mse}")
        remaining = np.setdiff1d(split.pool, revealed)
        if len(revealed) >= budget or len(remaining) == 0:
            break
        k = min(config.batch_size, budget - len(revealed), len(remaining))
        t0 = time.perf_counter()
        reveal(_next_queries(surrogate, select_queries, E, remaining, k, config, query_rng))
        query_s.append(time.perf_counter() - t0)
    final = {"y_true": y_test.tolist(), "y_pred": mean.tolist(), "y_std": std.tolist()}
    timings = {"total_s": time.perf_counter() - t_start, "fit_s_mean": float(np.mean(fit_s)), "fit_s_last": fit_s[-1],
               "query_s_mean": float(np.mean(query_s)) if query_s else None, "n_fits": len(fit_s)}
    return _result(table, config, split, revealed, curve, final, timings, scale)


def _scale(table: Table, config: ReplayConfig, seed_rows: list[int]) -> np.ndarray:
    """``(k,)`` divisor of the targets by ``config.normaliser`` (the seed rows are the only ones revealed)."""
    recorded = table.meta.get("recorded_normaliser") or {}
    own = [recorded[t] for t in config.targets] if all(t in recorded for t in config.targets) else None
    return normaliser(table.values(config.targets), config.normaliser, seed_rows=seed_rows, recorded=own)


def _next_queries(surrogate: Any, select_queries: Any, E: np.ndarray, remaining: np.ndarray, k: int,
                  config: ReplayConfig, rng: np.random.Generator) -> np.ndarray:
    if select_queries is None:
        return rng.choice(remaining, k, replace=False)
    cand = remaining
    if config.candidates is not None and config.candidates < len(remaining):
        cand = np.sort(rng.choice(remaining, config.candidates, replace=False))
    return cand[select_queries(surrogate, E[cand], k=k, density_weight=config.density_weight)]


def _result(table: Table, config: ReplayConfig, split: _Split, revealed: list[int], curve: list[dict[str, Any]],
            final: dict[str, Any], timings: dict[str, Any], scale: np.ndarray) -> dict[str, Any]:
    last = curve[-1]
    dataset = {"name": table.name, "path": str(table.path) if table.path else None, "n_records": len(table),
               "n_test": int(len(split.test)), "n_pool": int(len(split.pool)), "targets": list(config.targets),
               "normaliser": dict(zip(config.targets, scale.tolist())),
               "sources": {t: table.sources.get(t) for t in config.targets}, "skipped": list(table.skipped)}
    for key in ("device", "batch_size", "runs", "recorded_normaliser"):
        if key in table.meta:
            dataset[key] = table.meta[key]
    n_seed = len(split.seed)
    return {
        "config": {**asdict(config), "targets": list(config.targets)},
        "dataset": dataset,
        "test_keys": [table.ids[i] for i in split.test],
        "seed_keys": [table.ids[i] for i in revealed[:n_seed]],
        "queried_keys": [table.ids[i] for i in revealed[n_seed:]],
        "curve": curve,
        **samples_to_convergence(curve, config.threshold, config.targets, config.patience),
        "threshold": config.threshold, "patience": config.patience,
        "coverage": {"1std": last["coverage_1std"], "2std": last["coverage_2std"]},
        "final_predictions": final,
        "timings": timings,
    }


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

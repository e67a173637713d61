"""``protran-tune search``: hardware-aware multi-objective NAS on an Optuna study, its front checked for real.

Live mode (:func:`run_search`): the search space is a design space or a named sub-space
(:mod:`protran_tune.space.parameterization`); each batch of ``batch_size`` proposals is scored by the
providers of :mod:`protran_tune.search.evaluation` (accuracy predicted or trained, hardware predicted with
std or measured, zero-cost exact). Every evaluation is a trial of an Optuna multi-objective study (metric
names set, constraints through ``trial.set_constraint``, predicted std, sources and ``out_of_domain`` in
user attrs, so optuna-dashboard shows the Pareto front) and a nested MLflow run under the search's parent
run. At the end the feasible Pareto front is checked (:func:`verify_front`): each member is measured on
the verification platform, and trained where accuracy comes from training (or looked up in NAS-Bench-BERT
where the predictor was used and the architecture is in it); the report gives predicted against measured
and the gap per objective.

Pool mode (``pool=TABLE``) runs :func:`~protran_tune.search.pool.run_pool_search` on a recorded table.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from protran_tune.objectives.targets import get_target
from protran_tune.search.evaluation import ObjectiveSet, ProviderOptions
from protran_tune.space.architecture import Architecture

ROLE_SEARCH, ROLE_EVAL, ROLE_VERIFY = "search", "evaluation", "verification"


@dataclass
class SearchConfig:
    """Everything that defines a search (recorded on the study and the MLflow parent run)."""

    objectives: tuple[str, ...] = ("glue", "latency_s", "energy_j", "peak_power_w")
    constraints: tuple[tuple[str, str, float], ...] = ()
    budget: int = 50
    sampler: str = "ours"
    seed: int = 0
    space: str = "nas-bench-bert"
    pool: str | None = None
    batch_size: int = 4
    verify: str = "auto"
    max_failures: int = 5
    study_name: str | None = None
    storage: str = "sqlite:///protran.db"
    mlflow_uri: str | None = "sqlite:///mlflow.db"
    experiment: str = "protran-tune"
    out: str = "search-out"
    providers: ProviderOptions = field(default_factory=ProviderOptions)

    def validate(self) -> None:
        from protran_tune.objectives.targets import parse_objective
        from protran_tune.search.methods import METHODS

        self.objectives = tuple(parse_objective(o).name for o in self.objectives)
        if len(self.objectives) < 2 or len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"name at least two distinct objectives, got {list(self.objectives)}")
        for target, op, _ in self.constraints:
            if target not in self.objectives:
                raise ValueError(f"constraint on {target!r}: it must be one of the objectives {list(self.objectives)}")
            if op not in ("<=", ">="):
                raise ValueError(f"constraint operator must be <= or >=, got {op!r}")
        for name in ("budget", "batch_size", "max_failures"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.sampler not in METHODS:
            raise ValueError(f"unknown sampler {self.sampler!r}: choose one of {list(METHODS)}")
        if self.study_name is not None and not self.study_name.strip():
            raise ValueError("--study must not be empty")
        if self.pool is None:
            self.providers.check()

    def name(self) -> str:
        return self.study_name or f"search-{self.sampler}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["constraints"] = [list(c) for c in self.constraints]
        return d


@dataclass
class SearchResult:
    study_name: str
    n_evaluated: int
    n_failed: int
    front: list[dict[str, Any]]
    hypervolume: list[float]
    verification: list[dict[str, Any]]
    out: str
    mlflow_run_id: str | None
    wall_time_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "front_size": len(self.front)}


def _progress_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- live search
def run_search(cfg: SearchConfig, progress: Callable[[str], None] | None = _progress_default) -> SearchResult:
    """Run a live search (see module docstring); ``progress`` receives one line per batch."""
    import optuna

    from protran_tune.search.methods import make_sampler
    from protran_tune.space.parameterization import get_parameterization

    cfg.validate()
    t0 = time.perf_counter()
    params = get_parameterization(cfg.space)
    objectives = ObjectiveSet(cfg.objectives, cfg.providers)
    constraints = {t: (op, b) for t, op, b in cfg.constraints}
    sampler = make_sampler(cfg.sampler, seed=cfg.seed, space=params, constraints=constraints,
                           **({"batch_size": cfg.batch_size} if cfg.sampler == "ours" else {}))
    study = optuna.create_study(storage=cfg.storage, study_name=cfg.name(), sampler=sampler, load_if_exists=True,
                                directions=[get_target(o).direction for o in cfg.objectives])
    study.set_metric_names(list(cfg.objectives))
    study.set_user_attr("search", cfg.to_dict())
    study.set_user_attr("providers", objectives.describe())
    tracker, parent = _tracker(cfg, objectives)
    failures = 0
    while (done := _n_complete(study)) < cfg.budget:
        k = min(cfg.batch_size, cfg.budget - done)
        trials = [study.ask() for _ in range(k)]
        archs = [params.suggest(t) for t in trials]
        values = objectives.evaluate(archs)
        for i, trial in enumerate(trials):
            ok = _tell(study, trial, archs[i], values, i, constraints)
            failures = 0 if ok else failures + 1
            if tracker is not None:
                _log_evaluation(tracker, parent, cfg, trial.number, archs[i], values, i, ok)
        if progress:
            progress(f"[search {cfg.name()}] {_n_complete(study)}/{cfg.budget} evaluated ({failures} failing in a row)")
        if failures >= cfg.max_failures:
            raise RuntimeError(f"search stopped: {failures} evaluations failed in a row; last: {values.details[-1].get('error')}")
    return _finish(cfg, study, objectives, params, tracker, parent, t0, progress)


def _n_complete(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _tell(study: Any, trial: Any, arch: Architecture, values: Any, i: int, constraints: dict[str, tuple[str, float]]) -> bool:
    """Record one evaluation on its trial; ``False`` (trial FAIL) when a value is missing."""
    from optuna.trial import TrialState

    from protran_tune.search.pool import constraint_values

    trial.set_user_attr("architecture", arch.to_json())
    trial.set_user_attr("arch_hash", arch.content_hash())
    trial.set_user_attr("sources", values.sources)
    trial.set_user_attr("predicted_std", {t: float(values.std[i, j]) for j, t in enumerate(values.targets)})
    if not values.in_domain[i]:
        trial.set_user_attr("out_of_domain", values.details[i].get("warning", ["outside the predictor's domain"]))
    row = values.mean[i]
    if not np.isfinite(row).all():
        trial.set_user_attr("fail_reason", "; ".join(values.details[i].get("error", ["a value is missing"])))
        study.tell(trial, state=TrialState.FAIL)
        return False
    for key, v in constraint_values(values.targets, constraints, row.tolist()).items():
        trial.set_constraint(key, v)
    study.tell(trial, row.tolist())
    return True


def _tracker(cfg: SearchConfig, objectives: ObjectiveSet) -> tuple[Any, str | None]:
    if cfg.mlflow_uri is None:
        return None, None
    from protran_tune.tracking.mlflow_tracking import MlflowTracker

    tracker = MlflowTracker(cfg.mlflow_uri, cfg.experiment)
    parent = tracker.study_run(cfg.name(), params={"objectives": ",".join(cfg.objectives), "sampler": cfg.sampler,
                                                   "seed": cfg.seed, "space": cfg.space, "budget": cfg.budget,
                                                   "accuracy": cfg.providers.accuracy, "hardware": cfg.providers.hardware,
                                                   "constraints": json.dumps([list(c) for c in cfg.constraints])},
                               tags={"protran.kind": ROLE_SEARCH})
    return tracker, parent


def _log_evaluation(tracker: Any, parent: str | None, cfg: SearchConfig, number: int, arch: Architecture, values: Any,
                    i: int, ok: bool) -> None:
    metrics = {t: float(values.mean[i, j]) for j, t in enumerate(values.targets) if math.isfinite(values.mean[i, j])}
    metrics.update({f"{t}_std": float(values.std[i, j]) for j, t in enumerate(values.targets) if math.isfinite(values.std[i, j])})
    tracker.log_nested_run(parent, f"{cfg.name()}/trial-{number}", role=ROLE_EVAL, arch=arch, metrics=metrics,
                           tags={"protran.study": cfg.name(), "protran.trial_number": str(number),
                                 "protran.state": "COMPLETE" if ok else "FAIL",
                                 "protran.out_of_domain": str(not bool(values.in_domain[i])).lower(),
                                 "protran.source": json.dumps(values.sources)})


# --------------------------------------------------------------------------- the front and its check
def feasible_front(study: Any, objectives: Sequence[str]) -> list[Any]:
    """COMPLETE, feasible trials no other feasible trial dominates (study order)."""
    from optuna.trial import TrialState

    from protran_tune.search.hypervolume import pareto_mask

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if all(v <= 0 for v in t.constraints.values())]
    if not done:
        return []
    signs = np.array([get_target(o).sign for o in objectives])
    mask = pareto_mask(-np.array([t.values for t in done]) * signs)
    return [t for t, keep in zip(done, mask) if keep]


def _finish(cfg: SearchConfig, study: Any, objectives: ObjectiveSet, params: Any, tracker: Any, parent: str | None,
            t0: float, progress: Callable[[str], None] | None) -> SearchResult:
    from optuna.trial import TrialState

    from protran_tune.search.outputs import front_rows, hypervolume_history, write_outputs

    front = feasible_front(study, cfg.objectives)
    rows = front_rows(front, cfg.objectives)
    out = Path(cfg.out)
    verification, notes = verify_front(cfg, rows, objectives, tracker, parent, progress)
    history = hypervolume_history(study, cfg.objectives)
    result = SearchResult(
        study_name=cfg.name(), n_evaluated=_n_complete(study),
        n_failed=len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))), front=rows,
        hypervolume=history["hypervolume"], verification=verification, out=str(out), mlflow_run_id=parent,
        wall_time_s=time.perf_counter() - t0, notes=notes,
    )
    write_outputs(out, cfg, study, result, objectives, params, history)
    if tracker is not None and parent is not None:
        tracker.log_study_metrics(parent, {"hypervolume": history["hypervolume"][-1] if history["hypervolume"] else 0.0,
                                           "front_size": len(rows), "n_evaluated": result.n_evaluated}, step=result.n_evaluated)
        tracker.finish_study(parent)
    return result


def verify_front(cfg: SearchConfig, rows: list[dict[str, Any]], objectives: ObjectiveSet, tracker: Any, parent: str | None,
                 progress: Callable[[str], None] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Measured (and trained or looked-up) values of the front members against the search's values."""
    from protran_tune.search.verification import verifier_for

    verifier, notes = verifier_for(cfg, objectives)
    if verifier is None or not rows:
        return [], notes
    archs = [Architecture.from_json(r["architecture"]) for r in rows]
    checked = verifier(archs)
    out = []
    for row, arch, measured in zip(rows, archs, checked):
        entry = {"trial": row["trial"], "arch_hash": arch.content_hash(), "predicted": {o: row[o] for o in cfg.objectives},
                 "measured": measured["values"], "sources": measured["sources"], "gap": {}}
        for o, m in measured["values"].items():
            if m is not None and row[o] not in (None, 0):
                entry["gap"][o] = (row[o] - m) / m  # (search value - measured) / measured
        out.append(entry)
        if tracker is not None:
            tracker.log_nested_run(parent, f"{cfg.name()}/verify-{row['trial']}", role=ROLE_VERIFY, arch=arch,
                                   metrics={**{f"measured_{o}": v for o, v in measured["values"].items() if v is not None},
                                            **{f"gap_{o}": g for o, g in entry["gap"].items()}},
                                   tags={"protran.study": cfg.name(), "protran.trial_number": str(row["trial"]),
                                         "protran.source": json.dumps(measured["sources"])})
    if progress:
        progress(f"[search {cfg.name()}] verified {len(out)} front member(s)")
    return out, notes

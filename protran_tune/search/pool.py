"""Pool mode: a recorded table is the search space and a true evaluation reveals one row.

Every method is an Optuna sampler over the same parameters (those of the table's search space, e.g.
:class:`~protran_tune.space.parameterization.NasBenchBertParameters`). A proposed architecture that is
not an unevaluated row of the table goes to the **nearest row not yet evaluated**: the smallest Euclidean
distance between the standardised global features of the architectures
(:class:`~protran_tune.space.FeatureEncoder`, whole-architecture columns: layers, parameters, FLOPs,
head dimensions per op, hidden sizes, feed-forward widths), ties to the first row in table order. The
same rule applies to every method; the proposal is then recorded as a PRUNED trial (user attr
``snapped_to``) and the evaluated row enters the study as a COMPLETE trial with its own parameters and
the proposal's system attrs (a sampler's bookkeeping, such as NSGA-II's generation), so samplers learn
from what was evaluated. ``n`` true evaluations are
``n`` COMPLETE trials, each a distinct row.

Quality is the hypervolume of the evaluated rows in a box fixed before the search
(:class:`~protran_tune.search.hypervolume.Normaliser`): for NAS-Bench-BERT accuracy the floor is the median
GLUE of the table's 2-layer, hidden-128 architectures (BERT-Tiny's size class); the caps of hardware
costs are the table's worst values; the ideal end is the table's best value of each objective. Regret
is the true front's hypervolume (all rows) minus the hypervolume found.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from protran_tune.datasets.table import Table
from protran_tune.objectives.targets import get_target
from protran_tune.search.hypervolume import Normaliser, hypervolume
from protran_tune.space.architecture import Architecture
from protran_tune.space.parameterization import Parameterization, get_parameterization

SNAP_RULE = ("a proposal that is not an unevaluated row goes to the nearest unevaluated row: smallest Euclidean "
             "distance of standardised global architecture features (layers, parameters, FLOPs, head dimensions "
             "per op, hidden sizes, feed-forward widths), ties to the first row in table order; identical for every method")


@dataclass
class PoolProblem:
    """A table as a multi-objective search problem with a fixed normalisation box."""

    table: Table
    objectives: tuple[str, ...]
    params: Parameterization
    normaliser: Normaliser
    constraints: dict[str, tuple[str, float]] = field(default_factory=dict)
    reference_note: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from protran_tune.space.features import shared_encoder

        self.Y = self.table.values(self.objectives)
        fe = shared_encoder(self.params.design_space)
        F = fe.transform(self.table.embeddings(self.params.design_space.name))[:, : fe.n_global_features_]
        self._mu, self._sd = F.mean(0), np.where(F.std(0) > 1e-12, F.std(0), 1.0)
        self.F = (F - self._mu) / self._sd
        self._fe = fe
        self.feasible = self.feasibility(self.Y)
        self.true_hv = hypervolume(self.normaliser.transform(self.Y[self.feasible]))

    def feasibility(self, Y: np.ndarray) -> np.ndarray:
        ok = np.ones(len(Y), dtype=bool)
        for name, (op, bound) in self.constraints.items():
            col = Y[:, self.objectives.index(name)]
            ok &= col <= bound if op == "<=" else col >= bound
        return ok

    def features(self, arch: Architecture) -> np.ndarray:
        e = self.params.design_space.embed(arch)[None]
        return ((self._fe.transform(e)[:, : self._fe.n_global_features_] - self._mu) / self._sd)[0]

    def snap(self, arch: Architecture, evaluated: set[int]) -> int:
        """The row evaluated for a proposal (see :data:`SNAP_RULE`)."""
        row = self.table.index_of(arch)
        if row is not None and row not in evaluated:
            return row
        d = ((self.F - self.features(arch)) ** 2).sum(1)
        d[list(evaluated)] = np.inf
        return int(np.argmin(d))

    def hv_of(self, rows: Sequence[int]) -> float:
        rows = [r for r in rows if self.feasible[r]]
        return hypervolume(self.normaliser.transform(self.Y[rows])) if rows else 0.0

    def describe(self) -> dict[str, Any]:
        return {"table": self.table.name, "records": len(self.table), "objectives": list(self.objectives),
                "space": self.params.name, "reference_point": self.normaliser.to_dict(), "reference_note": self.reference_note,
                "constraints": {k: list(v) for k, v in self.constraints.items()}, "true_hypervolume": self.true_hv,
                "snap_rule": SNAP_RULE, "sources": {t: self.table.sources.get(t) for t in self.objectives}}


def pool_problem(table: Table, objectives: Sequence[str], space: str = "nas-bench-bert",
                 constraints: Mapping[str, tuple[str, float]] | None = None) -> PoolProblem:
    """A :class:`PoolProblem` with the a-priori box of the module docstring."""
    names = tuple(get_target(o).name for o in objectives)
    params = get_parameterization(space)
    bad = [a for a in table.archs if not params.contains(a)]
    if bad:
        raise ValueError(f"{len(bad)} architecture(s) of table {table.name!r} are outside the search space {params.name!r}")
    Y = table.values(names)
    worst, best, note = [], [], {}
    for j, name in enumerate(names):
        t = get_target(name)
        col = Y[:, j]
        if t.direction == "maximize":
            small = [i for i, a in enumerate(table.archs) if a.n_layers == min(x.n_layers for x in table.archs)
                     and max(a.hidden_sizes) == min(max(x.hidden_sizes) for x in table.archs)]
            worst.append(float(np.median(col[small])))
            best.append(float(col.max()))
            note[name] = (f"floor: median {name} of the table's {len(small)} smallest-class architectures "
                          "(fewest layers, smallest hidden size: BERT-Tiny's size class); ideal: the table's best")
        else:
            worst.append(float(col.max()))
            best.append(float(col.min()))
            note[name] = "cap: the table's worst value; ideal: the table's best"
    norm = Normaliser(names, tuple(worst), tuple(best))
    return PoolProblem(table, names, params, norm, dict(constraints or {}), note)


# --------------------------------------------------------------------------- the run
@dataclass
class PoolRun:
    """One method, one seed: the rows evaluated in order and the hypervolume after each."""

    method: str
    seed: int
    rows: list[int]
    hv: list[float]
    snapped: int
    seconds: float

    def regret_at(self, n: int, true_hv: float) -> float:
        return true_hv - self.hv[min(n, len(self.hv)) - 1]


def run_pool_search(problem: PoolProblem, sampler: Any, budget: int, seed: int, method: str = "",
                    progress: Callable[[str], None] | None = None, storage: str | None = None,
                    study_name: str | None = None, time_limit_s: float | None = None) -> PoolRun:
    """Evaluate ``budget`` distinct rows with ``sampler`` (see module docstring); the study is in memory
    unless ``storage`` is given. ``time_limit_s`` stops earlier (the run then holds fewer evaluations); a
    run stopped so, or killed, resumes from its ``storage``/``study_name`` where it was."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [get_target(o).direction for o in problem.objectives]
    study = optuna.create_study(directions=directions, sampler=sampler, storage=storage, study_name=study_name,
                                load_if_exists=storage is not None)
    from protran_tune.tracking.optuna_tracking import name_metrics

    name_metrics(study, problem.objectives)
    evaluated, snapped, elapsed = _resumed(study, problem)
    done: set[int] = set(evaluated)
    hv: list[float] = [problem.hv_of(evaluated[:i + 1]) for i in range(len(evaluated))]
    start = time.perf_counter()  # of this run; ``elapsed``: of the earlier runs of a resumed study
    while len(evaluated) < min(budget, len(problem.table)):
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            break
        trial = study.ask()
        arch = problem.params.suggest(trial)
        row = problem.snap(arch, done)
        values = problem.Y[row].tolist()
        row_arch = problem.table.archs[row]
        if row_arch == arch:
            _set_constraints(trial, problem, values)
            trial.set_user_attr("row", problem.table.ids[row])
            study.tell(trial, values)
        else:
            snapped += 1
            trial.set_user_attr("snapped_to", problem.table.ids[row])
            study.tell(trial, state=TrialState.PRUNED)
            # the evaluated row keeps the proposal's sampler bookkeeping (e.g. NSGA-II's generation)
            inherited = study._storage.get_trial_system_attrs(trial._trial_id)
            study.add_trial(create_trial(
                params=problem.params.to_params(row_arch), distributions=problem.params.distributions(row_arch),
                values=values, user_attrs={"architecture": row_arch.to_json(), "proposed_by": trial.number,
                                           "row": problem.table.ids[row]},
                system_attrs={**inherited, **_constraint_attrs(problem, values)}))
        evaluated.append(row)
        done.add(row)
        hv.append(problem.hv_of(evaluated))
        study.set_user_attr("elapsed_s", elapsed + time.perf_counter() - start)
        if progress and len(evaluated) % 10 == 0:
            progress(f"[{method} seed={seed}] {len(evaluated)} evaluations, regret {problem.true_hv - hv[-1]:.4f}")
    return PoolRun(method, seed, evaluated, hv, snapped, elapsed + time.perf_counter() - start)


def _resumed(study: Any, problem: PoolProblem) -> tuple[list[int], int, float]:
    """The rows a stored study already evaluated (in trial order), its snapped proposals and its elapsed
    seconds; a trial left running by a killed run is marked failed."""
    from optuna.trial import TrialState

    index = {rid: i for i, rid in enumerate(problem.table.ids)}
    rows: list[int] = []
    snapped = 0
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        elif t.state == TrialState.COMPLETE and "row" in t.user_attrs:
            rows.append(index[t.user_attrs["row"]])
        snapped += t.state == TrialState.PRUNED and "snapped_to" in t.user_attrs
    return rows, snapped, float(study.user_attrs.get("elapsed_s", 0.0))


def _constraint_attrs(problem: PoolProblem, values: Sequence[float]) -> dict[str, float]:
    from optuna.study._constrained_optimization import _CONSTRAINTS_KEY

    return {f"{_CONSTRAINTS_KEY}:{k}": v for k, v in constraint_values(problem.objectives, problem.constraints, values).items()}


def _set_constraints(trial: Any, problem: PoolProblem, values: Sequence[float]) -> None:
    for key, value in constraint_values(problem.objectives, problem.constraints, values).items():
        trial.set_constraint(key, value)


def constraint_values(objectives: Sequence[str], constraints: Mapping[str, tuple[str, float]],
                      values: Sequence[float]) -> dict[str, float]:
    """Optuna constraint values (feasible when <= 0) of objective ``values``: ``value - bound`` for
    ``<=``, ``bound - value`` for ``>=``, keyed ``"<target><op><bound>"``."""
    out = {}
    for name, (op, bound) in constraints.items():
        v = values[list(objectives).index(name)]
        out[f"{name}{op}{bound:g}"] = v - bound if op == "<=" else bound - v
    return out


def run_pool_command(cfg: Any) -> dict[str, Any]:
    """``protran-tune search --pool TABLE``: one method on a table, its regret curve and front in ``cfg.out``."""
    import json
    from pathlib import Path

    from protran_tune.datasets import load_dataset
    from protran_tune.search.hypervolume import pareto_mask
    from protran_tune.search.methods import make_sampler

    table = load_dataset(cfg.pool)
    problem = pool_problem(table, cfg.objectives, cfg.space, {t: (op, b) for t, op, b in cfg.constraints})
    sampler = make_sampler(cfg.sampler, seed=cfg.seed, space=problem.params, candidates=list(table.archs),
                           normaliser=problem.normaliser, constraints=problem.constraints,
                           **({"batch_size": cfg.batch_size} if cfg.sampler == "ours" else {}))
    run = run_pool_search(problem, sampler, cfg.budget, cfg.seed, cfg.sampler, storage=cfg.storage, study_name=cfg.name())
    Y = problem.Y[run.rows]
    ok = problem.feasible[run.rows]
    front = [r for r, f, good in zip(run.rows, pareto_mask(problem.normaliser.transform(Y)), ok) if f and good]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"row": table.ids[r], "architecture": table.archs[r].to_json(),
             **{o: float(problem.Y[r, j]) for j, o in enumerate(problem.objectives)}} for r in front]
    (out / "front.json").write_text(json.dumps(rows, indent=1))
    summary = {"study_name": cfg.name(), "mode": "pool", "n_evaluated": len(run.rows), "front_size": len(rows),
               "regret": [problem.true_hv - h for h in run.hv], "snapped": run.snapped, "problem": problem.describe(),
               "config": cfg.to_dict(), "notes": []}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary

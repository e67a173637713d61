"""Shared machinery of the samplers that propose *whole architectures* to define-by-run objectives.

Optuna's relative sampling only covers the intersection search space, and the architecture
parameters of :func:`protran_tune.space.suggest_architecture` are conditional (``l5_head7`` exists only
for 6+ layers and 8+ heads). So an :class:`ArchitectureSampler` decides the whole architecture once
per trial, in :meth:`before_trial` (or lazily at the trial's first ``sample_independent`` call), and
stores its parameter dict in the trial's system attrs (key :data:`PARAMS_ATTR`); each
``sample_independent`` call then returns that architecture's value. There is no random fallback on
architecture parameters: a name the chosen architecture does not have, or a value outside the
distribution (the objective uses another space), is a ``ValueError``. Other parameters (a learning
rate, say) go to ``independent_sampler`` (default: ``RandomSampler(seed)``, with a warning printed once,
as Optuna's CmaEs and GP samplers do); a relative one (multivariate TPE, CMA-ES) samples them jointly
through its relative search space, stripped of architecture parameters. ``sample_relative`` answers
any search space it is given (Optuna's generic sampler tests pass explicit ones). The search space is a
design space (parameters of :func:`~protran_tune.space.suggest_architecture`) or a named sub-space with
its own parameters (:mod:`protran_tune.space.parameterization`, e.g. ``nas-bench-bert``).

The architecture is also recorded as the user attr ``"architecture"`` (canonical JSON), which the
dashboard shows. Everything lives in the storage, so any storage works (in-memory, RDB, journal),
across processes and study reloads.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from optuna import logging as optuna_logging
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import TrialState

from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import DesignSpace
from protran_tune.space.parameterization import DesignSpaceParameters, Parameterization, get_parameterization
from protran_tune.space.search_space import architecture_to_params

_logger = optuna_logging.get_logger(__name__)

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

PARAMS_ATTR = "protran:architecture_params"
INFO_ATTR = "protran:proposal"
USER_ATTR = "architecture"

_ARCH_PARAM_RE = re.compile(r"^(n_layers|l\d+_(hidden|n_heads|head\d+|ff_depth|ff\d+))$")


def is_architecture_param(name: str) -> bool:
    """True for the parameter names of :func:`protran_tune.space.suggest_architecture`."""
    return bool(_ARCH_PARAM_RE.match(name))


def conform_params(arch: Architecture, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters of ``arch`` overridden by ``fixed`` ones (enqueued or partially fixed trials).

    Walks the define-by-run structure: a fixed ``n_layers``/``n_heads``/``ff_depth`` that differs
    from ``arch`` is filled from ``arch``'s layers and heads cyclically, so every parameter the
    objective will ask for has a value. Heads keep their parameter positions (no re-sorting).
    """
    base = architecture_to_params(arch)
    if not any(is_architecture_param(k) for k in fixed):
        return base

    def get(name: str, default: Any) -> Any:
        return fixed.get(name, base.get(name, default))

    out: dict[str, Any] = {"n_layers": int(get("n_layers", arch.n_layers))}
    for j in range(out["n_layers"]):
        src = arch.layers[j % arch.n_layers]
        out[f"l{j}_hidden"] = get(f"l{j}_hidden", src.hidden)
        n_heads = out[f"l{j}_n_heads"] = int(get(f"l{j}_n_heads", src.n_heads))
        for i in range(n_heads):
            out[f"l{j}_head{i}"] = get(f"l{j}_head{i}", src.heads[i % src.n_heads])
        depth = out[f"l{j}_ff_depth"] = int(get(f"l{j}_ff_depth", len(src.feed_forward)))
        for i in range(depth):
            out[f"l{j}_ff{i}"] = get(f"l{j}_ff{i}", src.feed_forward[i % len(src.feed_forward)])
    return out


def trial_architecture(
    trial: "FrozenTrial", space: Parameterization | DesignSpace | str = "flexibert2", *, evaluated_only: bool = False
) -> Architecture | None:
    """The architecture a trial evaluated (its params, once complete), else the one proposed for it
    (system attrs), else its enqueued fixed params; ``None`` if none parses in ``space``.

    ``evaluated_only``: only the architecture the objective suggested (its params), the one its values
    describe; a trial whose objective did not suggest a whole architecture gives ``None``, so surrogates
    never learn a proposal the objective ignored.
    """
    params = get_parameterization(space)
    sources = [trial.params] if evaluated_only else [
        trial.params, trial.system_attrs.get(PARAMS_ATTR), trial.system_attrs.get("fixed_params")]
    for source in sources:
        if source and "n_layers" in source:
            try:
                return params.from_params(source)
            except (ValueError, TypeError):
                continue
    return None


class ArchitectureSampler(BaseSampler):
    """Base of the whole-architecture samplers; subclasses implement :meth:`_propose`.

    Args:
        space: design space (name, YAML path or :class:`DesignSpace`) or a named sub-space
            (``"nas-bench-bert"``) or a :class:`~protran_tune.space.parameterization.Parameterization`; the
            objective must suggest the architecture with the same space (``suggest_architecture(trial,
            space)``, or ``get_parameterization(space).suggest(trial)``).
        independent_sampler: sampler for parameters that are not architecture parameters (default
            ``RandomSampler(seed)``, announced by a warning the first time it is used).
        seed: seed of the default independent sampler.
    """

    #: re-check RUNNING trials after storing the choice (parallel workers racing on one pick)
    _check_running_duplicates = False

    def __init__(self, space: Parameterization | DesignSpace | str = "flexibert2", *,
                 independent_sampler: BaseSampler | None = None, seed: int | None = None) -> None:
        self._params = get_parameterization(space)
        self._space = self._params.design_space
        self._independent_sampler = RandomSampler(seed=seed) if independent_sampler is None else independent_sampler
        self._warn_independent = independent_sampler is None
        # Chosen params of recent trials, keyed by (storage, trial id): saves a storage read per suggest.
        self._chosen: dict[tuple[int, int], dict[str, Any]] = {}

    @property
    def space(self) -> DesignSpace:
        """The design space whose embeddings describe the architectures (the enclosing one of a sub-space)."""
        return self._space

    @property
    def parameterization(self) -> Parameterization:
        return self._params

    # ----------------------------------------------------------------- to implement
    def _propose(self, study: "Study", trial: "FrozenTrial", exclude: set[str]) -> tuple[Architecture, dict[str, Any]]:
        """The architecture for ``trial`` (not in ``exclude``, canonical JSON) and a JSON-able info dict."""
        raise NotImplementedError

    # ----------------------------------------------------------------- study helpers
    def existing_architectures(self, study: "Study", *, before: int | None = None) -> dict[str, int]:
        """``{architecture JSON: trial number}`` of the study's trials in any state except FAIL.

        RUNNING trials count through the choice stored in their system attrs, so parallel workers
        do not propose an architecture another worker is evaluating. ``before``: only trials with a
        smaller number.
        """
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
        out: dict[str, int] = {}
        for t in study._get_trials(deepcopy=False, states=states, use_cache=False):
            if before is not None and t.number >= before:
                continue
            arch = trial_architecture(t, self._params)
            if arch is not None:
                out.setdefault(arch.to_json(), t.number)
        return out

    # ----------------------------------------------------------------- BaseSampler
    def infer_relative_search_space(self, study: "Study", trial: "FrozenTrial") -> dict[str, BaseDistribution]:
        """The independent sampler's relative search space without architecture parameters (empty for
        the default ``RandomSampler``): a relative independent sampler (multivariate TPE, CMA-ES) then
        samples the other parameters jointly."""
        space = self._independent_sampler.infer_relative_search_space(study, trial)
        return {name: dist for name, dist in space.items() if not self._params.is_param(name)}

    def sample_relative(
        self, study: "Study", trial: "FrozenTrial", search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """A value for every parameter of ``search_space``: architecture parameters from the trial's whole
        architecture, the others from the independent sampler (jointly where it samples them relatively,
        else one by one)."""
        others = {name: dist for name, dist in search_space.items() if not self._params.is_param(name)}
        out: dict[str, Any] = {}
        if others:
            self._announce_independent(next(iter(others)))
            relative = self._independent_sampler.sample_relative(study, trial, others)
            for name, dist in others.items():
                out[name] = relative[name] if name in relative else self._independent_sampler.sample_independent(
                    study, trial, name, dist)
        for name, dist in search_space.items():
            if name not in others:
                out[name] = self._architecture_value(study, trial, name, dist)
        return out

    def before_trial(self, study: "Study", trial: "FrozenTrial") -> None:
        self._independent_sampler.before_trial(study, trial)
        if PARAMS_ATTR not in trial.system_attrs:
            try:
                self._decide(study, trial)
            except Exception:
                # Leave no zombie RUNNING trial behind: the error propagates from study.ask().
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
                raise

    def after_trial(
        self, study: "Study", trial: "FrozenTrial", state: TrialState, values: Sequence[float] | None
    ) -> None:
        # Record the architecture actually evaluated (fixed parameters may have changed the proposal).
        try:
            evaluated = self._params.from_params(trial.params).to_json()
        except (ValueError, TypeError):
            evaluated = None
        if evaluated is not None and trial.user_attrs.get(USER_ATTR) != evaluated:
            study._storage.set_trial_user_attr(trial._trial_id, USER_ATTR, evaluated)
        self._independent_sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Reseed only the independent sampler: proposals depend on (seed, trial number), so parallel
        workers (``n_jobs > 1``) keep drawing from one shared, consistent sequence."""
        self._independent_sampler.reseed_rng()

    def sample_independent(
        self, study: "Study", trial: "FrozenTrial", param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if not self._params.is_param(param_name):
            self._announce_independent(param_name)
            return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)
        return self._architecture_value(study, trial, param_name, param_distribution)

    # ----------------------------------------------------------------- internals
    def _announce_independent(self, param_name: str) -> None:
        """Warn once that non-architecture parameters go to the default independent sampler."""
        if self._warn_independent:
            self._warn_independent = False
            _logger.warning(
                f"{type(self).__name__} proposes whole architectures; parameter {param_name!r} is not an "
                f"architecture parameter of space {self._params.name!r}, so it and other such parameters are "
                f"sampled by {type(self._independent_sampler).__name__} (pass independent_sampler=... to choose)"
            )

    def _architecture_value(
        self, study: "Study", trial: "FrozenTrial", param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """The value of architecture parameter ``param_name`` in the architecture chosen for ``trial``."""
        params = self._trial_params(study, trial)
        decided = {k: v for k, v in trial.params.items() if self._params.is_param(k)}
        if any(params.get(k) != v for k, v in decided.items()):
            # Some parameters came from elsewhere (PartialFixedSampler, a user's suggest before ours):
            # fill the rest from the chosen architecture, consistently with them.
            params = self._params.conform(self._params.from_params(params), decided)
        if param_name not in params:
            raise ValueError(
                f"trial {trial.number}: parameter {param_name!r} does not belong to the architecture "
                f"{self.__class__.__name__} chose for it (n_layers={params.get('n_layers')}; parameters "
                f"{sorted(params)[:6]}...); suggest the architecture with the sampler's space {self._params.name!r}"
            )
        value = params[param_name]
        if not isinstance(param_distribution, CategoricalDistribution) or value not in param_distribution.choices:
            allowed = getattr(param_distribution, "choices", param_distribution)
            raise ValueError(
                f"trial {trial.number}: parameter {param_name!r}={value!r} of the chosen architecture is not in "
                f"the objective's distribution {allowed!r}: the objective's design space differs from the "
                f"sampler's {self._params.name!r}"
            )
        return value

    def _trial_params(self, study: "Study", trial: "FrozenTrial") -> dict[str, Any]:
        # Our own record first: reading trial.system_attrs goes to the storage on every call.
        params = self._chosen.get((id(study._storage), trial._trial_id)) or trial.system_attrs.get(PARAMS_ATTR)
        if params is None:
            params = study._storage.get_trial_system_attrs(trial._trial_id).get(PARAMS_ATTR)
        if params is None:  # before_trial was not called for this trial (direct sampler use)
            params = self._decide(study, trial)
        return params

    def _store(self, study: "Study", trial: "FrozenTrial", arch: Architecture, info: dict[str, Any]) -> dict[str, Any]:
        params = self._params.conform(arch, trial.system_attrs.get("fixed_params") or {})
        try:
            recorded = self._params.from_params(params).to_json()
        except (ValueError, TypeError):  # invalid fixed params: the objective will report them
            recorded = arch.to_json()
        storage = study._storage
        storage.set_trial_system_attr(trial._trial_id, PARAMS_ATTR, params)
        storage.set_trial_system_attr(trial._trial_id, INFO_ATTR, info)
        storage.set_trial_user_attr(trial._trial_id, USER_ATTR, recorded)
        trial.system_attrs[PARAMS_ATTR] = params  # shared with the Trial's cached copy
        if len(self._chosen) >= 256:
            self._chosen.pop(next(iter(self._chosen)))
        self._chosen[(id(study._storage), trial._trial_id)] = params
        return params

    def _decide(self, study: "Study", trial: "FrozenTrial") -> dict[str, Any]:
        exclude: set[str] = set()
        for _ in range(16):
            arch, info = self._propose(study, trial, exclude)
            params = self._store(study, trial, arch, info)
            if not self._check_running_duplicates:
                return params
            mine = arch.to_json()
            # Two workers may pick the same architecture at once; both have stored their pick by
            # now, so each sees the other's: the lower trial number keeps it, the other re-picks.
            if mine not in self.existing_architectures(study, before=trial.number):
                return params
            exclude.add(mine)
        return params


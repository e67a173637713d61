"""Active learning of hardware cost as an Optuna sampler: query the most uncertain architecture next."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from optuna import logging as optuna_logging
from optuna.samplers import BaseSampler
from optuna.trial import TrialState

from protran_tune.samplers._base import ArchitectureSampler, trial_architecture
from protran_tune.space.parameterization import DesignSpaceParameters
from protran_tune.samplers.qmc import ArchitectureMapping
from protran_tune.samplers.qmc_sampler import LatinHypercubeSampler, QMCArchitectureSampler
from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import BUILTIN_SPACES, DesignSpace, get_space
from protran_tune.space.features import FeatureEncoder

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna_logging.get_logger(__name__)


class ActiveLearningSampler(ArchitectureSampler):
    """Propose the candidate architecture of highest normalised surrogate uncertainty (ProTran IV.D).

    Learns whatever objectives the study has (1 to k; ``objective_names`` picks some by the study's metric
    names). Until
    ``n_startup_trials`` trials have completed with finite values, trial ``i`` takes point ``i`` of
    ``seed_sampler`` (default: a Latin hypercube of ``n_startup_trials`` points). Afterwards, each trial:

    1. fits a clone of ``surrogate`` on the completed trials (inputs: ProTran embeddings for the
       built-in surrogates, whose ``encoder`` turns them into standardised features; otherwise
       :class:`~protran_tune.space.FeatureEncoder` features; targets: the trials' objective values);
    2. draws a candidate pool: ``candidates`` if given (e.g. a recorded dataset), else
       ``n_candidates`` uniform points of the unbiased mapping
       (:class:`~protran_tune.samplers.qmc.ArchitectureMapping`), seeded by (seed, trial number);
    3. drops architectures already in the study in any state but FAIL (RUNNING ones included, through
       their stored choice; if two workers race to the same pick, the higher trial number re-picks);
    4. picks :func:`protran_tune.samplers.acquisition.select_queries` ``(surrogate, X, k=1,
       normaliser=normaliser)`` (or the ``acquisition`` rule) and proposes that whole architecture.

    If parallel workers or failures use up the seed points before ``n_startup_trials`` trials
    complete, active learning starts on what has completed (at least 2 trials); with fewer, the seed
    sampler's own fallback (random points through the same mapping, with a warning) is used.
    Completed trials with NaN or infinite objective values are left out of the fit and counted in
    the proposal info (system attr ``protran:proposal``); so are trials whose objective did not suggest
    a whole architecture (their values do not describe the proposal).

    Args:
        surrogate: a surrogate instance (cloned before each fit) or a name for
            :func:`protran_tune.surrogates.make_surrogate` (``"bdt"``, ``"gp"``, ``"boshnas"``, ...).
        space: design space; the objective calls ``suggest_architecture(trial, space)``.
        n_startup_trials: completed trials before the surrogate takes over.
        seed_sampler: whole-architecture sampler of the startup trials (same space).
        n_candidates: size of the random candidate pool (ignored with ``candidates``).
        candidates: a fixed pool of architectures to choose from (pool-based active learning).
        objective_names: the study metrics used as targets, matched by ``study.metric_names`` (``None``,
            the default: every objective of the study); without metric names the study must have exactly
            as many objectives, in this order.
        normaliser: passed to ``select_queries`` (``None``: its default, the targets' maxima).
        acquisition: a query rule of :data:`~protran_tune.samplers.acquisition.ACQUISITIONS`
            (``"uncertainty"``: largest normalised std; ``"variance-reduction"``: largest integrated
            variance reduction over the candidate pool, GP surrogates) or a replacement for
            ``select_queries`` with the same signature ``(surrogate, X, k=1, normaliser=...) -> indices``
            (``None``: ``"uncertainty"``).
        seed: seed of the candidate pools and the surrogate.
        independent_sampler: sampler for non-architecture parameters (``None``: ``RandomSampler(seed)``,
            announced by a warning when first used).

    Example:

        .. code-block:: python

            import optuna
            from protran_tune.samplers import ActiveLearningSampler
            from protran_tune.space import suggest_architecture

            def objective(trial):
                arch = suggest_architecture(trial, "flexibert2")
                m = platform.measure(arch, workload)  # a protran_tune.platforms Platform
                return m.latency_s, m.energy_j, m.peak_power_w

            study = optuna.create_study(
                directions=["minimize"] * 3, storage="sqlite:///protran.db",
                sampler=ActiveLearningSampler("bdt", "flexibert2", n_startup_trials=16, seed=0),
            )
            study.set_metric_names(["latency_s", "energy_j", "peak_power_w"])
            study.optimize(objective, n_trials=64)
    """

    _check_running_duplicates = True

    def __init__(
        self,
        surrogate: Any = "bdt",
        space: DesignSpace | str = "flexibert2",
        *,
        n_startup_trials: int = 16,
        seed_sampler: ArchitectureSampler | None = None,
        n_candidates: int = 2048,
        candidates: Sequence[Architecture] | None = None,
        objective_names: Sequence[str] | None = None,
        normaliser: Any = None,
        acquisition: str | Callable[..., Any] | None = None,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
    ) -> None:
        super().__init__(space, independent_sampler=independent_sampler, seed=seed)
        if not isinstance(self._params, DesignSpaceParameters):
            raise ValueError(f"ActiveLearningSampler searches a design space (e.g. flexibert2), not the sub-space {self._params.name!r}")
        for name, value, low in (("n_startup_trials", n_startup_trials, 0), ("n_candidates", n_candidates, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        names = None if objective_names is None else tuple(objective_names)
        if names is not None and (not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names)):
            raise ValueError(f"objective_names must be distinct metric names or None, got {objective_names!r}")
        self._seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        surrogate = self._resolve_surrogate(surrogate)
        seed_sampler = self._resolve_seed_sampler(seed_sampler, n_startup_trials)
        self._surrogate = surrogate
        self._n_startup_trials = int(n_startup_trials)
        self._seed_sampler = seed_sampler
        self._n_candidates = int(n_candidates)
        self._candidates: list[Architecture] | None = None
        self._candidate_embeddings: np.ndarray | None = None
        if candidates is not None:
            self._candidates = [self._space.validate(a) for a in candidates]
            if not self._candidates:
                raise ValueError("candidates must hold at least one architecture")
            self._candidate_embeddings = np.stack([self._space.embed(a) for a in self._candidates])
        self._objective_names = names
        self._normaliser = normaliser
        self._acquisition_name = "uncertainty" if acquisition is None else getattr(acquisition, "__name__", str(acquisition))
        if isinstance(acquisition, str):
            from protran_tune.samplers.acquisition import named_acquisition

            acquisition = named_acquisition(acquisition, surrogate, self._seed)
        elif acquisition is not None and not callable(acquisition):
            raise ValueError(
                f"acquisition must be a query rule name or callable (surrogate, X, k, normaliser) -> indices, got {acquisition!r}"
            )
        self._acquisition = acquisition
        self._mapping = ArchitectureMapping(self._space)
        self._encoder = FeatureEncoder(self._space)
        self._fitted: tuple[tuple[int, ...], Any] | None = None

    def __str__(self) -> str:
        return f"ActiveLearningSampler(surrogate={type(self._surrogate).__name__}, n_startup_trials={self._n_startup_trials})"

    # ----------------------------------------------------------------- helpers
    def _resolve_surrogate(self, surrogate: Any) -> Any:
        """The surrogate instance (a name is built for the sampler's space), checked to suit active learning."""
        if isinstance(surrogate, str):
            from protran_tune.surrogates import make_surrogate

            builtin = self._space.name in BUILTIN_SPACES and get_space(self._space.name) == self._space
            surrogate = make_surrogate(surrogate, random_state=self._seed,
                                       default_space=self._space.name if builtin else self._space)
        if not (hasattr(surrogate, "fit") and hasattr(surrogate, "predict")):
            raise ValueError(f"surrogate must have fit(X, Y) and predict(X, return_std=True), got {type(surrogate).__name__}")
        if getattr(surrogate, "supports_std", True) is False:
            raise ValueError(
                f"surrogate {type(surrogate).__name__} has no uncertainty model (supports_std=False): active "
                "learning needs predict(X, return_std=True)"
            )
        sur_space = getattr(surrogate, "space", None)
        if self._uses_embeddings(surrogate) and sur_space is not None and not _same_space(sur_space, self._space):
            raise ValueError(
                f"surrogate encodes embeddings of space {sur_space!r} but the sampler's space is {self._space.name!r}: "
                "pass a surrogate with space=... matching the sampler"
            )
        return surrogate

    def _resolve_seed_sampler(self, seed_sampler: ArchitectureSampler | None, n_startup_trials: int) -> ArchitectureSampler:
        """The startup sampler (default: Latin hypercube of ``n_startup_trials`` points), checked to share the space."""
        if seed_sampler is None:
            seed_sampler = LatinHypercubeSampler(self._space, n_points=max(int(n_startup_trials), 1), seed=self._seed)
        if not isinstance(seed_sampler, ArchitectureSampler):
            raise ValueError(
                f"seed_sampler must be a whole-architecture sampler (e.g. LatinHypercubeSampler), got "
                f"{type(seed_sampler).__name__}"
            )
        if seed_sampler.space != self._space:
            raise ValueError(f"seed_sampler's space {seed_sampler.space.name!r} differs from {self._space.name!r}")
        return seed_sampler

    @staticmethod
    def _uses_embeddings(surrogate: Any) -> bool:
        encoder = getattr(surrogate, "encoder", None)
        return isinstance(encoder, str) and encoder != "identity"

    def inputs(self, embeddings: np.ndarray) -> np.ndarray:
        """Surrogate inputs of ProTran embeddings ``(n, embedding_dim)``: themselves or dense features."""
        if self._uses_embeddings(self._surrogate):
            return np.asarray(embeddings, dtype=np.float64)
        return self._encoder.transform(embeddings)

    def objective_names(self, study: "Study") -> list[str]:
        """Names of the targets learned in ``study``: ``objective_names``, else its metric names, else
        ``objective0, objective1, ...``."""
        if self._objective_names is not None:
            return list(self._objective_names)
        names = study.metric_names
        return list(names) if names is not None else [f"objective{i}" for i in range(len(study.directions))]

    def target_indices(self, study: "Study") -> list[int]:
        """Positions of ``objective_names`` among the study's values; ``ValueError`` if absent."""
        if self._objective_names is None:
            return list(range(len(study.directions)))
        names = study.metric_names
        if names is not None:
            missing = [n for n in self._objective_names if n not in names]
            if missing:
                raise ValueError(
                    f"study metrics {list(names)} lack {missing}: ActiveLearningSampler(objective_names="
                    f"{list(self._objective_names)}) needs them"
                )
            return [list(names).index(n) for n in self._objective_names]
        if len(study.directions) != len(self._objective_names):
            raise ValueError(
                f"the study has {len(study.directions)} objective(s) and no metric names; ActiveLearningSampler "
                f"needs values {list(self._objective_names)} in this order, or study.set_metric_names(...)"
            )
        return list(range(len(self._objective_names)))

    def training_data(self, study: "Study") -> tuple[list[int], np.ndarray, np.ndarray, int]:
        """Completed trials' numbers, embeddings ``(n, D)``, targets ``(n, k)`` and the count skipped
        for non-finite values."""
        idx = self.target_indices(study)
        numbers, E, Y, skipped = [], [], [], 0
        for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=False):
            if t.values is None:
                continue
            y = [t.values[i] for i in idx]
            if not all(math.isfinite(v) for v in y):
                skipped += 1
                continue
            arch = trial_architecture(t, self._params, evaluated_only=True)
            if arch is None or not self._space.contains(arch):
                continue
            numbers.append(t.number)
            E.append(self._space.embed(arch))
            Y.append(y)
        D = self._space.embedding_dim
        return numbers, np.asarray(E, dtype=np.int64).reshape(-1, D), np.asarray(Y, dtype=np.float64).reshape(-1, len(idx)), skipped

    def fitted_surrogate(self, study: "Study", data: tuple | None = None) -> tuple[Any, int, int]:
        """A surrogate fitted on the study's completed trials (cached while they do not change),
        the number of training trials and the number skipped for non-finite values. ``data``: the
        result of :meth:`training_data`, if already at hand."""
        numbers, E, Y, skipped = self.training_data(study) if data is None else data
        key = tuple(numbers)
        if self._fitted is None or self._fitted[0] != key:
            model = _clone(self._surrogate)
            model.fit(self.inputs(E), Y)
            self._fitted = (key, model)
        return self._fitted[1], len(numbers), skipped

    def candidate_pool(self, study: "Study", trial_number: int, exclude: set[str]) -> np.ndarray:
        """Unique candidate embeddings ``(n, D)`` not in the study and not in ``exclude``."""
        if self._candidate_embeddings is not None:
            E = self._candidate_embeddings
        else:
            points = np.random.default_rng([self._seed, trial_number]).random((self._n_candidates, self._mapping.dim))
            E = self._mapping.embed_points(points)
        E = np.unique(E, axis=0)
        taken_rows = set()
        for arch_json in set(exclude) | set(self.existing_architectures(study)):
            try:
                taken_rows.add(tuple(self._space.embed(Architecture.from_json(arch_json)).tolist()))
            except ValueError:  # not in this space: cannot be a candidate anyway
                continue
        if taken_rows:
            keep = np.array([tuple(row) not in taken_rows for row in E.tolist()], dtype=bool)
            E = E[keep]
        return E

    # ----------------------------------------------------------------- proposal
    def _propose(self, study: "Study", trial: "FrozenTrial", exclude: set[str]) -> tuple[Architecture, dict[str, Any]]:
        data = self.training_data(study)
        n_done = len(data[0])
        seed_points = self._seed_sampler.n_points if isinstance(self._seed_sampler, QMCArchitectureSampler) else self._n_startup_trials
        active = n_done >= max(self._n_startup_trials, 2) or (trial.number >= seed_points and n_done >= 2)
        if not active:
            arch, info = self._seed_sampler._propose(study, trial, exclude)
            return arch, {**info, "sampler": type(self).__name__, "phase": "seed", "seed_sampler": str(self._seed_sampler)}
        if self._acquisition is not None:
            select_queries = self._acquisition
        else:
            from protran_tune.samplers.acquisition import select_queries

        model, n_train, skipped = self.fitted_surrogate(study, data)
        E = self.candidate_pool(study, trial.number, exclude)
        if len(E) == 0:
            raise RuntimeError(
                f"ActiveLearningSampler: every candidate architecture is already in the study "
                f"(pool of {len(self._candidates or []) or self._n_candidates}); nothing left to query"
            )
        X = self.inputs(E)
        chosen = int(np.asarray(select_queries(model, X, k=1, normaliser=self._normaliser)).ravel()[0])
        mean, std = model.predict(X[chosen : chosen + 1], return_std=True)
        arch = self._space.decode(E[chosen])
        info = {
            "sampler": type(self).__name__,
            "phase": "active",
            "n_train": n_train,
            "n_skipped_nonfinite": skipped,
            "n_candidates": int(len(E)),
            "acquisition": self._acquisition_name,
            "predicted_mean": dict(zip(self.objective_names(study), np.asarray(mean, dtype=float).ravel().tolist())),
            "predicted_std": dict(zip(self.objective_names(study), np.asarray(std, dtype=float).ravel().tolist())),
        }
        if n_done < self._n_startup_trials:
            _logger.info(
                f"ActiveLearningSampler: trial {trial.number} starts active learning on {n_done} completed trials "
                f"(< n_startup_trials={self._n_startup_trials}): the seed points are used up"
            )
        return arch, info

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._seed_sampler.reseed_rng()


def _same_space(value: Any, space: DesignSpace) -> bool:
    try:
        return get_space(value) == space
    except ValueError:
        return False


def _clone(estimator: Any) -> Any:
    try:
        from sklearn.base import clone

        return clone(estimator)
    except (TypeError, ImportError, RuntimeError):
        return copy.deepcopy(estimator)

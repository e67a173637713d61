"""Optuna samplers that seed a study with a low-discrepancy set of whole architectures."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from optuna import logging as optuna_logging
from optuna.samplers import BaseSampler

from protran_tune.samplers._base import ArchitectureSampler
from protran_tune.samplers.qmc import ArchitectureMapping, check_method, lhs_pool_rows, unit_points
from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import DesignSpace

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial

_logger = optuna_logging.get_logger(__name__)
_MAX_RESAMPLES = 64


class QMCArchitectureSampler(ArchitectureSampler):
    """Propose whole architectures from a precomputed QMC point set (trial number -> point).

    The ``n_points`` points of ``method`` (``lhs``, ``sobol``, ``halton``, ``hammersly`` or ``random``,
    see :func:`protran_tune.samplers.qmc.unit_points`) are mapped to architectures by
    :class:`~protran_tune.samplers.qmc.ArchitectureMapping`; trial ``i`` evaluates point ``i``, so a
    reloaded study, or several processes sharing one storage, continue the same set without gaps or
    repeats. Past ``n_points`` the sampler warns and draws i.i.d. uniform points through the same
    mapping (seeded by the trial number). With ``exclude_duplicates`` an architecture already in the
    study (any state but FAIL) is redrawn the same way (only happens in tiny spaces).

    Args:
        space: design space; the objective calls ``suggest_architecture(trial, space)``.
        method: sampling method.
        n_points: size of the point set (the seed budget; Sobol' is balanced for powers of two).
        seed: seed of the scrambling. ``None``: the first sampler to touch a study stores a random
            seed in the study's system attrs and every later sampler on that study adopts it, so
            workers in other processes draw from the same set.
        scramble: randomise the sequence (scipy's scrambling; Hammersly: also a random shift).
        exclude_duplicates: redraw architectures already present in the study.
        independent_sampler: sampler for non-architecture parameters (``None``: ``RandomSampler(seed)``,
            announced by a warning when first used).

    Example:

        .. code-block:: python

            import optuna
            from protran_tune.samplers import LatinHypercubeSampler
            from protran_tune.space import suggest_architecture, count_parameters

            sampler = LatinHypercubeSampler("flexibert2", n_points=16, seed=0)
            study = optuna.create_study(sampler=sampler)
            study.optimize(lambda t: count_parameters(suggest_architecture(t, "flexibert2")), n_trials=16)
    """

    def __init__(
        self,
        space: DesignSpace | str = "flexibert2",
        *,
        method: str = "lhs",
        n_points: int = 16,
        seed: int | None = None,
        scramble: bool = True,
        exclude_duplicates: bool = True,
        independent_sampler: BaseSampler | None = None,
    ) -> None:
        super().__init__(space, independent_sampler=independent_sampler, seed=seed)
        self._method = check_method(method)
        if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
            raise ValueError(f"n_points must be a positive integer, got {n_points!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self._n_points = int(n_points)
        self._seed = None if seed is None else int(seed)
        self._default_seed = int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)
        self._scramble = bool(scramble)
        self._exclude_duplicates = bool(exclude_duplicates)
        self._mapping = ArchitectureMapping(self._space)
        self._points: dict[int, np.ndarray] = {}

    def __str__(self) -> str:
        return f"{type(self).__name__}(method={self._method!r}, n_points={self._n_points})"

    @property
    def method(self) -> str:
        return self._method

    @property
    def n_points(self) -> int:
        return self._n_points

    # ----------------------------------------------------------------- point set
    def _study_seed(self, study: "Study") -> int:
        if self._seed is not None:
            return self._seed
        key = f"protran:qmc_seed:{self._method}:{self._space.name}:{self._n_points}"
        attrs = study._storage.get_study_system_attrs(study._study_id)
        if key in attrs:
            return int(attrs[key])
        study._storage.set_study_system_attr(study._study_id, key, self._default_seed)
        return self._default_seed

    def points(self, seed: int | None = None) -> np.ndarray:
        """The ``(n_points, mapping.dim)`` unit-cube points for ``seed`` (default: the sampler's)."""
        seed = self._default_seed if seed is None else int(seed)
        if seed not in self._points:
            self._points[seed] = unit_points(
                self._method, self._n_points, self._mapping.dim, seed=seed, scramble=self._scramble
            )
        return self._points[seed]

    def architectures(self, seed: int | None = None) -> list[Architecture]:
        """The ``n_points`` architectures of the point set, in trial order."""
        return self._mapping.decode_many(self.points(seed))

    # ----------------------------------------------------------------- proposal
    def _propose(self, study: "Study", trial: "FrozenTrial", exclude: set[str]) -> tuple[Architecture, dict[str, Any]]:
        seed = self._study_seed(study)
        index = trial.number
        info: dict[str, Any] = {"sampler": type(self).__name__, "method": self._method, "seed": seed, "index": index}
        if index < self._n_points:
            point = self.points(seed)[index]
        else:
            warnings.warn(
                f"{type(self).__name__}: trial {index} is past the {self._n_points} points of the "
                f"{self._method} set; sampling a uniform random architecture through the same mapping "
                "instead (raise n_points to keep the low-discrepancy set)",
                UserWarning,
                stacklevel=2,
            )
            point = np.random.default_rng([seed, index]).random(self._mapping.dim)
            info["method"] = "random-fallback"
        arch = self._mapping.decode(point)
        taken = set(exclude)
        if self._exclude_duplicates:
            taken |= set(self.existing_architectures(study))
        attempt = 0
        while arch.to_json() in taken and attempt < _MAX_RESAMPLES:
            attempt += 1
            arch = self._mapping.decode(np.random.default_rng([seed, index, attempt]).random(self._mapping.dim))
        if attempt:
            info["resampled"] = attempt
            if arch.to_json() in taken:
                _logger.warning(
                    f"{type(self).__name__}: trial {index} repeats an architecture already in the study after "
                    f"{_MAX_RESAMPLES} redraws (the design space is nearly exhausted)"
                )
        return arch, info


class LatinHypercubeSampler(QMCArchitectureSampler):
    """:class:`QMCArchitectureSampler` with ``method="lhs"`` (scipy ``LatinHypercube``): the paper's seed."""

    def __init__(self, space: DesignSpace | str = "flexibert2", **kwargs: Any) -> None:
        super().__init__(space, method="lhs", **kwargs)


class SobolSampler(QMCArchitectureSampler):
    """:class:`QMCArchitectureSampler` with ``method="sobol"``."""

    def __init__(self, space: DesignSpace | str = "flexibert2", **kwargs: Any) -> None:
        super().__init__(space, method="sobol", **kwargs)


class HaltonSampler(QMCArchitectureSampler):
    """:class:`QMCArchitectureSampler` with ``method="halton"``."""

    def __init__(self, space: DesignSpace | str = "flexibert2", **kwargs: Any) -> None:
        super().__init__(space, method="halton", **kwargs)


class HammerslySampler(QMCArchitectureSampler):
    """:class:`QMCArchitectureSampler` with ``method="hammersly"`` (first coordinate i/n, rest Halton)."""

    def __init__(self, space: DesignSpace | str = "flexibert2", **kwargs: Any) -> None:
        super().__init__(space, method="hammersly", **kwargs)


class RandomArchitectureSampler(QMCArchitectureSampler):
    """:class:`QMCArchitectureSampler` with ``method="random"``: i.i.d. uniform points (the baseline)."""

    def __init__(self, space: DesignSpace | str = "flexibert2", **kwargs: Any) -> None:
        super().__init__(space, method="random", **kwargs)


class PoolLatinHypercubeSampler(ArchitectureSampler):
    """Seed a study from a fixed pool of architectures (a recorded file): a Latin hypercube snapped to the pool.

    The order of proposals is fixed by ``(candidates, n_points, seed)``: first the ``n_points`` pool rows
    nearest to the points of a Latin hypercube over the pool's rank-normalised whole-architecture
    features (:func:`~protran_tune.samplers.qmc.lhs_pool_rows`), then the other rows in a seeded random
    order. Each trial takes the first row of that order not yet in the study (any state but FAIL), so
    every proposal lies in the pool, and processes sharing one storage continue the same order.

    Args:
        space: design space of the candidates; the objective calls ``suggest_architecture(trial, space)``.
        candidates: the pool (at least one architecture of ``space``).
        n_points: size of the Latin hypercube (the seed budget).
        seed: seed of the hypercube and of the order of the other rows.
        independent_sampler: sampler for non-architecture parameters (``None``: ``RandomSampler(seed)``).
    """

    _check_running_duplicates = True

    def __init__(self, space: DesignSpace | str = "flexibert2", candidates: Sequence[Architecture] = (), *,
                 n_points: int = 16, seed: int = 0, independent_sampler: BaseSampler | None = None) -> None:
        super().__init__(space, independent_sampler=independent_sampler, seed=seed)
        if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or n_points < 1:
            raise ValueError(f"n_points must be a positive integer, got {n_points!r}")
        self._candidates = [self._space.validate(a) for a in candidates]
        if not self._candidates:
            raise ValueError("candidates must hold at least one architecture")
        self._n_points = min(int(n_points), len(self._candidates))
        rng = np.random.default_rng(seed)
        E = np.stack([self._space.embed(a) for a in self._candidates])
        first = lhs_pool_rows(E, self._n_points, rng, self._space)
        taken = set(first)
        rest = [int(i) for i in rng.permutation(len(E)) if int(i) not in taken]
        self._order = first + rest
        self._json = [a.to_json() for a in self._candidates]

    def __str__(self) -> str:
        return f"{type(self).__name__}(n_points={self._n_points}, pool={len(self._candidates)})"

    @property
    def n_points(self) -> int:
        return self._n_points

    def order(self) -> list[Architecture]:
        """The pool in proposal order (the Latin-hypercube rows first)."""
        return [self._candidates[i] for i in self._order]

    def _propose(self, study: "Study", trial: "FrozenTrial", exclude: set[str]) -> tuple[Architecture, dict[str, Any]]:
        taken = set(exclude) | set(self.existing_architectures(study))
        for rank, i in enumerate(self._order):
            if self._json[i] not in taken:
                method = "lhs-pool" if rank < self._n_points else "random-pool"
                return self._candidates[i], {"sampler": type(self).__name__, "method": method, "pool_index": i}
        raise RuntimeError(f"{type(self).__name__}: every architecture of the pool ({len(self._candidates)}) is "
                           "already in the study; nothing left to propose")

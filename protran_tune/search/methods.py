"""The search methods by name: ours and Optuna's / BoTorch's own samplers, over the same parameters.

=============  ========================================================================================
``ours``       :class:`~protran_tune.samplers.pareto.ParetoSampler` (EHVI under per-objective surrogates)
``tpe``        ``optuna.samplers.TPESampler`` (Optuna 5's multi-objective default)
``nsga2``      ``optuna.samplers.NSGAIISampler``
``gp``         ``optuna.samplers.GPSampler`` (log EHVI for several objectives)
``qlognehvi``  ``optuna_integration.BoTorchSampler`` with ``candidates_func=qnehvi_candidates_func`` passed
               explicitly (qLogNEHVI; with 4 objectives the default would switch to analytic EHVI)
``random``     ``optuna.samplers.RandomSampler``
=============  ========================================================================================

Every sampler is built with the run's seed and Optuna's defaults otherwise (10 startup trials for the
model-based ones); :func:`method_settings` records them.
"""

from __future__ import annotations

from typing import Any, Sequence

METHODS: tuple[str, ...] = ("ours", "tpe", "nsga2", "gp", "qlognehvi", "random")


def make_sampler(method: str, *, seed: int, space: Any = "flexibert2", candidates: Sequence[Any] | None = None,
                 normaliser: Any = None, constraints: dict[str, tuple[str, float]] | None = None, **ours: Any) -> Any:
    """A fresh sampler for ``method`` (``ours`` gets ``space``, ``candidates``, ``normaliser``, ``constraints``
    and the keyword arguments ``ours``)."""
    import optuna

    if method not in METHODS:
        raise ValueError(f"unknown sampler {method!r}: choose one of {list(METHODS)}")
    if method == "ours":
        from protran_tune.samplers.pareto import ParetoSampler

        return ParetoSampler(space, candidates=candidates, normaliser=normaliser, constraints=constraints, seed=seed, **ours)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    from optuna_integration import BoTorchSampler
    from optuna_integration.botorch import qnehvi_candidates_func

    return BoTorchSampler(candidates_func=qnehvi_candidates_func, seed=seed)


def method_settings() -> dict[str, str]:
    """How each method is configured (written into results)."""
    return {
        "ours": "ParetoSampler (protran_tune.samplers.pareto): see the result's 'ours' settings",
        "tpe": "optuna.samplers.TPESampler(seed=S), defaults (10 startup trials, multivariate=False)",
        "nsga2": "optuna.samplers.NSGAIISampler(seed=S), defaults (population 50)",
        "gp": "optuna.samplers.GPSampler(seed=S), defaults (10 startup trials); conditional parameters outside "
              "the intersection space are sampled by its independent sampler",
        "qlognehvi": "optuna_integration.BoTorchSampler(candidates_func=qnehvi_candidates_func, seed=S): qLogNEHVI, "
                     "10 startup trials, optimize_acqf with 20 restarts / 1024 raw samples over the relaxed one-hot space",
        "random": "optuna.samplers.RandomSampler(seed=S)",
    }

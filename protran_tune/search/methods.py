"""The search methods by name: ours and Optuna's / BoTorch's own samplers, over the same parameters.

=============  ========================================================================================
``ours``       :class:`~protran_tune.samplers.pareto.ParetoSampler` (EHVI under per-objective surrogates)
``tpe``        ``optuna.samplers.TPESampler`` (Optuna 5's multi-objective default)
``nsga2``      ``optuna.samplers.NSGAIISampler``
``gp``         ``optuna.samplers.GPSampler`` (log EHVI for several objectives)
``qlognehvi``  ``optuna_integration.BoTorchSampler`` with an explicit qLogNEHVI ``candidates_func``
               (:func:`qlognehvi_candidates`; with 4 objectives the default would switch to analytic EHVI)
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

    return BoTorchSampler(candidates_func=qlognehvi_candidates, seed=seed)


#: optimiser effort of the qLogNEHVI baseline (optuna-integration's qnehvi_candidates_func uses 20 / 1024 / 256,
#: about 5x the cost; measured here at 10-35 s per trial on one core, too slow for 100 trials x 20 runs)
QLOGNEHVI_RESTARTS, QLOGNEHVI_RAW_SAMPLES, QLOGNEHVI_MC = 4, 256, 128


def qlognehvi_candidates(train_x: Any, train_obj: Any, train_con: Any, bounds: Any, pending_x: Any) -> Any:
    """``candidates_func`` of BoTorchSampler: qLogNEHVI on a SingleTaskGP, as optuna-integration's
    ``qnehvi_candidates_func`` (same model, reference point and constraint handling) with the optimiser
    effort of :data:`QLOGNEHVI_RESTARTS` / :data:`QLOGNEHVI_RAW_SAMPLES` and :data:`QLOGNEHVI_MC` QMC samples."""
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.transforms import normalize, unnormalize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    k = train_obj.size(-1)
    train_y = train_obj if train_con is None else torch.cat([train_obj, train_con], dim=-1)
    extra: dict[str, Any] = {}
    if train_con is not None:
        extra = {"objective": IdentityMCMultiOutputObjective(outcomes=list(range(k))),
                 "constraints": [(lambda Z, i=i: Z[..., k + i]) for i in range(train_con.size(-1))]}
    x = normalize(train_x, bounds=bounds)
    model = SingleTaskGP(x, train_y, outcome_transform=Standardize(m=train_y.shape[-1]))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=(train_obj.min(dim=0).values - 1e-8).tolist(), X_baseline=x, prune_baseline=True,
        sampler=SobolQMCNormalSampler(torch.Size([QLOGNEHVI_MC])),
        X_pending=None if pending_x is None else normalize(pending_x, bounds=bounds), **extra)
    unit = torch.stack([torch.zeros(bounds.size(1)), torch.ones(bounds.size(1))]).to(bounds)
    cand, _ = optimize_acqf(acqf, bounds=unit, q=1, num_restarts=QLOGNEHVI_RESTARTS, raw_samples=QLOGNEHVI_RAW_SAMPLES,
                            options={"batch_limit": 5, "maxiter": 200, "nonnegative": True}, sequential=True)
    return unnormalize(cand.detach(), bounds=bounds)


def method_settings() -> dict[str, str]:
    """How each method is configured (written into results)."""
    return {
        "ours": "ParetoSampler (protran_tune.samplers.pareto): see the result's 'ours' settings",
        "tpe": "optuna.samplers.TPESampler(seed=S), defaults (10 startup trials, multivariate=False)",
        "nsga2": "optuna.samplers.NSGAIISampler(seed=S), defaults (population 50)",
        "gp": "optuna.samplers.GPSampler(seed=S), defaults (10 startup trials); conditional parameters outside "
              "the intersection space are sampled by its independent sampler",
        "qlognehvi": "optuna_integration.BoTorchSampler(candidates_func=qlognehvi_candidates, seed=S): qLogNEHVI on a "
                     "SingleTaskGP as optuna-integration's qnehvi_candidates_func, 10 startup trials, optimize_acqf with "
                     f"{QLOGNEHVI_RESTARTS} restarts / {QLOGNEHVI_RAW_SAMPLES} raw samples / {QLOGNEHVI_MC} QMC samples "
                     "(the integration's: 20 / 1024 / 256) over the relaxed one-hot space",
        "random": "optuna.samplers.RandomSampler(seed=S)",
    }

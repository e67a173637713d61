"""qLogNEHVI through BoTorch on our features, over a discrete candidate set (``ParetoSampler(acquisition="qlognehvi")``).

One multi-output ``SingleTaskGP`` (standardised outcomes) on the concatenated cost and accuracy features
(:class:`~protran_tune.space.FeatureEncoder`, scaled to the unit cube over training rows and candidates)
models every objective — hardware costs as logarithms. A ``GenericMCMultiOutputObjective`` maps posterior
samples to the normalised, maximised objectives of the sampler's box, whose origin is the reference point;
constraints become BoTorch constraint callables on the samples. ``qLogNoisyExpectedHypervolumeImprovement``
(Daulton et al. 2021; Ament et al. 2023) is evaluated (q = 1) on the 64 candidates whose optimistic point
(posterior mean two std to the better side) improves the observed front most; a batch is built greedily
with the earlier picks as pending points.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from protran_tune.search.hypervolume import Normaliser
from protran_tune.space.architecture import Architecture

if TYPE_CHECKING:
    from protran_tune.samplers.pareto import ParetoSampler

_MC = 32  # quasi-MC samples of qLogNEHVI (its per-sample box decompositions dominate the cost)


def _features(sampler: "ParetoSampler", archs: Sequence[Architecture]) -> np.ndarray:
    from protran_tune.space.features import shared_encoder

    fe = shared_encoder(sampler.space)
    E = np.stack([sampler.space.embed(a) for a in archs])
    return np.hstack([fe.cost_transform(E), fe.accuracy_transform(E)])


def qlognehvi_batch(sampler: "ParetoSampler", names: Sequence[str], norm: Normaliser, archs: Sequence[Architecture],
                    Y: np.ndarray, feasible: np.ndarray, cands: Sequence[Architecture], q: int) -> tuple[list[int], list[float]]:
    """Indices of ``q`` candidates and their acquisition values (see module docstring)."""
    import torch
    from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
    from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.sampling import SobolQMCNormalSampler
    from gpytorch.mlls import ExactMarginalLogLikelihood

    F = np.vstack([_features(sampler, archs), _features(sampler, cands)])
    keep = np.ptp(F, axis=0) > 1e-12
    F = F[:, keep]
    F = (F - F.min(0)) / np.ptp(F, axis=0)
    X_tr = torch.as_tensor(F[: len(archs)], dtype=torch.float64)
    X_c = torch.as_tensor(F[len(archs):], dtype=torch.float64)
    log_cols = [j for j, n in enumerate(names) if sampler.uses_log(n)]
    Yt = Y.copy()
    Yt[:, log_cols] = np.log(np.maximum(Yt[:, log_cols], 1e-300))
    worst, best = (torch.as_tensor(v, dtype=torch.float64) for v in (norm.worst, norm.best))
    is_log = torch.zeros(len(names), dtype=torch.bool)
    is_log[log_cols] = True

    def to_z(samples: Any, X: Any = None) -> Any:
        raw = torch.where(is_log, samples.exp(), samples)
        return (raw - worst) / (best - worst)

    constraints = []
    for target, (op, bound) in sampler._constraints.items():
        j = list(names).index(target)
        b = math.log(bound) if j in log_cols else bound
        constraints.append((lambda s, j=j, b=b, op=op: s[..., j] - b if op == "<=" else b - s[..., j]))
    with torch.random.fork_rng():
        torch.manual_seed(sampler._seed)
        model = SingleTaskGP(X_tr, torch.as_tensor(Yt, dtype=torch.float64), outcome_transform=Standardize(m=len(names)))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        acqf = qLogNoisyExpectedHypervolumeImprovement(
            model=model, ref_point=[0.0] * len(names), X_baseline=X_tr, objective=GenericMCMultiOutputObjective(to_z),
            constraints=constraints or None, prune_baseline=True, sampler=SobolQMCNormalSampler(torch.Size([_MC])),
        )
        short = _shortlist(model, X_c, to_z, norm, Y, feasible, log_cols)
        picks: list[int] = []
        scores: list[float] = []
        for _ in range(min(q, len(short))):
            with torch.no_grad():
                vals = torch.cat([acqf(X_c[short[i : i + 64]].unsqueeze(1)) for i in range(0, len(short), 64)]).numpy()
            vals[[list(short).index(p) for p in picks]] = -np.inf
            best_i = int(short[int(np.argmax(vals))])
            picks.append(best_i)
            scores.append(float(vals.max()))
            acqf.set_X_pending(X_c[picks])
    return picks, scores


def _shortlist(model: Any, X_c: Any, to_z: Any, norm: Normaliser, Y: np.ndarray, feasible: np.ndarray,
               log_cols: list[int], size: int = 64) -> np.ndarray:
    """The ``size`` candidates whose optimistic point (posterior mean two std to the better side of each
    objective) improves the observed front's hypervolume most: qLogNEHVI is evaluated on these only."""
    import torch

    from protran_tune.search.hypervolume import ImprovementCells

    with torch.no_grad():
        post = model.posterior(X_c)
        better = torch.as_tensor(np.sign(np.asarray(norm.best) - np.asarray(norm.worst)), dtype=torch.float64)
        optimistic = post.mean + 2.0 * post.variance.clamp_min(0).sqrt() * better
        z_opt = to_z(optimistic).numpy()
    observed = norm.transform(Y[feasible]) if feasible.any() else np.zeros((0, Y.shape[1]))
    bound = ImprovementCells(observed, Y.shape[1]).improvement(z_opt)
    return np.argsort(-bound, kind="stable")[: min(size, len(bound))]

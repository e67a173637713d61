"""Gaussian-process surrogate: one exact GP per output (BoTorch ``SingleTaskGP``, batched over outputs).

Inputs are the standardised encoded features; outputs are standardised inside BoTorch
(``Standardize``). Hyper-parameters (ARD Matern-5/2 length-scales with BoTorch's dimension-scaled
prior, noise) are fitted by maximising the exact marginal likelihood (``fit_gpytorch_mll``). The std
returned by ``predict`` is the predictive std of an observation (latent variance plus fitted noise).
``condition_on(X)`` gives a copy conditioned on fantasy observations at the posterior mean: used by
the kriging-believer batch acquisition.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from protran_tune.surrogates.base import EncodedSurrogate, check_xy


class GaussianProcessSurrogate(EncodedSurrogate, BaseEstimator):
    """Exact GP regression per output with fitted ARD kernels (BoTorch/GPyTorch, float64, CPU).

    Args:
        maxiter: iterations of the L-BFGS marginal-likelihood optimiser.
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of the hyper-parameter optimiser's restarts.
    """

    def __init__(
        self,
        maxiter: int = 100,
        encoder: str = "global",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.maxiter = maxiter
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        import torch
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood

        cols = np.flatnonzero(Z.std(0) > 1e-12)
        self.columns_ = cols if len(cols) else np.arange(Z.shape[1])
        Zc = Z[:, self.columns_]
        self.z_low_, span = Zc.min(0), np.ptp(Zc, axis=0)
        self.z_span_ = np.where(span > 1e-12, span, 1.0)  # BoTorch's priors assume unit-cube inputs
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small matrices: threads only contend on a shared machine
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0 if self.random_state is None else int(self.random_state))
                X_t = torch.as_tensor(self._unit(Z), dtype=torch.float64)
                Y_t = torch.as_tensor(Y, dtype=torch.float64)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = SingleTaskGP(X_t, Y_t, outcome_transform=Standardize(m=Y.shape[1]))
                    fit_gpytorch_mll(
                        ExactMarginalLogLikelihood(model.likelihood, model),
                        optimizer_kwargs={"options": {"maxiter": int(self.maxiter)}},
                    )
        finally:
            torch.set_num_threads(threads)
        model.eval()
        self.model_ = model

    def _unit(self, Z: np.ndarray) -> np.ndarray:
        return (Z[:, self.columns_] - self.z_low_) / self.z_span_

    def _predict(self, Z: np.ndarray, return_std: bool):
        import torch

        X_t = torch.as_tensor(self._unit(Z), dtype=torch.float64)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = self.model_.posterior(X_t, observation_noise=True)
            mean = post.mean.numpy().reshape(len(Z), -1)
            if not return_std:
                return mean
            std = post.variance.clamp_min(1e-18).sqrt().numpy().reshape(len(Z), -1)
        return mean, std

    def condition_on(self, X: np.ndarray) -> "GaussianProcessSurrogate":
        """A copy conditioned on fantasy observations (the posterior mean) at ``X`` (n, d)."""
        import torch

        X = self._check_predict_input(X)
        X_t = torch.as_tensor(self._unit(self._standardise(X)), dtype=torch.float64)
        new = copy.copy(self)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_.posterior(X_t[:1])  # builds the prediction caches condition_on_observations needs
            Y_f = self.model_.posterior(X_t).mean
            new.model_ = self.model_.condition_on_observations(X_t, Y_f)
        return new


__all__ = ["GaussianProcessSurrogate", "check_xy"]

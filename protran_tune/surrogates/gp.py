"""Gaussian-process surrogate: one exact GP per output (BoTorch ``SingleTaskGP``, batched over outputs).

Inputs are the encoded features scaled to the unit cube; outputs are standardised inside BoTorch
(``Standardize``). Kernels (``kernel``):

* ``"rbf"``: BoTorch's default, an ARD RBF kernel with its dimension-scaled log-normal length-scale prior;
* ``"linear+matern"``: a scaled linear kernel plus a scaled ARD Matern-5/2 kernel — a Bayesian linear
  model of cost with a smooth non-linear correction, suited to the compact ``encoder="cost"`` inputs
  (latency and energy grow about linearly with parameters, FLOPs and layers).

Hyper-parameters (length-scales, scales, noise) are fitted by maximising the exact marginal
likelihood (``fit_gpytorch_mll``). The std returned by ``predict`` is the predictive std of an
observation (latent variance plus fitted noise).
``condition_on(X)`` gives a copy conditioned on fantasy observations at the posterior mean: used by
the kriging-believer batch acquisition. ``variance_reduction(C, R)`` gives, per candidate, how much
observing it would shrink the posterior variance summed over reference points: the integrated
variance reduction (Cohn's ALC) of the ``variance-reduction`` acquisition.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
from sklearn.base import BaseEstimator

from protran_tune.surrogates.base import EncodedSurrogate, check_xy


KERNELS: tuple[str, ...] = ("rbf", "linear+matern")
_PREDICT_BLOCK = 256  # rows per posterior evaluation


class GaussianProcessSurrogate(EncodedSurrogate, BaseEstimator):
    """Exact GP regression per output with fitted ARD kernels (BoTorch/GPyTorch, float64, CPU).

    Args:
        kernel: ``"rbf"`` or ``"linear+matern"`` (see module docstring).
        maxiter: iterations of the L-BFGS marginal-likelihood optimiser.
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of the hyper-parameter optimiser's restarts.
        warm_start: a refit of this instance starts the marginal-likelihood optimiser from the previous
            fit's hyper-parameters (when the kernel and the informative input columns are unchanged), with
            a quarter of ``maxiter``: a search refitting after every new observation stays cheap.

    After ``fit``: ``model_`` (the BoTorch model) and ``fit_warning_`` (``None``, or why the optimiser's
    last point was kept after every retry ended with an optimiser warning).
    """

    def __init__(
        self,
        kernel: str = "rbf",
        maxiter: int = 100,
        encoder: str = "global",
        space: str = "flexibert2",
        random_state: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.kernel = kernel
        self.maxiter = maxiter
        self.encoder = encoder
        self.space = space
        self.random_state = random_state
        self.warm_start = warm_start

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        import torch

        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        self.fit_warning_ = None
        previous = self._warm_state(Z, Y)
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
                    model = self._fit_model(X_t, Y_t, previous)
        finally:
            torch.set_num_threads(threads)
        model.eval()
        self.model_ = model

    def _warm_state(self, Z: np.ndarray, Y: np.ndarray) -> dict | None:
        """The previous fit's hyper-parameters, if a warm start applies (see ``warm_start``)."""
        old = getattr(self, "model_", None)
        if not self.warm_start or old is None:
            return None
        cols = np.flatnonzero(Z.std(0) > 1e-12)
        if not np.array_equal(cols, getattr(self, "columns_", None)) or old.num_outputs != Y.shape[1]:
            return None
        return {k: v.detach().clone() for k, v in old.state_dict().items() if not k.startswith("outcome_transform")}

    def _fit_model(self, X_t, Y_t, previous: dict | None = None):
        """Maximise the marginal likelihood; on failure retry with a higher noise floor.

        BoTorch retries a fit that ends with an optimiser warning or a non-PSD covariance; when all of
        its attempts fail (flat or ill-conditioned likelihood), the fit is repeated with the noise
        floor raised to 1e-3 and then 1e-2 of the standardised target variance, keeping the
        optimiser's last point; ``fit_warning_`` says which floor was needed.
        """
        from botorch.exceptions.errors import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.constraints import GreaterThan
        from gpytorch.mlls import ExactMarginalLogLikelihood

        m = Y_t.shape[1]
        # from the previous optimum a quarter of the iterations suffices (the data changed by a row or a few)
        maxiter = int(self.maxiter) if previous is None else max(int(self.maxiter) // 4, 5)
        options = {"options": {"maxiter": maxiter}}
        for floor in (None, 1e-3, 1e-2):
            model = SingleTaskGP(X_t, Y_t, covar_module=self._covar_module(X_t.shape[1], m), outcome_transform=Standardize(m=m))
            if floor is not None:
                model.likelihood.noise_covar.register_constraint("raw_noise", GreaterThan(floor))
            elif previous is not None:
                model.load_state_dict(previous, strict=False)
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            try:
                if floor is None:
                    fit_gpytorch_mll(mll, optimizer_kwargs=options)
                else:
                    fit_gpytorch_mll(mll, optimizer_kwargs=options, warning_handler=lambda w: True, max_attempts=2)
                return model
            except ModelFittingError:
                self.fit_warning_ = f"marginal-likelihood fit failed with noise floor {floor or 'default'}"
        raise ModelFittingError(
            f"GP ({self.kernel}) could not be fitted on {len(X_t)} samples even with noise floor 1e-2: {self.fit_warning_}"
        )

    def _covar_module(self, d: int, m: int):
        """``None`` (BoTorch's default) or the linear + Matern kernel batched over ``m`` outputs."""
        if self.kernel == "rbf":
            return None
        import torch
        from gpytorch.constraints import GreaterThan, Interval
        from gpytorch.kernels import LinearKernel, MaternKernel, ScaleKernel

        batch = torch.Size([m]) if m > 1 else torch.Size([])
        # bounded scales and length-scales (targets are standardised, inputs in the unit cube): an
        # unbounded linear variance or a vanishing length-scale makes the covariance singular on
        # files with outliers
        linear = LinearKernel(batch_shape=batch, variance_constraint=Interval(1e-4, 100.0))  # variance = its scale
        matern = ScaleKernel(
            MaternKernel(nu=2.5, ard_num_dims=d, batch_shape=batch, lengthscale_constraint=GreaterThan(2.5e-2)),
            batch_shape=batch, outputscale_constraint=Interval(1e-4, 100.0),
        )
        return linear + matern

    def _unit(self, Z: np.ndarray) -> np.ndarray:
        return (Z[:, self.columns_] - self.z_low_) / self.z_span_

    def _predict(self, Z: np.ndarray, return_std: bool):
        """Mean and std in blocks of ``_PREDICT_BLOCK`` rows: the posterior of a block is a joint
        Gaussian, so its covariance grows with the square of the rows (only its diagonal is used)."""
        import torch

        means, stds = [], []
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(0, len(Z), _PREDICT_BLOCK):
                X_t = torch.as_tensor(self._unit(Z[i : i + _PREDICT_BLOCK]), dtype=torch.float64)
                post = self.model_.posterior(X_t, observation_noise=True)
                means.append(post.mean.numpy().reshape(len(X_t), -1))
                if return_std:
                    stds.append(post.variance.clamp_min(1e-18).sqrt().numpy().reshape(len(X_t), -1))
        k = self.n_outputs_
        mean = np.concatenate(means) if means else np.zeros((0, k))
        if not return_std:
            return mean
        return mean, (np.concatenate(stds) if stds else np.zeros((0, k)))

    def variance_reduction(
        self, X_candidates: np.ndarray, X_reference: np.ndarray, X_pending: np.ndarray | None = None
    ) -> np.ndarray:
        """Integrated variance reduction ``(n_candidates, n_outputs)``, in squared units of ``Y``.

        Entry ``(c, j)`` is ``sum_r cov_j(r, c)^2 / (var_j(c) + noise_j)``: the drop, summed over the
        reference rows ``r`` of ``X_reference``, of the posterior variance of output ``j``'s latent
        function once candidate ``c`` is observed with the fitted noise. Observations do not change a
        GP's posterior covariance through their values, so ``X_pending`` (rows already chosen, not yet
        measured) are conditioned on exactly. Hyper-parameters stay at their fitted values.
        """
        import torch

        C_t, R_t = (
            torch.as_tensor(self._unit(self._standardise(self._check_predict_input(A))), dtype=torch.float64)
            for A in (X_candidates, X_reference)
        )
        model, m = self.model_, self.n_outputs_
        train = model.train_inputs[0]
        if m == 1:
            train = train.unsqueeze(0)
        if X_pending is not None and len(X_pending):
            P_t = torch.as_tensor(self._unit(self._standardise(self._check_predict_input(X_pending))), dtype=torch.float64)
            train = torch.cat([train, P_t.expand(m, *P_t.shape)], dim=-2)
        noise = model.likelihood.noise.detach().reshape(m, 1)
        scale = model.outcome_transform.stdvs.detach().reshape(m) ** 2  # standardised -> Y units
        kern = model.covar_module

        def k(A: "torch.Tensor", B: "torch.Tensor") -> "torch.Tensor":
            out = kern(A.expand(m, *A.shape[-2:]), B.expand(m, *B.shape[-2:])).to_dense()
            return out.reshape(m, A.shape[-2], B.shape[-2])

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            K = k(train, train) + torch.diag_embed(noise.expand(m, train.shape[-2]))
            L = torch.linalg.cholesky(K + 1e-9 * torch.eye(K.shape[-1], dtype=K.dtype))
            V_R = torch.linalg.solve_triangular(L, k(train, R_t), upper=False)  # (m, n_train, n_ref)
            out = []
            for i in range(0, len(C_t), 1024):
                B = C_t[i : i + 1024]
                V_B = torch.linalg.solve_triangular(L, k(train, B), upper=False)
                cov = k(B, R_t) - V_B.transpose(-1, -2) @ V_R  # (m, n_block, n_ref)
                prior_var = kern(B.expand(m, *B.shape), B.expand(m, *B.shape), diag=True).reshape(m, len(B))
                var = (prior_var - (V_B**2).sum(-2)).clamp_min(0.0)
                out.append(((cov**2).sum(-1) / (var + noise)).T * scale)
        return torch.cat(out).numpy() if out else np.zeros((0, m))

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


__all__ = ["GaussianProcessSurrogate", "KERNELS", "check_xy"]

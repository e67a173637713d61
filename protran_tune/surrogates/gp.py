"""Gaussian-process surrogate: one exact GP per output (BoTorch ``SingleTaskGP``, batched over outputs).

Inputs are the encoded features scaled to the unit cube; outputs are standardised inside BoTorch
(``Standardize``). Kernels (``kernel``):

* ``"rbf"``: BoTorch's default, an ARD RBF kernel with its dimension-scaled log-normal length-scale prior;
* ``"linear+matern"``: a scaled linear kernel plus a scaled ARD Matern-5/2 kernel — a Bayesian linear
  model of cost with a smooth non-linear correction, suited to the compact ``encoder="cost"`` inputs
  (latency and energy grow about linearly with parameters, FLOPs and layers).

Hyper-parameters (length-scales, scales, noise) are fitted by maximising the exact marginal
likelihood plus the log priors (BoTorch's dimension-scaled log-normal length-scale prior and log-normal
noise prior), in float64, from ``n_restarts`` starting points: BoTorch's defaults and seeded draws
(``random_state``). All starts are optimised at once, each output and start by its own L-BFGS-B run
(BoTorch's batched independent fit), and each output keeps its best start. With ``warm_start`` a refit
starts once from the previous fit's hyper-parameters instead. Bounded scales are
enforced by the optimiser's bounds rather than by a saturating transform, so the runs converge. A single
start of a flat, multi-modal likelihood lands wherever the last rounding error sends it: another CPU's
arithmetic (another BLAS kernel) then gives another model. The std returned by ``predict`` is the
predictive std of an observation (latent variance plus fitted noise).
``condition_on(X)`` gives a copy conditioned on fantasy observations at the posterior mean: used by
the kriging-believer batch acquisition. ``variance_reduction(C, R)`` gives, per candidate, how much
observing it would shrink the posterior variance summed over reference points: the integrated
variance reduction (Cohn's ALC) of the ``variance-reduction`` acquisition.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch
from gpytorch.constraints import Interval
from sklearn.base import BaseEstimator

from protran_tune.surrogates.base import EncodedSurrogate, check_xy


KERNELS: tuple[str, ...] = ("rbf", "linear+matern")
_PREDICT_BLOCK = 256  # rows per posterior evaluation


class LogBounded(Interval):
    """A gpytorch constraint optimised on the log scale within ``[lower, upper]``.

    The raw parameter is ``log(value)``; BoTorch hands L-BFGS-B the bounds ``log(lower)``, ``log(upper)``
    (``inverse_transform`` of each bound). Scales that span decades are then equally easy to move, and a
    bound is reached exactly instead of approached through a saturating map whose gradient vanishes (the
    optimiser then never converges and stops wherever rounding left it).
    """

    def __init__(self, lower_bound: float, upper_bound: float = math.inf, initial_value: float | None = None) -> None:
        super().__init__(lower_bound, upper_bound, transform=torch.exp, inv_transform=torch.log)
        if initial_value is not None:
            self._initial_value = self.inverse_transform(torch.as_tensor(initial_value))

    def transform(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.exp(tensor)

    def inverse_transform(self, transformed_tensor: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.as_tensor(transformed_tensor))


def _load_parameters(model, values: dict) -> bool:
    """Copy ``values`` (name -> tensor) into ``model``'s parameters of the same names and sizes; ``False``
    (nothing copied) unless every parameter has its value."""
    params = dict(model.named_parameters())
    if set(params) != set(values) or any(params[k].numel() != values[k].numel() for k in params):
        return False
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(values[name].reshape(param.shape))
    return True


class GaussianProcessSurrogate(EncodedSurrogate, BaseEstimator):
    """Exact GP regression per output with fitted ARD kernels (BoTorch/GPyTorch, float64, CPU).

    Args:
        kernel: ``"rbf"`` or ``"linear+matern"`` (see module docstring).
        maxiter: iterations of the L-BFGS-B marginal-likelihood optimiser (per start and output).
        n_restarts: starting points of the optimiser (the first is BoTorch's default initialisation).
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of the starting points.
        warm_start: a refit of this instance starts the marginal-likelihood optimiser once, from the previous
            fit's hyper-parameters (when the kernel and the informative input columns are unchanged), with
            a quarter of ``maxiter``: a search refitting after every new observation stays cheap.

    After ``fit``: ``model_`` (the BoTorch model) and ``fit_warning_`` (``None``, or why the optimiser's
    last point was kept after every retry ended with an optimiser warning).
    """

    def __init__(
        self,
        kernel: str = "rbf",
        maxiter: int = 500,
        n_restarts: int = 2,
        encoder: str = "global",
        space: str = "flexibert2",
        random_state: int | None = None,
        warm_start: bool = False,
    ) -> None:
        self.kernel = kernel
        self.maxiter = maxiter
        self.n_restarts = n_restarts
        self.encoder = encoder
        self.space = space
        self.random_state = random_state
        self.warm_start = warm_start

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")
        for name in ("maxiter", "n_restarts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
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
        self.fitted_kernel_ = self.kernel

    def _warm_state(self, Z: np.ndarray, Y: np.ndarray) -> dict | None:
        """The previous fit's hyper-parameters (by parameter name), if a warm start applies (see ``warm_start``)."""
        old = getattr(self, "model_", None)
        if not self.warm_start or old is None or getattr(self, "fitted_kernel_", None) != self.kernel:
            return None
        cols = np.flatnonzero(Z.std(0) > 1e-12)
        if not np.array_equal(cols, getattr(self, "columns_", None)) or old.num_outputs != Y.shape[1]:
            return None
        return {k: v.detach().clone() for k, v in old.named_parameters()}

    def _fit_model(self, X_t, Y_t, previous: dict | None = None):
        """Fit from ``n_restarts`` starts (or from ``previous``); on failure retry with a higher noise floor.

        When every start fails (non-finite likelihood or a non-PSD covariance on a flat or
        ill-conditioned likelihood), the fit is repeated with the noise floor raised to 1e-3 and then
        1e-2 of the standardised target variance, from cold starts; ``fit_warning_`` says which floor
        was needed.
        """
        from botorch.exceptions.errors import ModelFittingError
        from linear_operator.utils.errors import NanError, NotPSDError

        for floor in (None, 1e-3, 1e-2):
            try:
                return self._fit_restarts(X_t, Y_t, floor, previous if floor is None else None)
            except (ModelFittingError, NotPSDError, NanError) as err:
                self.fit_warning_ = f"marginal-likelihood fit failed with noise floor {floor or 'default'}: {err}"
        raise ModelFittingError(
            f"GP ({self.kernel}) could not be fitted on {len(X_t)} samples even with noise floor 1e-2: {self.fit_warning_}"
        )

    def _model(self, X_t, Y_t, floor: float | None):
        """A ``SingleTaskGP`` on ``X_t`` ``(..., n, d)`` / ``Y_t`` ``(..., n, m)`` (leading dims: starts)."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize

        m, starts = Y_t.shape[-1], X_t.shape[:-2]
        batch = torch.Size([*starts, m]) if m > 1 else torch.Size(starts)
        model = SingleTaskGP(X_t, Y_t, covar_module=self._covar_module(X_t.shape[-1], batch),
                             outcome_transform=Standardize(m=m, batch_shape=starts))
        noise = model.likelihood.noise_covar
        lower, start = max(float(noise.raw_noise_constraint.lower_bound), floor or 0.0), float(noise.noise.min())
        noise.register_constraint("raw_noise", LogBounded(lower))  # BoTorch's floor (1e-4) or the retry's
        noise.initialize(noise=max(lower, start))
        return model

    def _fit_restarts(self, X_t, Y_t, floor: float | None, previous: dict | None = None):
        """Optimise all starts at once (one L-BFGS-B run per start and output), keep each output's best.

        With ``previous`` (a warm start): one start, the previous hyper-parameters, and a quarter of
        ``maxiter`` (the data changed by a row or a few).
        """
        from botorch.exceptions.errors import ModelFittingError
        from botorch.optim.fit import fit_gpytorch_mll_scipy
        from gpytorch.mlls import ExactMarginalLogLikelihood

        starts, maxiter = self._starts(X_t, Y_t, floor, previous)
        r, m = starts.train_inputs[0].shape[0], Y_t.shape[1]
        mll = ExactMarginalLogLikelihood(starts.likelihood, starts).train()
        fit_gpytorch_mll_scipy(mll, options={"maxiter": maxiter})
        with torch.no_grad():
            value = mll(starts(*starts.train_inputs), starts.train_targets).reshape(r, m)
        value = torch.nan_to_num(value, nan=-torch.inf)
        if not torch.isfinite(value.max(0).values).all():
            raise ModelFittingError("no start reached a finite marginal likelihood")
        best = value.argmax(0)  # (m,) start kept by each output
        model = self._model(X_t, Y_t, floor)
        chosen = dict(starts.named_parameters())
        with torch.no_grad():
            for name, param in model.named_parameters():
                per_start = chosen[name].reshape(r, *(param.shape if m == 1 else (m, *param.shape[1:])))
                param.copy_(per_start[best[0]] if m == 1 else per_start[best, torch.arange(m)])
        self.log_marginal_likelihood_ = value.max(0).values.numpy()
        return model

    def _starts(self, X_t, Y_t, floor: float | None, previous: dict | None):
        """The batched model of the starts and the iterations: the warm start (``previous``, a quarter of
        ``maxiter``) when its parameters fit the model, else ``n_restarts`` cold starts."""
        if previous is not None:
            warm = self._model(X_t.unsqueeze(0), Y_t.unsqueeze(0), floor)
            if _load_parameters(warm, previous):
                return warm, max(int(self.maxiter) // 4, 5)
        r = int(self.n_restarts)
        starts = self._model(X_t.expand(r, *X_t.shape), Y_t.expand(r, *Y_t.shape), floor)
        self._scatter_starts(starts, r)
        return starts, int(self.maxiter)

    def _scatter_starts(self, model, r: int) -> None:
        """Starts ``1..r-1``: hyper-parameters drawn log-uniformly (seeded) over plausible ranges for
        unit-cube inputs and standardised targets; start 0 keeps BoTorch's initialisation."""
        ranges = {"lengthscale": (0.05, 5.0), "outputscale": (0.05, 5.0), "variance": (1e-3, 3.0), "noise": (1e-3, 0.5)}
        gen = torch.Generator().manual_seed(0 if self.random_state is None else int(self.random_state))
        with torch.no_grad():
            for name, param, constraint in model.named_parameters_and_constraints():
                key = next((k for k in ranges if name.endswith(f"raw_{k}")), None)
                if key is None or r < 2:
                    continue
                lo, hi = ranges[key]
                if constraint is not None:
                    lo, hi = max(lo, float(constraint.lower_bound.max())), min(hi, float(constraint.upper_bound.min()))
                draw = torch.empty(r - 1, *param.shape[1:], dtype=param.dtype).uniform_(np.log(lo), np.log(hi), generator=gen)
                value = draw.exp()
                param[1:] = constraint.inverse_transform(value) if constraint is not None else value

    def _covar_module(self, d: int, batch):
        """The kernel with batch shape ``batch``: BoTorch's default RBF (its dimension-scaled length-scale
        prior) or the linear + Matern kernel with the same prior on the Matern length-scales; every
        positive hyper-parameter is optimised on the log scale (:class:`LogBounded`)."""
        from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
        from gpytorch.kernels import LinearKernel, ScaleKernel

        base = get_covar_module_with_dim_scaled_prior(d, batch_shape=batch, use_rbf_kernel=self.kernel == "rbf")
        mode = float(base.lengthscale_prior.mode)
        base.register_constraint("raw_lengthscale", LogBounded(2.5e-2, initial_value=mode))
        base.initialize(lengthscale=mode)
        if self.kernel == "rbf":
            return base
        # bounded scales (targets are standardised, inputs in the unit cube): an unbounded linear variance
        # or a vanishing length-scale makes the covariance singular on files with outliers
        linear = LinearKernel(batch_shape=batch, variance_constraint=LogBounded(1e-4, 100.0, initial_value=1.0))
        linear.initialize(variance=1.0)
        matern = ScaleKernel(base, batch_shape=batch, outputscale_constraint=LogBounded(1e-4, 100.0, initial_value=1.0))
        matern.initialize(outputscale=1.0)
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

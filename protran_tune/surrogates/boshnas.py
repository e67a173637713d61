"""BOSHNAS surrogate: teacher with MC dropout, student for epistemic and NPN for aleatoric uncertainty.

After Tuli et al. (FlexiBERT / BOSHNAS), on the standardised encoded features ``Z``:

* **teacher** — an MLP with dropout, trained on the standardised targets; its deterministic pass
  (dropout off) is the prediction and ``mc_samples`` passes with dropout on give the epistemic std
  on the training inputs and on perturbed/interpolated versions of them;
* **student** — a smaller MLP trained to reproduce the teacher's (log) MC-dropout std, so the
  epistemic uncertainty costs one forward pass and is differentiable with respect to the input;
* **NPN** — a heteroscedastic network (mean and log-variance heads trained with the Gaussian negative
  log-likelihood: the natural-parameter view of a Gaussian output) for the aleatoric uncertainty.

``predict(..., return_std=True)`` returns ``sqrt(epistemic^2 + aleatoric^2)`` per output.
**GOBI** (:meth:`BOSHNASSurrogate.gobi_select`): gradient ascent on the summed normalised
uncertainty with respect to the continuous input ``Z`` (clipped to the candidates' box), started from
the best candidates, then projection of each optimum onto the nearest not-yet-chosen valid candidate.
Training runs on CPU in float32 with a local RNG (``torch.random.fork_rng``), so it is seeded and
leaves the global torch RNG alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from protran_tune.surrogates.base import EncodedSurrogate


def _mlp(d_in: int, hidden: int, d_out: int, dropout: float):
    from torch import nn

    layers = [nn.Linear(d_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


class BOSHNASSurrogate(EncodedSurrogate, BaseEstimator):
    """BOSHNAS: teacher (MC dropout) + student (epistemic) + NPN (aleatoric); GOBI queries.

    Args:
        hidden: width of the teacher and NPN hidden layers (the student uses half).
        dropout: teacher dropout rate (MC dropout).
        epochs: full-batch Adam steps per network.
        lr, weight_decay: Adam settings.
        mc_samples: dropout passes behind the epistemic std the student learns.
        gobi_steps, gobi_lr, gobi_starts: GOBI gradient steps, step size and start points per query.
        encoder, space: input encoding (see :class:`~protran_tune.surrogates.base.EncodedSurrogate`).
        random_state: seed of weights, dropout masks and the student's perturbed inputs.
    """

    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.1,
        epochs: int = 300,
        lr: float = 0.01,
        weight_decay: float = 1e-4,
        mc_samples: int = 32,
        gobi_steps: int = 30,
        gobi_lr: float = 0.05,
        gobi_starts: int = 4,
        encoder: str = "global",
        space: str = "flexibert2",
        random_state: int | None = None,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.mc_samples = mc_samples
        self.gobi_steps = gobi_steps
        self.gobi_lr = gobi_lr
        self.gobi_starts = gobi_starts
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    # ----------------------------------------------------------------- training
    def _train(self, net, X, loss_fn) -> None:
        import torch

        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        net.train()
        for _ in range(int(self.epochs)):
            opt.zero_grad()
            loss = loss_fn(net(X))
            loss.backward()
            opt.step()
        net.eval()

    def _fit(self, Z: np.ndarray, Y: np.ndarray) -> None:
        import torch

        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.mc_samples < 2:
            raise ValueError(f"mc_samples must be >= 2, got {self.mc_samples!r}")
        self.y_mean_, y_std = Y.mean(0), Y.std(0)
        self.y_std_ = np.where(y_std > 1e-12, y_std, 1.0)
        T = torch.as_tensor((Y - self.y_mean_) / self.y_std_, dtype=torch.float32)
        X = torch.as_tensor(Z, dtype=torch.float32)
        d, k = Z.shape[1], Y.shape[1]
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0 if self.random_state is None else int(self.random_state))
                teacher = _mlp(d, self.hidden, k, self.dropout)
                self._train(teacher, X, lambda out: ((out - T) ** 2).mean())
                npn = _mlp(d, self.hidden, 2 * k, 0.0)

                def nll(out):
                    mu, log_var = out[:, :k], out[:, k:].clamp(-10, 5)
                    return (0.5 * (log_var + (T - mu) ** 2 / log_var.exp())).mean()

                self._train(npn, X, nll)
                # Student inputs: the training points, Gaussian perturbations and random interpolations.
                n = len(X)
                i, j = torch.randint(n, (4 * n,)), torch.randint(n, (4 * n,))
                w = torch.rand(4 * n, 1)
                X_s = torch.cat([X, X + 0.5 * torch.randn_like(X), w * X[i] + (1 - w) * X[j]])
                teacher.train()  # dropout on: MC samples
                with torch.no_grad():
                    mc = torch.stack([teacher(X_s) for _ in range(int(self.mc_samples))])
                teacher.eval()
                target = mc.std(0).clamp_min(1e-6).log()
                student = _mlp(d, max(self.hidden // 2, 4), k, 0.0)
                self._train(student, X_s, lambda out: ((out - target) ** 2).mean())
        finally:
            torch.set_num_threads(threads)
        self.teacher_, self.student_, self.npn_ = teacher, student, npn

    # ----------------------------------------------------------------- prediction
    def _std_t(self, X):
        """Differentiable total std (standardised units) of torch inputs ``X`` (n, d) -> (n, k)."""
        k = self.n_outputs_
        epistemic = self.student_(X).exp()
        aleatoric = (0.5 * self.npn_(X)[:, k:].clamp(-10, 5)).exp()
        return (epistemic**2 + aleatoric**2).sqrt()

    def _predict(self, Z: np.ndarray, return_std: bool):
        import torch

        X = torch.as_tensor(Z, dtype=torch.float32)
        with torch.no_grad():
            mean = self.teacher_(X).double().numpy() * self.y_std_ + self.y_mean_
            if not return_std:
                return mean
            std = self._std_t(X).double().numpy() * self.y_std_
        return mean, std

    # ----------------------------------------------------------------- GOBI
    def gobi_select(
        self, X_candidates: np.ndarray, k: int = 1, normaliser: np.ndarray | None = None, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """GOBI: ``k`` distinct candidate indices of highest uncertainty after input-gradient ascent.

        The score is ``sum_j std_j / normaliser_j``. Starting from the ``gobi_starts * k`` best
        candidates, Adam maximises it over the continuous standardised inputs (clipped to the
        candidates' box); each optimum is projected onto the nearest candidate not chosen yet.
        """
        import torch

        Zc = self.transform_inputs(X_candidates)
        norm = self.y_max_ if normaliser is None else np.asarray(normaliser, dtype=np.float64)
        weight = torch.as_tensor(self.y_std_ / norm, dtype=torch.float32)
        allowed = np.ones(len(Zc), dtype=bool)
        if exclude is not None:
            allowed[np.asarray(exclude, dtype=np.int64)] = False
        if allowed.sum() < k:
            raise ValueError(f"k={k} queries requested but only {int(allowed.sum())} candidates are available")
        Zt = torch.as_tensor(Zc, dtype=torch.float32)
        with torch.no_grad():
            score = (self._std_t(Zt) * weight).sum(1).numpy()
        score[~allowed] = -np.inf
        starts = np.argsort(-score, kind="stable")[: min(int(allowed.sum()), max(k, self.gobi_starts * k))]
        lo, hi = Zt.min(0).values, Zt.max(0).values
        z = Zt[starts].clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=self.gobi_lr)
        for p in list(self.student_.parameters()) + list(self.npn_.parameters()):
            p.requires_grad_(False)
        try:
            for _ in range(int(self.gobi_steps)):
                opt.zero_grad()
                (-(self._std_t(z) * weight).sum()).backward()
                opt.step()
                with torch.no_grad():
                    z.copy_(torch.maximum(torch.minimum(z, hi), lo))
            with torch.no_grad():
                final = (self._std_t(z) * weight).sum(1).numpy()
        finally:
            for p in list(self.student_.parameters()) + list(self.npn_.parameters()):
                p.requires_grad_(True)
        z_opt = z.detach().numpy().astype(np.float64)
        chosen: list[int] = []
        for r in np.argsort(-final, kind="stable"):
            dist = ((Zc - z_opt[r]) ** 2).sum(1)
            dist[~allowed] = np.inf
            idx = int(np.argmin(dist))
            if np.isfinite(dist[idx]):
                chosen.append(idx)
                allowed[idx] = False
            if len(chosen) == k:
                break
        while len(chosen) < k:  # more queries than optimised starts: next-best remaining candidates
            score[~allowed] = -np.inf
            idx = int(np.argmax(score))
            chosen.append(idx)
            allowed[idx] = False
        return np.asarray(chosen, dtype=np.int64)

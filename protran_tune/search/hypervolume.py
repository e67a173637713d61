"""Normalised objectives, Pareto fronts, hypervolume and expected hypervolume improvement.

Objectives are normalised onto a fixed box chosen before any search: for a maximised objective,
``z = (y - floor) / (best - floor)``; for a minimised one, ``z = (cap - y) / (cap - best)``; so every
``z`` is maximised, the reference point is the origin (``floor`` and ``cap`` map to 0) and values at
the ideal end map to 1. Points worse than the reference in any objective add no hypervolume.

Hypervolumes are exact (BoTorch's :class:`~botorch.utils.multi_objective.hypervolume.Hypervolume`).
The hypervolume improvement of many points at once uses a box decomposition of the region not yet
dominated (BoTorch's ``FastNondominatedPartitioning``): ``HVI(y) = sum over cells of prod_d
max(0, min(y_d, upper_d) - lower_d)``, vectorised over points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.targets import get_target


@dataclass(frozen=True)
class Normaliser:
    """A fixed box per objective (see module docstring).

    Attributes:
        names: objective names.
        worst: the reference value per objective (a floor for maximised, a cap for minimised ones).
        best: the value that maps to 1.
    """

    names: tuple[str, ...]
    worst: tuple[float, ...]
    best: tuple[float, ...]

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.worst) == len(self.best)):
            raise ValueError("names, worst and best must have one entry per objective")
        for n, w, b in zip(self.names, self.worst, self.best):
            if w == b:
                raise ValueError(f"objective {n!r}: worst and best are both {w}")

    @property
    def signs(self) -> np.ndarray:
        return np.array([get_target(n).sign for n in self.names])

    def transform(self, Y: Any) -> np.ndarray:
        """``(n, k)`` raw values -> normalised, maximised ``z``."""
        Y = np.asarray(Y, dtype=np.float64).reshape(-1, len(self.names))
        worst, best = np.asarray(self.worst), np.asarray(self.best)
        return (Y - worst) / (best - worst)

    def to_dict(self) -> dict[str, Any]:
        return {n: {"direction": get_target(n).direction, "reference": w, "ideal": b}
                for n, w, b in zip(self.names, self.worst, self.best)}

    @classmethod
    def from_values(cls, names: Sequence[str], Y: Any, worst: Sequence[float] | None = None) -> "Normaliser":
        """A box from data: best = the best value of each column; worst = given, else the worst of each column."""
        Y = np.asarray(Y, dtype=np.float64)
        signs = np.array([get_target(n).sign for n in names])
        best = np.where(signs > 0, Y.min(0), Y.max(0))
        w = np.where(signs > 0, Y.max(0), Y.min(0)) if worst is None else np.asarray(worst, dtype=np.float64)
        return cls(tuple(names), tuple(float(v) for v in w), tuple(float(v) for v in best))


def pareto_mask(Z: Any) -> np.ndarray:
    """``(n,)`` True for the rows of ``Z`` (maximised) that no other row dominates (duplicates kept once)."""
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(Z >= Z[i], axis=1) & np.any(Z > Z[i], axis=1)
        if dominated.any():
            keep[i] = False
            continue
        same = np.all(Z == Z[i], axis=1)
        same[: i + 1] = False
        keep[same] = False
    return keep


def hypervolume(Z: Any) -> float:
    """Hypervolume of maximised, normalised points ``Z`` (n, k) above the origin."""
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume

    Z = np.asarray(Z, dtype=np.float64).reshape(-1, np.asarray(Z).shape[-1] if np.asarray(Z).ndim > 1 else 1)
    Z = Z[np.all(Z > 0, axis=1)]
    if len(Z) == 0:
        return 0.0
    front = Z[pareto_mask(Z)]
    k = front.shape[1]
    return float(Hypervolume(ref_point=torch.zeros(k, dtype=torch.float64)).compute(torch.as_tensor(front)))


class ImprovementCells:
    """Box decomposition of the region above the origin that ``front`` does not dominate.

    ``improvement(Y)`` gives the hypervolume improvement of each row of ``Y`` (…, k) on its own.
    """

    def __init__(self, front: Any, k: int) -> None:
        import torch
        from botorch.utils.multi_objective.box_decompositions.non_dominated import FastNondominatedPartitioning

        F = np.asarray(front, dtype=np.float64).reshape(-1, k)
        F = F[np.all(F > 0, axis=1)]
        ref = torch.zeros(k, dtype=torch.float64)
        if len(F) == 0 or k == 1:  # one objective: the region above the best value (or the origin)
            self.lower = np.full((1, k), F.max(0) if len(F) else 0.0)
            self.upper = np.full((1, k), np.inf)
            return
        part = FastNondominatedPartitioning(ref_point=ref, Y=torch.as_tensor(F[pareto_mask(F)]))
        bounds = part.get_hypercell_bounds().numpy()
        self.lower, self.upper = bounds[0], bounds[1]

    def expected_improvement(self, nodes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """EHVI ``(n,)`` of points with independent coordinates given by quadrature.

        ``nodes`` ``(n, k, q)``: normalised values of each coordinate at ``q`` quadrature nodes; ``weights``
        ``(q,)`` summing to 1. Independence makes the expected volume of every cell the product over
        coordinates of ``E[(min(z_d, upper_d) - lower_d)+]``, so ``EHVI = sum_c prod_d E_d``.
        """
        n, k, _ = nodes.shape
        total = np.ones((n, len(self.lower)))
        for d in range(k):
            z = nodes[:, d, None, :]  # (n, 1, q)
            side = np.clip(np.minimum(z, self.upper[None, :, d, None]) - self.lower[None, :, d, None], 0.0, None)
            total *= side @ weights  # (n, C)
        return total.sum(1)

    def improvement(self, Y: Any, chunk: int = 4096) -> np.ndarray:
        """HVI ``(...,)`` of points ``Y`` (..., k)."""
        Y = np.asarray(Y, dtype=np.float64)
        flat = Y.reshape(-1, Y.shape[-1])
        out = np.empty(len(flat))
        for i in range(0, len(flat), chunk):
            y = flat[i : i + chunk, None, :]
            side = np.clip(np.minimum(y, self.upper[None]) - self.lower[None], 0.0, None)
            out[i : i + chunk] = side.prod(-1).sum(-1)
        return out.reshape(Y.shape[:-1])

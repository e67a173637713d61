"""Diversity of seed samples (the paper's Fig. 5): pairwise distances of sampled architectures.

Two distances, both Euclidean between rows:

* ``embedding``: the ProTran 37-dim embedding normalised per column by its range in the design
  space (index / (number of values - 1), so every column lies in [0, 1]); this is the paper's measure,
  with its flaw kept visible: op-type indices are ranks, not magnitudes;
* ``features``: :class:`~protran_tune.space.FeatureEncoder` features, each column standardised with
  the mean and standard deviation of all compared samples pooled (one common scale for all methods).

A method whose first quartile of pairwise distances is highest has the fewest close pairs (the
paper's criterion for choosing LHS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from protran_tune.samplers.qmc import (
    METHODS,
    ArchitectureMapping,
    embedding_lhs_architectures,
    sample_architectures,
    unit_points,
)
from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import DesignSpace, get_space
from protran_tune.space.features import FeatureEncoder

DISTANCES: tuple[str, ...] = ("embedding", "features")
ORIGINAL = "original-lhs"  # LHS over the embedding's index columns, as the original code did


def normalised_embeddings(space: DesignSpace, archs: Sequence[Architecture]) -> np.ndarray:
    """Embeddings ``(n, 1 + 3L)`` scaled per column to [0, 1] by the column's range in ``space``."""
    E = np.stack([space.embed(a) for a in archs]).astype(np.float64)
    sizes = [len(space.layers)] + [len(space.hidden_sizes), space.n_feed_forward_op_types, space.n_attention_op_types] * space.max_layers
    return E / np.maximum(np.asarray(sizes, dtype=np.float64) - 1.0, 1.0)


def pairwise(Z: np.ndarray) -> np.ndarray:
    """Condensed Euclidean pairwise distances ``(n (n - 1) / 2,)`` of rows of ``Z``."""
    from scipy.spatial.distance import pdist

    return pdist(np.asarray(Z, dtype=np.float64))


def pairwise_distances(space: DesignSpace | str, samples: Mapping[str, Sequence[Architecture]]) -> dict[str, dict[str, np.ndarray]]:
    """``{distance kind: {method: condensed distances}}`` for samples of several methods."""
    space = get_space(space)
    out: dict[str, dict[str, np.ndarray]] = {"embedding": {}, "features": {}}
    for method, archs in samples.items():
        out["embedding"][method] = pairwise(normalised_embeddings(space, archs))
    encoder = FeatureEncoder(space)
    feats = {m: encoder.transform_architectures(list(a)) for m, a in samples.items()}
    pooled = np.concatenate(list(feats.values()))
    mean, std = pooled.mean(0), pooled.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    for method, F in feats.items():
        out["features"][method] = pairwise((F - mean) / std)
    return out


def quartiles(d: np.ndarray) -> dict[str, float]:
    q1, med, q3 = np.percentile(d, [25, 50, 75])
    return {"min": float(d.min()), "q1": float(q1), "median": float(med), "q3": float(q3), "max": float(d.max()), "mean": float(d.mean())}


def projected_discrepancy(points: np.ndarray, n_pairs: int = 256, seed: int = 0) -> float:
    """Mean centered L2 discrepancy over ``n_pairs`` random 2-D coordinate projections of ``points``.

    The full-dimensional discrepancy is meaningless at 145 dimensions (it grows like (13/12)^d); the
    2-D projections show how evenly pairs of choices are covered. Lower is more even.
    """
    from scipy.stats import qmc

    P = np.asarray(points, dtype=np.float64)
    rng = np.random.default_rng(seed)
    pairs = [rng.choice(P.shape[1], size=2, replace=False) for _ in range(n_pairs)]
    return float(np.mean([qmc.discrepancy(P[:, p], method="CD") for p in pairs]))


def head_count_shares(archs: Sequence[Architecture], space: DesignSpace) -> dict[str, float]:
    """Fraction of layers with each allowed head count."""
    counts = np.array([layer.n_heads for a in archs for layer in a.layers])
    return {str(h): float(np.mean(counts == h)) for h in space.num_heads}


def sampling_study(
    space: DesignSpace | str = "flexibert2",
    n: int = 256,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    methods: Sequence[str] = METHODS,
    include_original: bool = True,
    baseline: str = "random",
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Quartiles of pairwise distances per method, seed and distance; the distances of the first seed.

    Also records :func:`projected_discrepancy` of each method's unit-cube points (lower = more even)
    and the share of layers per head count (the original's bias shows there).

    Returns ``(summary, distances)``: ``summary["methods"][method][kind]`` holds per-seed quartiles, the
    median over seeds of each quartile and the Q1 ratio to ``baseline`` (same seeds, same run);
    ``summary["highest_q1"][kind]`` names the method with the highest median Q1 and how many seeds it
    won. ``distances`` (first seed) feeds :func:`plot_pairwise_distances`.
    """
    space = get_space(space)
    names = list(methods) + ([ORIGINAL] if include_original else [])
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not among the compared methods {names}")
    per_seed: dict[str, dict[str, list[dict[str, float]]]] = {m: {k: [] for k in DISTANCES} for m in names}
    discrepancy: dict[str, list[float]] = {m: [] for m in methods}
    dim = ArchitectureMapping(space).dim
    shares: dict[str, dict[str, float]] = {}
    first: dict[str, dict[str, np.ndarray]] = {}
    for s_i, seed in enumerate(seeds):
        samples = {m: sample_architectures(space, m, n, seed=seed) for m in methods}
        for m in methods:
            discrepancy[m].append(projected_discrepancy(unit_points(m, n, dim, seed=seed)))
        if include_original:
            samples[ORIGINAL] = embedding_lhs_architectures(space, n, seed=seed)
        dists = pairwise_distances(space, samples)
        for kind in DISTANCES:
            for m in names:
                per_seed[m][kind].append(quartiles(dists[kind][m]))
        if s_i == 0:
            first = dists
            shares = {m: head_count_shares(samples[m], space) for m in names}
    summary: dict[str, Any] = {"space": space.name, "n": n, "seeds": list(seeds), "baseline": baseline, "methods": {}}
    for m in names:
        entry: dict[str, Any] = {"head_count_shares_seed0": shares[m]}
        if m in discrepancy:  # of the unit-cube points (the original's live in another cube)
            entry["unit_cube_projected_discrepancy"] = {
                "per_seed": discrepancy[m], "median_over_seeds": float(np.median(discrepancy[m]))
            }
        for kind in DISTANCES:
            rows = per_seed[m][kind]
            med = {q: float(np.median([r[q] for r in rows])) for q in rows[0]}
            entry[kind] = {"per_seed": rows, "median_over_seeds": med}
        summary["methods"][m] = entry
    summary["highest_q1"] = {}
    for kind in DISTANCES:
        q1 = {m: summary["methods"][m][kind]["median_over_seeds"]["q1"] for m in names}
        base = q1[baseline]
        for m in names:
            summary["methods"][m][kind]["q1_ratio_to_baseline"] = q1[m] / base
        best = max(q1, key=q1.__getitem__)
        wins = sum(
            1 for s in range(len(seeds))
            if max(names, key=lambda m: per_seed[m][kind][s]["q1"]) == best
        )
        summary["highest_q1"][kind] = {"method": best, "q1": q1[best], "seeds_won": wins, "of_seeds": len(seeds)}
    return summary, first


def plot_pairwise_distances(distances: Mapping[str, Mapping[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Box plots (one panel per distance kind) of pairwise distances per method; saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in DISTANCES if k in distances]
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.2), squeeze=False)
    labels = {"embedding": "ProTran embedding, columns scaled to [0, 1]", "features": "dense features, standardised"}
    for ax, kind in zip(axes[0], kinds):
        methods = list(distances[kind])
        ax.boxplot([distances[kind][m] for m in methods], showfliers=False)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=20)
        ax.set_ylabel("pairwise Euclidean distance")
        ax.set_title(labels.get(kind, kind), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path

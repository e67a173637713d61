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

from protran_tune.reporting.figures import pyplot, save_figure
from protran_tune.samplers.qmc import (
    METHODS,
    ArchitectureMapping,
    embedding_index_architectures,
    sample_architectures,
    unit_points,
)
from protran_tune.space.architecture import Architecture
from protran_tune.space.design_space import DesignSpace, get_space
from protran_tune.space.features import FeatureEncoder

DISTANCES: tuple[str, ...] = ("embedding", "features")
ORIGINAL = "original-"  # prefix: the same method over the embedding's index columns, as the original did


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
    seeds: Sequence[int] = tuple(range(10)),
    methods: Sequence[str] = METHODS,
    include_original: bool = True,
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Quartiles of pairwise distances per method, seed and distance; the distances of the first seed.

    Every method runs through our unbiased mapping and, with ``include_original``, through the
    original code's mapping (the same point set over the embedding's index columns, named
    ``original-<method>``: the paper's Fig. 5 experiment). Also records
    :func:`projected_discrepancy` of each method's unit-cube points (lower = more even) and the share
    of layers per head count (the original's bias shows there).

    Returns ``(summary, distances)``: ``summary["methods"][name][kind]`` holds per-seed quartiles, the
    median over seeds of each quartile, the worst seed's Q1, its spread, and the Q1 ratio to random
    sampling through the same mapping (same seeds, same run); ``summary["highest_q1"][mapping][kind]``
    names the method with the highest median Q1 and how many seeds it won. ``distances`` (first
    seed) feeds :func:`plot_pairwise_distances`.
    """
    space = get_space(space)
    mappings = {"ours": {m: m for m in methods}}
    if include_original:
        mappings["original"] = {m: ORIGINAL + m for m in methods}
    names = [name for row in mappings.values() for name in row.values()]
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
                samples[ORIGINAL + m] = embedding_index_architectures(space, m, n, seed=seed)
        dists = pairwise_distances(space, samples)
        for kind in DISTANCES:
            for m in names:
                per_seed[m][kind].append(quartiles(dists[kind][m]))
        if s_i == 0:
            first = dists
            shares = {m: head_count_shares(samples[m], space) for m in names}
    summary: dict[str, Any] = {
        "space": space.name, "n": n, "seeds": list(seeds), "baseline": "random (through the same mapping)",
        "distances": {
            "embedding": "ProTran embedding, each column divided by (number of values - 1) in the space",
            "features": "FeatureEncoder features, standardised with the pooled mean/std of all samples of the seed",
        },
        "methods": {},
    }
    for m in names:
        entry: dict[str, Any] = {"head_count_shares_seed0": shares[m]}
        if m in discrepancy:  # of the unit-cube points (the original's live in another cube)
            entry["unit_cube_projected_discrepancy"] = {
                "per_seed": discrepancy[m], "median_over_seeds": float(np.median(discrepancy[m]))
            }
        for kind in DISTANCES:
            rows = per_seed[m][kind]
            med = {q: float(np.median([r[q] for r in rows])) for q in rows[0]}
            q1s = [r["q1"] for r in rows]
            entry[kind] = {
                "per_seed": rows, "median_over_seeds": med,
                "q1_worst_seed": float(min(q1s)), "q1_std_over_seeds": float(np.std(q1s)),
            }
        summary["methods"][m] = entry
    summary["highest_q1"] = _highest_q1(summary["methods"], mappings, per_seed, len(seeds))
    return summary, first


def _highest_q1(methods: dict[str, Any], mappings: Mapping[str, Mapping[str, str]],
                per_seed: Mapping[str, Mapping[str, list[dict[str, float]]]], n_seeds: int) -> dict[str, Any]:
    """Per mapping and distance kind: the method of highest median Q1 and the seeds it won; also writes
    each method's ``q1_ratio_to_baseline`` (to random sampling through the same mapping) into ``methods``."""
    out: dict[str, Any] = {}
    for mapping, row in mappings.items():
        out[mapping] = {}
        for kind in DISTANCES:
            q1 = {name: methods[name][kind]["median_over_seeds"]["q1"] for name in row.values()}
            base = q1[row["random"]] if "random" in row else None
            for name in row.values():
                methods[name][kind]["q1_ratio_to_baseline"] = q1[name] / base if base else None
            best = max(q1, key=q1.__getitem__)
            wins = sum(
                1 for s in range(n_seeds)
                if max(row.values(), key=lambda name: per_seed[name][kind][s]["q1"]) == best
            )
            out[mapping][kind] = {"method": best, "q1": q1[best], "seeds_won": wins, "of_seeds": n_seeds}
    return out


def plot_pairwise_distances(distances: Mapping[str, Mapping[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Box plots of pairwise distances per method (columns: distance kinds; rows: our mapping and,
    where present, the original's ``original-<method>`` samples); saves a PNG."""
    plt = pyplot()

    kinds = [k for k in DISTANCES if k in distances]
    all_methods = list(distances[kinds[0]])
    rows = [("unbiased mapping (ours)", [m for m in all_methods if not m.startswith(ORIGINAL)])]
    original = [m for m in all_methods if m.startswith(ORIGINAL)]
    if original:
        rows.append(("original mapping (embedding index columns)", original))
    fig, axes = plt.subplots(len(rows), len(kinds), figsize=(6 * len(kinds), 3.8 * len(rows)), squeeze=False)
    labels = {"embedding": "ProTran embedding, columns scaled to [0, 1]", "features": "dense features, standardised"}
    for r, (row_name, methods) in enumerate(rows):
        for c, kind in enumerate(kinds):
            ax = axes[r][c]
            ax.boxplot([distances[kind][m] for m in methods], showfliers=False)
            ax.set_xticks(range(1, len(methods) + 1), [m.removeprefix(ORIGINAL) for m in methods], rotation=15)
            ax.set_ylabel("pairwise Euclidean distance")
            ax.set_title(f"{row_name}\n{labels.get(kind, kind)}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    for c in range(len(kinds)):  # one scale per distance kind
        lo = min(axes[r][c].get_ylim()[0] for r in range(len(rows)))
        hi = max(axes[r][c].get_ylim()[1] for r in range(len(rows)))
        for r in range(len(rows)):
            axes[r][c].set_ylim(lo, hi)
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, dpi=120)

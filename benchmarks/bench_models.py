"""Build time, forward latency and peak memory of FlexiBERT 2.0 models, against transformers' BertModel.

For BERT-Tiny/Mini/Base-shaped architectures the FlexiBERT model (weights imported with
``FlexiBertModel.from_bert``) and ``BertModel`` (its default sdpa attention) run side by side in one
process, interleaved forward by forward, so both see the same machine state; the ratio
FlexiBERT / BertModel of median forward latency is the figure of merit (target <= 1.15). Then 20
random ``flexibert2`` architectures (``DesignSpace.iter_samples(20, seed)``) are built and timed.

Forward passes run in eval mode under ``torch.inference_mode`` on ``(batch, seq_len)`` token ids with an
all-ones attention mask. Peak memory: on CPU the peak of torch's live allocations during one forward
(profiler memory events; parameters excluded), on CUDA ``max_memory_allocated`` above the level before
the forward. CPU figures also record process CPU time per forward, less sensitive to other load.

Usage::

    python benchmarks/bench_models.py                                   # CPU, batch 1 and 32
    python benchmarks/bench_models.py --device cuda --batch-size 128    # GPU ratio
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from protran_tune.models import FlexiBertModel, build_model  # noqa: E402
from protran_tune.space import Architecture, count_parameters, encoder_flops, get_space  # noqa: E402

BERT_SHAPES = {"bert-tiny": (2, 128, 2, 512), "bert-mini": (4, 256, 4, 1024), "bert-base": (12, 768, 12, 3072)}


# ----------------------------------------------------------------- timing helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """Wall seconds and process CPU seconds of one call (device synchronised)."""
    _sync(device)
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - w0, time.process_time() - c0


def _peak_memory(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak bytes of torch allocations made during ``fn`` (live tensors from before excluded)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    deltas = []
    for event in prof.events():
        delta = event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        if delta:
            deltas.append((event.time_range.start, delta))
    current = peak = 0
    for _, delta in sorted(deltas, key=lambda item: item[0]):
        current += delta
        peak = max(peak, current)
    return int(peak)


def _repeats_for(seconds_per_call: float, budget_s: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, budget_s // max(seconds_per_call, 1e-6))))


def _summary(xs: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": qs[0], "q3": qs[2], "min": min(xs), "n": len(xs)}


def _inputs(batch: int, seq_len: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(batch * 1000 + seq_len)
    ids = torch.randint(1, vocab, (batch, seq_len), generator=g).to(device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _build(fn: Callable[[], torch.nn.Module], device: torch.device) -> tuple[torch.nn.Module, float]:
    t0 = time.perf_counter()
    model = fn().to(device).eval()
    _sync(device)
    return model, time.perf_counter() - t0


# ----------------------------------------------------------------- benchmarks
def bench_bert_shape(name: str, shape: tuple[int, int, int, int], batch: int, args: argparse.Namespace) -> dict:
    from transformers import BertConfig, BertModel

    device = torch.device(args.device)
    layers, hidden, heads, ff = shape
    torch.manual_seed(0)
    bert_cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=ff)
    bert, bert_build = _build(lambda: BertModel(bert_cfg), device)
    arch = Architecture.homogeneous(layers, hidden, heads, ff)
    _, flexi_build = _build(lambda: build_model(arch), torch.device("cpu"))  # build cost of a fresh model
    flexi = FlexiBertModel.from_bert(bert).to(device).eval()
    inputs = _inputs(batch, args.seq_len, bert_cfg.vocab_size, device)
    with torch.inference_mode():
        ref, out = bert(**inputs).last_hidden_state, flexi(**inputs).last_hidden_state
        max_diff = float((ref - out).abs().max())
        del ref, out
        # the memory probes are the warm-up forwards
        mem = {"bert": _peak_memory(lambda: bert(**inputs), device), "flexibert": _peak_memory(lambda: flexi(**inputs), device)}
        for _ in range(args.warmup):
            bert(**inputs)
            flexi(**inputs)
        wall: dict[str, list[float]] = {"bert": [], "flexibert": []}
        cpu: dict[str, list[float]] = {"bert": [], "flexibert": []}
        reps, i = args.min_repeats, 0
        while i < reps:  # interleaved pairs, alternating which model goes first
            order = [("bert", bert), ("flexibert", flexi)]
            for key, model in order if i % 2 == 0 else order[::-1]:
                w, c = _time_once(lambda: model(**inputs), device)
                wall[key].append(w)
                cpu[key].append(c)
            if i == 0:
                reps = _repeats_for(wall["bert"][0] + wall["flexibert"][0], args.budget_s, args.min_repeats, args.max_repeats)
            i += 1
    row = {
        "name": name, "shape": {"layers": layers, "hidden": hidden, "heads": heads, "feed_forward": ff},
        "batch": batch, "seq_len": args.seq_len, "repeats": reps,
        "params": count_parameters(arch), "encoder_gflops_per_seq": encoder_flops(arch, args.seq_len) / 1e9,
        "build_s": {"bert": bert_build, "flexibert": flexi_build},
        "forward_s": {k: _summary(v) for k, v in wall.items()},
        "forward_cpu_s": {k: _summary(v) for k, v in cpu.items()} if device.type == "cpu" else None,
        "peak_memory_bytes": mem,
        "max_abs_diff_last_hidden": max_diff,
    }
    row["ratio"] = row["forward_s"]["flexibert"]["median"] / row["forward_s"]["bert"]["median"]
    if device.type == "cpu":
        row["ratio_cpu_time"] = row["forward_cpu_s"]["flexibert"]["median"] / row["forward_cpu_s"]["bert"]["median"]
    del bert, flexi
    return row


def bench_random(index: int, arch: Architecture, batch: int, args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(index)
    model, build_s = _build(lambda: build_model(arch), device)
    inputs = _inputs(batch, args.seq_len, model.config.vocab_size, device)
    with torch.inference_mode():
        mem = _peak_memory(lambda: model(**inputs), device)  # also the first warm-up forward
        for _ in range(args.warmup):
            model(**inputs)
        times = [_time_once(lambda: model(**inputs), device)]
        reps = _repeats_for(times[0][0], args.random_budget_s, args.random_min_repeats, args.max_repeats)
        times += [_time_once(lambda: model(**inputs), device) for _ in range(reps - 1)]
    head_ops = sorted({op for layer in arch.layers for op in layer.heads})
    return {
        "index": index, "architecture": arch.to_dict(), "hash": arch.content_hash(), "summary": str(arch),
        "n_layers": arch.n_layers, "head_ops": head_ops, "batch": batch, "seq_len": args.seq_len, "repeats": reps,
        "params": count_parameters(arch), "encoder_gflops_per_seq": encoder_flops(arch, args.seq_len) / 1e9,
        "build_s": build_s,
        "forward_s": _summary([w for w, _ in times]),
        "forward_cpu_s": _summary([c for _, c in times]) if device.type == "cpu" else None,
        "peak_memory_bytes": mem,
    }


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    rows = result["bert_shapes"]
    labels = [f"{r['name']}\nB={r['batch']}" for r in rows]
    ax1.bar(range(len(rows)), [r["ratio"] for r in rows], color="tab:blue")
    ax1.axhline(1.15, color="tab:red", ls="--", label="target 1.15")
    ax1.axhline(1.0, color="gray", lw=0.8)
    ax1.set_xticks(range(len(rows)), labels, fontsize=8)
    ax1.set_ylabel("forward latency FlexiBERT / BertModel")
    ax1.set_title(f"{result['device_name']}: same shapes, side by side")
    ax1.legend()
    for batch in sorted({r["batch"] for r in result["random"]}):
        pts = [r for r in result["random"] if r["batch"] == batch]
        ax2.scatter([p["encoder_gflops_per_seq"] * batch for p in pts], [p["forward_s"]["median"] * 1e3 for p in pts],
                    label=f"random flexibert2, B={batch}", s=18)
    for r in rows:
        ax2.scatter(r["encoder_gflops_per_seq"] * r["batch"], r["forward_s"]["bert"]["median"] * 1e3, marker="x",
                    color="black", s=30)
    ax2.scatter([], [], marker="x", color="black", label="BertModel (BERT shapes)")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("encoder GFLOPs per batch")
    ax2.set_ylabel("median forward latency (ms)")
    ax2.set_title(f"seq_len {result['seq_len']}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bench_shapes(result: dict[str, Any], shapes: list[str], batches: list[int], args: argparse.Namespace) -> None:
    """FlexiBERT against ``BertModel`` for each BERT shape and batch size, into ``result["bert_shapes"]``."""
    for name in shapes:
        for batch in batches:
            try:
                row = bench_bert_shape(name, BERT_SHAPES[name], batch, args)
            except Exception as exc:  # record and go on: one failure must not lose the run
                result.setdefault("errors", []).append(f"{name} B={batch}: {type(exc).__name__}: {exc}")
                print("ERROR", result["errors"][-1], flush=True)
                continue
            result["bert_shapes"].append(row)
            f = row["forward_s"]
            print(f"{name:10s} B={batch:<4d} bert {f['bert']['median'] * 1e3:9.2f} ms  flexibert "
                  f"{f['flexibert']['median'] * 1e3:9.2f} ms  ratio {row['ratio']:.3f}"
                  + (f" (cpu-time ratio {row['ratio_cpu_time']:.3f})" if "ratio_cpu_time" in row else "")
                  + f"  reps {row['repeats']}  diff {row['max_abs_diff_last_hidden']:.1e}", flush=True)


def _bench_random(result: dict[str, Any], batches: list[int], args: argparse.Namespace) -> None:
    """Random flexibert2 architectures at each batch size, into ``result["random"]``."""
    archs = list(get_space("flexibert2").iter_samples(args.n_random, seed=args.seed))
    for i, arch in enumerate(archs):
        for batch in batches:
            try:
                row = bench_random(i, arch, batch, args)
            except Exception as exc:
                result.setdefault("errors", []).append(f"random {i} B={batch}: {type(exc).__name__}: {exc}")
                print("ERROR", result["errors"][-1], flush=True)
                continue
            result["random"].append(row)
            print(f"random {i:2d} B={batch:<4d} {row['forward_s']['median'] * 1e3:9.2f} ms  build {row['build_s']:.2f} s  "
                  f"peak {row['peak_memory_bytes'] / 2**20:8.1f} MiB  params {row['params'] / 1e6:6.1f} M  "
                  f"{row['encoder_gflops_per_seq'] * batch:8.1f} GFLOP  reps {row['repeats']}  {row['summary'][:60]}", flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, action="append", dest="batch_sizes",
                   help="batch size; repeat for several (default: 1 and 32 on CPU, 128 on CUDA)")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--shapes", default=",".join(BERT_SHAPES), help=f"BERT shapes to compare, from {list(BERT_SHAPES)}")
    p.add_argument("--n-random", type=int, default=20, help="random flexibert2 architectures")
    p.add_argument("--seed", type=int, default=0, help="seed of DesignSpace.iter_samples")
    p.add_argument("--warmup", type=int, default=0, help="untimed forwards after the memory probe (itself a warm-up)")
    p.add_argument("--min-repeats", type=int, default=3, help="fewest timed pairs for the BertModel comparison")
    p.add_argument("--max-repeats", type=int, default=30)
    p.add_argument("--budget-s", type=float, default=10.0, help="timing budget (s) of one BertModel comparison")
    p.add_argument("--random-min-repeats", type=int, default=1, help="fewest timed forwards of a random architecture")
    p.add_argument("--random-budget-s", type=float, default=3.0, help="timing budget (s) of one random architecture")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--tag", default=None, help="file name stem (default models_<device>)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = args.batch_sizes or ([128] if device.type == "cuda" else [1, 32])
    shapes = [s for s in args.shapes.split(",") if s]
    for s in shapes:
        if s not in BERT_SHAPES:
            raise SystemExit(f"unknown shape {s!r}; allowed: {list(BERT_SHAPES)}")
    import transformers

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    result: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/bench_models.py", *map(shlex.quote, sys.argv[1:] if argv is None else argv)]),
        "device": args.device, "device_name": device_name, "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "seq_len": args.seq_len, "batch_sizes": batches,
        "loadavg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bert_shapes": [], "random": [],
    }
    t_start = time.perf_counter()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.tag or f"models_{device.type}"
    _bench_shapes(result, shapes, batches, args)
    _bench_random(result, batches, args)
    result["loadavg_end"] = os.getloadavg()
    result["elapsed_s"] = time.perf_counter() - t_start
    result["summary"] = {
        f"{r['name']}@B{r['batch']}": {"ratio": r["ratio"], **({"ratio_cpu_time": r["ratio_cpu_time"]} if "ratio_cpu_time" in r else {})}
        for r in result["bert_shapes"]
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1))
    _plot(result, out_dir / f"{stem}.png")
    print("\nFlexiBERT / BertModel forward latency (median):")
    for key, value in result["summary"].items():
        print(f"  {key:18s} {value['ratio']:.3f}" + (f"   cpu-time {value['ratio_cpu_time']:.3f}" if "ratio_cpu_time" in value else ""))
    print(f"saved {out_dir / stem}.json and .png ({result['elapsed_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()

"""The models our search finds against BERT-Tiny and BERT-Mini: same accuracy, lower latency and energy?

Three steps (run from the repository root)::

    PYTHONPATH=. python3 benchmarks/bench_nas_models.py select
    PYTHONPATH=. python3 benchmarks/bench_nas_models.py measure --platform cpu --out benchmarks/results/nas_models_cpu.jsonl \
        --quiet-below 0.25 --disturbed-above 0.25 --quiet-wait-s 3600 --attempts 10
    PYTHONPATH=. python3 benchmarks/bench_nas_models.py measure --platform cuda --out $OUT/nas_models_cuda.jsonl  # GPU machine
    PYTHONPATH=. python3 benchmarks/bench_nas_models.py report

``select``: baselines are the BERT-Tiny (2 layers, hidden 128, 2 heads, FF 512) and BERT-Mini (4, 256, 4,
1024) shapes, homogeneous ``sa-sdp`` heads and one FF layer. Their GLUE is the table's where the exact
architecture is a table row, else the NAS-Bench-BERT predictor's mean (``NasBenchBertAccuracy``, seed 0;
std recorded); the source is recorded. The front of a setting is the non-dominated subset (table values
of the setting's objectives) of the rows ours (config ``ehvi``) evaluated in report seed 0, the first
report seed (``benchmarks/results/nas_models_search_runs.jsonl``); ``h200``: GLUE, latency, energy, peak power of
``protran-nasbench:h200``; ``cpu``: GLUE, latency of ``protran-nasbench:cpu``. A setting without recorded
jobs falls back to the front of its whole table, labelled ``table-front``. Pick per baseline and setting:
among front members with table GLUE >= the baseline's GLUE, the lowest latency (ties: energy); the
lowest-energy member is recorded too. Writes ``benchmarks/results/nas_models_selection.json``.

``measure``: every selected architecture (baselines and picks), 3 rounds, interleaved (baseline, its
picks, next baseline, its picks; then the next round), with the project's measuring core (the platform
registry and ``measurement_record``, as ``protran-tune measure``): ``cuda``: inference, batch 128 x 128
tokens, fp32, CUDA graphs (``cuda_graph=true``), the protocol of the ``protran-nasbench:h200`` campaign;
``cpu``: batch 1 x 128 tokens, torch's default threads, as for ``protran-nasbench:cpu``. Appends one
record per measurement, resumes from ``--out``. Each record labels its sources (``labels``; the CPU's
energy and power are ``modelled:cpu-time``) and the machine's load (``host``: load averages before and
after, the share of all CPUs other processes used in 1 s before and during the measurement). With
``--quiet-below F`` each measurement first waits (at most ``--quiet-wait-s``) until other processes use less
than F of the CPUs; with ``--disturbed-above G`` one during which they used G or more is recorded as failed
(``disturbed: ...``, measurement kept) and repeated (``--attempts``); a rerun measures again what is not ok.
(On the shared 2-core machine, torch's two threads beside other jobs ran BERT-Tiny up to 70x slower, so the
CPU records were taken in a quiet spell: other processes' share during them at most 2%.) Imports only the
measuring core (torch, numpy; no Optuna, Ray or MLflow).

``report``: joins ``nas_models_cuda.jsonl`` and ``nas_models_cpu.jsonl`` (either may be absent) into
``benchmarks/results/nas_models.json`` and ``nas_models.png`` and prints, per baseline and platform,
baseline and pick (medians over rounds, per sequence), ratio baseline/pick and whether the target is met:
>= 1.5x lower latency and energy, >= 1.1x lower peak power. The platform's own setting gives its pick
(``h200`` on ``cuda``, ``cpu`` on ``cpu``); the other setting's pick is reported as a cross-check.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SELECTION = RESULTS / "nas_models_selection.json"
#: the search runs the fronts come from: ours (ehvi) on the NAS benchmark's report seeds, as recorded when the
#: models were selected and measured (before the GP fit was made deterministic; ``nas_jobs.jsonl`` holds the rerun)
JOBS = RESULTS / "nas_models_search_runs.jsonl"

BASELINES = {"BERT-Tiny": (2, 128, 2, 512), "BERT-Mini": (4, 256, 4, 1024)}  # layers, hidden, heads, FF
SETTINGS = {
    "h200": ("protran-nasbench:h200", ("glue", "latency_s", "energy_j", "peak_power_w")),
    "cpu": ("protran-nasbench:cpu", ("glue", "latency_s")),
}
METHOD, CONFIG, REPORT_SEEDS, FRONT_SEED = "ours", "ehvi", tuple(range(10)), 0
HARDWARE = ("latency_s", "energy_j", "peak_power_w")
#: measuring protocol per platform: the campaigns behind protran-nasbench:h200 and :cpu
PROTOCOL: dict[str, dict[str, Any]] = {
    "cuda": {"batch_size": 128, "seq_len": 128, "options": {"cuda_graph": True}, "setting": "h200",
             "label": "NVIDIA H200, inference, batch 128 x 128 tokens, fp32, CUDA graphs"},
    "cpu": {"batch_size": 1, "seq_len": 128, "options": {}, "setting": "cpu",
            "label": "development CPU, inference, batch 1 x 128 tokens, fp32, torch's default threads"},
}
ROUNDS = 3
#: targets: baseline / pick ratio at least this
TARGETS = {"latency_s": 1.5, "energy_j": 1.5, "peak_power_w": 1.1}
#: what the figures of a platform can and cannot show (written into the report)
CAVEATS = {
    "cpu": "energy and peak power are modelled:cpu-time (process CPU seconds x 10 W per core), not measured: a model "
           "that keeps torch's threads busy draws the same modelled power, so peak power is about threads x 10 W for any "
           "architecture and the energy ratio follows the CPU-time ratio",
    "cuda": "energy and peak power from NVML (board power, idle included); peak power is the highest 20 ms sample",
}
COMMANDS = {
    "select": "PYTHONPATH=. python3 benchmarks/bench_nas_models.py select",
    "measure_cpu": "PYTHONPATH=. python3 benchmarks/bench_nas_models.py measure --platform cpu "
                   "--out benchmarks/results/nas_models_cpu.jsonl --quiet-below 0.25 --disturbed-above 0.25 "
                   "--quiet-wait-s 3600 --attempts 10",
    "measure_cuda": "export PYTHONPATH=$PWD && python3 benchmarks/bench_nas_models.py measure --platform cuda "
                    "--out $OUT/nas_models_cuda.jsonl  (then copied to benchmarks/results/nas_models_cuda.jsonl)",
    "report": "PYTHONPATH=. python3 benchmarks/bench_nas_models.py report",
}


# --------------------------------------------------------------------------- select
def search_rows(setting: str) -> tuple[list[str] | None, dict[str, Any]]:
    """Table ids ours evaluated in :data:`FRONT_SEED` of ``setting`` (``None`` if not recorded) and the rule."""
    mine = {j["seed"]: j for j in ours_runs(setting)}
    rule = {"jobs": str(JOBS.relative_to(REPO)), "method": METHOD, "config": CONFIG,
            "report_seeds_recorded": sorted(mine), "front_seed": FRONT_SEED}
    if FRONT_SEED not in mine:
        return None, {**rule, "front_source": "table-front",
                      "note": f"no '{METHOD}/{CONFIG}' job of report seed {FRONT_SEED} recorded for setting '{setting}': "
                              "the front is that of the whole table, not of a search"}
    rows = mine[FRONT_SEED]["rows"]
    return rows, {**rule, "front_source": f"search:{METHOD}/{CONFIG} seed {FRONT_SEED}", "n_evaluated": len(rows),
                  "rule": f"non-dominated subset (table values) of the {len(rows)} rows evaluated in report seed "
                          f"{FRONT_SEED}, the first report seed"}


def pareto_rows(table: Any, rows: list[int], objectives: tuple[str, ...]) -> list[int]:
    """The rows of ``rows`` that no other of them dominates in ``objectives`` (table values)."""
    import numpy as np

    from protran_tune.objectives.targets import get_target
    from protran_tune.search.hypervolume import pareto_mask

    signs = np.array([get_target(o).sign for o in objectives])  # +1: minimised
    Z = -table.values(objectives)[rows] * signs  # maximised
    return [r for r, keep in zip(rows, pareto_mask(Z)) if keep]


def baseline_glue(table: Any) -> dict[str, dict[str, Any]]:
    """GLUE (points) of each baseline: the table row if the architecture is one, else the predictor's mean +- std."""
    from protran_tune.space import Architecture

    out: dict[str, dict[str, Any]] = {}
    need = {}
    for name, shape in BASELINES.items():
        arch = Architecture.homogeneous(*shape)
        row = table.index_of(arch)
        out[name] = {"shape": dict(zip(("layers", "hidden", "heads", "feed_forward"), shape)), "op": "sa-sdp",
                     "architecture": arch.to_dict(), "arch_hash": arch.content_hash(), "in_table": row is not None}
        if row is not None:
            out[name].update(glue=float(table.metrics["glue"][row]), glue_std=None, table_id=table.ids[row],
                             accuracy_source=f"table:{table.name} (nas-bench-bert)")
        else:
            need[name] = arch
    if need:
        from protran_tune.objectives.accuracy import NasBenchBertAccuracy

        provider = NasBenchBertAccuracy(("glue",), seed=0)
        values = provider.evaluate(list(need.values()))
        for i, name in enumerate(need):
            out[name].update(glue=float(values.mean[i, 0]), glue_std=float(values.std[i, 0]), table_id=None,
                             in_predictor_domain=bool(values.in_domain[i]),
                             accuracy_source=f"predicted:nas-bench-bert ({type(provider.model).__name__}, seed 0, "
                                             f"{len(provider.rows)} rows; architecture not in the table)")
    return out


def member(table: Any, row: int, metrics: tuple[str, ...] = ("glue", *HARDWARE)) -> dict[str, Any]:
    """A table row as a record: id, architecture, summary and the table's values (per sequence)."""
    arch = table.archs[row]
    summary = "; ".join(f"{layer.hidden}x{layer.n_heads}{layer.heads[0]}" + (f" ff{'+'.join(map(str, layer.feed_forward))}")
                        for layer in arch.layers)
    return {"table_id": table.ids[row], "arch_hash": arch.content_hash(), "architecture": arch.to_dict(),
            "summary": f"{arch.n_layers} layers: {summary}",
            "table": {m: float(table.metrics[m][row]) for m in metrics if m in table.metrics},
            "table_sources": {m: table.sources.get(m) for m in metrics if m in table.metrics}}


def pick(table: Any, front: list[int], floor: float) -> dict[str, Any]:
    """Among ``front`` rows with GLUE >= ``floor``: the lowest latency (ties: energy), the lowest energy."""
    glue, lat, en = (table.metrics[m] for m in ("glue", "latency_s", "energy_j"))
    ok = [r for r in front if glue[r] >= floor]
    if not ok:
        return {"eligible": 0, "by_latency": None, "by_energy": None,
                "note": f"no front member reaches GLUE {floor:.2f}"}
    by_lat = min(ok, key=lambda r: (lat[r], en[r]))
    by_en = min(ok, key=lambda r: (en[r], lat[r]))
    return {"eligible": len(ok), "eligible_ids": [table.ids[r] for r in ok], "by_latency": member(table, by_lat),
            "by_energy": None if by_en == by_lat else member(table, by_en), "by_energy_same": by_en == by_lat}


@functools.lru_cache(maxsize=None)
def ours_runs(setting: str) -> tuple[dict[str, Any], ...]:
    """Ours' recorded report-seed runs of ``setting`` (from :data:`JOBS`; none if it is absent)."""
    jobs = [json.loads(line) for line in JOBS.read_text().splitlines() if line.strip()] if JOBS.exists() else []
    return tuple(j for j in jobs if j.get("setting") == setting and j.get("method") == METHOD
                 and j.get("config") == CONFIG and "rows" in j and j.get("seed") in REPORT_SEEDS)


def seeds_found(setting: str, table_id: str) -> list[int]:
    """Report seeds of ours whose evaluated rows include ``table_id`` (how robustly the search finds it)."""
    return sorted(j["seed"] for j in ours_runs(setting) if table_id in j["rows"])


def select_setting(setting: str, baselines: dict[str, Any]) -> dict[str, Any]:
    """Front and picks of one setting (see the module docstring)."""
    from protran_tune.datasets import load_dataset

    name, objectives = SETTINGS[setting]
    table = load_dataset(name)
    ids, rule = search_rows(setting)
    rows = list(range(len(table))) if ids is None else [table.ids.index(i) for i in ids]
    front = sorted(pareto_rows(table, rows, objectives), key=lambda r: -table.metrics["glue"][r])
    picks = {}
    for b, base in baselines.items():
        p = pick(table, front, base["glue"])
        for key in ("by_latency", "by_energy"):
            if p[key] is not None:
                p[key]["found_in_report_seeds"] = seeds_found(setting, p[key]["table_id"])
                p[key]["glue_margin_over_baseline"] = p[key]["table"]["glue"] - base["glue"]
        picks[b] = p
    whole = pareto_rows(table, list(range(len(table))), objectives)
    optimum = {b: (lambda p: p["by_latency"] and {k: p["by_latency"][k] for k in ("table_id", "summary", "table")})(
        pick(table, whole, base["glue"])) for b, base in baselines.items()}
    return {"dataset": name, "objectives": list(objectives), **rule, "front": [member(table, r) for r in front],
            "picks": picks, "table_optimum": optimum,
            "table_optimum_note": "the pick rule applied to the whole table's front (what a search could find at best)"}


def measure_list(selection: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct architectures to measure, in interleaving order: each baseline, then its picks."""
    items: dict[str, dict[str, Any]] = {}
    for b, base in selection["baselines"].items():
        items.setdefault(base["arch_hash"], {"label": b, "architecture": base["architecture"], "table_id": None,
                                             "roles": []})["roles"].append(f"baseline:{b}")
        for setting, sel in selection["settings"].items():
            for key in ("by_latency", "by_energy"):
                m = sel["picks"][b][key]
                if m is None:
                    continue
                item = items.setdefault(m["arch_hash"], {"label": m["table_id"], "architecture": m["architecture"],
                                                         "table_id": m["table_id"], "roles": []})
                item["roles"].append(f"pick:{setting}:{b}:{key}")
    return [{"arch_hash": h, **v} for h, v in items.items()]


def select(args: argparse.Namespace) -> int:
    """Write the selection file (baselines, fronts, picks, what to measure)."""
    import warnings

    from protran_tune.datasets import load_dataset

    warnings.filterwarnings("ignore", message=".*outside the nas-bench-bert domain.*")
    baselines = baseline_glue(load_dataset(SETTINGS["h200"][0]))
    settings = {s: select_setting(s, baselines) for s in SETTINGS}
    out = {"description": __doc__.split("\n\n")[0], "commands": COMMANDS, "baselines": baselines, "settings": settings,
           "pick_rule": "among front members with table GLUE >= the baseline's GLUE: lowest latency_s (ties: energy_j); "
                        "by_energy: lowest energy_j (ties: latency_s)",
           "units": {"glue": "points", "latency_s": "s per sequence", "energy_j": "J per sequence",
                     "peak_power_w": "W"}}
    out["measure"] = measure_list(out)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for b, base in baselines.items():
        print(f"{b}: GLUE {base['glue']:.2f}" + (f" +- {base['glue_std']:.2f}" if base["glue_std"] else "")
              + f" [{base['accuracy_source']}]")
        for s, sel in settings.items():
            p = sel["picks"][b]["by_latency"]
            print(f"  {s} ({sel['front_source']}, front {len(sel['front'])}): "
                  + ("none" if p is None else f"{p['table_id']} GLUE {p['table']['glue']:.2f} | {p['summary']}"))
    print(f"wrote {args.out}: {len(out['measure'])} architectures to measure")
    return 0


# --------------------------------------------------------------------------- measure
def job_order(items: list[dict[str, Any]], rounds: int) -> list[tuple[dict[str, Any], int]]:
    """``(item, round)`` in measuring order: every item once per round, rounds one after another."""
    return [(item, r) for r in range(rounds) for item in items]


def open_platform(name: str) -> Any:
    """The ``name`` platform with the campaign's options; exit status 2 with the reason if unusable here."""
    try:
        from protran_tune.platforms.base import SensorUnavailableError, get_platform
    except ImportError as exc:
        _fail(f"measure: the measuring core cannot be imported ({exc}); torch and numpy are needed")
    try:
        return get_platform(name, **PROTOCOL[name]["options"])
    except ImportError as exc:
        _fail(f"measure --platform {name}: a library it needs is missing here: {exc}")
    except SensorUnavailableError as exc:
        hint = " (run this step on the GPU machine)" if name == "cuda" else ""
        _fail(f"measure --platform {name}: unusable on this machine: {exc}{hint}")


def _fail(message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with status 2 (unusable platform, as ``protran-tune measure``)."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def labels(platform: str, m: dict[str, Any] | None) -> dict[str, str]:
    """Source of each figure of a record: latency is timed; energy and power as the meter says."""
    src = (m or {}).get("source", "none")
    return {"latency_s": "measured:timer", "energy_j": src, "peak_power_w": src,
            **({"note": "energy and power are a labelled model (CPU time x watts per core), not a measurement"}
               if src.startswith("modelled") else {})}


def _proc_stat() -> tuple[int, int] | None:
    """``(total, idle + iowait)`` jiffies of all CPUs (``/proc/stat``); ``None`` where unreadable."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]
    except (OSError, ValueError, IndexError):
        return None


def others_busy(before: tuple[int, int] | None, after: tuple[int, int] | None, own_cpu_s: float = 0.0) -> float | None:
    """Fraction (0-1) of all CPUs' time between two :func:`_proc_stat` samples used by other processes
    (busy time less ``own_cpu_s`` seconds of this process's CPU time)."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    busy = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, busy - own_cpu_s * os.sysconf("SC_CLK_TCK")) / (after[0] - before[0])


def wait_quiet(threshold: float | None, max_wait_s: float) -> dict[str, Any]:
    """Wait (at most ``max_wait_s`` seconds) until other processes keep the CPUs busy less than ``threshold``
    of a 1 s sample."""
    t0 = time.time()
    while True:
        c0, s0 = time.process_time(), _proc_stat()
        time.sleep(1.0)
        busy = others_busy(s0, _proc_stat(), time.process_time() - c0)
        if threshold is None or busy is None or busy < threshold or time.time() - t0 >= max_wait_s:
            break
        time.sleep(3.0)
    return {"others_busy_before": busy, "waited_s": round(time.time() - t0, 1), "quiet_threshold": threshold}


def measure_one(platform: Any, item: dict[str, Any], rnd: int, workload: Any, gate: tuple[float | None, float],
                disturbed_above: float | None) -> dict[str, Any]:
    """Measure one architecture once (after :func:`wait_quiet`); the record carries the machine's load: load
    averages, other processes' CPU share before and during. Disturbed (others' share during >=
    ``disturbed_above``): status ``failed`` with the measurement kept, so a rerun measures it again."""
    from protran_tune.platforms.records import measurement_record
    from protran_tune.space import Architecture

    quiet = wait_quiet(*gate)
    before, c0, s0 = os.getloadavg(), time.process_time(), _proc_stat()
    rec = measurement_record(platform, Architecture.from_dict(item["architecture"]), workload, repeat=rnd)
    during = others_busy(s0, _proc_stat(), time.process_time() - c0)
    rec.update(label=item["label"], roles=item["roles"], table_id=item["table_id"], round=rnd,
               labels=labels(platform.name, rec["measurement"]), protocol=PROTOCOL[platform.name]["label"],
               host={"loadavg_before": list(before), "loadavg_after": list(os.getloadavg()), "cpu_count": os.cpu_count(),
                     **quiet, "others_busy_during": during},
               script="benchmarks/bench_nas_models.py measure")
    if disturbed_above is not None and during is not None and during >= disturbed_above and rec["status"] == "ok":
        rec.update(status="failed", error=f"disturbed: other processes used {during:.0%} of the CPUs during the measurement")
    return rec


def _line(rec: dict[str, Any], seconds: float) -> str:
    """Progress text of one record."""
    m, host = rec["measurement"], rec["host"]
    shown = "" if m is None else (f"{m['latency_s'] * 1e3:.3f} ms/batch, {m['energy_j']:.4g} J/batch, "
                                  f"peak {m['peak_power_w']:.1f} W [{m['source']}]")
    fmt = (lambda v: "-" if v is None else f"{v:.0%}")
    return (f"r{rec['round']} {rec['label']:>12} {shown} {rec['error'] or ''} ({seconds:.1f} s; load "
            f"{host['loadavg_before'][0]:.2f}; others {fmt(host['others_busy_before'])} before, "
            f"{fmt(host['others_busy_during'])} during; waited {host['waited_s']} s)")


def measure(args: argparse.Namespace) -> int:
    """Measure the selection's architectures on ``--platform``, interleaved, resuming from ``--out``."""
    if args.rounds < 1:
        _fail(f"--rounds must be at least 1, got {args.rounds}")
    if not Path(args.selection).exists():
        _fail(f"no selection file {args.selection}: run the select step first")
    items = json.loads(Path(args.selection).read_text())["measure"]
    spec = PROTOCOL[args.platform]
    from protran_tune.platforms.base import Workload
    from protran_tune.platforms.records import finish_record, record_key, records_to_skip

    workload = Workload(batch_size=spec["batch_size"], seq_len=spec["seq_len"])
    out = Path(args.out)
    done = records_to_skip(out, retry_failed=True) if out.exists() else {}
    todo = [(it, r) for it, r in job_order(items, args.rounds)
            if record_key({"arch_hash": it["arch_hash"], "platform": args.platform, "workload": workload.to_dict(),
                           "repeat": r}) not in done]
    print(f"measure {args.platform}: {len(items)} architectures x {args.rounds} rounds, {len(todo)} to measure "
          f"({spec['label']}); out {out}", file=sys.stderr, flush=True)
    if args.dry_run:
        for it, r in todo:
            print(f"  r{r} {it['label']:>12} {it['arch_hash']} {','.join(it['roles'])}")
        return 0
    if not todo:
        return 0
    platform = open_platform(args.platform)
    failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("a") as fh:
            for i, (it, r) in enumerate(todo, 1):
                for attempt in range(1, args.attempts + 1):
                    t0 = time.perf_counter()
                    rec = finish_record(measure_one(platform, it, r, workload, (args.quiet_below, args.quiet_wait_s),
                                                   args.disturbed_above), fh)
                    print(f"[{i}/{len(todo)}] {_line(rec, time.perf_counter() - t0)}", file=sys.stderr, flush=True)
                    if rec["status"] == "ok" or not str(rec["error"]).startswith("disturbed"):
                        break
                failed += rec["status"] != "ok"
    finally:
        platform.close()
    return 1 if failed else 0


# --------------------------------------------------------------------------- report
def per_arch(path: Path) -> dict[str, dict[str, Any]]:
    """Ok records of ``path`` by arch hash: per-round values per sequence, their medians and the labels."""
    from protran_tune.platforms.records import read_records

    out: dict[str, dict[str, Any]] = {}
    for _, rec in read_records(path, repair=False):
        m = rec.get("measurement")
        if rec.get("status") != "ok" or not m:
            continue
        a = out.setdefault(rec["arch_hash"], {"label": rec.get("label"), "rounds": {}, "labels": rec.get("labels", {}),
                                              "loadavg_1min": [], "others_busy_during": [], "device": m["device"],
                                              "batch_size": m["batch_size"]})
        b = m["batch_size"]
        a["rounds"][rec.get("round", rec.get("repeat", 0))] = {
            "latency_s": m["latency_s"] / b, "energy_j": None if m["energy_j"] is None else m["energy_j"] / b,
            "peak_power_w": m["peak_power_w"], "latency_ci_rel": m["latency_ci_rel"]}
        a["loadavg_1min"].append(rec.get("host", {}).get("loadavg_before", [None])[0])
        a["others_busy_during"].append(rec.get("host", {}).get("others_busy_during"))
    for a in out.values():
        a["median"] = {k: statistics.median(v[k] for v in a["rounds"].values()) if all(v[k] is not None for v in a["rounds"].values())
                       else None for k in HARDWARE}
    return out


def compare(base: dict[str, Any], pk: dict[str, Any]) -> dict[str, Any]:
    """Baseline / pick ratio per figure (medians), its range over rounds (paired by round) and the target check."""
    rows = {}
    for k in HARDWARE:
        b, p = base["median"][k], pk["median"][k]
        ratio = b / p if b is not None and p else None
        paired = [base["rounds"][r][k] / pk["rounds"][r][k] for r in base["rounds"]
                  if r in pk["rounds"] and base["rounds"][r][k] is not None and pk["rounds"][r][k]]
        span = (lambda a: [min(v[k] for v in a["rounds"].values()), max(v[k] for v in a["rounds"].values())]
                if b is not None and p is not None else None)
        rows[k] = {"baseline": b, "pick": p, "ratio": ratio, "ratio_range_paired": [min(paired), max(paired)] if paired else None,
                   "baseline_range": span(base), "pick_range": span(pk),
                   "target": TARGETS[k], "met": None if ratio is None else ratio >= TARGETS[k],
                   "source": base["labels"].get(k)}
    return rows


def comparisons(selection: dict[str, Any], data: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (baseline, platform, pick setting, pick kind) with both sides measured."""
    out = []
    for platform, archs in data.items():
        own = PROTOCOL[platform]["setting"]
        for b, base in selection["baselines"].items():
            for setting in sorted(selection["settings"], key=lambda s: s != own):
                for kind in ("by_latency", "by_energy"):
                    m = selection["settings"][setting]["picks"][b][kind]
                    if m is None or base["arch_hash"] not in archs or m["arch_hash"] not in archs:
                        continue
                    out.append({"baseline": b, "platform": platform, "pick_setting": setting, "pick_kind": kind,
                                "primary": setting == own and kind == "by_latency", "pick_id": m["table_id"],
                                "pick_summary": m["summary"], "pick_glue": m["table"]["glue"], "baseline_glue": base["glue"],
                                "baseline_glue_std": base["glue_std"], "baseline_accuracy_source": base["accuracy_source"],
                                "rounds": [len(archs[base["arch_hash"]]["rounds"]), len(archs[m["arch_hash"]]["rounds"])],
                                "figures": compare(archs[base["arch_hash"]], archs[m["arch_hash"]])})
    return out


def print_table(rows: list[dict[str, Any]], data: dict[str, Any]) -> None:
    """The comparison table on stdout (per sequence; ms, mJ, W)."""
    scale = {"latency_s": (1e3, "ms"), "energy_j": (1e3, "mJ"), "peak_power_w": (1.0, "W")}
    print(f"{'baseline':10} {'platform':8} {'pick':22} {'figure':13} {'baseline':>10} {'pick':>10} {'ratio':>6} "
          f"{'target':>6}  met  source")
    for c in rows:
        tag = c["pick_id"] + ("" if c["primary"] else f" ({c['pick_setting']},{c['pick_kind'][3:]})")
        for k, f in c["figures"].items():
            s, unit = scale[k]
            val = (lambda v: "-" if v is None else f"{v * s:.4g}")
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}"
            met = "-" if f["met"] is None else ("yes" if f["met"] else "NO")
            print(f"{c['baseline']:10} {c['platform']:8} {tag:22} {k + ' ' + unit:13} {val(f['baseline']):>10} "
                  f"{val(f['pick']):>10} {ratio:>6} {f['target']:>5}x  {met:4} {f['source']}")
    for p in data:
        print(f"{p}: {CAVEATS[p]}")
    if "cuda" not in data:
        print("cuda: no records yet (run the measure step on the GPU machine)")


def plot(rows: list[dict[str, Any]], path: Path, fronts: dict[str, str]) -> Path:
    """Grouped bars per figure (rows) and platform (columns): baseline vs pick, ratio above the pick;
    ``fronts``: where each platform's picks come from."""
    from protran_tune.reporting.figures import pyplot, save_figure

    plt = pyplot()
    names = {"cuda": "H200 (batch 128x128)", "cpu": "CPU (batch 1x128)"}
    units = {"latency_s": ("latency, ms/seq", 1e3), "energy_j": ("energy, mJ/seq", 1e3), "peak_power_w": ("peak power, W", 1.0)}
    fig, axes = plt.subplots(3, 2, figsize=(9.5, 9.0), squeeze=False)
    for j, platform in enumerate(("cuda", "cpu")):
        prim = [c for c in rows if c["platform"] == platform and c["primary"]]
        for i, (k, (ylabel, s)) in enumerate(units.items()):
            ax = axes[i][j]
            modelled = platform == "cpu" and k != "latency_s"
            ax.set_title(f"{names[platform]}" + (" - modelled" if modelled else "") + f"; picks: {fronts[platform]}", fontsize=8)
            ax.set_ylabel(ylabel)
            if not prim:
                ax.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=ax.transAxes, color="#888888")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            for x, c in enumerate(prim):
                f = c["figures"][k]
                for dx, side, color in ((-0.2, "baseline", "#9e9e9e"), (0.2, "pick", "#1f77b4")):
                    if f[side] is not None:
                        lo, hi = f[f"{side}_range"]
                        ax.bar(x + dx, f[side] * s, 0.38, color=color, hatch="//" if modelled else None,
                               yerr=[[(f[side] - lo) * s], [(hi - f[side]) * s]], capsize=3, ecolor="#333333")
                if f["ratio"] is not None:
                    ax.text(x + 0.2, f["pick_range"][1] * s, f"{f['ratio']:.2f}x", ha="center", va="bottom", fontsize=8,
                            color="#2ca02c" if f["met"] else "#d62728")
            ax.set_xticks(range(len(prim)), [f"{c['baseline']} ({c['baseline_glue']:.1f}{' pred.' if c['baseline_glue_std'] else ''})\n"
                                             f"vs {c['pick_id']} ({c['pick_glue']:.1f})"
                                             for c in prim], fontsize=8)
            ax.margins(y=0.18)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("#9e9e9e", "#1f77b4")]
    fig.legend(handles, ["baseline", "pick"], loc="upper right", fontsize=8, ncol=2)
    fig.suptitle("baseline / pick, median of 3 interleaved rounds (bars: min-max); label: ratio, GLUE in brackets\n"
                 "targets: 1.5x latency and energy, 1.1x peak power; hatched: modelled", fontsize=9, x=0.02, ha="left")
    return save_figure(fig, path, dpi=110)


def load_summary(path: Path) -> dict[str, Any]:
    """The machine's load over a file's records: 1-min load average and other processes' CPU share during the
    measurements (ok records), and how many records were failed or disturbed (left out)."""
    from protran_tune.platforms.records import read_records

    recs = [r for _, r in read_records(path, repair=False)]
    ok = [r.get("host", {}) for r in recs if r.get("status") == "ok"]
    stat = (lambda xs: None if not xs else {"median": statistics.median(xs), "max": max(xs)})
    return {"records": len(recs), "ok": len(ok), "left_out": len(recs) - len(ok),
            "disturbed": sum(str(r.get("error", "")).startswith("disturbed") for r in recs),
            "loadavg_1min": stat([h["loadavg_before"][0] for h in ok if h.get("loadavg_before")]),
            "others_busy_during": stat([h["others_busy_during"] for h in ok if h.get("others_busy_during") is not None])}


def report(args: argparse.Namespace) -> int:
    """Join the platform files into the JSON, the PNG and the printed table."""
    selection = json.loads(Path(args.selection).read_text())
    files = {"cuda": Path(args.cuda), "cpu": Path(args.cpu)}
    data = {p: per_arch(f) for p, f in files.items() if f.exists()}
    data = {p: d for p, d in data.items() if d}
    rows = comparisons(selection, data)
    print_table(rows, data)
    load = {p: load_summary(files[p]) for p in data}
    for p, s in load.items():
        busy = s["others_busy_during"]
        print(f"{p}: {s['ok']} ok records ({s['left_out']} left out, {s['disturbed']} disturbed); other processes' CPU "
              f"share during the measurements: " + ("-" if busy is None else f"median {busy['median']:.0%}, max {busy['max']:.0%}"))
    fronts = {p: selection["settings"][spec["setting"]]["front_source"] for p, spec in PROTOCOL.items()}
    png = plot(rows, RESULTS / "nas_models.png", fronts)
    out = {"description": __doc__.split("\n\n")[0], "commands": COMMANDS, "protocol": PROTOCOL, "targets": TARGETS,
           "files": {p: str(f.relative_to(REPO)) if f.is_relative_to(REPO) else str(f) for p, f in files.items()},
           "missing": [p for p in files if p not in data], "units": "per sequence: s, J; peak power W",
           "baselines": {b: {k: v for k, v in base.items() if k != "architecture"} for b, base in selection["baselines"].items()},
           "fronts": {s: {k: sel.get(k) for k in ("front_source", "rule", "note")} for s, sel in selection["settings"].items()},
           "measured": {p: {h: {k: v for k, v in a.items()} for h, a in d.items()} for p, d in data.items()},
           "load": load, "caveats": {p: CAVEATS[p] for p in data}, "comparisons": rows, "figure": str(png.relative_to(REPO))}
    (RESULTS / "nas_models.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'nas_models.json'} and {png}")
    return 0


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run one step (``select``, ``measure`` or ``report``); returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="step", required=True)
    p = sub.add_parser("select", help="fronts, baselines and picks -> the selection file")
    p.add_argument("--out", default=str(SELECTION))
    p = sub.add_parser("measure", help="measure the selection on one platform (resumable)")
    p.add_argument("--platform", choices=sorted(PROTOCOL), required=True)
    p.add_argument("--out", required=True, help="JSON lines, appended (resumed)")
    p.add_argument("--selection", default=str(SELECTION))
    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--quiet-below", type=float, default=None,
                   help="before each measurement wait until other processes use less than this fraction (0-1) of "
                        "the CPUs (at most --quiet-wait-s)")
    p.add_argument("--disturbed-above", type=float, default=None,
                   help="a measurement during which other processes used at least this fraction of the CPUs is "
                        "recorded as failed ('disturbed') and repeated (--attempts); default: kept, load recorded")
    p.add_argument("--quiet-wait-s", type=float, default=300.0, help="longest wait for quiet, seconds (then measure anyway)")
    p.add_argument("--attempts", type=int, default=3, help="measurements of one (architecture, round) while disturbed")
    p.add_argument("--dry-run", action="store_true", help="print what would be measured, in order, and stop")
    p = sub.add_parser("report", help="join the platform files: JSON, PNG, table")
    p.add_argument("--selection", default=str(SELECTION))
    p.add_argument("--cuda", default=str(RESULTS / "nas_models_cuda.jsonl"))
    p.add_argument("--cpu", default=str(RESULTS / "nas_models_cpu.jsonl"))
    args = ap.parse_args(argv)
    return {"select": select, "measure": measure, "report": report}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())

"""``protran-tune report``: loading both file formats, baseline normalisation, figures, summary, errors.

Fixtures in ``tests/fixtures/measurements/`` are recorded runs of this project: ``cpu_*`` on this
machine's CPU (``protran-tune measure --platform cpu``, modelled energy), ``cuda_h200_seeds3.jsonl``
three Latin-hypercube seed architectures on an NVIDIA H200 (NVML), ``cpu_seeds3_b4_s64.jsonl`` the same
three on the CPU.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from protran_tune.cli import main
from protran_tune.platforms import Measurement
from protran_tune.reporting import (
    SECTIONS,
    Figure,
    Section,
    build_report,
    compare_platforms,
    load_measurement_file,
    load_measurements,
    measurement_notes,
    plot_power_trace,
    register_section,
)
from protran_tune.reporting.power import peak_sample, run_window
from protran_tune.space import Architecture

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "measurements"
CUDA = FIXTURES / "cuda_h200_seeds3.jsonl"
CPU_SEEDS = FIXTURES / "cpu_seeds3_b4_s64.jsonl"
CPU_INFER = FIXTURES / "cpu_inference_b4_s64.jsonl"
CPU_TRAIN = FIXTURES / "cpu_training_b4_s64.jsonl"


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measurement(platform: str, latency_s: float, energy_j: float | None, peak_w: float | None, batch: int = 2) -> dict:
    unavailable = {}
    if energy_j is None:
        unavailable.update(energy_j="no sensor", energy_above_idle_j="no sensor")
    if peak_w is None:
        unavailable["peak_power_w"] = "no sensor"
    unavailable.setdefault("energy_above_idle_j", "no idle")
    unavailable["idle_power_w"] = "no idle"
    unavailable["mean_power_w"] = "no idle"
    return Measurement(
        platform=platform, device=f"{platform} device", mode="inference", batch_size=batch, seq_len=8, repeats=5,
        latency_s=latency_s, latency_iqr_s=0.0, latency_ci_rel=0.01, source="measured:test", energy_j=energy_j,
        peak_power_w=peak_w, unavailable=unavailable,
    ).to_dict()


def record(arch: Architecture, m: dict | None, status: str = "ok") -> str:
    return json.dumps({
        "arch_hash": arch.content_hash(), "architecture": arch.to_dict(), "platform": m["platform"] if m else "fast",
        "status": status, "error": None if m else "MeasurementError: boom", "measurement": m,
        "workload": {"mode": "inference", "batch_size": 2, "seq_len": 8},
    })


ARCHS = [Architecture.homogeneous(n, h, 2, 256) for n, h in ((1, 64), (2, 128), (3, 256), (4, 512))]


@pytest.fixture
def two_platforms(tmp_path: Path) -> tuple[Path, Path]:
    """``fast`` (our records, batch 2) and ``slow`` (ProTran format, per sequence), 3 architectures shared."""
    fast = tmp_path / "fast.jsonl"
    lines = [
        # per sequence: latency 0.5, 2.0, 4.0 x slow; energy 0.25, n/a, 1.0 x slow; peak 0.1 x slow each
        record(ARCHS[0], measurement("fast", 2 * 0.05, 2 * 0.25, 10.0)),
        record(ARCHS[1], measurement("fast", 2 * 0.40, None, 20.0)),
        record(ARCHS[2], measurement("fast", 2 * 1.60, 2 * 4.0, 30.0)),
        record(ARCHS[3], None, status="failed"),  # failed: left out
    ]
    fast.write_text("\n".join(lines) + "\n")
    slow = tmp_path / "results_slow_b1_r1.json"
    perf = [(0.10, 1.0, 100.0), (0.20, 3.0, 200.0), (0.40, 4.0, 300.0), (0.80, 5.0, 400.0)]
    slow.write_text(json.dumps({
        f"key{i}": {"model_dict": a.to_model_dict(), "model_type": "x", "embedding": "[]",
                    "performance": {"latency": lat, "energy": en, "peak_power": pk}}
        for i, (a, (lat, en, pk)) in enumerate(zip(ARCHS, perf))
    }))
    return fast, slow


def test_baseline_normalisation_equals_hand_computed_ratios(two_platforms):
    fast, slow = two_platforms
    loaded = load_measurements([fast, slow])
    assert loaded.labels == ["fast", "slow"]
    assert loaded.get("slow").info["device"] == "slow" and loaded.get("slow").info["batch_size"] == 1
    assert loaded.get("fast").info["failed"] == 1
    c = compare_platforms(loaded.datasets, "slow")
    assert c.platforms == ["slow", "fast"]
    assert set(c.common) == {a.content_hash() for a in ARCHS[:3]}  # the 4th failed on "fast"
    assert c.ratios["fast"]["latency_s"] == pytest.approx((0.5 * 2.0 * 4.0) ** (1 / 3))  # 2**(2/3)
    assert c.ratios["fast"]["energy_j"] == pytest.approx(math.sqrt(0.25 * 1.0))  # one value missing
    assert c.counts["fast"] == {"latency_s": 3, "energy_j": 2, "peak_power_w": 3}
    assert c.ratios["fast"]["peak_power_w"] == pytest.approx(0.1)
    assert c.ratios["slow"] == {"latency_s": 1.0, "energy_j": 1.0, "peak_power_w": 1.0}
    assert c.baseline_values["latency_s"] == pytest.approx((0.1 * 0.2 * 0.4) ** (1 / 3))
    flipped = compare_platforms(loaded.datasets, "fast")
    assert flipped.ratios["slow"]["latency_s"] == pytest.approx(1 / c.ratios["fast"]["latency_s"])


def test_record_values_are_per_sequence_and_repeats_reduce_to_the_median(tmp_path):
    path = tmp_path / "rep.jsonl"
    a = ARCHS[0]
    path.write_text("\n".join(record(a, measurement("p", lat, 1.0, pk, batch=4)) for lat, pk in
                              ((0.4, 10.0), (0.8, 30.0), (0.2, 20.0))) + "\n")
    (d,) = load_measurement_file(path)
    assert d.values[a.content_hash()] == {"latency_s": pytest.approx(0.1), "energy_j": pytest.approx(0.25), "peak_power_w": 20.0}
    assert len(d.measurements) == 3


def test_real_fixtures_cpu_vs_h200_on_common_seed_architectures(tmp_path):
    cuda, cpu = records(CUDA), records(CPU_SEEDS)
    common = {r["arch_hash"] for r in cuda} & {r["arch_hash"] for r in cpu}
    assert len(common) == 3
    rc = main(["report", "-m", str(CPU_SEEDS), str(CUDA), "--baseline", "cuda", "--out", str(tmp_path / "r")])
    assert rc == 0
    loaded = load_measurements([CPU_SEEDS, CUDA])
    c = compare_platforms(loaded.datasets, "cuda")
    per_seq = {p: {r["arch_hash"]: r["measurement"]["latency_s"] / r["measurement"]["batch_size"] for r in recs}
               for p, recs in (("cpu", cpu), ("cuda", cuda))}
    expected = math.exp(np.mean([math.log(per_seq["cpu"][h] / per_seq["cuda"][h]) for h in common]))
    assert c.ratios["cpu"]["latency_s"] == pytest.approx(expected)
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert f"{c.ratios['cpu']['latency_s']:.4g} (n=3)" in summary


def test_report_writes_figures_and_a_summary_linking_them(tmp_path):
    out = tmp_path / "report"
    result = build_report([CUDA, CPU_INFER, CPU_TRAIN], out, baseline="cpu",
                          options={"traces_per_platform": 1})
    names = [n for n, _ in result.sections]
    assert names.index("power-traces") < names.index("platform-comparison")
    assert "No architecture was measured on all of ['cuda', 'cpu', 'cpu:training']" in dict(result.sections)["platform-comparison"].text
    assert not [p for p in result.figures if p.name.startswith("platform_comparison")]
    traces = [p for p in result.figures if p.name.startswith("power_trace_")]
    assert {p.name.split("_")[2] for p in traces} == {"cuda", "cpu", "cpu-training"}
    summary = result.summary.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", summary)
    assert sorted(links) == sorted(p.name for p in result.figures)
    for link in links:
        image = matplotlib.image.imread(out / link)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
        assert float(np.std(image[..., :3])) > 0.05  # not blank
    assert "cpu:training" in summary and "modelled:cpu-time" in summary and "measured:nvml" in summary


def test_cpu_inference_vs_training_comparison_on_recorded_files(tmp_path):
    loaded = load_measurements([CPU_INFER, CPU_TRAIN])
    assert loaded.labels == ["cpu", "cpu:training"]
    c = compare_platforms(loaded.datasets, "cpu")
    assert len(c.common) == 4
    inf = {r["arch_hash"]: r["measurement"] for r in records(CPU_INFER)}
    tr = {r["arch_hash"]: r["measurement"] for r in records(CPU_TRAIN)}
    hand = math.exp(np.mean([math.log((tr[h]["latency_s"] / tr[h]["batch_size"]) / (inf[h]["latency_s"] / inf[h]["batch_size"]))
                             for h in c.common]))
    assert c.ratios["cpu:training"]["latency_s"] == pytest.approx(hand)
    assert c.ratios["cpu:training"]["latency_s"] > 1  # forward + backward + optimiser step costs more than forward


def test_power_trace_figure_marks_the_run_peak_and_idle(tmp_path):
    rec = records(CUDA)[0]
    m = Measurement.from_dict(rec["measurement"])
    start, end = run_window(m)
    assert (start, end) == (m.meta["phases"]["warmup"][0], m.meta["phases"]["energy_window"][1])
    t_peak, w_peak = peak_sample(m)
    assert w_peak == pytest.approx(m.peak_power_w) and start <= t_peak <= end
    assert w_peak > m.idle_power_w
    path = plot_power_trace(m, tmp_path / "trace.png", arch_hash=rec["arch_hash"])
    assert matplotlib.image.imread(path).shape[1] > 600
    bare = Measurement.from_dict({**rec["measurement"], "power_trace": []})
    with pytest.raises(ValueError, match="has no power trace"):
        plot_power_trace(bare, tmp_path / "none.png")


def test_shared_dataset_fig4_on_the_16_seed_models(measurement_files, tmp_path):
    result = build_report(measurement_files, tmp_path / "r", baseline="gpu_a100", sections=["platform-comparison"])
    loaded = load_measurements(measurement_files)
    c = compare_platforms(loaded.datasets, "gpu_a100")
    a100 = json.loads(next(p for p in measurement_files if "a100" in p.name).read_text())
    first16 = [Architecture.from_model_dict(v["model_dict"]).content_hash() for v in list(a100.values())[:16]]
    assert set(c.common) == set(first16)
    m1 = json.loads(next(p for p in measurement_files if "gpu_m1-pro" in p.name).read_text())
    by_hash = {Architecture.from_model_dict(v["model_dict"]).content_hash(): v["performance"] for v in m1.values()}
    a100_by_hash = {Architecture.from_model_dict(v["model_dict"]).content_hash(): v["performance"] for v in a100.values()}
    hand = math.exp(np.mean([math.log(by_hash[h]["energy"] / a100_by_hash[h]["energy"]) for h in first16]))
    assert c.ratios["gpu_m1-pro"]["energy_j"] == pytest.approx(hand)
    assert [p.name for p in result.figures] == ["platform_comparison_vs_gpu_a100.png"]


def test_h200_fixture_against_the_recorded_a100(measurement_files, tmp_path):
    a100 = next(p for p in measurement_files if "a100" in p.name)
    c = compare_platforms(load_measurements([a100, CUDA]).datasets, "gpu_a100")
    assert len(c.common) == 3 and c.counts["cuda"]["peak_power_w"] == 3


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, two_platforms):
    fast, slow = two_platforms
    out = tmp_path / "out"
    assert main(["report", "-m", str(fast), str(slow), "--baseline", "a100", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown baseline platform 'a100'" in err and "['fast', 'slow']" in err and "Traceback" not in err
    assert not out.exists()  # nothing written on bad input
    bad = tmp_path / "bad.jsonl"
    bad.write_text(fast.read_text().splitlines()[0] + "\n{not json\n")
    assert main(["report", "-m", str(bad), "--out", str(out)]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    broken = tmp_path / "results_x_b1_r1.json"
    broken.write_text(json.dumps({"k": {"model_dict": {"l": 2, "o": [], "h": [], "f": []}, "performance": {}}}))
    assert main(["report", "-m", str(broken), "--out", str(out)]) == 2
    assert "results_x_b1_r1.json: record 'k'" in capsys.readouterr().err
    negative = tmp_path / "neg.jsonl"
    negative.write_text(json.dumps({"arch_hash": "x", "status": "ok", "measurement": {"latency_s": -1}}) + "\n")
    assert main(["report", "-m", str(negative), "--out", str(out)]) == 2
    assert "neg.jsonl:1: bad measurement" in capsys.readouterr().err
    assert main(["report", "-m", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["report", "-m", str(fast), "--section", "nope", "--out", str(out)]) == 2
    assert "unknown report section(s) ['nope']" in capsys.readouterr().err


def test_normaliser_files_are_skipped_and_noted(tmp_path, two_platforms):
    fast, slow = two_platforms
    norm = tmp_path / "results_slow_b1_r1.max_values.json"
    norm.write_text(json.dumps({"max_latency": 1, "max_energy": 1, "max_peak_power": 1}))
    result = build_report([fast, slow, norm], tmp_path / "r")
    assert "Skipped (normaliser file" in result.summary.read_text()
    with pytest.raises(ValueError, match="normaliser file"):
        load_measurement_file(norm)


def test_a_registered_section_appears_in_order(tmp_path, two_platforms):
    fast, slow = two_platforms

    def learning_section(ctx):
        if "curve" not in ctx.options:
            return None
        path = ctx.figure_path("learning.png")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(ctx.options["curve"])
        fig.savefig(path)
        plt.close(fig)
        return Section("Learning curves", "MSE by sample size.", [Figure(path, "learning curve")])

    register_section("learning-test", learning_section, order=60)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_section("learning-test", learning_section)
        without = build_report([fast, slow], tmp_path / "a")
        assert "learning-test" not in [n for n, _ in without.sections]
        result = build_report([fast, slow], tmp_path / "b", options={"curve": [3, 2, 1]})
        names = [n for n, _ in result.sections]
        assert names.index("power-traces") < names.index("platform-comparison") < names.index("learning-test")
        text = result.summary.read_text()
        assert text.index("## Platforms relative") < text.index("## Learning curves")
        assert "![learning curve](learning.png)" in text
    finally:
        SECTIONS[:] = [(n, b) for n, b in SECTIONS if n != "learning-test"]


def test_report_says_which_numbers_are_modelled_or_imprecise(tmp_path):
    """Recorded CPU (modelled energy, CI target missed) and H200 (measured, precise) files."""
    result = build_report([CUDA, CPU_SEEDS], tmp_path / "r")
    names = [n for n, _ in result.sections]
    assert names[0] == "measurement-quality"
    text = dict(result.sections)["measurement-quality"].text
    lines = text.splitlines()
    assert ("- cpu: energy and peak power of all 3 architectures are modelled, not measured (modelled:cpu-time"
            in lines[0])
    assert lines[1].startswith("- cpu: latency missed its precision target on 3 of 3 architectures: the 95% CI "
                               "half-width of the median stayed above the 1% target (median ±31.4%, worst ±62.4%)")
    assert not [line for line in lines if line.startswith("- cuda")]  # NVML-measured and within its 1% target
    assert "## What the numbers are" in result.summary.read_text()


def test_measurement_notes_name_missing_quantities_and_judge_precision_by_the_target():
    def m(ci: float, peak: float | None, meta: dict | None = None) -> Measurement:
        unavailable = {k: "no idle draw" for k in ("energy_above_idle_j", "idle_power_w", "mean_power_w")}
        if peak is None:
            unavailable["peak_power_w"] = "no power sample during the run"
        return Measurement(platform="p", device="d", mode="inference", batch_size=1, seq_len=8, repeats=5,
                           latency_s=1e-3, latency_iqr_s=0.0, latency_ci_rel=ci, source="measured:test",
                           energy_j=1e-3, peak_power_w=peak, unavailable=unavailable, meta=meta or {})

    precise = [m(0.01, 5.0), m(0.02, 5.0)]
    assert measurement_notes(precise, 0.05) == []
    assert measurement_notes([], 0.05) == []
    notes = measurement_notes([m(0.01, None), m(0.08, 5.0)], 0.05)
    assert notes[0] == ("peak power of the device during the run (peak_power_w) is missing on 1 of 2 "
                        "architectures: no power sample during the run")
    assert notes[1].startswith("latency missed its precision target on 1 of 2 architectures")
    # the protocol's own record of why it stopped repeating wins over the comparison with the target
    assert measurement_notes([m(0.08, 5.0, {"stopped_by": "ci"})], 0.05) == []
    assert "on 1 of 1" in measurement_notes([m(0.01, 5.0, {"stopped_by": "time_budget"})], 0.05)[0]


def test_a_single_platform_report_has_no_empty_comparison_section(tmp_path):
    result = build_report([CUDA], tmp_path / "r")
    assert "platform-comparison" not in [n for n, _ in result.sections]
    assert "Platforms relative to a baseline" not in result.summary.read_text()

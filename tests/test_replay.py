"""Recorded datasets, the replay platform, the active-learning replay loop and the replay command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from protran_tune.cli import main
from protran_tune.datasets import load_recorded, recorded_files
from protran_tune.platforms import MeasurementError, get_platform
from protran_tune.space import Architecture, FeatureEncoder, get_space
from protran_tune.workflows.replay import ReplayConfig, run_replay, split_test


def synthetic_records(n: int = 40, seed: int = 0, noise: float = 0.02) -> dict[str, dict]:
    """``n`` random architectures with latency/energy/peak power that follow their FLOPs and width."""
    sp = get_space("flexibert2")
    archs = list(sp.iter_samples(n, seed=seed))
    E = np.stack([sp.embed(a) for a in archs])
    F = FeatureEncoder(sp).transform(E)
    rng = np.random.default_rng(seed)
    gflops, hidden = F[:, 2], F[:, 18]
    latency = 1e-3 * (1 + gflops) * (1 + noise * rng.standard_normal(n))
    energy = 5 * latency * (1 + noise * rng.standard_normal(n))
    peak = 50 + 0.05 * hidden + rng.normal(0, 1, n)
    out = {}
    for i, a in enumerate(archs):
        out[f"{i:032x}"] = {
            "model_dict": a.to_model_dict(),
            "model_type": "synthetic",
            "embedding": str(E[i].tolist()),
            "performance": {"latency": float(latency[i]), "energy": float(energy[i]), "peak_power": float(peak[i])},
        }
    return out


def write_records(path: Path, records: dict) -> Path:
    path.write_text(json.dumps(records))
    return path


@pytest.fixture()
def synthetic_file(tmp_path: Path) -> Path:
    return write_records(tmp_path / "results_synthetic_b4_r2.json", synthetic_records(40))


# ----------------------------------------------------------------------------- loader
def test_loads_all_recorded_files(measurement_files) -> None:
    sizes = {}
    seeds = []
    for f in measurement_files:
        ds = load_recorded(f)
        raw = json.loads(f.read_text())
        assert list(ds.keys) == list(raw)  # file order = original query order, nothing dropped
        assert ds.skipped == ()
        np.testing.assert_allclose(ds.Y.max(0), 1.0)
        assert (ds.Y > 0).all()
        sizes[ds.device] = len(ds)
        seeds.append(ds.embeddings[:16])
    assert sizes["gpu_a100"] == 239 and sizes["npu_ncs"] == 21
    for s in seeds[1:]:  # the shared LHS seed opens every file
        np.testing.assert_array_equal(s, seeds[0])
    assert recorded_files(measurement_files[0].parent) == measurement_files


def test_file_name_and_normaliser(synthetic_file: Path) -> None:
    ds = load_recorded(synthetic_file)
    assert (ds.device, ds.batch_size, ds.runs, len(ds)) == ("synthetic", 4, 2, 40)
    np.testing.assert_allclose(ds.Y * ds.normaliser, ds.Y_raw)
    assert ds.index_of(ds.archs[7]) == 7 and ds.index_of(ds.embeddings[3]) == 3


def test_recorded_normaliser_is_twice_the_seed_maximum(measurement_files, tmp_path: Path) -> None:
    for f in measurement_files:  # the original loop's normaliser, shipped beside every file
        ds = load_recorded(f)
        np.testing.assert_allclose(ds.recorded_normaliser, 2 * ds.Y_raw[:16].max(0), rtol=1e-12)
        assert ds.to_table().meta["recorded_normaliser"] == dict(zip(("latency_s", "energy_j", "peak_power_w"),
                                                                     ds.recorded_normaliser.tolist()))
    path = write_records(tmp_path / "results_n_b1_r1.json", synthetic_records(6))
    assert load_recorded(path).recorded_normaliser is None
    assert "recorded_normaliser" not in load_recorded(path).to_table().meta
    (tmp_path / "results_n_b1_r1.max_values.json").write_text('{"max_latency": 1.0, "max_energy": 2.0}')
    with pytest.raises(ValueError, match=r"results_n_b1_r1.max_values.json: expected max_latency"):
        load_recorded(path)
    (tmp_path / "results_n_b1_r1.max_values.json").write_text('{"max_latency": 1, "max_energy": 2, "max_peak_power": 0}')
    with pytest.raises(ValueError, match="finite positive"):
        load_recorded(path)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda r: r.pop("performance"), r"missing field\(s\) \['performance'\]"),
        (lambda r: r.update(embedding=r["embedding"].replace("[", "[1, ", 1).rsplit(",", 1)[0] + "]"), "disagrees with the model_dict|embedding must be"),
        (lambda r: r["performance"].update(latency=float("nan")), r"performance\['latency'\] must be finite and positive"),
        (lambda r: r["performance"].update(energy=-1.0), r"performance\['energy'\] must be finite and positive"),
        (lambda r: r["performance"].update(peak_power="12 W"), r"performance\['peak_power'\] must be a number"),
        (lambda r: r["model_dict"].update(l=99), "model_dict"),
    ],
)
def test_bad_record_is_named_or_reported(tmp_path: Path, corrupt, message: str) -> None:
    records = synthetic_records(12)
    key = list(records)[5]
    corrupt(records[key])
    path = write_records(tmp_path / "results_bad_b1_r1.json", records)
    with pytest.raises(ValueError, match=f"record '{key}'") as info:
        load_recorded(path)
    assert info.match(message)
    ds = load_recorded(path, on_error="skip")
    assert len(ds) == 11 and key not in ds.keys
    assert [s["key"] for s in ds.skipped] == [key] and ds.skipped[0]["reason"]


def test_inconsistent_embedding_names_positions(tmp_path: Path) -> None:
    records = synthetic_records(6)
    key = list(records)[2]
    emb = json.loads(records[key]["embedding"])
    emb[4] += 1
    records[key]["embedding"] = str(emb)
    path = write_records(tmp_path / "results_x_b1_r1.json", records)
    with pytest.raises(ValueError, match=rf"record '{key}': recorded embedding disagrees .* position\(s\) \[4\]"):
        load_recorded(path)


def test_duplicate_keys_and_architectures_are_errors(tmp_path: Path) -> None:
    records = synthetic_records(5)
    keys = list(records)
    text = json.dumps(records)
    dup = text[:-1] + f', "{keys[0]}": ' + json.dumps(records[keys[0]]) + "}"
    (tmp_path / "d.json").write_text(dup)
    with pytest.raises(ValueError, match="duplicate key"):
        load_recorded(tmp_path / "d.json")
    records["f" * 32] = dict(records[keys[1]])
    path = write_records(tmp_path / "results_d_b1_r1.json", records)
    with pytest.raises(ValueError, match=f"same architecture as record '{keys[1]}'"):
        load_recorded(path)
    with pytest.raises(FileNotFoundError):
        load_recorded(tmp_path / "absent.json")


# ----------------------------------------------------------------------------- platform
def test_replay_platform_answers_from_the_file(synthetic_file: Path) -> None:
    platform = get_platform("replay", dataset=str(synthetic_file))
    ds = platform.dataset
    m = platform.measure(ds.archs[3])
    obj = m.objectives()
    np.testing.assert_allclose([obj["latency_s"], obj["energy_j"], obj["peak_power_w"]], ds.Y_raw[3])
    assert m.source == f"replay:{synthetic_file.name}" and m.batch_size == 4
    assert m.idle_power_w is None and "idle_power_w" in m.unavailable
    other = Architecture.homogeneous(2, 128, 2, 512)
    with pytest.raises(MeasurementError, match="not in the recorded file"):
        platform.measure(other)
    from protran_tune.platforms import Workload

    with pytest.raises(MeasurementError, match="inference measurements only"):
        platform.measure(ds.archs[0], Workload(mode="training"))


# ----------------------------------------------------------------------------- loop
def test_split_is_random_not_the_tail() -> None:
    test = split_test(200, 0.2, seed=0)
    assert len(test) == 40 and len(set(test.tolist())) == 40
    assert test.min() < 100  # not the last 20% in query order
    assert not np.array_equal(test, split_test(200, 0.2, seed=1))
    np.testing.assert_array_equal(test, split_test(200, 0.2, seed=0))


@pytest.mark.parametrize("strategy, seed_mode", [("uncertainty", "recorded"), ("random", "lhs")])
def test_loop_never_queries_the_test_set(synthetic_file: Path, strategy: str, seed_mode: str) -> None:
    ds = load_recorded(synthetic_file)
    cfg = ReplayConfig(regressor="bdt", strategy=strategy, seed_mode=seed_mode, seed_samples=8, budget=20,
                       batch_size=3, seed=2, regressor_params={"n_members": 3, "n_estimators": 8})
    r = run_replay(ds, cfg)
    test, seed, queried = set(r["test_keys"]), r["seed_keys"], r["queried_keys"]
    assert len(test) == 8 and len(seed) == 8 and len(queried) == 12
    assert not test & set(seed + queried)
    assert len(set(seed + queried)) == 20
    if seed_mode == "recorded":  # the file's first records outside the test set
        recorded = [k for k in ds.keys[:8] if k not in test]
        assert seed[: len(recorded)] == recorded
    assert [p["n_samples"] for p in r["curve"]] == [8, 11, 14, 17, 20]
    for p in r["curve"]:
        assert set(p["test_mse"]) == {"latency_s", "energy_j", "peak_power_w"}
        assert all(v >= 0 for v in p["test_mse"].values())
    for name, n in r["samples_to_convergence"].items():
        hits = [p["n_samples"] for p in r["curve"] if p["test_mse"][name] < cfg.threshold]
        assert n == (hits[0] if hits else None)
        assert r["floor"][name]["test_mse"] == min(p["test_mse"][name] for p in r["curve"])


def test_uncertainty_queries_follow_the_acquisition(synthetic_file: Path) -> None:
    from protran_tune.samplers.acquisition import select_queries
    from protran_tune.surrogates import make_surrogate

    ds = load_recorded(synthetic_file)
    params = {"n_members": 3, "n_estimators": 8}
    r = run_replay(ds, ReplayConfig(regressor="bdt", seed_samples=10, budget=11, seed=0, regressor_params=params))
    idx = {k: i for i, k in enumerate(ds.keys)}
    seed = [idx[k] for k in r["seed_keys"]]
    pool = sorted(set(range(len(ds))) - {idx[k] for k in r["test_keys"]} - set(seed))
    fit_rows = sorted(seed)  # the loop fits on the revealed records in file order
    m = make_surrogate("bdt", random_state=0, **params).fit(ds.embeddings[fit_rows].astype(float), ds.Y[fit_rows])
    expected = pool[int(select_queries(m, ds.embeddings[pool].astype(float), k=1)[0])]
    assert r["queried_keys"] == [ds.keys[expected]]


def test_variance_reduction_queries_follow_the_gp(synthetic_file: Path) -> None:
    from protran_tune.samplers.acquisition import select_queries
    from protran_tune.surrogates import make_surrogate

    ds = load_recorded(synthetic_file)
    params = {"kernel": "linear+matern", "encoder": "cost", "maxiter": 20}
    r = run_replay(ds, ReplayConfig(regressor="gp", strategy="variance-reduction", seed_samples=10, budget=12,
                                    batch_size=2, seed=0, regressor_params=params))
    idx = {k: i for i, k in enumerate(ds.keys)}
    seed = sorted(idx[k] for k in r["seed_keys"])
    pool = sorted(set(range(len(ds))) - {idx[k] for k in r["test_keys"]} - set(seed))
    m = make_surrogate("gp", random_state=0, **params).fit(ds.embeddings[seed].astype(float), ds.Y[seed])
    picks = select_queries(m, ds.embeddings[pool].astype(float), k=2, method="variance-reduction")
    assert r["queried_keys"] == [ds.keys[pool[i]] for i in picks]
    assert r["config"]["strategy"] == "variance-reduction"
    with pytest.raises(ValueError, match="needs a GP surrogate"):
        run_replay(ds, ReplayConfig(regressor="bdt", strategy="variance-reduction", seed_samples=10, budget=12))


def test_same_records_give_the_same_model_whatever_the_query_order(synthetic_file: Path) -> None:
    ds = load_recorded(synthetic_file)
    params = {"n_members": 3, "n_estimators": 8}
    runs = [run_replay(ds, ReplayConfig(regressor="bdt", strategy=s, seed_samples=8, budget=32, batch_size=4,
                                        seed=1, regressor_params=params)) for s in ("uncertainty", "random")]
    # both reveal the whole pool of 32 in different orders; the final models then agree exactly
    assert runs[0]["queried_keys"] != runs[1]["queried_keys"]
    assert sorted(runs[0]["queried_keys"]) == sorted(runs[1]["queried_keys"])
    assert runs[0]["curve"][-1]["test_mse"] == runs[1]["curve"][-1]["test_mse"]
    assert runs[0]["curve"][1]["test_mse"] != runs[1]["curve"][1]["test_mse"]


def test_query_seed_changes_only_the_random_queries(synthetic_file: Path) -> None:
    ds = load_recorded(synthetic_file)
    base = dict(regressor="bdt", strategy="random", seed_samples=8, budget=16, batch_size=4, seed=1,
                regressor_params={"n_members": 3, "n_estimators": 8})
    a, again = (run_replay(ds, ReplayConfig(**base)) for _ in range(2))
    b = run_replay(ds, ReplayConfig(**base, query_seed=7))
    assert a["queried_keys"] == again["queried_keys"]
    assert a["test_keys"] == b["test_keys"] and a["seed_keys"] == b["seed_keys"]
    assert a["queried_keys"] != b["queried_keys"]
    assert a["curve"][0]["test_mse"] == b["curve"][0]["test_mse"]  # same seed set, same first model
    with pytest.raises(ValueError, match="query_seed"):
        ReplayConfig(query_seed="7").validate()


@pytest.mark.parametrize("rule", ["recorded", "seed-max-2x"])
def test_normaliser_of_the_original_code(synthetic_file: Path, rule: str) -> None:
    recorded = {"max_latency": 0.5, "max_energy": 3.0, "max_peak_power": 400.0}
    synthetic_file.with_name(synthetic_file.stem + ".max_values.json").write_text(json.dumps(recorded))
    ds = load_recorded(synthetic_file)
    cfg = ReplayConfig(regressor="bdt", seed_samples=8, budget=16, batch_size=4, seed=3, threshold=0.02,
                       normaliser=rule, patience=4, regressor_params={"n_members": 3, "n_estimators": 8})
    r = run_replay(ds, cfg)
    seed_rows = [ds.keys.index(k) for k in r["seed_keys"]]
    scale = np.array([0.5, 3.0, 400.0]) if rule == "recorded" else 2 * ds.Y_raw[seed_rows].max(0)
    np.testing.assert_allclose(list(r["dataset"]["normaliser"].values()), scale)
    final = r["final_predictions"]
    err = (np.array(final["y_pred"]) - np.array(final["y_true"])) / scale
    np.testing.assert_allclose(list(r["curve"][-1]["test_mse"].values()), (err**2).mean(0))
    assert r["dataset"]["recorded_normaliser"] == {"latency_s": 0.5, "energy_j": 3.0, "peak_power_w": 400.0}
    assert r["config"]["normaliser"] == rule and r["patience"] == 4
    from protran_tune.objectives.scoring import samples_to_convergence

    assert r["samples_to_convergence"] == samples_to_convergence(r["curve"], 0.02, cfg.targets, 4)["samples_to_convergence"]


def test_recorded_normaliser_missing_is_a_clear_error(synthetic_file: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="no recorded normaliser"):
        run_replay(load_recorded(synthetic_file), ReplayConfig(normaliser="recorded", seed_samples=8, budget=8))
    rc = main(["replay", "--dataset", str(synthetic_file), "--normaliser", "recorded", "--patience", "10",
               "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "no recorded normaliser" in capsys.readouterr().err
    for bad, message in (({"normaliser": "mean"}, "normaliser must be one of"), ({"patience": -1}, "patience must be"),
                         ({"patience": 2.5}, "patience must be")):
        with pytest.raises(ValueError, match=message):
            ReplayConfig(**bad).validate()


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="strategy must be one of"):
        ReplayConfig(strategy="greedy").validate()
    with pytest.raises(ValueError, match="budget=8 must be >= seed_samples=16"):
        ReplayConfig(budget=8).validate()
    with pytest.raises(ValueError, match="test_fraction"):
        ReplayConfig(test_fraction=1.0).validate()


# ----------------------------------------------------------------------------- command
def test_cli_writes_documented_json(synthetic_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    rc = main(["replay", "--dataset", str(synthetic_file), "--regressor", "bdt", "--seed-samples", "10",
               "--budget", "14", "--batch-size", "2", "--test-fraction", "0.25", "--seed", "1",
               "--regressor-param", "n_members=3", "--regressor-param", "n_estimators=8", "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert [p["n_samples"] for p in r["curve"]] == [10, 12, 14]
    for p in r["curve"]:
        for key in ("test_mse", "kendall_tau", "within_10pct"):
            assert set(p[key]) == {"latency_s", "energy_j", "peak_power_w"}
        assert all(0 <= v <= 1 for v in p["within_10pct"].values())
        assert all(v is None or -1 <= v <= 1 for v in p["kendall_tau"].values())
    assert set(r["samples_to_convergence"]) == {"latency_s", "energy_j", "peak_power_w"}
    assert r["config"]["regressor_params"] == {"n_members": 3, "n_estimators": 8}
    assert r["dataset"]["n_test"] == 10 and set(r["coverage"]) == {"1std", "2std"}
    assert r["timings"]["n_fits"] == 3 and math.isfinite(r["timings"]["total_s"])
    assert r["command"].startswith("protran-tune replay --dataset") and "--surrogate-param n_members=3" in r["command"]
    err = capsys.readouterr().err
    assert "n=10 test MSE" in err and "wrote" in err


def test_cli_bad_input_exit_code(synthetic_file: Path, tmp_path: Path, capsys) -> None:
    assert main(["replay", "--dataset", str(synthetic_file), "--regressor", "dt", "--out", str(tmp_path / "x.json")]) == 2
    assert "no uncertainty model" in capsys.readouterr().err
    assert main(["replay", "--dataset", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.json")]) == 2
    assert "nor an existing file" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_learning_figures_from_replay_results(synthetic_file: Path, tmp_path: Path) -> None:
    from protran_tune.reporting.learning import curve_matrix, plot_learning_curves, plot_predicted_vs_real

    ds = load_recorded(synthetic_file)
    params = {"n_members": 3, "n_estimators": 8}
    rs = [run_replay(ds, ReplayConfig(seed_samples=8, budget=b, batch_size=4, seed=s, regressor_params=params))
          for s, b in ((0, 16), (1, 20))]
    n, v = curve_matrix(rs, "energy_j")
    assert n.tolist() == [8, 12, 16] and v.shape == (2, 3)
    assert v[1, 2] == rs[1]["curve"][2]["test_mse"]["energy_j"]
    fig6 = plot_learning_curves({"bdt": rs}, tmp_path / "fig6.png")
    fig7 = plot_predicted_vs_real(rs[0]["final_predictions"], tmp_path / "fig7.png")
    for f in (fig6, fig7):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gp_replay_cell_reruns_in_fresh_processes_give_the_same_numbers(tmp_path: Path) -> None:
    """A replay cell of the GP benchmark (Raspberry Pi, seed 1, 16 seed records and two query steps of 4),
    run twice by the command in fresh processes, the second with torch's and MKL's generic kernels (the
    arithmetic of another CPU): the same queries and the same test MSE at every point of the curve."""
    import os
    import subprocess
    import sys

    runs = []
    for i, extra in enumerate(({}, {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"})):
        out = tmp_path / f"run{i}.json"
        cmd = [sys.executable, "-c", "import sys; from protran_tune.cli import main; sys.exit(main(sys.argv[1:]))",
               "replay", "--dataset", "protran:cpu_rpi", "--surrogate", "gp", "--surrogate-param", "kernel=linear+matern",
               "--surrogate-param", "encoder=cost", "--budget", "24", "--batch-size", "4", "--seed", "1", "--quiet",
               "--out", str(out)]
        subprocess.run(cmd, env={**os.environ, **extra}, capture_output=True, text=True, check=True, timeout=600)
        runs.append(json.loads(out.read_text()))
    assert runs[0]["queried_keys"] == runs[1]["queried_keys"] and len(runs[0]["queried_keys"]) == 8
    for a, b in zip(runs[0]["curve"], runs[1]["curve"], strict=True):
        assert a["n_samples"] == b["n_samples"]
        for target, mse in a["test_mse"].items():
            assert b["test_mse"][target] == pytest.approx(mse, rel=1e-6)

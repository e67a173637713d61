"""Named targets, the one held-out scorer, and the objective providers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from protran_tune.datasets import load_dataset
from protran_tune.objectives import (
    GLUE_TASKS,
    HARDWARE_TARGETS,
    get_target,
    parse_constraint,
    parse_objective,
    parse_targets,
)
from protran_tune.objectives.providers import PoolLookup, PredictedObjective, ZeroCost
from protran_tune.objectives.scoring import kendall_tau, samples_to_convergence, score_heldout, split_test
from protran_tune.space import Architecture, count_parameters, encoder_flops


# ----------------------------------------------------------------------------- targets
def test_targets_have_units_and_directions_and_old_spellings_map_to_them() -> None:
    assert HARDWARE_TARGETS == ("latency_s", "energy_j", "peak_power_w")
    assert get_target("latency").name == "latency_s" and get_target("peak_power").unit == "W"
    assert get_target("glue").direction == "maximize" and get_target("energy_j").direction == "minimize"
    assert get_target("sst").name == "sst2" and {get_target(t).unit for t in GLUE_TASKS} == {"points"}
    assert [t.name for t in parse_targets("glue, qnli")] == ["glue", "qnli"]
    with pytest.raises(ValueError, match="unknown target 'glu': known targets are"):
        parse_targets("glu")
    with pytest.raises(ValueError, match="named twice"):
        parse_targets("latency,latency_s")


def test_objective_and_constraint_specs() -> None:
    assert parse_objective("glue:max").name == "glue" and parse_objective("latency_s").direction == "minimize"
    with pytest.raises(ValueError, match="is to maximize, not minimize"):
        parse_objective("glue:min")
    with pytest.raises(ValueError, match="direction must be 'max' or 'min'"):
        parse_objective("glue:up")
    assert parse_constraint("latency_s<=0.005") == ("latency_s", "<=", 0.005)
    assert parse_constraint("glue >= 70") == ("glue", ">=", 70.0)
    with pytest.raises(ValueError, match="must read TARGET<=BOUND"):
        parse_constraint("latency_s<0.005")
    with pytest.raises(ValueError, match="not a number"):
        parse_constraint("latency_s<=fast")


# ----------------------------------------------------------------------------- scorer
def test_the_split_is_drawn_first_and_is_reproducible() -> None:
    a, b = split_test(100, 0.2, 3), split_test(100, 0.2, 3)
    assert len(a) == 20 and np.array_equal(a, b) and not np.array_equal(a, split_test(100, 0.2, 4))
    with pytest.raises(ValueError, match="leaves 1 for training"):
        split_test(3, 0.5, 0)


def test_scores_match_hand_computations_and_undefined_tau_is_none() -> None:
    y = np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    pred = np.array([[1.1], [1.9], [3.2], [3.9], [6.5], [5.5]])  # one swapped pair
    depth = np.array([2, 2, 2, 4, 4, 4])
    s = score_heldout(y, pred, np.full_like(pred, 0.15), targets=["glue"], scale=[6.0], depth=depth, n_train=7, top_fraction=0.34)
    assert s.test_mse["glue"] == pytest.approx(np.mean(((pred - y)[:, 0] / 6.0) ** 2))
    assert s.kendall_tau["glue"] == pytest.approx(13 / 15)
    assert s.kendall_tau_within_depth["glue"] == pytest.approx((1.0 * 3 + (1 / 3) * 3) / 6)  # (1 + 1/3) / 2
    assert s.top_k_overlap["glue"] == 1.0  # best 3 (maximised): {4, 5, 6} both ways
    top1 = score_heldout(y, pred, targets=["glue"], top_fraction=0.1)  # best 1: 6.0, predicted best: the row of 5.0
    assert top1.top_k_overlap["glue"] == 0.0
    assert score_heldout(y, pred, targets=["latency_s"], top_fraction=0.1).top_k_overlap["latency_s"] == 1.0  # minimised
    assert s.coverage_1std["glue"] == pytest.approx(3 / 6) and s.n_train == 7  # errors 0.1, 0.1, 0.2, 0.1, 1.5, 0.5
    const = score_heldout(y, np.ones_like(y), targets=["latency_s"])
    assert const.kendall_tau["latency_s"] is None and "kendall_tau_latency_s" not in const.metrics()
    assert const.coverage_1std["latency_s"] is None
    assert kendall_tau(np.array([1.0]), np.array([2.0])) is None


def test_convergence_and_floor_of_a_curve() -> None:
    curve = [{"n_samples": n, "test_mse": {"a": m1, "b": m2}} for n, m1, m2 in ((4, 0.01, 0.02), (6, 0.002, 0.01), (8, 0.001, 0.002))]
    out = samples_to_convergence(curve, 0.003, ["a", "b"])
    assert out["samples_to_convergence"] == {"a": 6, "b": 8} and out["samples_to_convergence_all"] == 8
    assert out["floor"]["b"] == {"test_mse": 0.002, "n_samples": 8}


# ----------------------------------------------------------------------------- providers
def test_zero_cost_values_are_exact() -> None:
    arch = Architecture.homogeneous(4, 256, 4, 1024)
    v = ZeroCost(("params", "flops", "depth")).evaluate([arch])
    assert v.row(0) == {"params": count_parameters(arch), "flops": encoder_flops(arch, 128), "depth": 4}
    assert (v.std == 0).all() and v.sources["params"] == "exact:architecture"
    with pytest.raises(ValueError, match="has no target\\(s\\) \\['glue'\\]"):
        ZeroCost(("glue",))


def test_pool_lookup_reveals_rows_and_names_architectures_outside_the_table() -> None:
    table = load_dataset("protran-nasbench:h200")
    pool = PoolLookup(table, ["glue", "latency_s"])
    outside = Architecture.homogeneous(12, 768, 12, 3072)
    v = pool.evaluate([table.archs[5], outside])
    np.testing.assert_array_equal(v.mean[0], table.values(["glue", "latency_s"])[5])
    assert np.isnan(v.mean[1]).all() and "not in table" in v.details[1]["error"] and not v.in_domain[1]
    assert pool.queries == 1
    with pytest.raises(ValueError, match="has no target\\(s\\) \\['energy_above_idle_j'\\]"):
        PoolLookup(load_dataset("nas-bench-bert"), ["energy_above_idle"])


def test_predicted_hardware_from_a_table_ranks_held_out_rows_and_has_a_std() -> None:
    table = load_dataset("protran-nasbench:h200")
    test = split_test(len(table), 0.2, 0)
    train = np.setdiff1d(np.arange(len(table)), test)[:120]
    pred = PredictedObjective.from_table(table, ["latency_s", "energy_j"], surrogate="gp", rows=train,
                                         kernel="linear+matern", encoder="cost")
    v = pred.evaluate([table.archs[i] for i in test])
    truth = table.values(["latency_s", "energy_j"])[test]
    assert kendall_tau(v.mean[:, 0], truth[:, 0]) > 0.7 and kendall_tau(v.mean[:, 1], truth[:, 1]) > 0.7
    assert (v.std > 0).all() and v.sources["latency_s"] == "predicted:table:protran-nasbench:h200"


def test_the_nas_bench_bert_predictor_states_its_domain() -> None:
    from protran_tune.objectives.accuracy import NasBenchBertAccuracy, outside_domain

    table = load_dataset("nas-bench-bert")
    test = split_test(len(table), 0.2, 1)
    predictor = NasBenchBertAccuracy(["glue", "sst2"], rows=np.setdiff1d(np.arange(len(table)), test))
    inside = [table.archs[i] for i in test[:20]]
    v = predictor.evaluate(inside)
    assert v.in_domain.all() and kendall_tau(v.mean[:, 0], table.values(["glue"])[test[:20], 0]) > 0.4
    mixed = Architecture.from_dict({"layers": [{"hidden": 256, "heads": ["sa-sdp", "c-9"], "feed_forward": [1024]}] * 2})
    deep = Architecture.homogeneous(8, 256, 4, 1024)
    near = Architecture.homogeneous(2, 256, 4, 1024)  # in the domain, close to both
    with pytest.warns(UserWarning, match="2 of 3 architecture\\(s\\) lie outside its domain"):
        out = predictor.evaluate([mixed, deep, near])
    assert list(out.in_domain) == [False, False, True]
    assert "mixes ops" in out.details[0]["warning"] and "8 layers > 4" in out.details[1]["warning"]
    assert outside_domain(Architecture.homogeneous(2, 512, 4, 1024)) == "hidden size 512 > 256"
    with pytest.raises(ValueError, match="has no target\\(s\\) \\['latency_s'\\]"):
        NasBenchBertAccuracy(["latency_s"])


def test_the_out_of_domain_std_is_widened_by_the_stated_factor() -> None:
    from protran_tune.objectives.accuracy import NasBenchBertAccuracy

    deep = Architecture.homogeneous(6, 256, 4, 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = NasBenchBertAccuracy(["glue"], outside_std_factor=1.0, rows=range(200)).evaluate([deep])
        three = NasBenchBertAccuracy(["glue"], outside_std_factor=3.0, rows=range(200)).evaluate([deep])
    assert three.std[0, 0] == pytest.approx(3 * one.std[0, 0]) and three.mean[0, 0] == pytest.approx(one.mean[0, 0])


def test_measured_hardware_on_the_cpu_labels_modelled_energy(tmp_path: Path) -> None:
    from protran_tune.objectives.providers import MeasuredHardware
    from protran_tune.platforms.base import Workload

    provider = MeasuredHardware("cpu", Workload(batch_size=1, seq_len=16, max_repeats=20, min_repeats=5), idle_window_s=0.05,
                                energy_window_s=0.1)
    v = provider.evaluate([Architecture.homogeneous(2, 128, 2, 256)])
    assert np.isfinite(v.mean).all() and (v.mean > 0).all()
    assert v.sources["latency_s"].startswith("measured") and "modelled" in v.sources["energy_j"]
    assert v.details[0]["measurement"]["batch_size"] == 1

"""The held-out scorer's normalisers and the convergence rule (with the original code's patience)."""

from __future__ import annotations

import numpy as np
import pytest

from protran_tune.objectives.scoring import normaliser, renormalise_curve, samples_to_convergence, score_heldout

TARGETS = ("latency_s", "energy_j")


def curve_of(points: list[tuple[int, float, float]]) -> list[dict]:
    return [{"n_samples": n, "test_mse": {"latency_s": a, "energy_j": b}} for n, a, b in points]


def test_patience_counts_passing_samples_without_reset() -> None:
    # batch of 4: passes at 16 (1 sample: the seed point counts once), 20 (+4), fails at 24, passes at 28 (+4), 32 (+4)
    curve = curve_of([(16, 0.001, 0.001), (20, 0.001, 0.001), (24, 0.01, 0.001), (28, 0.001, 0.001), (32, 0.001, 0.001)])
    assert samples_to_convergence(curve, 0.003, TARGETS)["samples_to_convergence_all"] == 16
    r = samples_to_convergence(curve, 0.003, TARGETS, patience=10)
    assert r["samples_to_convergence_all"] == 32  # 1 + 4 + 4 = 9 by 28, 13 > 10 at 32; the failure at 24 did not reset
    assert r["samples_to_convergence"] == {"latency_s": 32, "energy_j": 28}  # energy passes everywhere: 9 at 24, 13 at 28
    assert samples_to_convergence(curve, 0.003, TARGETS, patience=20)["samples_to_convergence_all"] is None
    assert r["floor"]["latency_s"] == {"test_mse": 0.001, "n_samples": 16}


def test_patience_with_one_query_per_step_counts_checks() -> None:
    ok = [(n, 0.001 if n % 3 else 0.1, 0.001) for n in range(16, 60)]  # every third check fails
    hits = [n for n, a, _ in ok if a < 0.003]
    r = samples_to_convergence(curve_of(ok), 0.003, TARGETS, patience=10)
    assert r["samples_to_convergence_all"] == hits[10]  # the 11th passing check
    with pytest.raises(ValueError, match="patience must be a non-negative integer"):
        samples_to_convergence(curve_of(ok), 0.003, TARGETS, patience=-1)


def test_normaliser_rules() -> None:
    y = np.array([[1.0, -8.0], [4.0, 2.0], [2.0, 1.0], [3.0, 5.0]])
    np.testing.assert_array_equal(normaliser(y), [4.0, 8.0])
    np.testing.assert_array_equal(normaliser(y, "seed-max-2x", seed_rows=[1, 2]), [8.0, 4.0])
    np.testing.assert_array_equal(normaliser(y, "recorded", recorded=[10.0, 20.0]), [10.0, 20.0])
    for kwargs, message in (
        ({"rule": "mean"}, "normaliser must be one of"),
        ({"rule": "seed-max-2x"}, "needs the seed rows"),
        ({"rule": "recorded"}, "no recorded normaliser"),
        ({"rule": "recorded", "recorded": [1.0]}, "1 values for 2 targets"),
        ({"rule": "recorded", "recorded": [1.0, 0.0]}, "finite and positive"),
    ):
        with pytest.raises(ValueError, match=message):
            normaliser(y, **kwargs)
    with pytest.raises(ValueError, match="finite and positive"):
        normaliser(np.zeros((3, 2)))


def test_renormalised_curve_equals_scoring_under_the_other_normaliser() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 2, (20, 2))
    pred = y + rng.normal(0, 0.1, y.shape)
    a, b = normaliser(y), np.array([5.0, 0.5])
    point = score_heldout(y, pred, targets=TARGETS, scale=a, n_train=16).curve_point()
    again = renormalise_curve([point], TARGETS, a, b)[0]
    expected = score_heldout(y, pred, targets=TARGETS, scale=b, n_train=16).curve_point()
    for t in TARGETS:
        assert again["test_mse"][t] == pytest.approx(expected["test_mse"][t], rel=1e-12)
    assert again["kendall_tau"] == point["kendall_tau"] and point["test_mse"]["latency_s"] != again["test_mse"]["latency_s"]

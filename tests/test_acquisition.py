"""Query selection: highest normalised uncertainty, k distinct, exclusions, batch diversity, GOBI."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from protran_tune.samplers.acquisition import normalised_uncertainty, select_queries
from protran_tune.space import get_space
from protran_tune.surrogates import make_surrogate
from protran_tune.surrogates.base import EncodedSurrogate


class FixedStd(EncodedSurrogate, BaseEstimator):
    """A real (tiny) surrogate whose std is a fixed function of the input: std_j = |x_j| + 0.01."""

    def __init__(self, encoder: str = "identity", space: str = "flexibert2", random_state: int | None = None) -> None:
        self.encoder = encoder
        self.space = space
        self.random_state = random_state

    def _fit(self, Z, Y):
        self.train_X_ = Z

    def _predict(self, Z, return_std):
        X = Z * self.x_scale_ + self.x_mean_
        mean = np.zeros((len(Z), self.n_outputs_))
        return (mean, np.abs(X[:, : self.n_outputs_]) + 0.01) if return_std else mean


def fitted_fixed(n_out: int = 2, y_max=(1.0, 1.0)) -> FixedStd:
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0, 0.0], list(y_max)])[:, :n_out]
    return FixedStd().fit(X, Y)


def test_picks_highest_normalised_std() -> None:
    C = np.array([[5.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    m = fitted_fixed(y_max=(100.0, 1.0))  # output 0 lives on a 100x larger scale
    # raw std would pick candidate 0 (5.01); normalised by y_max_ candidate 1 wins (1.01 vs 0.06)
    assert select_queries(m, C, k=1).tolist() == [1]
    assert select_queries(m, C, k=1, normaliser=[1.0, 1.0]).tolist() == [0]
    score = normalised_uncertainty(m, C)
    np.testing.assert_allclose(score, [5.01 / 100 + 0.01, 0.01 / 100 + 1.01, 1.01 / 100 + 0.51])
    np.testing.assert_allclose(normalised_uncertainty(m, C, reduce="max"), [0.0501, 1.01, 0.51])


def test_k_distinct_best_first_and_exclude() -> None:
    C = np.column_stack([np.arange(10.0), np.zeros(10)])
    m = fitted_fixed(y_max=(1.0, 1.0))
    picks = select_queries(m, C, k=4, diversity="none")
    assert picks.tolist() == [9, 8, 7, 6]
    picks = select_queries(m, C, k=3, diversity="none", exclude=[9, 7])
    assert picks.tolist() == [8, 6, 5]
    picks = select_queries(m, C, k=10)
    assert sorted(picks.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="only 2 candidates"):
        select_queries(m, C, k=3, exclude=range(8))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        select_queries(m, C, k=0)
    with pytest.raises(ValueError, match="normaliser must be positive"):
        select_queries(m, C, normaliser=[1.0, 0.0])


def test_penalty_spreads_a_batch() -> None:
    # two near-duplicates with the highest std, then a distant candidate with slightly lower std
    C = np.array([[10.0, 0.0], [10.0, 0.001], [9.0, 5.0], [0.0, 0.0], [0.1, 0.1], [0.2, 0.0]])
    m = fitted_fixed(y_max=(1.0, 100.0))
    assert select_queries(m, C, k=2, diversity="none").tolist() == [1, 0]
    picks = select_queries(m, C, k=2, diversity="penalty")
    assert picks[0] == 1 and picks[1] == 2


def test_refuses_surrogate_without_std() -> None:
    sp = get_space("flexibert2")
    E = np.stack([sp.embed(a) for a in sp.iter_samples(12, seed=0)]).astype(float)
    dt = make_surrogate("dt", random_state=0).fit(E, np.arange(24.0).reshape(12, 2))
    with pytest.raises(ValueError, match="no uncertainty model"):
        select_queries(dt, E)


@pytest.fixture(scope="module")
def small_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sp = get_space("flexibert2")
    E = np.stack([sp.embed(a) for a in sp.iter_samples(80, seed=5)]).astype(float)
    Y = np.abs(np.column_stack([E[:, 0] + E[:, 1], E[:, 2] / 50 + 1, E[:, 3] / 1000 + 1])) + 0.1
    return E[:30], Y[:30], E[30:]


def test_kriging_believer_batch_for_gp(small_pool) -> None:
    X, Y, C = small_pool
    gp = make_surrogate("gp", random_state=0, maxiter=15).fit(X, Y)
    one = select_queries(gp, C, k=1)
    batch = select_queries(gp, C, k=3)
    assert batch[0] == one[0] and len(set(batch.tolist())) == 3
    # conditioning on the first pick shrinks the std there
    _, before = gp.predict(C[one], return_std=True)
    _, after = gp.condition_on(C[one]).predict(C[one], return_std=True)
    assert (after < before).all()


def test_gobi_returns_valid_distinct_candidates(small_pool) -> None:
    X, Y, C = small_pool
    m = make_surrogate("boshnas", random_state=0, epochs=40, mc_samples=4, hidden=16, gobi_steps=5).fit(X, Y)
    picks = select_queries(m, C, k=4, exclude=[0, 1, 2])
    assert len(set(picks.tolist())) == 4
    assert not set(picks.tolist()) & {0, 1, 2}
    assert ((0 <= picks) & (picks < len(C))).all()
    std_pick = select_queries(m, C, k=1, method="std")
    assert std_pick[0] == int(np.argmax(normalised_uncertainty(m, C)))
    with pytest.raises(ValueError, match="gobi_select"):
        select_queries(make_surrogate("bdt", n_members=2, n_estimators=3).fit(X, Y), C, method="gobi")


def test_density_weight_demotes_isolated_outliers() -> None:
    # a cluster of moderately uncertain candidates and one isolated, slightly more uncertain outlier
    rng = np.random.default_rng(0)
    cluster = np.column_stack([3.0 + 0.05 * rng.standard_normal(20), 0.05 * rng.standard_normal(20)])
    C = np.vstack([cluster, [[3.5, 40.0]]])
    m = fitted_fixed(y_max=(1.0, 1000.0))
    assert select_queries(m, C, k=1).tolist() == [20]
    assert select_queries(m, C, k=1, density_weight=1.0)[0] < 20
    with pytest.raises(ValueError, match="density_weight must be >= 0"):
        select_queries(m, C, density_weight=-1.0)


# ----------------------------------------------------------------------------- variance reduction
def _joint_reduction(gp, C: np.ndarray) -> np.ndarray:
    """Reference: integrated variance reduction from the GP's joint posterior covariance over ``C``."""
    import torch

    Xt = torch.as_tensor(gp._unit(gp._standardise(C)), dtype=torch.float64)
    m = gp.n_outputs_
    with torch.no_grad():
        cov = gp.model_(Xt.expand(m, *Xt.shape) if m > 1 else Xt).covariance_matrix.numpy().reshape(m, len(C), len(C))
    noise = gp.model_.likelihood.noise.detach().numpy().reshape(m)
    scale = gp.model_.outcome_transform.stdvs.numpy().reshape(m) ** 2
    return np.stack([(cov[j] ** 2).sum(0) / (np.diag(cov[j]) + noise[j]) * scale[j] for j in range(m)], 1)


@pytest.mark.parametrize("kernel", ["rbf", "linear+matern"])
def test_gp_variance_reduction_matches_the_joint_posterior(small_pool, kernel: str) -> None:
    X, Y, C = small_pool
    gp = make_surrogate("gp", kernel=kernel, encoder="cost", random_state=0, maxiter=20).fit(X, Y)
    vr = gp.variance_reduction(C, C)
    assert vr.shape == (len(C), 3) and (vr > 0).all()
    np.testing.assert_allclose(vr, _joint_reduction(gp, C), rtol=1e-5)
    # pending rows are conditioned on exactly, as if observed
    pending = C[:3]
    np.testing.assert_allclose(gp.variance_reduction(C, C, pending), _joint_reduction(gp.condition_on(pending), C), rtol=1e-5)
    assert (gp.variance_reduction(C[:3], C, pending) < vr[:3]).all()  # less left to learn there


def test_variance_reduction_prefers_the_cluster_to_the_isolated_extreme() -> None:
    # 40 candidates in a dense cluster and one far extreme: the extreme has the largest std, but
    # measuring it teaches little about the rest of the pool
    rng = np.random.default_rng(0)
    X = np.linspace(0.0, 1.0, 8)[:, None]
    Y = np.sin(3 * X) + 0.01 * rng.standard_normal(X.shape)
    C = np.vstack([2.0 + 0.3 * rng.random((40, 1)), [[6.0]]])
    gp = make_surrogate("gp", encoder="identity", random_state=0).fit(X, Y)
    assert select_queries(gp, C, k=1, method="std").tolist() == [40]
    pick = select_queries(gp, C, k=1, method="variance-reduction")
    assert pick[0] < 40
    score = gp.variance_reduction(C, C)[:, 0]
    assert pick[0] == int(np.argmax(score))
    batch = select_queries(gp, C, k=3, method="variance-reduction", exclude=[int(pick[0])])
    assert len(set(batch.tolist())) == 3 and int(pick[0]) not in batch.tolist()


def test_variance_reduction_needs_a_gp(small_pool) -> None:
    from protran_tune.samplers.acquisition import named_acquisition

    X, Y, C = small_pool
    bdt = make_surrogate("bdt", n_members=2, n_estimators=3).fit(X, Y)
    with pytest.raises(ValueError, match="variance_reduction"):
        select_queries(bdt, C, method="variance-reduction")
    with pytest.raises(ValueError, match="needs a GP surrogate"):
        named_acquisition("variance-reduction", bdt)
    with pytest.raises(ValueError, match="acquisition must be one of"):
        named_acquisition("greedy")
    gp = make_surrogate("gp", encoder="cost", random_state=0, maxiter=10).fit(X, Y)
    with pytest.raises(ValueError, match="density_weight applies"):
        select_queries(gp, C, method="variance-reduction", density_weight=1.0)
    with pytest.raises(ValueError, match="n_reference"):
        select_queries(gp, C, method="variance-reduction", n_reference=0)

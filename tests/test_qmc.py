"""The unit-cube -> architecture mapping and the QMC point sets (protran_tune.samplers.qmc)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from protran_tune.samplers.qmc import (
    METHODS,
    ArchitectureMapping,
    embedding_index_architectures,
    hammersly,
    sample_architectures,
    unit_points,
)
from protran_tune.space import Architecture, get_space

USER_YAML = """
name: tiny-user
layers: [1, 3]
hidden_sizes: [64, 96]
num_heads: [1, 3, 6]
head_ops: [sa-sdp, l-dft, c-3]
feed_forward_dims: [128, 256]
feed_forward_stacks: [1, 4]
"""


@pytest.fixture(scope="module")
def user_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny-user.yaml"
    path.write_text(USER_YAML)
    return path


@pytest.fixture(scope="module")
def user_space(user_yaml: Path):
    return get_space(str(user_yaml))


@pytest.fixture(params=["flexibert2", "protran-table1", "user"])
def space(request: pytest.FixtureRequest, user_space):
    return user_space if request.param == "user" else get_space(request.param)


def test_dimension_is_fixed_by_the_space(space) -> None:
    m = ArchitectureMapping(space)
    L, ops, F = space.max_layers, len(space.head_ops), max(space.feed_forward_stacks)
    assert m.dim == 1 + L * (3 + (ops - 1) + F)
    assert sum(s.stop - s.start for s in m.blocks.values()) == m.dim
    if space.name == "flexibert2":
        assert m.dim == 145


@pytest.mark.parametrize("method", METHODS)
def test_every_sample_is_a_valid_member_and_marginals_are_unbiased(space, method: str) -> None:
    archs = sample_architectures(space, method, 600, seed=3)
    assert all(space.contains(a) for a in archs)
    layers = [layer for a in archs for layer in a.layers]
    # layer counts and head counts uniform over their allowed values (not over multisets)
    for values, allowed, n in (
        ([a.n_layers for a in archs], space.layers, len(archs)),
        ([layer.n_heads for layer in layers], space.num_heads, len(layers)),
        ([len(layer.feed_forward) for layer in layers], space.feed_forward_stacks, len(layers)),
        ([layer.hidden for layer in layers], space.hidden_sizes, len(layers)),
    ):
        shares = np.array([Counter(values)[v] / n for v in allowed])
        expected = 1.0 / len(allowed)
        tol = 4 * math.sqrt(expected * (1 - expected) / n) + 0.01
        assert np.all(np.abs(shares - expected) < tol), (allowed, shares)
    # every op reachable, each with about the same share of heads
    ops = Counter(op for layer in layers for op in layer.heads)
    assert set(ops) == set(space.head_ops)
    share = np.array([ops[o] for o in space.head_ops]) / sum(ops.values())
    assert np.all(np.abs(share - 1 / len(space.head_ops)) < 0.25 / len(space.head_ops))


def test_the_original_embedding_lhs_is_biased_and_ours_is_not() -> None:
    sp = get_space("flexibert2")
    theirs = [layer.n_heads for a in embedding_index_architectures(sp, "lhs", 256, seed=0) for layer in a.layers]
    ours = [layer.n_heads for a in sample_architectures(sp, "lhs", 256, seed=0) for layer in a.layers]
    assert np.mean(np.isin(theirs, [8, 12])) > 0.97
    assert 0.4 < np.mean(np.isin(ours, [8, 12])) < 0.6
    assert np.mean(np.equal(ours, 2)) > 0.2


def test_op_mix_is_uniform_over_the_multisets_of_each_head_count() -> None:
    sp = get_space("flexibert2")
    m = ArchitectureMapping(sp)
    rng = np.random.default_rng(0)
    for n_heads in (2, 4):
        v = rng.random((40000, len(sp.head_ops) - 1))
        seen = Counter(tuple(m.op_counts(row, n_heads)) for row in v)
        n_multisets = math.comb(len(sp.head_ops) + n_heads - 1, n_heads)
        assert len(seen) == n_multisets  # every multiset reachable
        freq = np.array(list(seen.values())) / len(v)
        assert abs(freq.mean() - 1 / n_multisets) < 1e-12
        assert freq.max() < 2.0 / n_multisets and freq.min() > 0.5 / n_multisets
        assert all(sum(c) == n_heads for c in seen)


def test_vectorised_embeddings_match_decode(space) -> None:
    m = ArchitectureMapping(space)
    P = np.random.default_rng(7).random((400, m.dim))
    P[:5] = 0.0  # corners
    P[5:10] = np.nextafter(1.0, 0.0)
    expected = np.stack([space.embed(a) for a in m.decode_many(P)])
    np.testing.assert_array_equal(m.embed_points(P), expected)


def test_inactive_coordinates_are_ignored() -> None:
    sp = get_space("flexibert2")
    m = ArchitectureMapping(sp)
    p = np.random.default_rng(1).random(m.dim)
    p[m.blocks["n_layers"]] = 0.0  # 2 layers
    q = p.copy()
    for name in ("hidden", "n_heads", "ff_depth"):
        s = m.blocks[name]
        q[s.start + 2 : s.stop] = 1 - q[s.start + 2 : s.stop]
    assert m.decode(p) == m.decode(q)
    q[m.blocks["hidden"].start] = 1 - q[m.blocks["hidden"].start]
    assert m.decode(p) != m.decode(q)


@pytest.mark.parametrize("method", METHODS)
def test_points_are_deterministic_by_seed(method: str) -> None:
    a = sample_architectures("protran-table1", method, 12, seed=11)
    b = sample_architectures("protran-table1", method, 12, seed=11)
    c = sample_architectures("protran-table1", method, 12, seed=12)
    assert a == b
    assert a != c
    assert len({x.to_json() for x in a}) == 12


@pytest.mark.parametrize("n", [16, 50])
def test_latin_hypercube_has_one_point_per_stratum_in_every_coordinate(n: int) -> None:
    P = unit_points("lhs", n, 145, seed=5)
    assert P.shape == (n, 145) and P.min() >= 0 and P.max() < 1
    strata = np.floor(P * n).astype(int)
    for j in range(P.shape[1]):
        assert sorted(strata[:, j]) == list(range(n))
    R = unit_points("random", n, 145, seed=5)
    assert not all(sorted(np.floor(R[:, j] * n).astype(int)) == list(range(n)) for j in range(145))


def test_lhs_seed_stratifies_layer_counts_and_first_layer_choices() -> None:
    sp = get_space("flexibert2")
    archs = sample_architectures(sp, "lhs", 24, seed=2)
    # 24 points, 6 layer counts: a Latin hypercube gives exactly 4 of each
    assert Counter(a.n_layers for a in archs) == {n: 4 for n in sp.layers}
    assert Counter(a.layers[0].n_heads for a in archs) == {h: 6 for h in sp.num_heads}


def test_hammersly_first_coordinate_is_a_regular_grid_and_rest_is_halton() -> None:
    from scipy.stats import qmc

    P = hammersly(32, 5, scramble=False)
    np.testing.assert_allclose(P[:, 0], np.arange(32) / 32)
    np.testing.assert_allclose(P[:, 1:], qmc.Halton(4, scramble=False).random(32))
    S = hammersly(32, 5, scramble=True, seed=4)
    assert sorted(np.floor(S[:, 0] * 32).astype(int)) == list(range(32))
    assert not np.allclose(S[:, 0], P[:, 0])
    np.testing.assert_array_equal(S, hammersly(32, 5, scramble=True, seed=4))


def test_qmc_sets_cover_pairs_of_coordinates_more_evenly_than_random() -> None:
    from protran_tune.reporting.sampling import projected_discrepancy

    d = {m: projected_discrepancy(unit_points(m, 128, 40, seed=0), n_pairs=64) for m in METHODS}
    for m in ("lhs", "sobol", "halton", "hammersly"):
        assert d[m] < d["random"], d


def test_bad_inputs_are_clear_errors() -> None:
    m = ArchitectureMapping("protran-table1")
    with pytest.raises(ValueError, match="unknown sampling method 'grid'"):
        unit_points("grid", 4, 3)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        unit_points("lhs", 0, 3)
    with pytest.raises(ValueError, match=r"must have shape \(133,\)"):
        m.decode(np.zeros(5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.decode(np.full(m.dim, 1.5))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "protran_tune.cli", *args], capture_output=True, text=True, timeout=120)


def test_space_sample_cli_prints_json_lines_of_valid_architectures(user_yaml: Path, user_space) -> None:
    out = _cli("space", "sample", "--method", "lhs", "-n", "16", "--seed", "3")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    expected = sample_architectures("flexibert2", "lhs", 16, seed=3)
    assert [r["architecture"] for r in rows] == [a.to_dict() for a in expected]
    out = _cli("space", "sample", "--method", "hammersley", "-n", "5", "--space", str(user_yaml), "--seed", "1")
    assert out.returncode == 0, out.stderr
    archs = [Architecture.from_dict(json.loads(line)["architecture"]) for line in out.stdout.splitlines()]
    assert archs == sample_architectures(user_space, "hammersly", 5, seed=1)
    assert all(user_space.contains(a) for a in archs)
    out = _cli("space", "sample", "--method", "grid")
    assert out.returncode == 2 and "unknown sampling method 'grid'" in out.stderr


def test_all_multisets_of_a_tiny_space_are_reached(user_space) -> None:
    archs = sample_architectures(user_space, "sobol", 1024, seed=0)
    seen = {layer.heads for a in archs for layer in a.layers}
    allowed = {
        tuple(c)
        for n in user_space.num_heads
        for c in itertools.combinations_with_replacement(user_space.head_ops, n)
    }
    assert seen == allowed

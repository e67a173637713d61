"""Dense feature encoding: agreement with the analytic costs, vectorisation, sensitivity."""

from __future__ import annotations

import numpy as np
import pytest

from protran_tune.space import Architecture, FeatureEncoder, Layer, count_parameters, encoder_flops, get_space


@pytest.fixture(scope="module")
def encoder() -> FeatureEncoder:
    return FeatureEncoder("flexibert2")


def test_names_match_columns(encoder) -> None:
    X = encoder.transform_architectures(list(encoder.space.iter_samples(5, seed=0)))
    assert X.shape == (5, encoder.n_features_) == (5, len(encoder.feature_names_))
    assert len(set(encoder.feature_names_)) == encoder.n_features_


def test_batch_equals_one_by_one(encoder) -> None:
    archs = list(encoder.space.iter_samples(50, seed=1))
    X = encoder.transform_architectures(archs)
    for i, arch in enumerate(archs):
        np.testing.assert_allclose(encoder.transform(encoder.space.embed(arch))[0], X[i])


def test_params_and_flops_columns_equal_analytic_counts(encoder) -> None:
    names = encoder.feature_names_
    for arch in encoder.space.iter_samples(100, seed=2):
        x = encoder.transform_architectures([arch])[0]
        h0 = arch.layers[0].hidden
        embeddings = (30522 + 512 + 2 + 2) * h0
        encoder_params = count_parameters(arch, with_pooler=False) - embeddings
        assert x[names.index("encoder_params_m")] * 1e6 == pytest.approx(encoder_params, rel=1e-12)
        assert x[names.index("encoder_gflops")] * 1e9 == pytest.approx(encoder_flops(arch), rel=1e-12)
        assert x[names.index("n_layers")] == arch.n_layers
        per_layer = sum(x[names.index(f"l{j}_params_m")] for j in range(arch.n_layers)) * 1e6
        assert per_layer == pytest.approx(encoder_params, rel=1e-9)


def test_bert_base_shape_has_bert_base_encoder_size(encoder) -> None:
    base = Architecture.homogeneous(12, 768, 12, 3072)
    x = encoder.transform_architectures([base])[0]
    # 12 BERT-Base layers: 7,087,872 parameters each.
    assert x[encoder.feature_names_.index("encoder_params_m")] * 1e6 == 12 * 7_087_872
    assert count_parameters(base) == 109_482_240  # transformers' BertModel (bert-base-uncased shape)


def test_features_see_head_types_and_absent_layers_are_zero(encoder) -> None:
    names = encoder.feature_names_
    a = Architecture((Layer(256, ("sa-sdp", "sa-sdp"), (512,)),) * 2)
    b = Architecture((Layer(256, ("sa-sdp", "c-9"), (512,)),) * 2)
    xa, xb = encoder.transform_architectures([a, b])
    assert xa[names.index("heads_c_9")] == 0 and xb[names.index("heads_c_9")] == 2
    assert xa[names.index("l0_heads_sa_sdp")] == 2 and xb[names.index("l0_heads_sa_sdp")] == 1
    assert xa[names.index("encoder_params_m")] != xb[names.index("encoder_params_m")]
    absent = [i for i, n in enumerate(names) if n.startswith(("l2_", "l5_", "l11_"))]
    assert not xa[absent].any()


def test_projection_counted_when_hidden_changes(encoder) -> None:
    names = encoder.feature_names_
    same = Architecture((Layer(256, ("sa-sdp",) * 2, (512,)), Layer(256, ("sa-sdp",) * 2, (512,))))
    changed = Architecture((Layer(256, ("sa-sdp",) * 2, (512,)), Layer(512, ("sa-sdp",) * 2, (512,))))
    xs, xc = encoder.transform_architectures([same, changed])
    assert xs[names.index("projections")] == 0 and xc[names.index("projections")] == 1


def test_bad_embeddings_raise(encoder) -> None:
    with pytest.raises(ValueError, match=r"shape \(n, 37\)"):
        encoder.transform(np.zeros((3, 10), dtype=int))
    bad = np.zeros((1, 37), dtype=int)
    bad[0, 0] = 9
    with pytest.raises(ValueError, match="layer-count index"):
        encoder.transform(bad)


def test_other_spaces_encode(tmp_path) -> None:
    enc = FeatureEncoder(get_space("protran-table1"))
    X = enc.transform_architectures(list(enc.space.iter_samples(20, seed=4)))
    assert X.shape == (20, enc.n_features_) and np.isfinite(X).all()


def test_cost_features_sum_global_columns_by_op_family(encoder) -> None:
    archs = list(encoder.space.iter_samples(20, seed=4))
    E = np.stack([encoder.space.embed(a) for a in archs])
    C, F = encoder.cost_transform(E), encoder.transform(E)
    names = encoder.feature_names_
    assert encoder.cost_feature_names_ == [
        "n_layers", "encoder_params_m", "encoder_gflops", "head_dims_sa", "head_dims_l", "head_dims_c", "ff_width_sum"
    ]
    assert C.shape == (20, 7)
    col = {n: F[:, names.index(n)] for n in names}
    np.testing.assert_allclose(C[:, 1], col["encoder_params_m"])
    np.testing.assert_allclose(C[:, 3], col["head_dims_sa_sdp"] + col["head_dims_sa_wma"])
    np.testing.assert_allclose(C[:, 5], col["head_dims_c_5"] + col["head_dims_c_9"] + col["head_dims_c_13"])
    # every head is in exactly one family: the families' head dims add up to all head dims
    all_dims = sum(col[n] for n in names[: encoder.n_global_features_] if n.startswith("head_dims_"))
    np.testing.assert_allclose(C[:, 3:6].sum(1), all_dims)
    np.testing.assert_allclose(C[:, 6], col["ff_width_sum"])

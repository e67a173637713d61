"""Design spaces, architectures, the ProTran embedding and model_dict round-trips."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from protran_tune.space import Architecture, DesignSpace, Layer, get_space
from protran_tune.space.ops import op_from_protran, op_to_protran


@pytest.fixture(scope="module")
def flexibert2() -> DesignSpace:
    return get_space("flexibert2")


def test_flexibert2_counts_match_the_paper(flexibert2: DesignSpace) -> None:
    assert flexibert2.n_feed_forward_op_types == 258
    assert flexibert2.n_attention_op_types == 21805
    n = flexibert2.n_architectures
    assert isinstance(n, int)
    assert n == sum((4 * 258 * 21805) ** layers for layers in (2, 4, 6, 8, 10, 12))
    assert f"{float(n):.2e}" == "1.69e+88"
    assert flexibert2.embedding_dim == 37


def test_table1_space_is_smaller_than_the_full_space() -> None:
    t1 = get_space("protran-table1")
    assert t1.hidden_sizes == (128, 256)
    assert t1.head_ops == ("sa-sdp", "sa-wma", "l-dft", "l-dct", "c-5", "c-9")
    assert t1.n_feed_forward_op_types == 258
    assert t1.n_attention_op_types == sum(math.comb(6 + n - 1, n) for n in (2, 4, 8, 12))
    assert t1.n_architectures < get_space("flexibert2").n_architectures


def test_original_yaml_format_gives_the_same_space(original_design_space_yaml, flexibert2) -> None:
    original = DesignSpace.from_yaml(original_design_space_yaml)
    for key in ("layers", "hidden_sizes", "num_heads", "head_ops", "feed_forward_dims", "feed_forward_stacks"):
        assert getattr(original, key) == getattr(flexibert2, key)
    assert original.n_architectures == flexibert2.n_architectures


def test_attention_index_ranks_combinations_with_replacement_in_order(flexibert2) -> None:
    ops = flexibert2.head_ops
    expected = [c for n in flexibert2.num_heads for c in itertools.combinations_with_replacement(ops, n)]
    for index in list(range(0, 400)) + list(range(21000, 21805)):
        assert flexibert2.attention_from_index(index) == expected[index]
        assert flexibert2.attention_index(expected[index]) == index


def test_feed_forward_index_round_trips(flexibert2) -> None:
    seen = set()
    for index in range(flexibert2.n_feed_forward_op_types):
        ff = flexibert2.feed_forward_from_index(index)
        assert flexibert2.feed_forward_index(ff) == index
        seen.add(ff)
    assert len(seen) == 258
    assert flexibert2.feed_forward_index((1024, 1024, 1024)) == 128  # value in the recorded data


def test_all_recorded_architectures_import_export_and_embed(measurement_files, flexibert2) -> None:
    n = 0
    for path in measurement_files:
        for key, record in json.loads(path.read_text()).items():
            arch = Architecture.from_model_dict(record["model_dict"])
            assert arch.to_model_dict() == record["model_dict"], key
            assert flexibert2.embed(arch).tolist() == json.loads(record["embedding"]), key
            assert flexibert2.decode(flexibert2.embed(arch)) == arch
            assert Architecture.from_json(arch.to_json()) == arch
            n += 1
    assert n == 782


def test_heads_are_a_multiset_and_hash_is_stable() -> None:
    a = Layer(hidden=256, heads=("c-9", "sa-sdp", "l-dft", "sa-sdp"), feed_forward=(512,))
    b = Layer(hidden=256, heads=("sa-sdp", "l-dft", "sa-sdp", "c-9"), feed_forward=(512,))
    assert a == b and a.heads == ("sa-sdp", "sa-sdp", "l-dft", "c-9")
    arch = Architecture((a, b))
    assert arch.content_hash() == Architecture((b, a)).content_hash()
    assert len(arch.content_hash()) == 16
    other = Architecture((a, Layer(hidden=256, heads=a.heads, feed_forward=(1024,))))
    assert other.content_hash() != arch.content_hash()


def test_head_size_is_floor_division() -> None:
    layer = Layer(hidden=128, heads=("sa-sdp",) * 12, feed_forward=(256,))
    assert layer.head_size == 10
    arch = Architecture((layer, layer))
    assert arch.to_model_dict()["o"][0][0] == "sa_sdp_10"


def test_architecture_is_immutable() -> None:
    arch = Architecture.homogeneous(2, 128, 2, 512)
    with pytest.raises(AttributeError):
        arch.layers = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden": 0, "heads": ("sa-sdp",), "feed_forward": (256,)}, "hidden must be a positive integer"),
        ({"hidden": 128, "heads": ("sa-xyz",), "feed_forward": (256,)}, "unknown head op 'sa-xyz'"),
        ({"hidden": 128, "heads": ("c-4",), "feed_forward": (256,)}, "odd kernel"),
        ({"hidden": 128, "heads": (), "feed_forward": (256,)}, "at least one head"),
        ({"hidden": 128, "heads": ("sa-sdp",), "feed_forward": ()}, "at least one width"),
        ({"hidden": 128, "heads": ("sa-sdp",), "feed_forward": (256, -1)}, r"feed_forward\[1\]"),
        ({"hidden": 2, "heads": ("sa-sdp",) * 4, "feed_forward": (256,)}, "do not fit hidden size 2"),
    ],
)
def test_invalid_layers_raise_clear_errors(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Layer(**kwargs)


@pytest.mark.parametrize(
    "layer, message",
    [
        ({"hidden": 128, "heads": "sa-sdp", "feed_forward": [256]},
         r"layers\[0\]: heads must be a list of op names, got the string 'sa-sdp'"),
        ({"hidden": 128, "heads": ["sa-sdp"], "feed_forward": "256"},
         r"layers\[0\]: feed_forward must be a list of widths, got the str '256'"),
        ({"hidden": 128, "heads": ["sa-sdp"], "feed_forward": 256}, r"feed_forward must be a list of widths, got the int 256"),
    ],
)
def test_a_string_where_a_list_belongs_is_named_as_such(layer, message) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Architecture.from_dict({"layers": [layer]})
    assert "unknown head op" not in str(info.value)  # not spelt out letter by letter


def test_space_validation_names_field_value_and_allowed(flexibert2) -> None:
    arch = Architecture.homogeneous(3, 128, 2, 512)
    with pytest.raises(ValueError, match=r"n_layers=3 not allowed .* allowed \[2, 4, 6, 8, 10, 12\]"):
        flexibert2.validate(arch)
    arch = Architecture.homogeneous(2, 384, 2, 512)
    with pytest.raises(ValueError, match=r"layer 0: hidden=384 not allowed"):
        flexibert2.validate(arch)
    arch = Architecture.homogeneous(2, 128, 2, 512, op="c-7")
    with pytest.raises(ValueError, match=r"head op 'c-7' not allowed"):
        flexibert2.embed(arch)
    assert not get_space("protran-table1").contains(Architecture.homogeneous(2, 512, 2, 512))


@pytest.mark.parametrize(
    "model_dict, message",
    [
        ({"l": 2, "o": [["sa_sdp_64"]], "h": [128, 128], "f": [[256], [256]]}, r"model_dict\['o'\] must be a list of 2"),
        ({"l": 1, "o": [["sa_sdp_32"]], "h": [128], "f": [[256]]}, "head size 32, but hidden 128 // 1 heads = 128"),
        ({"l": 1, "o": [["xx_sdp_128"]], "h": [128], "f": [[256]]}, "unknown head op 'xx-sdp'"),
        ({"l": 1, "o": [["sdp128"]], "h": [128], "f": [[256]]}, "malformed op string"),
        ({"l": 1, "o": [["sa_sdp_128"]], "h": [128]}, "exactly the keys"),
        ({"l": 1, "o": [["sa_sdp_128"]], "h": [128], "f": [256]}, r"model_dict\['f'\]\[0\] must be a list"),
    ],
)
def test_inconsistent_model_dicts_are_rejected(model_dict, message) -> None:
    with pytest.raises(ValueError, match=message):
        Architecture.from_model_dict(model_dict)


def test_op_string_round_trip() -> None:
    for op in ("sa-sdp", "sa-wma", "l-dft", "l-dct", "c-5", "c-9", "c-13"):
        assert op_from_protran(op_to_protran(op, 64)) == (op, 64)


def test_user_yaml_space_and_malformed_yaml(tmp_path) -> None:
    good = tmp_path / "tiny.yaml"
    good.write_text(
        "layers: [2, 4]\nhidden_sizes: [64, 128]\nnum_heads: [2]\nhead_ops: [sa-sdp, c-3]\n"
        "feed_forward_dims: [128, 256]\nfeed_forward_stacks: [1]\n"
    )
    space = get_space(str(good))
    assert space.name == "tiny"
    assert space.n_attention_op_types == 3 and space.n_feed_forward_op_types == 2
    assert space.n_architectures == (2 * 2 * 3) ** 2 + (2 * 2 * 3) ** 4
    arch = space.sample(0)
    assert space.decode(space.embed(arch)) == arch
    bad_cases = {
        "layers: [2, 4\n": "malformed YAML",
        "layers: [2]\nhidden_sizes: [64]\nnum_heads: [2]\nhead_ops: [sa-sdp]\nfeed_forward_dims: [128]\nwidth: 3\n": "unknown design space field",
        "layers: [2]\nhidden_sizes: [64]\nnum_heads: [2]\nhead_ops: [sa-bad]\nfeed_forward_dims: [128]\n": "unknown head op",
        "layers: [2, 2]\nhidden_sizes: [64]\nnum_heads: [2]\nhead_ops: [sa-sdp]\nfeed_forward_dims: [128]\n": "duplicate",
        "layers: [2]\nhidden_sizes: [64]\nnum_heads: [128]\nhead_ops: [sa-sdp]\nfeed_forward_dims: [128]\n": "does not fit",
        "layers: [2]\n": "missing field",
    }
    for i, (text, message) in enumerate(bad_cases.items()):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            get_space(str(path))


def test_decode_rejects_bad_embeddings(flexibert2) -> None:
    e = flexibert2.embed(flexibert2.sample(1))
    with pytest.raises(ValueError, match="37 entries"):
        flexibert2.decode(e[:10])
    bad = e.copy()
    bad[3] = 10**6
    with pytest.raises(ValueError, match="attention op index"):
        flexibert2.decode(bad)


def test_samples_are_valid_members(flexibert2) -> None:
    archs = list(flexibert2.iter_samples(200, seed=3))
    assert all(flexibert2.contains(a) for a in archs)
    assert len({a.content_hash() for a in archs}) == 200
    assert archs == list(flexibert2.iter_samples(200, seed=3))
    layers = np.array([a.n_layers for a in archs])
    assert set(layers) == set(flexibert2.layers)

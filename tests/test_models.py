"""FlexiBERT models: structure equals the analytic cost model, configs, task heads, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from protran_tune.models import (
    FlexiBertConfig,
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
    build_model,
)
from protran_tune.space import Architecture, FeatureEncoder, Layer, count_parameters, get_space

SMALL = {"vocab_size": 64, "max_position_embeddings": 32, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("position", ["absolute", "relative_key"])
def test_parameter_count_equals_cost_model_for_random_architectures(position: str) -> None:
    space = get_space("flexibert2")
    seen_ops, seen_projection = set(), False
    for arch in space.iter_samples(30, seed=11):
        with torch.device("meta"):
            model = FlexiBertModel(FlexiBertConfig.from_architecture(arch, position_embedding_type=position))
        assert _n_params(model) == count_parameters(arch, position_embedding_type=position), str(arch)
        seen_ops.update(op for layer in arch.layers for op in layer.heads)
        seen_projection |= len(set(arch.hidden_sizes)) > 1
    assert seen_ops == set(space.head_ops) and seen_projection  # the sample covers every op


def test_parameter_count_options_and_feature_column() -> None:
    arch = Architecture((Layer(64, ("sa-wma", "c-9", "l-dct"), (96, 32)), Layer(32, ("sa-sdp",) * 4, (64,))))
    kwargs = {"vocab_size": 100, "max_position_embeddings": 40, "type_vocab_size": 3}
    for position in ("absolute", "relative_key"):
        model = build_model(arch, position_embedding_type=position, **kwargs)
        assert _n_params(model) == count_parameters(arch, position_embedding_type=position, **kwargs)
        no_pool = FlexiBertModel(model.config, add_pooling_layer=False)
        assert _n_params(no_pool) == count_parameters(arch, position_embedding_type=position, with_pooler=False, **kwargs)
    # the feature encoder's encoder_params column = parameters minus embeddings and pooler
    space = get_space("flexibert2")
    enc = FeatureEncoder(space)
    col = enc.feature_names_.index("encoder_params_m")
    for arch in space.iter_samples(5, seed=3):
        with torch.device("meta"):
            model = build_model(arch, vocab_size=10)
        n_encoder = _n_params(model.encoder)
        assert enc.transform_architectures([arch])[0, col] == pytest.approx(n_encoder / 1e6, abs=1e-9)


def test_config_round_trips_and_exposes_the_architecture(tmp_path) -> None:
    arch = Architecture((Layer(48, ("sa-sdp", "l-dft", "c-5"), (64, 32)), Layer(32, ("sa-wma", "sa-wma"), (80,))))
    cfg = FlexiBertConfig.from_architecture(arch, position_embedding_type="relative_key", num_labels=4, **SMALL)
    assert cfg.architecture == arch and isinstance(cfg.architecture, Architecture)
    assert cfg.hidden_size == 32 and cfg.num_hidden_layers == 2 and cfg.num_labels == 4
    json.loads(cfg.to_json_string())  # plain JSON
    cfg.save_pretrained(tmp_path)
    again = FlexiBertConfig.from_pretrained(tmp_path)
    assert again.architecture == arch and again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("cls", [FlexiBertModel, FlexiBertForSequenceClassification, FlexiBertForMaskedLM])
def test_save_pretrained_round_trips_weights(cls, tmp_path) -> None:
    arch = Architecture((Layer(48, ("sa-sdp", "sa-wma", "l-dct", "c-9"), (64,)), Layer(32, ("c-5", "l-dft"), (48, 40))))
    model = cls(FlexiBertConfig.from_architecture(arch, num_labels=3, **SMALL)).eval()
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    ids = torch.randint(1, 64, (2, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], loaded(ids)[0], rtol=0, atol=0)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


def test_task_heads_outputs_and_losses() -> None:
    arch = Architecture((Layer(48, ("sa-sdp", "c-5"), (64,)), Layer(32, ("l-dft", "sa-wma"), (48,))))
    ids = torch.randint(1, 64, (3, 10))
    clf = build_model(arch, "classification", num_labels=5, **SMALL)
    out = clf(ids, labels=torch.tensor([0, 4, 2]))
    assert out.logits.shape == (3, 5)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 4, 2])))
    reg = build_model(arch, "classification", num_labels=1, **SMALL)
    assert reg(ids, labels=torch.tensor([0.5, 1.0, -1.0])).loss > 0
    mlm = build_model(arch, "mlm", **SMALL)
    # h_last (32) differs from the embedding width (48): the head maps back and stays tied
    assert mlm.cls.decoder.weight is mlm.flexibert.embeddings.word_embeddings.weight
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    out = mlm(ids, labels=labels)
    assert out.logits.shape == (3, 10, 64)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits[:, 3], ids[:, 3]))
    base = build_model(arch, **SMALL)
    result = base(ids, output_hidden_states=True)
    assert result.last_hidden_state.shape == (3, 10, 32) and result.pooler_output.shape == (3, 32)
    assert [h.shape[-1] for h in result.hidden_states] == [48, 48, 32]


def test_token_types_and_absolute_positions_matter() -> None:
    torch.manual_seed(0)
    model = build_model(Architecture.homogeneous(1, 32, 2, 64, op="l-dct"), **SMALL).eval()
    ids = torch.randint(1, 64, (1, 8))
    with torch.no_grad():
        a = model(ids).last_hidden_state
        b = model(ids, token_type_ids=torch.ones_like(ids)).last_hidden_state
        c = model(ids.flip(1)).last_hidden_state.flip(1)
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"position_embedding_type": "rotary"}, "position_embedding_type"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
        ({"pad_token_id": 99, "vocab_size": 50}, "pad_token_id"),
        ({"hidden_act": "relu"}, "hidden_act"),
    ],
)
def test_bad_config_fields_raise_value_error(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        FlexiBertConfig.from_architecture(Architecture.homogeneous(1, 32, 2, 64), **kwargs)


def test_bad_architectures_and_tasks_raise_value_error() -> None:
    with pytest.raises(ValueError, match="unknown head op 'sa-xyz'"):
        build_model({"layers": [{"hidden": 32, "heads": ["sa-xyz"], "feed_forward": [64]}]})
    with pytest.raises(ValueError, match="architecture"):
        FlexiBertConfig(architecture={"layers": [{"hidden": 32}]})
    with pytest.raises(ValueError, match="model_dict"):
        build_model({"l": 2, "o": [["sa_sdp_16", "sa_sdp_16"]], "h": [32], "f": [[64]]})
    with pytest.raises(ValueError, match="task"):
        build_model(Architecture.homogeneous(1, 32, 2, 64), task="generation")
    with pytest.raises(ValueError, match="FlexiBertConfig"):
        FlexiBertModel(object())  # type: ignore[arg-type]


def test_bad_inputs_raise_value_error() -> None:
    model = build_model(Architecture.homogeneous(1, 32, 2, 64), **SMALL)
    ids = torch.randint(1, 64, (2, 8))
    with pytest.raises(ValueError, match="input_ids"):
        model(ids.float())
    with pytest.raises(ValueError, match="input_ids"):
        model(ids[0])
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, attention_mask=torch.ones(2, 7))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(ids, token_type_ids=torch.zeros(3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.randint(1, 64, (1, 33)))
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_models_import_without_the_orchestration_stack() -> None:
    code = (
        "import sys\n"
        "for m in ('optuna', 'ray', 'mlflow', 'sklearn'): sys.modules[m] = None\n"
        "from protran_tune.models import build_model\n"
        "from protran_tune.space import Architecture\n"
        "m = build_model(Architecture.homogeneous(1, 32, 2, 64), vocab_size=50)\n"
        "print(sum(p.numel() for p in m.parameters()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from protran_tune.space import count_parameters as cp

    assert int(out.stdout.strip()) == cp(Architecture.homogeneous(1, 32, 2, 64), vocab_size=50)


def test_model_dict_architectures_build() -> None:
    arch = Architecture.from_model_dict(
        {"l": 2, "o": [["sa_sdp_32", "c_9_32"], ["l_dft_64"]], "h": [64, 64], "f": [[128], [256, 64]]}
    )
    model = build_model(arch.to_model_dict(), **SMALL)
    assert model.config.architecture == arch
    out = model(torch.randint(1, 64, (1, 6))).last_hidden_state
    assert out.shape == (1, 6, 64) and np.isfinite(out.detach().numpy()).all()

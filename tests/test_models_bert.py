"""FlexiBERT against transformers' BertModel: parameter counts and imported hidden states."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from protran_tune.models import FlexiBertModel, build_model
from protran_tune.space import Architecture, count_parameters

BERT_SHAPES = {  # name: (layers, hidden, heads, feed-forward)
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
}


def _bert(layers: int, hidden: int, heads: int, ff: int, **kwargs) -> BertModel:
    cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=ff, **kwargs)
    return BertModel(cfg)


@pytest.mark.parametrize("name", list(BERT_SHAPES))
def test_parameter_counts_equal_bert(name: str) -> None:
    shape = BERT_SHAPES[name]
    arch = Architecture.homogeneous(*shape)
    with torch.device("meta"):
        bert = _bert(*shape)
        flexi = build_model(arch)
    n_bert = sum(p.numel() for p in bert.parameters())
    assert sum(p.numel() for p in flexi.parameters()) == n_bert
    assert count_parameters(arch) == n_bert


@pytest.mark.parametrize("shape", [(2, 128, 2, 512), (4, 96, 4, 160)], ids=["bert-tiny", "4-layer"])
def test_from_bert_reproduces_hidden_states(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    bert = _bert(*shape, vocab_size=500, max_position_embeddings=64).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases
        for name, p in bert.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    flexi = FlexiBertModel.from_bert(bert).eval()
    assert flexi.config.architecture == Architecture.homogeneous(*shape)
    ids = torch.randint(1, 500, (4, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    mask[2, 7:] = 0
    types = torch.zeros_like(ids)
    types[:, 20:] = 1
    with torch.no_grad():
        for kwargs in ({"attention_mask": mask, "token_type_ids": types}, {}):
            want = bert(ids, **kwargs)
            got = flexi(ids, **kwargs)
            assert (want.last_hidden_state - got.last_hidden_state).abs().max() <= 1e-5
            assert (want.pooler_output - got.pooler_output).abs().max() <= 1e-5


def test_from_bert_rejects_what_it_cannot_import() -> None:
    with pytest.raises(ValueError, match="BertModel"):
        FlexiBertModel.from_bert(torch.nn.Linear(2, 2))
    bert = _bert(1, 32, 2, 64, vocab_size=50, hidden_act="relu")
    with pytest.raises(ValueError, match="hidden_act"):
        FlexiBertModel.from_bert(bert)

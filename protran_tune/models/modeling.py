"""FlexiBERT 2.0 models on transformers' ``PreTrainedModel``.

A FlexiBERT encoder is BERT with per-layer freedom: each layer has its own hidden size ``h`` (a
``Linear(h_prev, h)`` projection joins layers of different widths), a multiset of heads of mixed types
(:mod:`protran_tune.models.heads`) and a stack of feed-forward layers ``h -> f1 -> ... -> fm -> h``.
Module structure and parameter counts follow :mod:`protran_tune.space.cost` exactly; a homogeneous
``sa-sdp`` architecture has the same parameters as transformers' ``BertModel`` and imports one with
:meth:`FlexiBertModel.from_bert`.

Shapes: ``input_ids``, ``attention_mask``, ``token_type_ids`` are ``(B, T)`` integers;
``last_hidden_state`` is ``(B, T, h_last)``, ``pooler_output`` ``(B, h_last)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, MaskedLMOutput, SequenceClassifierOutput

from protran_tune.models.configuration import FlexiBertConfig
from protran_tune.models.heads import ConvHeads, LinearTransformHeads, Masks, SelfAttentionHeads
from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.ops import conv_kernel, op_family

try:  # transformers 5: init helpers that skip weights already loaded from a checkpoint
    from transformers import initialization as _init
except ImportError:  # pragma: no cover - older transformers
    class _init:  # type: ignore[no-redef]
        normal_ = staticmethod(nn.init.normal_)
        zeros_ = staticmethod(nn.init.zeros_)

        @staticmethod
        def copy_(tensor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return tensor.copy_(other)


class FlexiBertEmbeddings(nn.Module):
    """Word + token-type (+ absolute position) embeddings, LayerNorm and dropout, width ``h0``."""

    def __init__(self, config: FlexiBertConfig, hidden: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, hidden, padding_idx=config.pad_token_id)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, hidden) if config.position_embedding_type == "absolute" else None
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, input_ids: torch.Tensor | None, token_type_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings.weight[: x.shape[1]]
        return self.dropout(self.LayerNorm(x))


class FlexiBertAttention(nn.Module):
    """All heads of one layer (grouped by family), output ``Linear(n d, h)``, dropout, residual, LayerNorm."""

    def __init__(self, layer: Layer, config: FlexiBertConfig) -> None:
        super().__init__()
        h, d, counts = layer.hidden, layer.head_size, layer.head_counts()
        self.n_heads, self.head_size = layer.n_heads, d
        groups: list[nn.Module] = []
        n_sdp, n_wma = counts.get("sa-sdp", 0), counts.get("sa-wma", 0)
        if n_sdp + n_wma:
            relative = config.max_position_embeddings if config.position_embedding_type == "relative_key" else 0
            groups.append(SelfAttentionHeads(h, d, n_sdp, n_wma, relative, config.attention_probs_dropout_prob))
        n_dft, n_dct = counts.get("l-dft", 0), counts.get("l-dct", 0)
        if n_dft + n_dct:
            groups.append(LinearTransformHeads(h, d, n_dft, n_dct))
        for op, n in counts.items():  # canonical order: c-k by increasing k
            if op_family(op) == "c":
                groups.append(ConvHeads(h, d, n, conv_kernel(op)))
        self.groups = nn.ModuleList(groups)
        self.dense = nn.Linear(layer.n_heads * d, h)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, masks: Masks) -> torch.Tensor:
        B, T, _ = x.shape
        if len(self.groups) == 1:
            heads = self.groups[0](x, masks)
        else:
            heads = torch.cat([group(x, masks) for group in self.groups], dim=2)
        out = self.dense(heads.reshape(B, T, self.n_heads * self.head_size))
        return self.LayerNorm(self.dropout(out) + x)


class FlexiBertFeedForward(nn.Module):
    """``h -> f1 -> ... -> fm -> h`` with GELU between, dropout, residual and LayerNorm."""

    def __init__(self, layer: Layer, config: FlexiBertConfig) -> None:
        super().__init__()
        widths = (layer.hidden, *layer.feed_forward, layer.hidden)
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(layer.hidden, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        last = len(self.dense) - 1
        for i, dense in enumerate(self.dense):
            y = dense(y)
            if i < last:
                y = F.gelu(y)
        return self.LayerNorm(self.dropout(y) + x)


class FlexiBertLayer(nn.Module):
    """Optional projection ``Linear(h_prev, h)``, mixed-head attention block, feed-forward block."""

    def __init__(self, layer: Layer, input_hidden: int, config: FlexiBertConfig) -> None:
        super().__init__()
        self.projection = nn.Linear(input_hidden, layer.hidden) if input_hidden != layer.hidden else None
        self.attention = FlexiBertAttention(layer, config)
        self.feed_forward = FlexiBertFeedForward(layer, config)

    def forward(self, x: torch.Tensor, masks: Masks) -> torch.Tensor:
        if self.projection is not None:
            x = self.projection(x)
        return self.feed_forward(self.attention(x, masks))


class FlexiBertEncoder(nn.Module):
    def __init__(self, arch: Architecture, config: FlexiBertConfig) -> None:
        super().__init__()
        widths = (arch.layers[0].hidden, *arch.hidden_sizes[:-1])
        self.layer = nn.ModuleList(FlexiBertLayer(layer, w, config) for layer, w in zip(arch.layers, widths))


class FlexiBertPooler(nn.Module):
    """``tanh(Linear(h, h))`` of the first token."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))


class FlexiBertPreTrainedModel(PreTrainedModel):
    """Shared loading, saving and weight initialisation."""

    config_class = FlexiBertConfig
    base_model_prefix = "flexibert"
    supports_gradient_checkpointing = False
    _no_split_modules = ["FlexiBertEmbeddings", "FlexiBertLayer"]

    def __init__(self, config: FlexiBertConfig, *args: Any, **kwargs: Any) -> None:
        if not isinstance(config, FlexiBertConfig):
            raise ValueError(f"config must be a FlexiBertConfig, got {type(config).__name__}")
        super().__init__(config, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        std = self.config.initializer_range
        if isinstance(module, SelfAttentionHeads) and module.wma_weight is not None:
            # identity: a fresh sa-wma head starts as an sa-sdp head
            eye = torch.eye(module.head_size, dtype=module.wma_weight.dtype, device=module.wma_weight.device)
            _init.copy_(module.wma_weight, eye.expand_as(module.wma_weight))
        elif isinstance(module, ConvHeads):
            _init.normal_(module.kernel_weight, mean=0.0, std=std)
            _init.zeros_(module.kernel_bias)


def _check_inputs(
    config: FlexiBertConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
) -> tuple[int, int]:
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError(f"input_ids must be an integer tensor of shape (batch, seq_len), got {_describe(input_ids)}")
        shape = tuple(input_ids.shape)
    else:
        if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3:
            raise ValueError(f"inputs_embeds must have shape (batch, seq_len, hidden), got {_describe(inputs_embeds)}")
        shape = tuple(inputs_embeds.shape[:2])
    for name, value in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if value is not None and (not isinstance(value, torch.Tensor) or tuple(value.shape) != shape):
            raise ValueError(f"{name} must have the shape of input_ids {shape}, got {_describe(value)}")
    if shape[1] > config.max_position_embeddings or shape[1] == 0:
        raise ValueError(
            f"sequence length {shape[1]} is outside 1..max_position_embeddings={config.max_position_embeddings}"
        )
    return shape


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {value.dtype}"
    return type(value).__name__


class FlexiBertModel(FlexiBertPreTrainedModel):
    """The FlexiBERT 2.0 encoder: embeddings, heterogeneous layers and an optional pooler."""

    def __init__(self, config: FlexiBertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        arch = config.architecture
        self.embeddings = FlexiBertEmbeddings(config, arch.layers[0].hidden)
        self.encoder = FlexiBertEncoder(arch, config)
        self.pooler = FlexiBertPooler(arch.layers[-1].hidden) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode a batch; ``attention_mask`` is 1 at tokens and 0 at padding."""
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, inputs_embeds)
        x = self.embeddings(input_ids, token_type_ids, inputs_embeds)
        masks = Masks.from_attention_mask(attention_mask, x.dtype)
        states: list[torch.Tensor] | None = [x] if output_hidden_states else None
        for layer in self.encoder.layer:
            x = layer(x, masks)
            if states is not None:
                states.append(x)
        pooled = self.pooler(x) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(
            last_hidden_state=x, pooler_output=pooled, hidden_states=tuple(states) if states is not None else None
        )
        return out if return_dict is not False else out.to_tuple()

    # ----------------------------------------------------------------- BERT import
    @classmethod
    def from_bert(cls, bert_model: nn.Module) -> "FlexiBertModel":
        """Import a transformers ``BertModel`` (homogeneous ``sa-sdp``) with its weights.

        The result reproduces ``bert_model``'s hidden states (same dtype and device). Pass
        ``BertFor...(...).bert`` for task models.
        """
        from transformers import BertModel

        if not isinstance(bert_model, BertModel):
            raise ValueError(
                f"from_bert expects a transformers BertModel (for task models pass .bert), got {type(bert_model).__name__}"
            )
        bc = bert_model.config
        problems = []
        if bc.hidden_act != "gelu":
            problems.append(f"hidden_act={bc.hidden_act!r} (only 'gelu' is supported)")
        if getattr(bc, "is_decoder", False) or getattr(bc, "add_cross_attention", False):
            problems.append("is_decoder/add_cross_attention (only encoders are supported)")
        if getattr(bc, "position_embedding_type", "absolute") != "absolute":
            problems.append(f"position_embedding_type={bc.position_embedding_type!r} (only 'absolute')")
        if bc.hidden_size % bc.num_attention_heads:
            problems.append(f"hidden_size {bc.hidden_size} not divisible by num_attention_heads {bc.num_attention_heads}")
        if problems:
            raise ValueError("cannot import this BertModel: " + "; ".join(problems))
        arch = Architecture.homogeneous(bc.num_hidden_layers, bc.hidden_size, bc.num_attention_heads, bc.intermediate_size)
        config = FlexiBertConfig.from_architecture(
            arch,
            vocab_size=bc.vocab_size,
            max_position_embeddings=bc.max_position_embeddings,
            type_vocab_size=bc.type_vocab_size,
            hidden_dropout_prob=bc.hidden_dropout_prob,
            attention_probs_dropout_prob=bc.attention_probs_dropout_prob,
            layer_norm_eps=bc.layer_norm_eps,
            initializer_range=bc.initializer_range,
            pad_token_id=bc.pad_token_id,
        )
        ref = next(bert_model.parameters())
        model = cls(config, add_pooling_layer=bert_model.pooler is not None)
        model.load_state_dict(bert_state_dict_to_flexibert(bert_model.state_dict()), strict=True)
        return model.to(device=ref.device, dtype=ref.dtype).train(bert_model.training)


def bert_state_dict_to_flexibert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``BertModel`` state dict to ``FlexiBertModel`` names (Q, K, V fused per layer)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("embeddings."):
            if name.endswith(("position_ids", "token_type_ids")):
                continue  # buffers
            out[name] = tensor
        elif name.startswith("pooler."):
            out[name] = tensor
    layer_ids = sorted({int(n.split(".")[2]) for n in state if n.startswith("encoder.layer.")})
    for i in layer_ids:
        src, dst = f"encoder.layer.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attention.groups.0.qkv.{kind}"] = torch.cat(
                [state[f"{src}attention.self.{p}.{kind}"] for p in ("query", "key", "value")], dim=0
            )
            out[f"{dst}attention.dense.{kind}"] = state[f"{src}attention.output.dense.{kind}"]
            out[f"{dst}attention.LayerNorm.{kind}"] = state[f"{src}attention.output.LayerNorm.{kind}"]
            out[f"{dst}feed_forward.dense.0.{kind}"] = state[f"{src}intermediate.dense.{kind}"]
            out[f"{dst}feed_forward.dense.1.{kind}"] = state[f"{src}output.dense.{kind}"]
            out[f"{dst}feed_forward.LayerNorm.{kind}"] = state[f"{src}output.LayerNorm.{kind}"]
    return out


class FlexiBertForSequenceClassification(FlexiBertPreTrainedModel):
    """Encoder + pooler + dropout + ``Linear(h_last, num_labels)``; losses as BERT's."""

    def __init__(self, config: FlexiBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.flexibert = FlexiBertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        """``labels``: ``(B,)`` class ids, or ``(B,)``/``(B, num_labels)`` floats for regression/multi-label."""
        outputs = self.flexibert(
            input_ids, attention_mask, token_type_ids, inputs_embeds, output_hidden_states=output_hidden_states
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = MSELoss()(logits.squeeze(-1), labels.squeeze(-1).to(logits.dtype)) if self.num_labels == 1 else MSELoss()(logits, labels)
            elif self.config.problem_type == "single_label_classification":
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels.to(logits.dtype))
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return out if return_dict is not False else out.to_tuple()


class FlexiBertLMHead(nn.Module):
    """``Linear(h_last, h0)`` + GELU + LayerNorm, then the decoder ``Linear(h0, vocab)`` tied to the word embeddings."""

    def __init__(self, config: FlexiBertConfig, hidden_last: int, hidden_first: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_last, hidden_first)
        self.LayerNorm = nn.LayerNorm(hidden_first, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(hidden_first, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(F.gelu(self.dense(hidden_states))))


class FlexiBertForMaskedLM(FlexiBertPreTrainedModel):
    """Encoder (no pooler) + masked-language-model head; ``labels`` -100 are ignored."""

    _tied_weights_keys = {"cls.decoder.weight": "flexibert.embeddings.word_embeddings.weight"}

    def __init__(self, config: FlexiBertConfig) -> None:
        super().__init__(config)
        arch = config.architecture
        self.flexibert = FlexiBertModel(config, add_pooling_layer=False)
        self.cls = FlexiBertLMHead(config, arch.layers[-1].hidden, arch.layers[0].hidden)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        """``logits``: ``(B, T, vocab_size)``; ``labels``: ``(B, T)`` token ids or -100."""
        outputs = self.flexibert(
            input_ids, attention_mask, token_type_ids, inputs_embeds, output_hidden_states=output_hidden_states
        )
        logits = self.cls(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.config.vocab_size), labels.view(-1))
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return out if return_dict is not False else out.to_tuple()

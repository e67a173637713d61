"""``FlexiBertConfig``: a transformers configuration holding a FlexiBERT 2.0 :class:`Architecture`.

The architecture is stored as plain JSON-able data (``Architecture.to_dict()``) in the field
``arch_dict``, so ``save_pretrained``/``from_pretrained`` round-trip it through ``config.json``;
:attr:`FlexiBertConfig.architecture` returns it as an :class:`Architecture`. Every field is checked here, at the boundary, with a ``ValueError``
naming the field, the value and what is allowed.
"""

from __future__ import annotations

from typing import Any, Mapping

from transformers import PretrainedConfig

from protran_tune.space.architecture import Architecture

POSITION_EMBEDDING_TYPES: tuple[str, ...] = ("absolute", "relative_key")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_prob(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value) > 0.0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _architecture_dict(architecture: Architecture | Mapping[str, Any] | None) -> dict[str, Any]:
    if architecture is None:  # transformers builds a default config in a few places
        return Architecture.homogeneous(2, 128, 2, 512).to_dict()
    if isinstance(architecture, Architecture):
        return architecture.to_dict()
    if isinstance(architecture, Mapping):
        try:
            return Architecture.from_dict(architecture).to_dict()
        except ValueError as exc:
            raise ValueError(f"architecture: {exc}") from None
    raise ValueError(
        f"architecture must be an Architecture or its dict (Architecture.to_dict()), got {type(architecture).__name__}"
    )


class FlexiBertConfig(PretrainedConfig):
    """Configuration of FlexiBERT 2.0 models (heterogeneous BERT-style encoders).

    Args:
        architecture: the encoder (``Architecture`` or its ``to_dict()``); stored as ``arch_dict``.
        arch_dict: the same as a dict (what ``config.json`` holds); give one of the two.
        vocab_size: tokens in the vocabulary.
        max_position_embeddings: longest sequence (tokens).
        type_vocab_size: token-type (segment) ids.
        position_embedding_type: ``"absolute"`` (learned, added to the embeddings, as BERT) or
            ``"relative_key"`` (one learned ``(2 * max_position_embeddings - 1, head_size)`` table per
            layer with self-attention heads, shared by its ``sa-*`` heads, as BERT's relative_key).
        hidden_dropout_prob: dropout after embeddings, attention output and feed-forward.
        attention_probs_dropout_prob: dropout of attention probabilities (``sa-*`` heads).
        layer_norm_eps: LayerNorm epsilon.
        initializer_range: std of the normal initialisation of weights.
        classifier_dropout: dropout before the classifier (``None``: ``hidden_dropout_prob``).
        pad_token_id: padding token (its embedding starts at zero).
    """

    model_type = "flexibert"

    def __init__(
        self,
        architecture: Architecture | Mapping[str, Any] | None = None,
        arch_dict: Mapping[str, Any] | None = None,
        vocab_size: int = 30522,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        position_embedding_type: str = "absolute",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        layer_norm_eps: float = 1e-12,
        initializer_range: float = 0.02,
        classifier_dropout: float | None = None,
        pad_token_id: int | None = 0,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        for derived in ("hidden_size", "num_hidden_layers", "num_attention_heads"):
            kwargs.pop(derived, None)  # derived from the architecture, never stored
        if architecture is not None and arch_dict is not None:
            raise ValueError("give either architecture or arch_dict, not both")
        self.arch_dict = _architecture_dict(architecture if architecture is not None else arch_dict)
        self.vocab_size = _check_int("vocab_size", vocab_size, 1)
        self.max_position_embeddings = _check_int("max_position_embeddings", max_position_embeddings, 1)
        self.type_vocab_size = _check_int("type_vocab_size", type_vocab_size, 1)
        if position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {list(POSITION_EMBEDDING_TYPES)}, got {position_embedding_type!r}"
            )
        self.position_embedding_type = position_embedding_type
        self.hidden_dropout_prob = _check_prob("hidden_dropout_prob", hidden_dropout_prob)
        self.attention_probs_dropout_prob = _check_prob("attention_probs_dropout_prob", attention_probs_dropout_prob)
        self.layer_norm_eps = _check_positive("layer_norm_eps", layer_norm_eps)
        self.initializer_range = _check_positive("initializer_range", initializer_range)
        self.classifier_dropout = None if classifier_dropout is None else _check_prob("classifier_dropout", classifier_dropout)
        if pad_token_id is not None:
            _check_int("pad_token_id", pad_token_id, 0)
            if pad_token_id >= vocab_size:
                raise ValueError(f"pad_token_id must be < vocab_size={vocab_size}, got {pad_token_id}")
        hidden_act = kwargs.pop("hidden_act", "gelu")
        if hidden_act != "gelu":
            raise ValueError(f"hidden_act must be 'gelu' (the only activation FlexiBERT uses), got {hidden_act!r}")
        self.hidden_act = "gelu"
        self.tie_word_embeddings = bool(tie_word_embeddings)
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    # ----------------------------------------------------------------- views
    @classmethod
    def from_architecture(cls, arch: Architecture | Mapping[str, Any], **kwargs: Any) -> "FlexiBertConfig":
        """Configuration for ``arch``; ``kwargs`` are the other fields (``num_labels`` too)."""
        if not isinstance(arch, (Architecture, Mapping)):
            raise ValueError(f"arch must be an Architecture, got {type(arch).__name__}")
        return cls(architecture=arch, **kwargs)

    @property
    def architecture(self) -> Architecture:
        """The stored architecture as an :class:`Architecture`."""
        return Architecture.from_dict(self.arch_dict)

    @property
    def hidden_size(self) -> int:
        """Width of the last encoder layer (the model's output features)."""
        return int(self.arch_dict["layers"][-1]["hidden"])

    @property
    def num_hidden_layers(self) -> int:
        return len(self.arch_dict["layers"])

    @property
    def num_attention_heads(self) -> int:
        """Most heads of any layer (layers differ)."""
        return max(len(layer["heads"]) for layer in self.arch_dict["layers"])

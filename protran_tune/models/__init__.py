"""FlexiBERT 2.0 models in PyTorch on transformers (needs only torch, transformers, numpy, PyYAML).

``build_model(arch, task)`` is what measurement code uses::

    from protran_tune.models import build_model
    model = build_model(arch, task="base").eval()
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from protran_tune.models.configuration import POSITION_EMBEDDING_TYPES, FlexiBertConfig
from protran_tune.models.heads import ConvHeads, LinearTransformHeads, Masks, SelfAttentionHeads
from protran_tune.models.modeling import (
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
    FlexiBertPreTrainedModel,
    bert_state_dict_to_flexibert,
)
from protran_tune.space.architecture import Architecture

TASKS: dict[str, type[FlexiBertPreTrainedModel]] = {
    "base": FlexiBertModel,
    "classification": FlexiBertForSequenceClassification,
    "mlm": FlexiBertForMaskedLM,
}


def build_model(arch: Architecture | Mapping[str, Any], task: str = "base", **config_kwargs: Any) -> nn.Module:
    """A freshly initialised model for ``arch``.

    Args:
        arch: the architecture (or its ``to_dict()`` / ProTran ``model_dict``).
        task: ``"base"`` (encoder + pooler), ``"classification"`` or ``"mlm"``.
        config_kwargs: further :class:`FlexiBertConfig` fields (``num_labels``, ``position_embedding_type``, ...).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if isinstance(arch, Mapping):
        arch = Architecture.from_dict(arch)
    if not isinstance(arch, Architecture):
        raise ValueError(f"arch must be an Architecture or its dict, got {type(arch).__name__}")
    return TASKS[task](FlexiBertConfig.from_architecture(arch, **config_kwargs))


__all__ = [
    "FlexiBertConfig", "FlexiBertModel", "FlexiBertForSequenceClassification", "FlexiBertForMaskedLM",
    "FlexiBertPreTrainedModel", "build_model", "TASKS", "POSITION_EMBEDDING_TYPES", "Masks",
    "SelfAttentionHeads", "LinearTransformHeads", "ConvHeads", "bert_state_dict_to_flexibert",
]

"""Design spaces, architectures, embeddings and feature encodings (needs only numpy and PyYAML)."""

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.cost import count_parameters, encoder_flops
from protran_tune.space.design_space import BUILTIN_SPACES, DesignSpace, get_space
from protran_tune.space.features import FeatureEncoder
from protran_tune.space.search_space import (
    architecture_to_params,
    params_to_architecture,
    ray_tune_define_by_run,
    suggest_architecture,
)

__all__ = [
    "Architecture", "Layer", "DesignSpace", "BUILTIN_SPACES", "get_space", "FeatureEncoder",
    "count_parameters", "encoder_flops", "suggest_architecture", "architecture_to_params",
    "params_to_architecture", "ray_tune_define_by_run",
]

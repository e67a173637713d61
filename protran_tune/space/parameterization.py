"""Search spaces as Optuna parameters: a design space, or a named sub-space with its own parameters.

A :class:`Parameterization` says how the architectures of a search space are written as (conditional,
define-by-run) categorical parameters: ``suggest(trial)``, ``to_params(arch)``, ``from_params(params)``,
``is_param(name)``, ``contains(arch)``, ``distributions(arch)`` and ``sample(rng)``. Two kinds:

* :class:`DesignSpaceParameters` (any :class:`~protran_tune.space.DesignSpace`, e.g. ``flexibert2``):
  the parameters of :func:`~protran_tune.space.suggest_architecture` (``n_layers``, ``l{j}_hidden``,
  ``l{j}_n_heads``, ``l{j}_head{i}``, ``l{j}_ff_depth``, ``l{j}_ff{i}``);
* :class:`NasBenchBertParameters` (``nas-bench-bert``): NAS-Bench-BERT's space, a sub-space of
  ``flexibert2`` with one hidden size for all layers and one op per layer: ``hidden``, ``n_layers``, and
  per layer ``l{j}_op``, ``l{j}_n_heads``, ``l{j}_ff``, ``l{j}_ff_depth`` (10,621,440 architectures).

Every parameterisation has an enclosing ``design_space`` (whose embeddings surrogates read). Optuna is
imported lazily.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.design_space import DesignSpace, get_space
from protran_tune.space.search_space import architecture_to_params, params_to_architecture, suggest_architecture


class Parameterization:
    """Base: the architectures of a search space as categorical Optuna parameters (module docstring)."""

    name: str = ""
    design_space: DesignSpace

    def suggest(self, trial: Any) -> Architecture:  # pragma: no cover - interface
        raise NotImplementedError

    def to_params(self, arch: Architecture) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def from_params(self, params: Mapping[str, Any]) -> Architecture:  # pragma: no cover - interface
        raise NotImplementedError

    def is_param(self, name: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def choices(self, name: str) -> tuple[Any, ...]:  # pragma: no cover - interface
        raise NotImplementedError

    def sample(self, rng: np.random.Generator) -> Architecture:  # pragma: no cover - interface
        raise NotImplementedError

    def validate(self, arch: Architecture) -> Architecture:
        """``arch`` if it lies in this search space, else ``ValueError`` naming the reason."""
        self.from_params(self.to_params(arch))
        return arch

    def contains(self, arch: Architecture) -> bool:
        try:
            self.validate(arch)
        except ValueError:
            return False
        return True

    def distributions(self, arch: Architecture) -> dict[str, Any]:
        """``{name: CategoricalDistribution}`` of the parameters ``arch`` uses (for ``optuna.trial.create_trial``)."""
        from optuna.distributions import CategoricalDistribution

        return {name: CategoricalDistribution(list(self.choices(name))) for name in self.to_params(arch)}

    def conform(self, arch: Architecture, fixed: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters of ``arch`` with the values of ``fixed`` ones (enqueued or partially fixed trials)."""
        params = self.to_params(arch)
        params.update({k: v for k, v in fixed.items() if self.is_param(k) and k in params})
        return params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DesignSpaceParameters(Parameterization):
    """The parameters of :func:`~protran_tune.space.suggest_architecture` for a design space."""

    _RE = re.compile(r"^(n_layers|l\d+_(hidden|n_heads|head\d+|ff_depth|ff\d+))$")

    def __init__(self, space: DesignSpace | str = "flexibert2") -> None:
        self.design_space = get_space(space)
        self.name = self.design_space.name

    def suggest(self, trial: Any) -> Architecture:
        return suggest_architecture(trial, self.design_space)

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        return architecture_to_params(arch)

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        return params_to_architecture(params, self.design_space)

    def validate(self, arch: Architecture) -> Architecture:
        return self.design_space.validate(arch)

    def is_param(self, name: str) -> bool:
        return bool(self._RE.match(name))

    def choices(self, name: str) -> tuple[Any, ...]:
        sp = self.design_space
        key = name if name == "n_layers" else name.split("_", 1)[1].rstrip("0123456789")
        table = {"n_layers": sp.layers, "hidden": sp.hidden_sizes, "n_heads": sp.num_heads, "head": sp.head_ops,
                 "ff_depth": sp.feed_forward_stacks, "ff": sp.feed_forward_dims}
        return tuple(table[key])

    def sample(self, rng: np.random.Generator) -> Architecture:
        return self.design_space.sample(rng)

    def conform(self, arch: Architecture, fixed: Mapping[str, Any]) -> dict[str, Any]:
        from protran_tune.samplers._base import conform_params  # walks the define-by-run structure

        return conform_params(arch, fixed)


class NasBenchBertParameters(Parameterization):
    """NAS-Bench-BERT's space (Serianni & Kalita, ACL 2023) inside ``flexibert2``: one hidden size for all
    layers; per layer one op with 2 or 4 heads and a stack of 1 or 3 equal feed-forward layers."""

    HIDDEN = (128, 256)
    LAYERS = (2, 4)
    OPS = ("sa-sdp", "sa-wma", "l-dft", "l-dct", "c-5", "c-9")
    HEADS = (2, 4)
    FF = (512, 1024)
    FF_DEPTH = (1, 3)
    _RE = re.compile(r"^(hidden|n_layers|l\d+_(op|n_heads|ff|ff_depth))$")

    def __init__(self) -> None:
        self.name = "nas-bench-bert"
        self.design_space = get_space("flexibert2")

    def _layer_choices(self) -> dict[str, tuple[Any, ...]]:
        return {"op": self.OPS, "n_heads": self.HEADS, "ff": self.FF, "ff_depth": self.FF_DEPTH}

    def suggest(self, trial: Any) -> Architecture:
        hidden = trial.suggest_categorical("hidden", list(self.HIDDEN))
        n = trial.suggest_categorical("n_layers", list(self.LAYERS))
        params: dict[str, Any] = {"hidden": hidden, "n_layers": n}
        for j in range(n):
            for key, choices in self._layer_choices().items():
                params[f"l{j}_{key}"] = trial.suggest_categorical(f"l{j}_{key}", list(choices))
        return self.from_params(params)

    def to_params(self, arch: Architecture) -> dict[str, Any]:
        hidden = set(arch.hidden_sizes)
        if len(hidden) != 1:
            raise ValueError(f"nas-bench-bert architectures have one hidden size, got {arch.hidden_sizes}")
        params: dict[str, Any] = {"hidden": arch.layers[0].hidden, "n_layers": arch.n_layers}
        for j, layer in enumerate(arch.layers):
            if len(set(layer.heads)) != 1:
                raise ValueError(f"layer {j}: nas-bench-bert layers have one op, got {layer.heads}")
            if len(set(layer.feed_forward)) != 1:
                raise ValueError(f"layer {j}: nas-bench-bert stacks equal feed-forward widths, got {layer.feed_forward}")
            params.update({f"l{j}_op": layer.heads[0], f"l{j}_n_heads": layer.n_heads,
                           f"l{j}_ff": layer.feed_forward[0], f"l{j}_ff_depth": len(layer.feed_forward)})
        return params

    def from_params(self, params: Mapping[str, Any]) -> Architecture:
        def get(name: str, choices: tuple[Any, ...]) -> Any:
            if name not in params:
                raise ValueError(f"parameter {name!r} missing from trial params")
            if params[name] not in choices:
                raise ValueError(f"parameter {name}={params[name]!r} not allowed in space 'nas-bench-bert': allowed {list(choices)}")
            return params[name]

        hidden, n = get("hidden", self.HIDDEN), get("n_layers", self.LAYERS)
        layers = []
        for j in range(n):
            op, heads = get(f"l{j}_op", self.OPS), get(f"l{j}_n_heads", self.HEADS)
            ff, depth = get(f"l{j}_ff", self.FF), get(f"l{j}_ff_depth", self.FF_DEPTH)
            layers.append(Layer(hidden=hidden, heads=(op,) * heads, feed_forward=(ff,) * depth))
        return Architecture(tuple(layers))

    def is_param(self, name: str) -> bool:
        return bool(self._RE.match(name))

    def choices(self, name: str) -> tuple[Any, ...]:
        if name == "hidden":
            return self.HIDDEN
        if name == "n_layers":
            return self.LAYERS
        return self._layer_choices()[name.split("_", 1)[1]]

    def sample(self, rng: np.random.Generator) -> Architecture:
        params: dict[str, Any] = {"hidden": int(rng.choice(self.HIDDEN)), "n_layers": int(rng.choice(self.LAYERS))}
        for j in range(params["n_layers"]):
            for key, choices in self._layer_choices().items():
                params[f"l{j}_{key}"] = choices[int(rng.integers(len(choices)))]
        return self.from_params(params)

    @property
    def size(self) -> int:
        """Number of architectures: 2 hidden sizes x (48^2 + 48^4) (48 layer types: 6 ops x 2 x 2 x 2)."""
        per_layer = len(self.OPS) * len(self.HEADS) * len(self.FF) * len(self.FF_DEPTH)
        return len(self.HIDDEN) * sum(per_layer**n for n in self.LAYERS)


SUBSPACES = {"nas-bench-bert": NasBenchBertParameters}


def get_parameterization(space: Parameterization | DesignSpace | str = "flexibert2") -> Parameterization:
    """A search space's parameters: a named sub-space (``nas-bench-bert``), or a design space's."""
    if isinstance(space, Parameterization):
        return space
    if isinstance(space, str) and space in SUBSPACES:
        return SUBSPACES[space]()
    return DesignSpaceParameters(space)

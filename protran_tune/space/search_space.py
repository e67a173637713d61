"""The design space as Optuna define-by-run parameters and as a Ray Tune search.

Parameter names (conditional: layer ``j``'s parameters exist only when ``n_layers > j``):

* ``n_layers``;
* ``l{j}_hidden``, ``l{j}_n_heads``, ``l{j}_head{i}`` for ``i < n_heads`` (an op name);
* ``l{j}_ff_depth``, ``l{j}_ff{i}`` for ``i < ff_depth`` (a width).

Head ops of a layer are a multiset; :func:`architecture_to_params` writes them in canonical order, so
one architecture has one parameter dict. Optuna is imported lazily: this module works without it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from protran_tune.space.architecture import Architecture, Layer
from protran_tune.space.design_space import DesignSpace, get_space


def suggest_architecture(trial: Any, space: DesignSpace | str = "flexibert2") -> Architecture:
    """Suggest a whole architecture on an ``optuna.Trial`` (define-by-run, conditional parameters)."""
    space = get_space(space)
    n_layers = trial.suggest_categorical("n_layers", list(space.layers))
    layers = []
    for j in range(n_layers):
        hidden = trial.suggest_categorical(f"l{j}_hidden", list(space.hidden_sizes))
        n_heads = trial.suggest_categorical(f"l{j}_n_heads", list(space.num_heads))
        heads = tuple(trial.suggest_categorical(f"l{j}_head{i}", list(space.head_ops)) for i in range(n_heads))
        depth = trial.suggest_categorical(f"l{j}_ff_depth", list(space.feed_forward_stacks))
        ff = tuple(trial.suggest_categorical(f"l{j}_ff{i}", list(space.feed_forward_dims)) for i in range(depth))
        layers.append(Layer(hidden=hidden, heads=heads, feed_forward=ff))
    return space.validate(Architecture(tuple(layers)))


def architecture_to_params(arch: Architecture) -> dict[str, Any]:
    """The parameter dict :func:`suggest_architecture` would record for ``arch``."""
    params: dict[str, Any] = {"n_layers": arch.n_layers}
    for j, layer in enumerate(arch.layers):
        params[f"l{j}_hidden"] = layer.hidden
        params[f"l{j}_n_heads"] = layer.n_heads
        params.update({f"l{j}_head{i}": op for i, op in enumerate(layer.heads)})
        params[f"l{j}_ff_depth"] = len(layer.feed_forward)
        params.update({f"l{j}_ff{i}": w for i, w in enumerate(layer.feed_forward)})
    return params


def params_to_architecture(params: Mapping[str, Any], space: DesignSpace | str | None = None) -> Architecture:
    """Inverse of :func:`architecture_to_params`; ``KeyError``-free: a missing name is a ``ValueError``."""

    def get(name: str) -> Any:
        if name not in params:
            raise ValueError(f"parameter {name!r} missing from trial params")
        return params[name]

    layers = []
    for j in range(int(get("n_layers"))):
        heads = tuple(get(f"l{j}_head{i}") for i in range(int(get(f"l{j}_n_heads"))))
        ff = tuple(int(get(f"l{j}_ff{i}")) for i in range(int(get(f"l{j}_ff_depth"))))
        layers.append(Layer(hidden=int(get(f"l{j}_hidden")), heads=heads, feed_forward=ff))
    arch = Architecture(tuple(layers))
    return get_space(space).validate(arch) if space is not None else arch


def optuna_distributions(arch: Architecture, space: DesignSpace | str = "flexibert2") -> dict[str, Any]:
    """``{name: CategoricalDistribution}`` of every parameter ``arch`` uses (for ``FrozenTrial`` s)."""
    from optuna.distributions import CategoricalDistribution

    space = get_space(space)
    choices = {
        "n_layers": space.layers, "hidden": space.hidden_sizes, "n_heads": space.num_heads,
        "head": space.head_ops, "ff_depth": space.feed_forward_stacks, "ff": space.feed_forward_dims,
    }
    dists = {}
    for name in architecture_to_params(arch):
        key = name if name == "n_layers" else name.split("_", 1)[1].rstrip("0123456789")
        dists[name] = CategoricalDistribution(list(choices[key]))
    return dists


def ray_tune_define_by_run(space: DesignSpace | str = "flexibert2") -> Callable[[Any], dict[str, Any]]:
    """A define-by-run function for ``ray.tune.search.optuna.OptunaSearch(space=...)``.

    It suggests the architecture's parameters on the Optuna trial and returns the architecture JSON
    as a constant, which Tune passes in each trial's config under ``"architecture"``.
    """
    return _DefineByRun(get_space(space))


class _DefineByRun:
    """Picklable define-by-run callable (Tune checkpoints its searcher, space included, with pickle)."""

    def __init__(self, space: DesignSpace) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        return {"architecture": suggest_architecture(trial, self.space).to_json()}

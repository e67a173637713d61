"""``nas-bench-bert``: a GLUE (and per-task) predictor with uncertainty, learned from NAS-Bench-BERT.

:class:`NasBenchBertAccuracy` fits a surrogate (by default the configuration chosen by measurement in
``benchmarks/bench_accuracy.py``: :func:`default_accuracy_surrogate`) on the ``nas-bench-bert`` table
(all rows, or the rows you give) and predicts ``glue`` and/or any GLUE task for any architecture of
``flexibert2``, with a std.

Its domain is the data it learned from: hidden sizes <= 256, at most 4 layers, one op type per layer,
ops among ``sa-sdp``, ``sa-wma``, ``l-dft``, ``l-dct``, ``c-5``, ``c-9``. A prediction outside that domain
gets its std multiplied by ``outside_std_factor`` (default 3), a warning, ``in_domain=False`` and the
reason in ``details[i]["warning"]`` (the search marks such trials with the user attr ``out_of_domain``).
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.providers import ObjectiveProvider, ObjectiveValues, PredictedObjective, _values
from protran_tune.objectives.targets import GLUE_TASKS, get_target
from protran_tune.space import Architecture, get_space

DOMAIN = {"max_hidden": 256, "max_layers": 4, "one_op_per_layer": True,
          "ops": ("sa-sdp", "sa-wma", "l-dft", "l-dct", "c-5", "c-9")}


def default_accuracy_surrogate(seed: int = 0) -> Any:
    """The accuracy surrogate chosen by measurement (``benchmarks/bench_accuracy.py``, selection seeds)."""
    from protran_tune.surrogates import make_surrogate

    return make_surrogate("rf", random_state=seed, encoder="layers")


def outside_domain(arch: Architecture) -> str | None:
    """Why ``arch`` lies outside NAS-Bench-BERT's domain, or ``None`` inside it."""
    if arch.n_layers > DOMAIN["max_layers"]:
        return f"{arch.n_layers} layers > {DOMAIN['max_layers']}"
    if max(arch.hidden_sizes) > DOMAIN["max_hidden"]:
        return f"hidden size {max(arch.hidden_sizes)} > {DOMAIN['max_hidden']}"
    for j, layer in enumerate(arch.layers):
        if len(set(layer.heads)) > 1:
            return f"layer {j} mixes ops {sorted(set(layer.heads))} (NAS-Bench-BERT: one op per layer)"
        if layer.heads[0] not in DOMAIN["ops"]:
            return f"layer {j} op {layer.heads[0]!r} not among {list(DOMAIN['ops'])}"
    return None


class NasBenchBertAccuracy(ObjectiveProvider):
    """Predicted GLUE / GLUE-task scores (points) with std, learned from NAS-Bench-BERT (module docstring).

    Args:
        targets: ``glue`` and/or GLUE tasks (``sst2``, ``qnli``, ...).
        surrogate: a surrogate instance taking ``flexibert2`` embeddings (default :func:`default_accuracy_surrogate`).
        rows: the table rows to learn from (default all 491).
        outside_std_factor: std multiplier outside the domain.
        seed: seed of the default surrogate.
    """

    kind = "predicted"

    def __init__(self, targets: Sequence[str] = ("glue",), *, surrogate: Any = None, rows: Sequence[int] | None = None,
                 outside_std_factor: float = 3.0, seed: int = 0) -> None:
        from protran_tune.datasets import load_dataset

        self.targets = tuple(get_target(t).name for t in targets)
        allowed = ("glue", *GLUE_TASKS)
        bad = [t for t in self.targets if t not in allowed]
        if bad:
            raise ValueError(f"the nas-bench-bert predictor has no target(s) {bad}; it predicts {list(allowed)}")
        if not outside_std_factor >= 1:
            raise ValueError(f"outside_std_factor must be >= 1, got {outside_std_factor!r}")
        self.outside_std_factor = float(outside_std_factor)
        self.table = load_dataset("nas-bench-bert")
        idx = np.arange(len(self.table)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.rows = idx
        Y = self.table.values(self.targets)[idx]
        offset, scale = Y.mean(0), np.maximum(Y.std(0), 1e-9)
        self.model = surrogate if surrogate is not None else default_accuracy_surrogate(seed)
        sp = get_space("flexibert2")
        self.model.fit(np.stack([sp.embed(self.table.archs[i]) for i in idx]), (Y - offset) / scale)
        self.predictor = PredictedObjective(self.model, self.targets, scale, "nas-bench-bert", offset=offset)

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        v = self.predictor.evaluate(archs)
        mean, std, inside_space = v.mean, v.std, v.in_domain
        details: list[dict[str, Any]] = []
        in_domain = np.zeros(len(archs), dtype=bool)
        for i, (arch, ok) in enumerate(zip(archs, inside_space)):
            reason = outside_domain(arch) if ok else "outside the flexibert2 design space"
            in_domain[i] = reason is None
            if reason is not None and ok:
                std[i] *= self.outside_std_factor
            details.append({} if reason is None else {"warning": f"outside the nas-bench-bert domain: {reason}",
                                                      **({} if ok else {"error": reason})})
        n_out = int((~in_domain).sum())
        if n_out:
            warnings.warn(f"nas-bench-bert accuracy: {n_out} of {len(archs)} architecture(s) lie outside its domain "
                          f"(hidden <= 256, <= 4 layers, one op per layer); their std is x{self.outside_std_factor:g}",
                          stacklevel=2)
        return _values(self.targets, mean, std, {t: "predicted:nas-bench-bert" for t in self.targets}, in_domain, details)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "domain": {**DOMAIN, "ops": list(DOMAIN["ops"])}, "n_train": len(self.rows),
                "surrogate": type(self.model).__name__, "outside_std_factor": self.outside_std_factor}

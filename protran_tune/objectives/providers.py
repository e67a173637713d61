"""Objective providers: one interface for every way of getting target values of architectures.

``provider.evaluate(archs)`` returns :class:`ObjectiveValues`: ``mean`` ``(n, k)`` in the targets'
units, ``std`` ``(n, k)`` (0 for exact values and measurements, the model's std for predictions), the
source of each target, and an ``in_domain`` flag per architecture (``False`` where a predictor
extrapolates). Providers:

==========================  ======================================================================
:class:`MeasuredHardware`   a platform measures each architecture (latency, energy, peak power)
:class:`PoolLookup`         a recorded table answers (a "true evaluation" in pool benchmarks)
:class:`PredictedObjective` a fitted surrogate with its std: from a table, a ``profile`` study or an
                            MLflow model
:class:`ZeroCost`           exact counts: ``params``, ``flops``, ``depth``
accuracy                    :class:`~protran_tune.objectives.accuracy.NasBenchBertAccuracy` (predictor
                            learned from NAS-Bench-BERT) and
                            :class:`~protran_tune.objectives.training.TrainedAccuracy` (real training)
==========================  ======================================================================

A value a provider cannot give is ``NaN`` with the reason in ``details[i]["error"]``, never a silent 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.targets import HARDWARE_TARGETS, get_target
from protran_tune.space import Architecture, get_space


@dataclass
class ObjectiveValues:
    """Values of ``targets`` for ``n`` architectures.

    Attributes:
        targets: the ``k`` canonical target names.
        mean: ``(n, k)`` values (measured, exact or predicted mean), NaN where unavailable.
        std: ``(n, k)`` predictive std (0 for measured and exact values).
        sources: ``{target: source}`` (``measured:nvml``, ``nas-bench-bert``, ``predicted:gp@...``).
        in_domain: ``(n,)`` False where a predictor extrapolates outside the data it learned from.
        details: one dict per architecture (measurement record, warnings, errors).
    """

    targets: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    sources: dict[str, str]
    in_domain: np.ndarray
    details: list[dict[str, Any]] = field(default_factory=list)

    def column(self, target: str) -> np.ndarray:
        return self.mean[:, self.targets.index(get_target(target).name)]

    def row(self, i: int) -> dict[str, float]:
        return {t: float(self.mean[i, j]) for j, t in enumerate(self.targets)}


class ObjectiveProvider:
    """Base of the providers: ``targets``, ``kind`` and ``evaluate(archs) -> ObjectiveValues``.

    ``kind`` is ``"measured"`` (a real platform or recorded measurements), ``"predicted"`` (a model with
    std) or ``"exact"`` (computed from the architecture).
    """

    targets: tuple[str, ...] = ()
    kind: str = "exact"

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"provider": type(self).__name__, "kind": self.kind, "targets": list(self.targets)}


def _values(targets: Sequence[str], mean: np.ndarray, std: np.ndarray | None, sources: dict[str, str],
            in_domain: np.ndarray | None = None, details: list[dict[str, Any]] | None = None) -> ObjectiveValues:
    n = len(mean)
    return ObjectiveValues(
        targets=tuple(targets), mean=mean, std=np.zeros_like(mean) if std is None else std, sources=sources,
        in_domain=np.ones(n, dtype=bool) if in_domain is None else in_domain, details=details or [{} for _ in range(n)],
    )


def _checked_targets(targets: Sequence[str], allowed: Sequence[str], who: str) -> tuple[str, ...]:
    names = tuple(get_target(t).name for t in targets)
    bad = [t for t in names if t not in allowed]
    if bad:
        raise ValueError(f"{who} has no target(s) {bad}; it provides {list(allowed)}")
    if not names:
        raise ValueError(f"{who}: name at least one target")
    return names


# --------------------------------------------------------------------------- measured
class MeasuredHardware(ObjectiveProvider):
    """Hardware targets measured on a platform, one architecture at a time.

    Args:
        platform: a :class:`~protran_tune.platforms.base.Platform` or a registered name.
        workload: the :class:`~protran_tune.platforms.base.Workload` (default: inference, batch 1 x 128).
        targets: subset of ``latency_s``, ``energy_j``, ``energy_above_idle_j``, ``peak_power_w``.
        options: platform options when ``platform`` is a name.
    """

    kind = "measured"
    _AVAILABLE = (*HARDWARE_TARGETS, "energy_above_idle_j")

    def __init__(self, platform: Any = "cpu", workload: Any = None, targets: Sequence[str] = HARDWARE_TARGETS, **options: Any) -> None:
        from protran_tune.platforms.base import Workload, get_platform

        self.platform = get_platform(platform, **options) if isinstance(platform, str) else platform
        self.workload = workload or Workload(batch_size=1, seq_len=128)
        self.targets = _checked_targets(targets, self._AVAILABLE, f"platform {getattr(self.platform, 'name', platform)!r}")

    def measure_one(self, arch: Architecture) -> tuple[list[float], dict[str, str], dict[str, Any]]:
        """Values of one architecture (NaN where unavailable), the source of each and the measurement record."""
        from protran_tune.platforms.base import MeasurementError

        try:
            m = self.platform.measure(arch, self.workload)
        except MeasurementError as exc:
            return [math.nan] * len(self.targets), {}, {"error": f"{type(exc).__name__}: {exc}"}
        values = {**m.objectives(), "energy_above_idle_j": m.energy_above_idle_per_sequence_j}
        row = [math.nan if values[t] is None else float(values[t]) for t in self.targets]
        missing = {t: m.unavailable.get(t, "not measured") for t, v in zip(self.targets, row) if not math.isfinite(v)}
        detail: dict[str, Any] = {"measurement": m.to_dict(include_trace=False)}
        if missing:
            detail["error"] = f"unavailable on {m.platform}: {missing}"
        # latency is timed on the device; energy and power come from the platform's meter (maybe a model)
        sources = {t: "measured:timer" if t == "latency_s" else m.source for t in self.targets}
        return row, sources, detail

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        rows, details, sources = [], [], {t: set() for t in self.targets}
        for arch in archs:
            row, src, detail = self.measure_one(arch)
            rows.append(row)
            details.append(detail)
            for t, value in src.items():
                sources[t].add(value)
        mean = np.asarray(rows, dtype=np.float64).reshape(len(archs), len(self.targets))
        return _values(self.targets, mean, None, {t: ", ".join(sorted(v)) or "failed" for t, v in sources.items()},
                       details=details)


# --------------------------------------------------------------------------- pool
class PoolLookup(ObjectiveProvider):
    """Values read from a recorded :class:`~protran_tune.datasets.table.Table` (pool benchmarks).

    An architecture that is not in the table gets NaN and ``details[i]["error"]``; ``queries`` counts
    the rows revealed.
    """

    kind = "measured"

    def __init__(self, table: Any, targets: Sequence[str]) -> None:
        self.table = table
        self.targets = _checked_targets(targets, table.metric_names, f"table {table.name!r}")
        self.queries = 0

    def lookup(self, rows: Sequence[int]) -> np.ndarray:
        """``(len(rows), k)`` values of table rows (counts as revealed)."""
        self.queries += len(rows)
        return self.table.values(self.targets)[np.asarray(rows, dtype=np.int64)]

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        idx = [self.table.index_of(a) for a in archs]
        found = [i for i in idx if i is not None]
        mean = np.full((len(archs), len(self.targets)), np.nan)
        if found:
            mean[[j for j, i in enumerate(idx) if i is not None]] = self.lookup(found)
        details = [{} if i is not None else {"error": f"architecture {a.content_hash()} is not in table {self.table.name!r}"}
                   for a, i in zip(archs, idx)]
        return _values(self.targets, mean, None, {t: self.table.sources.get(t, self.table.name) for t in self.targets},
                       in_domain=np.array([i is not None for i in idx]), details=details)


# --------------------------------------------------------------------------- exact
class ZeroCost(ObjectiveProvider):
    """Exact cheap properties of an architecture: ``params`` (embeddings included), ``flops`` (encoder,
    per sequence of ``seq_len`` tokens) and ``depth`` (layers)."""

    kind = "exact"
    _AVAILABLE = ("params", "flops", "depth")

    def __init__(self, targets: Sequence[str] = ("params",), seq_len: int = 128) -> None:
        self.targets = _checked_targets(targets, self._AVAILABLE, "zero-cost")
        self.seq_len = seq_len

    def value(self, arch: Architecture, target: str) -> float:
        from protran_tune.space import count_parameters, encoder_flops

        if target == "params":
            return float(count_parameters(arch))
        if target == "flops":
            return float(encoder_flops(arch, self.seq_len))
        return float(arch.n_layers)

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        mean = np.array([[self.value(a, t) for t in self.targets] for a in archs], dtype=np.float64).reshape(len(archs), -1)
        return _values(self.targets, mean, None, {t: "exact:architecture" for t in self.targets})


# --------------------------------------------------------------------------- predicted
class PredictedObjective(ObjectiveProvider):
    """A fitted surrogate's mean and std, in the targets' units.

    Args:
        surrogate: a fitted surrogate taking ProTran embeddings of ``space`` (targets divided by ``scale``).
        targets: the names of its outputs, in order.
        scale: ``(k,)`` the surrogate was fitted on ``Y / scale``.
        source: where it was learned (``table:protran-nasbench:h200``, ``study:h200``, ``mlflow:runs:/...``).
        space: design space of the embeddings.
        offset: ``(k,)`` added after scaling (the surrogate was fitted on ``(Y - offset) / scale``).
    """

    kind = "predicted"

    def __init__(self, surrogate: Any, targets: Sequence[str], scale: Any, source: str, space: str = "flexibert2",
                 offset: Any = 0.0) -> None:
        self.surrogate = surrogate
        self.targets = tuple(get_target(t).name for t in targets)
        self.scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(self.targets),)).copy()
        self.offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), (len(self.targets),)).copy()
        self.source = source
        self.space = space

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        sp = get_space(self.space)
        inside = np.array([sp.contains(a) for a in archs], dtype=bool)
        mean = np.full((len(archs), len(self.targets)), np.nan)
        std = np.full_like(mean, np.nan)
        if inside.any():
            X = np.stack([sp.embed(a) for a, ok in zip(archs, inside) if ok])
            mu, sd = self.surrogate.predict(X, return_std=True)
            mean[inside] = np.asarray(mu).reshape(len(X), -1) * self.scale + self.offset
            std[inside] = np.asarray(sd).reshape(len(X), -1) * self.scale
        details = [{} if ok else {"error": f"outside the design space {self.space!r}"} for ok in inside]
        return _values(self.targets, mean, std, {t: f"predicted:{self.source}" for t in self.targets}, inside, details)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source, "surrogate": type(self.surrogate).__name__}

    # ----------------------------------------------------------------- constructors
    @classmethod
    def fit(cls, archs: Sequence[Architecture], Y: Any, targets: Sequence[str], *, surrogate: Any = "gp", source: str,
            space: str = "flexibert2", seed: int = 0, **params: Any) -> "PredictedObjective":
        """Fit ``surrogate`` (a name for :func:`~protran_tune.surrogates.make_surrogate`, or an instance)
        on architectures and their values ``Y`` ``(n, k)``, normalised by the max |Y| per target."""
        from protran_tune.surrogates import make_surrogate

        Y = np.asarray(Y, dtype=np.float64).reshape(len(archs), -1)
        if len(archs) < 2:
            raise ValueError(f"need at least 2 architectures to fit a predictor, got {len(archs)}")
        scale = np.maximum(np.abs(Y).max(0), 1e-30)
        model = (make_surrogate(surrogate, random_state=seed, default_space=space, **params) if isinstance(surrogate, str)
                 else surrogate)
        sp = get_space(space)
        model.fit(np.stack([sp.embed(a) for a in archs]), Y / scale)
        return cls(model, targets, scale, source, space)

    @classmethod
    def from_table(cls, table: Any, targets: Sequence[str], *, surrogate: Any = "gp", rows: Sequence[int] | None = None,
                   seed: int = 0, **params: Any) -> "PredictedObjective":
        """Fit on a :class:`~protran_tune.datasets.table.Table` (all rows, or ``rows``)."""
        idx = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
        Y = table.values(targets)[idx]
        return cls.fit([table.archs[i] for i in idx], Y, targets, surrogate=surrogate, source=f"table:{table.name}",
                       seed=seed, **params)

    @classmethod
    def from_study(cls, storage: str, study_name: str, *, surrogate: Any = "gp", seed: int = 0, **params: Any) -> "PredictedObjective":
        """Fit on the completed trials of a ``profile`` study (its metric names are the targets)."""
        from protran_tune.workflows.fit import dataset_from_study

        data = dataset_from_study(storage, study_name)
        if len(data) < 2:
            raise ValueError(f"study {study_name!r} has {len(data)} completed measurement(s); need at least 2")
        return cls.fit(data.archs, data.Y, data.targets, surrogate=surrogate, source=f"study:{study_name}", seed=seed, **params)

    @classmethod
    def from_mlflow(cls, model_uri: str) -> "PredictedObjective":
        """A surrogate logged by ``protran-tune fit`` (an MLflow pyfunc model URI such as ``runs:/<id>/surrogate``)."""
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
        return cls(model.surrogate, model.targets, model.scale, f"mlflow:{model_uri}", model.space)

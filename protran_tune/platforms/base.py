"""Platforms: where architectures are measured. One interface, one registry.

A :class:`Platform` measures one :class:`~protran_tune.space.Architecture` under one
:class:`Workload` and returns a :class:`~protran_tune.platforms.measurement.Measurement`. Platforms
register by name (``@register_platform("cpu")``) so users add their own; :func:`get_platform` builds
one from its name and keyword options. This module needs neither Ray nor Optuna nor MLflow.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar, Sequence, TypeVar

from protran_tune.platforms.measurement import MODES, Measurement
from protran_tune.space import Architecture


class MeasurementError(RuntimeError):
    """A measurement that could not be made (out of memory, sensor unreadable, ...): recorded as failed."""


class SensorUnavailableError(MeasurementError):
    """The platform's sensor is missing or unreadable on this machine."""


@dataclass(frozen=True)
class Workload:
    """What to run: ``batch_size`` sequences of ``seq_len`` random token ids, ``repeats`` times.

    Attributes:
        mode: ``inference`` or ``training`` (forward + backward + optimiser step).
        batch_size: sequences per batch, or ``None`` for the platform's choice (recorded in the result).
        seq_len: tokens per sequence (128, as SST-2 in the paper).
        vocab_size: token id range of the random inputs and the model's vocabulary.
        min_repeats / max_repeats: bounds on timed iterations.
        target_ci_rel: stop repeating once the 95% CI half-width of the median latency is below this.
        warmup: untimed iterations first.
        seed: seed of the inputs and the model's initial weights.
    """

    mode: str = "inference"
    batch_size: int | None = None
    seq_len: int = 128
    vocab_size: int = 30522
    min_repeats: int = 10
    max_repeats: int = 200
    target_ci_rel: float = 0.01
    warmup: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer or None (auto), got {self.batch_size!r}")
        for name in ("seq_len", "vocab_size", "min_repeats", "max_repeats"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.min_repeats > self.max_repeats:
            raise ValueError(f"min_repeats={self.min_repeats} exceeds max_repeats={self.max_repeats}")
        if not 0 < self.target_ci_rel < 1:
            raise ValueError(f"target_ci_rel must lie in (0, 1), got {self.target_ci_rel!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Platform(abc.ABC):
    """A device that measures architectures. Subclasses set ``name`` and implement :meth:`measure`."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def measure(self, arch: Architecture, workload: Workload) -> Measurement:
        """Measure ``arch``; raise :class:`MeasurementError` when it cannot be measured."""

    def describe(self) -> dict[str, Any]:
        """Facts about the device and its sensors (recorded with results)."""
        return {"platform": self.name}

    @classmethod
    def pool(cls, **options: Any) -> Sequence[Architecture] | None:
        """The architectures this platform can measure when built with ``options``, if that is a
        finite set (``replay``: the records of its file); ``None``, the default: any architecture."""
        return None

    def close(self) -> None:
        """Release sensors and background threads."""


_REGISTRY: dict[str, Callable[..., Platform]] = {}
P = TypeVar("P", bound=type[Platform])


def register_platform(name: str) -> Callable[[P], P]:
    """Class decorator: make a platform available to :func:`get_platform` under ``name``."""

    def decorate(cls: P) -> P:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"platform name {name!r} is already registered to {_REGISTRY[name]!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin_platforms() -> None:
    # Importing the package registers the built-in platforms (cheap: sensors open lazily).
    import protran_tune.platforms  # noqa: F401


def available_platforms() -> list[str]:
    _load_builtin_platforms()
    return sorted(_REGISTRY)


def platform_class(name: str) -> Callable[..., Platform]:
    """The class (or factory) registered as ``name``; ``ValueError`` lists the known names."""
    _load_builtin_platforms()
    if name not in _REGISTRY:
        raise ValueError(f"unknown platform {name!r}: known platforms are {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def get_platform(name: str, **options: Any) -> Platform:
    """Build a registered platform; ``ValueError`` lists the known names."""
    return platform_class(name)(**options)

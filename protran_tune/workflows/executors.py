"""Where ``profile`` measures: in this process, or on platform-bound Ray actors.

An executor takes a batch of architectures and returns one :class:`Outcome` per architecture, in order:
a :class:`Measurement` or the reason it failed (out of memory, sensor error, actor death). A failure
never raises: the study records it and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from protran_tune.platforms import Measurement, Workload, get_platform
from protran_tune.space import Architecture


@dataclass(frozen=True)
class Outcome:
    """Result of measuring one architecture: ``measurement`` or ``error`` (one line)."""

    measurement: Measurement | None
    error: str | None = None
    node: dict[str, Any] | None = None  # where it ran (Ray node id, IP, host name, pid), when on Ray


def describe_error(exc: BaseException) -> str:
    """One line naming the failure: ``OutOfMemoryError: ...``, ``SensorUnavailableError: ...``."""
    text = (str(exc).strip().splitlines() or [""])[0][:500]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class InProcessExecutor:
    """Measure one architecture at a time in this process (``--no-ray``)."""

    width = 1

    def __init__(self, platform: str, workload: Workload, options: Mapping[str, Any] | None = None) -> None:
        self.platform_name = platform
        self.workload = workload
        self.platform = get_platform(platform, **dict(options or {}))

    def measure(self, archs: Sequence[Architecture]) -> list[Outcome]:
        outcomes = []
        for arch in archs:
            try:
                outcomes.append(Outcome(self.platform.measure(arch, self.workload)))
            except MemoryError as exc:
                outcomes.append(Outcome(None, f"out of memory: {describe_error(exc)}"))
            except Exception as exc:  # MeasurementError, torch OOM (RuntimeError), sensor errors
                outcomes.append(Outcome(None, describe_error(exc)))
        return outcomes

    def close(self) -> None:
        self.platform.close()


class RayExecutor:
    """Measure on platform-bound Ray actors (:class:`~protran_tune.cluster.pool.PlatformPool`).

    One actor per ``platform:<name>`` resource unit (or ``n_workers``); ``width`` measurements in flight.
    An actor that dies is restarted and its measurement retried once by the pool; a second death is a
    failed outcome. ``plugins`` are modules imported in each actor (platforms defined outside the package).
    """

    def __init__(self, platform: str, workload: Workload, options: Mapping[str, Any] | None = None,
                 n_workers: int | None = None, plugins: Sequence[str] = ()) -> None:
        from protran_tune.errors import UsageError
        from protran_tune.cluster.pool import PlatformPool

        self.platform_name = platform
        self.workload = workload
        try:
            self.pool = PlatformPool(platform, dict(options or {}), workload=workload, num_actors=n_workers,
                                     plugins=tuple(plugins))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.width = self.pool.size

    def measure(self, archs: Sequence[Architecture]) -> list[Outcome]:
        outcomes = []
        for record in self.pool.measure(list(archs), self.workload):
            data = record.get("measurement")
            m = Measurement.from_dict(data) if data else None
            outcomes.append(Outcome(m, None if m else (record.get("error") or f"status {record.get('status')!r}"),
                                    record.get("node")))
        return outcomes

    def close(self) -> None:
        self.pool.shutdown()

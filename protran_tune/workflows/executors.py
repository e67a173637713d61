"""Where ``profile`` measures: in this process, or on platform-bound Ray actors.

An executor takes a batch of architectures and returns one :class:`Outcome` per architecture, in order:
a :class:`Measurement` or the reason it failed (out of memory, sensor error, actor death). A failure
never raises: the study records it and goes on.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from protran_tune.platforms import Measurement, Workload, get_platform
from protran_tune.space import Architecture


@dataclass(frozen=True)
class Outcome:
    """Result of measuring one architecture: ``measurement`` or ``error`` (one line)."""

    measurement: Measurement | None
    error: str | None = None


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


def _measure_remote(platform: str, options: dict[str, Any], workload: dict[str, Any], arch_json: str) -> dict[str, Any]:
    """Body of the Ray task used when no :class:`PlatformPool` is available."""
    plat = get_platform(platform, **options)
    try:
        m = plat.measure(Architecture.from_json(arch_json), Workload(**workload))
        return {"measurement": m.to_dict(), "error": None}
    except Exception as exc:
        return {"measurement": None, "error": describe_error(exc), "traceback": traceback.format_exc(limit=3)}
    finally:
        plat.close()


class RayExecutor:
    """Measure on Ray, one measurement at a time per ``platform:<name>`` resource unit.

    Uses :class:`protran_tune.platforms.pool.PlatformPool` (platform-bound actors) when available;
    otherwise Ray tasks that each hold one unit of the platform resource. ``width`` is the number of
    measurements in flight (the platform's resource units in the cluster, or ``n_workers``).
    """

    def __init__(self, platform: str, workload: Workload, options: Mapping[str, Any] | None = None,
                 n_workers: int | None = None) -> None:
        import ray

        self.platform_name = platform
        self.workload = workload
        self.options = dict(options or {})
        resource = f"platform:{platform}"
        available = int(ray.cluster_resources().get(resource, 0))
        if available < 1:
            from protran_tune.errors import UsageError

            raise UsageError(
                f"the Ray cluster advertises no {resource!r} resource: start nodes with "
                f"--resources '{{\"{resource}\": 1}}' (cluster resources: {sorted(ray.cluster_resources())})"
            )
        self.width = max(1, min(n_workers or available, available))
        self._pool = None
        try:
            from protran_tune.platforms.pool import PlatformPool  # type: ignore[import-not-found]

            self._pool = _make_pool(PlatformPool, platform, self.options, self.width)
        except ImportError:
            self._pool = None
        if self._pool is None:
            self._task = ray.remote(max_retries=1, resources={resource: 1}, num_cpus=1)(_measure_remote)

    def measure(self, archs: Sequence[Architecture]) -> list[Outcome]:
        import ray

        if self._pool is not None:
            return _pool_measure(self._pool, archs, self.workload)
        refs = [self._task.remote(self.platform_name, self.options, self.workload.to_dict(), a.to_json()) for a in archs]
        outcomes = []
        for ref in refs:
            try:
                result = ray.get(ref)
            except Exception as exc:  # worker died twice (retried once by Ray), task error
                outcomes.append(Outcome(None, f"worker failed: {describe_error(exc)}"))
                continue
            data = result["measurement"]
            outcomes.append(Outcome(Measurement.from_dict(data) if data else None, result["error"]))
        return outcomes

    def close(self) -> None:
        if self._pool is not None and hasattr(self._pool, "shutdown"):
            self._pool.shutdown()


def _make_pool(cls: Any, platform: str, options: dict[str, Any], width: int) -> Any:
    """Build a ``PlatformPool`` (adapts to its constructor)."""
    import inspect

    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if "options" in params:
        kwargs["options"] = options
    elif "platform_options" in params:
        kwargs["platform_options"] = options
    for name in ("n_actors", "num_actors", "size"):
        if name in params:
            kwargs[name] = width
            break
    return cls(platform, **kwargs)


def _pool_measure(pool: Any, archs: Sequence[Architecture], workload: Workload) -> list[Outcome]:
    """Measure through a ``PlatformPool``; accepts Measurement, records or exceptions as results."""
    results = pool.measure(list(archs), workload)
    outcomes = []
    for res in results:
        if isinstance(res, Measurement):
            outcomes.append(Outcome(res))
        elif isinstance(res, BaseException):
            outcomes.append(Outcome(None, describe_error(res)))
        elif isinstance(res, Mapping):
            data = res.get("measurement")
            m = data if isinstance(data, Measurement) else (Measurement.from_dict(data) if data else None)
            outcomes.append(Outcome(m, res.get("error") or (None if m else "measurement failed")))
        else:
            m = getattr(res, "measurement", None)
            outcomes.append(Outcome(m, getattr(res, "error", None) or (None if m else "measurement failed")))
    return outcomes

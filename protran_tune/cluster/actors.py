"""Ray actors bound to one measurement device each: :class:`PlatformActor`.

One actor wraps one :class:`~protran_tune.platforms.base.Platform`, built from its registry name and
options *inside* the actor (sensors open on the node that owns the device). It is scheduled by the
custom resource ``platform:<name>`` that the device's node advertises, e.g.
``ray start --resources '{"platform:cuda": 1}'``, and runs one method at a time
(``max_concurrency=1``), so each device measures one architecture at a time while many devices run in
parallel. :mod:`protran_tune.cluster.pool` spreads batches over all actors of a platform.

Platforms defined outside protran-tune are made known to the actor through ``plugins``: module names
imported in the actor before the platform is built (their ``@register_platform`` runs there); the
modules must be importable on every node.

This module and :mod:`~protran_tune.cluster.pool` import Ray; the measuring core
(:mod:`protran_tune.platforms`) stays importable without it.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any, Mapping, Sequence

from protran_tune.cluster.raycompat import ensure_ray_importable

ensure_ray_importable()

import ray  # noqa: E402

from protran_tune.platforms.base import Workload, get_platform  # noqa: E402
from protran_tune.platforms.records import measurement_record  # noqa: E402
from protran_tune.space import Architecture  # noqa: E402

RESOURCE_PREFIX = "platform:"


def platform_resource(platform: str) -> str:
    """Name of the custom Ray resource that marks a device of ``platform``: ``platform:<name>``."""
    if not isinstance(platform, str) or not platform or platform != platform.strip():
        raise ValueError(f"platform must be a non-empty registry name, got {platform!r}")
    return RESOURCE_PREFIX + platform


def node_info() -> dict[str, Any]:
    """Where the calling process runs: Ray node id, node IP, host name and process id."""
    context = ray.get_runtime_context()
    return {
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }


class _PlatformActorImpl:
    """Body of :data:`PlatformActor` (a plain class, so it can also be used without Ray in a debugger)."""

    def __init__(self, platform: str, options: Mapping[str, Any] | None = None, plugins: Sequence[str] = ()) -> None:
        for module in plugins:
            importlib.import_module(module)
        self._platform = get_platform(platform, **dict(options or {}))
        self._started = time.time()
        self._count = 0

    def measure(self, arch: Mapping[str, Any], workload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Measure one architecture (``Architecture.to_dict()`` or a ProTran ``model_dict``).

        Returns the ``measure`` command's record plus ``node`` (:func:`node_info`). An architecture or
        workload that does not validate gives a failed record too.
        """
        self._count += 1
        try:
            architecture = Architecture.from_dict(arch)
            work = Workload(**dict(workload or {}))
        except (ValueError, TypeError) as exc:
            record = {
                "arch_hash": None, "architecture": dict(arch), "platform": self._platform.name,
                "status": "failed", "error": f"{type(exc).__name__}: {exc}", "measurement": None,
                "workload": dict(workload or {}),
            }
        else:
            record = measurement_record(self._platform, architecture, work)
        record["node"] = node_info()
        return record

    def describe(self) -> dict[str, Any]:
        """The platform's :meth:`~Platform.describe` plus :func:`node_info`, measurements so far and uptime (s)."""
        return {**self._platform.describe(), "node": node_info(), "measured": self._count,
                "uptime_s": time.time() - self._started}

    def ping(self) -> dict[str, Any]:
        """Cheap liveness check; returns :func:`node_info`."""
        return node_info()

    def close(self) -> None:
        self._platform.close()


#: ``PlatformActor.options(resources={"platform:<name>": 1}).remote(name, options, plugins)``.
#: ``max_concurrency=1``: one measurement at a time per device. ``num_cpus=0``: the platform resource,
#: not a CPU slot, is the device's lock (set ``num_cpus`` in ``.options`` to reserve cores as well).
PlatformActor = ray.remote(num_cpus=0, max_concurrency=1)(_PlatformActorImpl)


def start_platform_actor(
    platform: str,
    options: Mapping[str, Any] | None = None,
    *,
    plugins: Sequence[str] = (),
    units: float = 1.0,
    max_restarts: int = 2,
    **actor_options: Any,
) -> "ray.actor.ActorHandle":
    """Start one :data:`PlatformActor` holding ``units`` of resource ``platform:<platform>``.

    ``max_restarts``: how often Ray restarts the actor process after it dies (a restarted actor builds
    its platform again). Extra ``actor_options`` go to ``.options`` (``num_cpus``, ``runtime_env``...).
    """
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
        raise ValueError(f"max_restarts must be an integer >= -1 (-1 = unlimited), got {max_restarts!r}")
    if not units > 0:
        raise ValueError(f"units must be positive, got {units!r}")
    resources = {**actor_options.pop("resources", {}), platform_resource(platform): units}
    return PlatformActor.options(
        resources=resources, max_restarts=max_restarts, max_task_retries=0, **actor_options
    ).remote(platform, dict(options or {}), tuple(plugins))

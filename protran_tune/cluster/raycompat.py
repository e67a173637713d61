"""Make ``import ray`` work where an installed ``amdsmi`` is broken; imported before Ray, needs no Ray.

Ray probes AMD GPUs with ``import amdsmi`` and only tolerates ``ImportError``; ``amdsmi`` 7.x (pulled in
by Zeus) raises ``KeyError`` at import when ``libamd_smi.so`` is missing, so ``import ray`` - in the
driver and in every worker, raylet-spawned agent and ``ray`` CLI call - fails on machines without AMD
drivers. :func:`ensure_ray_importable` detects that case once and puts a directory holding an ``amdsmi``
stand-in that raises ``ImportError`` first on ``sys.path`` and on ``PYTHONPATH``, so processes that Ray
starts from this one inherit the fix. Where ``amdsmi`` imports (or is simply absent) nothing changes.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Callable

SHIM_DIR = str(Path(__file__).resolve().parent / "_ray_shims")


def amdsmi_is_broken() -> bool:
    """``True`` when ``import amdsmi`` fails with something other than ``ImportError``."""
    if "amdsmi" in sys.modules:
        return False
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # amdsmi prints when its library is missing
            import amdsmi  # noqa: F401
    except ImportError:
        return False
    except Exception:  # noqa: BLE001 - KeyError('libamd_smi.so') in amdsmi 7.x
        sys.modules.pop("amdsmi", None)
        return True
    return False


def prepend_pythonpath(directory: str) -> None:
    """Put ``directory`` first on ``sys.path`` and on ``PYTHONPATH`` (inherited by child processes)."""
    if directory not in sys.path:
        sys.path.insert(0, directory)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if directory not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([directory, *parts])


def ensure_ray_importable() -> bool:
    """Apply the ``amdsmi`` stand-in when needed; returns whether it was applied. Idempotent."""
    if SHIM_DIR in sys.path:
        return True
    if "ray" in sys.modules or not amdsmi_is_broken():
        return False
    prepend_pythonpath(SHIM_DIR)
    return True


LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def use_loopback() -> Callable[[], None]:
    """Keep a single-host Ray on 127.0.0.1 (local ``ray.init`` and ``ray.cluster_utils.Cluster``).

    Ray rewrites ``127.0.0.1``/``localhost`` in node and bootstrap addresses to the host's reachable
    address (eth0) unless its "cluster mode" is off, which is what ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
    does: node IPs then resolve to the loopback address. The variable is read when Ray is imported, so
    where Ray already is, its constant is updated too. Not for multi-host clusters (``ray start`` of a
    worker node refuses to run with it). Returns a function that restores the previous setting.
    """
    old_env = os.environ.get(LOOPBACK_ENV)
    constants = sys.modules.get("ray._private.ray_constants")
    old_const = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[LOOPBACK_ENV] = "0"
    if constants is not None:
        constants.ENABLE_RAY_CLUSTER = False

    def restore() -> None:
        if old_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = old_env
        if constants is not None and old_const is not None:
            constants.ENABLE_RAY_CLUSTER = old_const

    return restore

"""Intel/AMD RAPL energy counters through the Linux powercap sysfs tree (``/sys/class/powercap``).

Each zone directory ``intel-rapl:<pkg>`` (sub-zones ``intel-rapl:<pkg>:<n>``) holds ``name``
(``package-0``, ``core``, ``uncore``, ``dram``, ``psys``), ``energy_uj`` (a cumulative counter,
microjoules) and ``max_energy_range_uj`` (where the counter wraps to zero). The counters update about
every millisecond; the hardware unit is 2^-16 J = 15.3 uJ on most Intel parts. We sum the package
zones and, where present, their ``dram`` sub-zones (``psys`` would count the same energy twice and is
used only when asked for), and undo wrap-around: a reading below the previous one means the counter
passed ``max_energy_range_uj``, so the step is ``current + range - previous``. Wraps are detected
only if the counter is read at least once per wrap period (minutes at package power), which the
recorder thread guarantees.

Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694): an unreadable counter raises
:class:`~protran_tune.platforms.base.SensorUnavailableError`, never a zero.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.meters import Meter

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass
class RaplZone:
    """One powercap zone: its directory, ``name`` and wrap range (uJ)."""

    path: Path
    name: str
    max_range_uj: int

    def read_uj(self) -> int:
        try:
            return int((self.path / "energy_uj").read_text().strip())
        except PermissionError:
            raise SensorUnavailableError(
                f"RAPL counter {self.path / 'energy_uj'} is not readable (root only since Linux 5.10); "
                "run as root or make it readable, or use the labelled CPU-time model"
            ) from None
        except (OSError, ValueError) as exc:
            raise SensorUnavailableError(f"RAPL counter {self.path / 'energy_uj'} unreadable: {exc}") from None


def find_zones(root: str | Path = POWERCAP_ROOT, zones: Sequence[str] = ("package", "dram")) -> list[RaplZone]:
    """RAPL zones under ``root`` whose name starts with one of ``zones`` (``package``, ``dram``, ``psys``, ...)."""
    root = Path(root)
    if not root.is_dir():
        raise SensorUnavailableError(f"no powercap tree at {root}: this machine exposes no RAPL counters")
    found: list[RaplZone] = []
    for d in sorted(root.iterdir()):
        if not d.name.startswith("intel-rapl:") or not (d / "energy_uj").exists():
            continue
        try:
            name = (d / "name").read_text().strip()
            max_range = int((d / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError) as exc:
            raise SensorUnavailableError(f"RAPL zone {d} unreadable: {exc}") from None
        if any(name.startswith(z) for z in zones):
            found.append(RaplZone(d, name, max_range))
    if not found:
        raise SensorUnavailableError(f"no RAPL zone named {list(zones)} under {root}")
    return found


class RaplMeter(Meter):
    """Sum of RAPL energy counters (package + DRAM by default), wrap-around undone.

    Resolution: the counter's unit, about 15.3 uJ, updated about every 1 ms; the recorder reads it
    every 10 ms (``sample_interval_s``), which also gives the power trace (differences of readings).
    """

    source = "measured:rapl"
    sample_interval_s = 0.01
    counter_interval_s = 0.001
    energy_resolution_j = 15.3e-6

    def __init__(self, root: str | Path = POWERCAP_ROOT, zones: Sequence[str] = ("package", "dram")) -> None:
        self.root = Path(root)
        self.zones = find_zones(self.root, zones)
        self._lock = threading.Lock()
        self._last = [z.read_uj() for z in self.zones]  # also proves the counters are readable
        self._total_uj = 0
        self._wraps = 0
        self._last_sample: tuple[float, float] | None = None

    @property
    def poll_interval_s(self) -> float:
        return self.sample_interval_s

    @property
    def min_window_s(self) -> float:
        return 0.5

    @property
    def wraps(self) -> int:
        """Number of wrap-arounds undone so far."""
        return self._wraps

    def read_energy_j(self) -> float:
        with self._lock:
            for i, zone in enumerate(self.zones):
                now = zone.read_uj()
                step = now - self._last[i]
                if step < 0:
                    step += zone.max_range_uj
                    self._wraps += 1
                self._total_uj += step
                self._last[i] = now
            return self._total_uj * 1e-6

    def read_power_w(self) -> float:
        e0, t0 = self.read_energy_j(), time.perf_counter()
        time.sleep(self.sample_interval_s)
        return (self.read_energy_j() - e0) / (time.perf_counter() - t0)

    def poll_samples(self) -> list[tuple[float, float]]:
        t, e = time.perf_counter(), self.read_energy_j()
        last, self._last_sample = self._last_sample, (t, e)
        if last is None or t <= last[0]:
            return []
        return [(t, (e - last[1]) / (t - last[0]))]

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "zones": [{"path": str(z.path), "name": z.name, "max_energy_range_uj": z.max_range_uj} for z in self.zones],
        }

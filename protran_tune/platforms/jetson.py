"""NVIDIA Jetson power: the on-board INA3221 monitors through sysfs, or ``tegrastats`` output.

Jetson boards have no energy counter: energy is the trapezoidal integral of power samples.

* **INA3221 sysfs** (preferred; no subprocess). Two driver layouts exist:
  ``/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/`` on L4T R32 (Nano, TX2, Xavier) with
  ``rail_name_<k>`` and ``in_power<k>_input`` (mW); and the mainline hwmon driver
  ``/sys/bus/i2c/drivers/ina3221/<bus>-<addr>/hwmon/hwmon<N>/`` on JetPack 5+ (Orin) with
  ``in<k>_label``, ``in<k>_input`` (bus mV) and ``curr<k>_input`` (mA), power = mV x mA. Polled every
  10 ms (the driver's conversion+averaging time is a few ms).
* **tegrastats** (``tegrastats --interval 100``): one line per interval with rails printed as
  ``NAME cur/avg`` (mW; R32) or ``NAME curmW/avgmW`` (R35+), optionally prefixed by a timestamp
  ``MM-DD-YYYY HH:MM:SS``.

The board's input rail (``VDD_IN``, ``POM_5V_IN``, ``VIN_SYS_5V0``) is the total when present;
otherwise the sum of all rails is used and ``describe()`` says so.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.meters import Meter, StreamingToolMeter, read_sysfs_number

INPUT_RAILS: tuple[str, ...] = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VDD_5V_IN")
_RAIL_RE = re.compile(r"(?<![\w@])([A-Z][A-Z0-9_]*) (\d+)(mW)?/(\d+)(mW)?(?=\s|$)")
_STAMP_RE = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_GPU_RE = re.compile(r"GR3D_FREQ (\d+)%")


@dataclass(frozen=True)
class TegrastatsSample:
    """One parsed tegrastats line: rail powers in watts, optional wall-clock time, GPU load (%)."""

    rails_w: dict[str, float]
    timestamp: datetime | None = None
    gpu_load_pct: float | None = None
    rails_avg_w: dict[str, float] = field(default_factory=dict)

    def total_w(self) -> tuple[float, str]:
        """Board power and the rail it came from (``sum`` when no input rail is printed)."""
        return total_power(self.rails_w)


def total_power(rails_w: dict[str, float]) -> tuple[float, str]:
    for name in INPUT_RAILS:
        if name in rails_w:
            return rails_w[name], name
    if not rails_w:
        raise SensorUnavailableError("no power rail found")
    return sum(rails_w.values()), "sum"


def parse_tegrastats_line(line: str) -> TegrastatsSample:
    """Parse one tegrastats line; ``ValueError`` when it carries no power rail."""
    text = line.strip()
    stamp = None
    m = _STAMP_RE.match(text)
    if m:
        stamp = datetime.strptime(m.group(1), "%m-%d-%Y %H:%M:%S")
        text = text[m.end():]
    rails, avgs = {}, {}
    for name, cur, _, avg, _ in _RAIL_RE.findall(text):
        if name in ("RAM", "SWAP", "IRAM", "LFB"):
            continue
        rails[name] = int(cur) / 1000.0
        avgs[name] = int(avg) / 1000.0
    if not rails:
        raise ValueError(f"tegrastats line has no power rail: {line.strip()[:120]!r}")
    g = _GPU_RE.search(text)
    return TegrastatsSample(rails, stamp, float(g.group(1)) if g else None, avgs)


class TegrastatsMeter(StreamingToolMeter):
    """Board power from a running ``tegrastats --interval <ms>`` process (lines parsed as they arrive).

    Args:
        interval_ms: tegrastats sampling interval (its minimum is about 100 ms on most boards).
        command: the command to run (default ``["tegrastats", "--interval", str(interval_ms)]``).
        rail: rail to report (default: the input rail, else the sum of rails).
    """

    source = "measured:tegrastats"

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None, rail: str | None = None) -> None:
        self.rail = rail
        self.rail_used: str | None = None
        super().__init__(interval_ms, command or ["tegrastats", "--interval", str(interval_ms)], startup_timeout_s=3.0)

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            t = time.perf_counter()
            try:
                sample = parse_tegrastats_line(line)
            except ValueError:
                continue
            if self.rail is not None:
                if self.rail not in sample.rails_w:
                    continue
                w, used = sample.rails_w[self.rail], self.rail
            else:
                w, used = sample.total_w()
            self.rail_used = used
            self._record(t, w)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "rail": self.rail_used}


# --------------------------------------------------------------------------- INA3221 sysfs
def find_ina3221_rails(root: str | Path = "/sys/bus/i2c/drivers") -> dict[str, Callable[[], float]]:
    """``{rail name: reader returning watts}`` for every INA3221 channel under ``root``."""
    root = Path(root)
    rails: dict[str, Callable[[], float]] = {}
    # L4T R32 iio driver: rail_name_<k>, in_power<k>_input (mW)
    for dev in sorted(root.glob("ina3221x/*/iio:device*")):
        for name_file in sorted(dev.glob("rail_name_*")):
            k = name_file.name.rsplit("_", 1)[1]
            power = dev / f"in_power{k}_input"
            if power.exists():
                rails[name_file.read_text().strip()] = lambda p=power: read_sysfs_number(p) / 1000.0
    # mainline hwmon driver: in<k>_label, in<k>_input (mV), curr<k>_input (mA)
    for dev in sorted(root.glob("ina3221/*/hwmon/hwmon*")):
        for label in sorted(dev.glob("in*_label")):
            k = label.name[2:].split("_")[0]
            volt, curr = dev / f"in{k}_input", dev / f"curr{k}_input"
            name = label.read_text().strip()
            if volt.exists() and curr.exists() and not name.upper().startswith("NC"):
                rails[name] = lambda v=volt, c=curr: read_sysfs_number(v) * read_sysfs_number(c) / 1e6
    return rails


class INA3221Meter(Meter):
    """Jetson board power from the INA3221 channels in sysfs, polled every 10 ms."""

    source = "measured:ina3221"
    sample_interval_s = 0.01

    def __init__(self, root: str | Path = "/sys/bus/i2c/drivers", rail: str | None = None) -> None:
        self.root = Path(root)
        self.rails = find_ina3221_rails(self.root)
        if not self.rails:
            raise SensorUnavailableError(f"no INA3221 power monitor under {self.root}")
        if rail is not None and rail not in self.rails:
            raise SensorUnavailableError(f"INA3221 rail {rail!r} not found: rails are {sorted(self.rails)}")
        if rail is None:
            rail = next((r for r in INPUT_RAILS if r in self.rails), None)
        self.rail = rail  # None: sum of rails
        self.read_power_w()  # prove readable

    def read_power_w(self) -> float:
        if self.rail is not None:
            return self.rails[self.rail]()
        return sum(read() for read in self.rails.values())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "root": str(self.root), "rail": self.rail or "sum", "rails": sorted(self.rails)}


def open_jetson_meter(sysfs_root: str | Path = "/sys/bus/i2c/drivers", rail: str | None = None, interval_ms: int = 100) -> Meter:
    """INA3221 sysfs where readable, else tegrastats; ``SensorUnavailableError`` naming both failures."""
    try:
        return INA3221Meter(sysfs_root, rail)
    except SensorUnavailableError as first:
        try:
            return TegrastatsMeter(interval_ms=interval_ms, rail=rail)
        except SensorUnavailableError as second:
            raise SensorUnavailableError(f"no Jetson power sensor: {first}; {second}") from None

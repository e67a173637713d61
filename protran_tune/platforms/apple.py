"""Apple silicon power from ``powermetrics`` (macOS; needs root).

``powermetrics --samplers cpu_power,gpu_power -i <ms> -f plist`` writes one property list per
interval, separated by NUL bytes. Each holds ``elapsed_ns`` and a ``processor`` dictionary with
``cpu_power``, ``gpu_power``, ``ane_power`` and ``combined_power`` (mW, averaged over the interval)
and ``cpu_energy``, ``gpu_energy``, ``ane_energy`` (mJ in the interval). Each sample is the interval's
mean power; there is no cumulative counter, so energy is integrated from samples (interval 100 ms by
default). Figures cover CPU, GPU and ANE of the SoC, not DRAM or the rest of the board.
"""

from __future__ import annotations

import plistlib
import time
from dataclasses import dataclass
from typing import IO, Any, Sequence

from protran_tune.platforms.meters import StreamingToolMeter


@dataclass(frozen=True)
class PowermetricsSample:
    """One powermetrics interval: mean powers (W) and its length (s)."""

    elapsed_s: float
    cpu_w: float
    gpu_w: float
    ane_w: float
    combined_w: float

    @property
    def energy_j(self) -> float:
        return self.combined_w * self.elapsed_s


def parse_powermetrics_plist(data: bytes) -> PowermetricsSample:
    """Parse one plist document of ``powermetrics -f plist``; ``ValueError`` if it has no power figures."""
    try:
        doc = plistlib.loads(data.strip(b"\0").strip())
    except Exception as exc:  # noqa: BLE001 - plistlib raises several types
        raise ValueError(f"malformed powermetrics plist: {exc}") from None
    proc = doc.get("processor") if isinstance(doc, dict) else None
    if not isinstance(proc, dict) or not any(k in proc for k in ("combined_power", "cpu_power")):
        raise ValueError("powermetrics plist has no processor power figures (run with --samplers cpu_power,gpu_power)")
    elapsed = float(doc.get("elapsed_ns", 0)) / 1e9
    cpu = float(proc.get("cpu_power", 0.0)) / 1000
    gpu = float(proc.get("gpu_power", doc.get("gpu", {}).get("gpu_power", 0.0) if isinstance(doc.get("gpu"), dict) else 0.0)) / 1000
    ane = float(proc.get("ane_power", 0.0)) / 1000
    combined = float(proc["combined_power"]) / 1000 if "combined_power" in proc else cpu + gpu + ane
    return PowermetricsSample(elapsed, cpu, gpu, ane, combined)


class PowermetricsMeter(StreamingToolMeter):
    """SoC power (CPU + GPU + ANE) from a running ``powermetrics -f plist`` process (macOS, root).

    Each sample's time is the moment its document arrived (the end of its interval); its power is the
    interval mean. ``command`` can be replaced (e.g. by a replay of recorded output) for testing.
    """

    source = "measured:powermetrics"
    text_output = False

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None) -> None:
        command = command or ["powermetrics", "--samplers", "cpu_power,gpu_power", "-i", str(interval_ms), "-f", "plist"]
        super().__init__(interval_ms, command, startup_timeout_s=5.0)

    def _read(self, stdout: IO[bytes]) -> None:
        buf = b""
        while True:
            chunk = stdout.read1(65536) if hasattr(stdout, "read1") else stdout.read(4096)
            if not chunk:
                break
            buf += chunk
            *docs, buf = buf.split(b"\0")
            t = time.perf_counter()
            for doc in docs:
                if not doc.strip():
                    continue
                try:
                    s = parse_powermetrics_plist(doc)
                except ValueError:
                    continue
                self._record(t, s.combined_w)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "covers": "SoC CPU+GPU+ANE (combined_power)"}

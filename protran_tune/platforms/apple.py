"""Apple silicon power from ``powermetrics`` (macOS; needs root).

``powermetrics --samplers cpu_power,gpu_power -i <ms> -f plist`` writes one property list per
interval, separated by NUL bytes. Each holds ``elapsed_ns`` and a ``processor`` dictionary with
``cpu_power``, ``gpu_power``, ``ane_power`` and ``combined_power`` (mW, averaged over the interval)
and ``cpu_energy``, ``gpu_energy``, ``ane_energy`` (mJ in the interval). The text format (no ``-f``)
prints ``CPU Power: 1203 mW``, ``GPU Power: 40 mW``, ``ANE Power: 0 mW`` and
``Combined Power (CPU + GPU + ANE): 1243 mW`` under a header ``*** Sampled system activity (...)
(102.35ms elapsed) ***``. Both are parsed. Each sample is the interval's mean power; there is no
cumulative counter, so energy is integrated from samples (interval 100 ms by default). Figures cover
CPU, GPU and ANE of the SoC, not DRAM or the rest of the board.
"""

from __future__ import annotations

import plistlib
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.meters import Meter


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


def split_plist_stream(data: bytes) -> Iterator[bytes]:
    """The plist documents of a NUL-separated powermetrics stream."""
    for chunk in data.split(b"\0"):
        if chunk.strip():
            yield chunk


_HEADER_RE = re.compile(r"\*\*\* Sampled system activity .*?\(([\d.]+)ms elapsed\) \*\*\*")
_LINE_RE = {
    "cpu": re.compile(r"^CPU Power:\s*([\d.]+)\s*mW", re.M),
    "gpu": re.compile(r"^GPU Power:\s*([\d.]+)\s*mW", re.M),
    "ane": re.compile(r"^ANE Power:\s*([\d.]+)\s*mW", re.M),
    "combined": re.compile(r"^Combined Power \(CPU \+ GPU \+ ANE\):\s*([\d.]+)\s*mW", re.M),
}


def parse_powermetrics_text(text: str) -> list[PowermetricsSample]:
    """Samples of the text output (one per ``*** Sampled system activity`` block)."""
    out = []
    headers = list(_HEADER_RE.finditer(text))
    for i, h in enumerate(headers):
        block = text[h.end(): headers[i + 1].start() if i + 1 < len(headers) else len(text)]
        vals = {k: (float(m.group(1)) / 1000 if (m := r.search(block)) else None) for k, r in _LINE_RE.items()}
        if vals["cpu"] is None and vals["combined"] is None:
            continue
        cpu, gpu, ane = vals["cpu"] or 0.0, vals["gpu"] or 0.0, vals["ane"] or 0.0
        combined = vals["combined"] if vals["combined"] is not None else cpu + gpu + ane
        out.append(PowermetricsSample(float(h.group(1)) / 1000, cpu, gpu, ane, combined))
    return out


class PowermetricsMeter(Meter):
    """SoC power (CPU + GPU + ANE) from a running ``powermetrics -f plist`` process.

    Each sample's time is the moment its document arrived (the end of its interval); its power is the
    interval mean. ``command`` can be replaced (e.g. by a replay of recorded output) for testing.
    """

    source = "measured:powermetrics"

    def __init__(self, interval_ms: int = 100, command: Sequence[str] | None = None) -> None:
        if not isinstance(interval_ms, int) or interval_ms <= 0:
            raise ValueError(f"interval_ms must be a positive integer, got {interval_ms!r}")
        self.sample_interval_s = interval_ms / 1000.0
        self.command = list(command) if command else [
            "powermetrics", "--samplers", "cpu_power,gpu_power", "-i", str(interval_ms), "-f", "plist",
        ]
        self._samples: list[tuple[float, float]] = []
        self._taken = 0
        self._lock = threading.Lock()
        try:
            self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            raise SensorUnavailableError(f"cannot run {self.command[0]!r} (macOS only, needs root): {exc}") from None
        self._reader = threading.Thread(target=self._read, name="powermetrics-reader", daemon=True)
        self._reader.start()
        deadline = time.perf_counter() + max(5.0, 5 * self.sample_interval_s)
        while not self._samples and time.perf_counter() < deadline and self._proc.poll() is None:
            time.sleep(0.01)
        if not self._samples:
            err = self._proc.stderr.read().decode(errors="replace").strip()[:200] if self._proc.poll() is not None else ""
            self.close()
            raise SensorUnavailableError(f"powermetrics produced no power sample (needs root on macOS) {err}".strip())

    def _read(self) -> None:
        assert self._proc.stdout is not None
        buf = b""
        while True:
            chunk = self._proc.stdout.read1(65536) if hasattr(self._proc.stdout, "read1") else self._proc.stdout.read(4096)
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
                with self._lock:
                    self._samples.append((t, s.combined_w))

    def read_power_w(self) -> float:
        with self._lock:
            if not self._samples:
                raise SensorUnavailableError("powermetrics has produced no sample")
            return self._samples[-1][1]

    def poll_samples(self) -> list[tuple[float, float]]:
        with self._lock:
            new, self._taken = self._samples[self._taken:], len(self._samples)
        return new

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "command": self.command, "covers": "SoC CPU+GPU+ANE (combined_power)"}

    def close(self) -> None:
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

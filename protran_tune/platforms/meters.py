"""Power and energy meters, and the background recorder that reads them at the sensor's real rate.

A :class:`Meter` wraps one sensor. It states its ``source`` (``measured:nvml``, ``modelled:cpu-time``,
...), how often its power reading changes (``sample_interval_s``), whether it has a cumulative energy
counter and how often that counter updates (``counter_interval_s``), and the energy resolution. A
:class:`PowerRecorder` thread polls the meter while a workload runs and keeps

* ``samples``: ``(t, watts)`` power samples (``t`` on the :func:`time.perf_counter` clock), and
* ``counter``: ``(t, joules)`` readings of the energy counter, recorded only when the value changed,

so a window's mean power is ``(E_b - E_a) / (t_b - t_a)`` between the first and last counter update
inside the window (a counter that updates at 10 Hz, as NVML's, is resolved to the update instant by
polling it every millisecond), or, for meters without a counter, the trapezoidal integral of the
power samples over the window divided by its length.

A meter that cannot read its sensor raises :class:`~protran_tune.platforms.base.SensorUnavailableError`
when it is opened; it never reports zero for a missing sensor. :class:`ModelledCPUMeter` is the
labelled fallback for CPUs without readable energy counters.
"""

from __future__ import annotations

import abc
import bisect
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Any, Sequence

from protran_tune.platforms.base import SensorUnavailableError

__all__ = ["Meter", "StreamingToolMeter", "PowerRecorder", "ModelledCPUMeter", "trapezoid_energy", "window_power", "read_sysfs_number"]


class Meter(abc.ABC):
    """One power/energy sensor.

    Class attributes a subclass sets:
        source: origin label written into every :class:`Measurement` (``measured:<sensor>`` or
            ``modelled:<model>``).
        sample_interval_s: period of the sensor's power readings, seconds.
        counter_interval_s: update period of the cumulative energy counter, seconds (``None``: the
            meter has no counter and energy is integrated from power samples).
        energy_resolution_j: smallest energy step of the counter, joules (``None``: no counter).
        measures_idle: whether an idle reading means something (false for CPU-time models).
    """

    source: str = ""
    sample_interval_s: float = 0.1
    counter_interval_s: float | None = None
    energy_resolution_j: float | None = None
    measures_idle: bool = True

    @property
    def has_energy_counter(self) -> bool:
        return self.counter_interval_s is not None

    @property
    def min_window_s(self) -> float:
        """Shortest energy window that the sensor resolves to about 1%: 10 counter updates or 20 samples."""
        if self.counter_interval_s is not None:
            return max(0.5, 10 * self.counter_interval_s)
        return max(0.5, 20 * self.sample_interval_s)

    @property
    def poll_interval_s(self) -> float:
        """How often the recorder polls: fine enough to time counter updates to about 1% of their period."""
        if self.counter_interval_s is not None:
            return min(self.sample_interval_s, max(0.001, self.counter_interval_s / 50))
        return self.sample_interval_s

    def read_energy_j(self) -> float:
        """Cumulative energy, joules, monotone (wrap-around undone). Only meters with a counter."""
        raise NotImplementedError(f"{type(self).__name__} has no energy counter")

    @abc.abstractmethod
    def read_power_w(self) -> float:
        """One power reading, watts."""

    def poll_samples(self) -> list[tuple[float, float]]:
        """New ``(perf_counter time, watts)`` samples since the last call (default: one reading now)."""
        w = self.read_power_w()
        return [(time.perf_counter(), w)]

    def describe(self) -> dict[str, Any]:
        """Resolution and rates, recorded in ``Measurement.meta['meter']``."""
        return {
            "source": self.source,
            "sensor": type(self).__name__,
            "sample_interval_s": self.sample_interval_s,
            "sample_rate_hz": 1.0 / self.sample_interval_s,
            "counter_interval_s": self.counter_interval_s,
            "energy_resolution_j": self.energy_resolution_j,
            "min_window_s": self.min_window_s,
        }

    def close(self) -> None:
        """Release the sensor."""

    def __enter__(self) -> "Meter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StreamingToolMeter(Meter):
    """A meter fed by a long-running tool that prints power samples (tegrastats, powermetrics).

    A reader thread parses the tool's output as it arrives (:meth:`_read`, calling :meth:`_record`);
    each sample is timed when its output arrived. Opening waits for the first sample, else raises
    :class:`SensorUnavailableError`. ``command`` can be replaced (e.g. by a replay of recorded output).
    """

    text_output: bool = True  # read the tool's stdout as text lines (else bytes)

    def __init__(self, interval_ms: int, command: Sequence[str], startup_timeout_s: float) -> None:
        if not isinstance(interval_ms, int) or interval_ms <= 0:
            raise ValueError(f"interval_ms must be a positive integer, got {interval_ms!r}")
        self.sample_interval_s = interval_ms / 1000.0
        self.command = list(command)
        self._samples: list[tuple[float, float]] = []
        self._taken = 0
        self._lock = threading.Lock()
        try:
            self._proc = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                **({"text": True, "bufsize": 1} if self.text_output else {}),
            )
        except OSError as exc:
            raise SensorUnavailableError(f"cannot run {self.command[0]!r}: {exc}") from None
        assert self._proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True,
                                        name=f"{self.command[0]}-reader")
        self._reader.start()
        deadline = time.perf_counter() + max(startup_timeout_s, 5 * self.sample_interval_s)
        while not self._samples and time.perf_counter() < deadline and self._proc.poll() is None:
            time.sleep(0.01)
        if not self._samples:
            err = ""
            if self._proc.poll() is not None and self._proc.stderr is not None:
                raw = self._proc.stderr.read()
                err = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()[:200]
            self.close()
            raise SensorUnavailableError(f"{' '.join(self.command)} produced no power sample {err}".strip())

    @abc.abstractmethod
    def _read(self, stdout: IO[Any]) -> None:
        """Parse the tool's output until it ends, calling :meth:`_record` per sample."""

    def _record(self, t: float, watts: float) -> None:
        with self._lock:
            self._samples.append((t, watts))

    def read_power_w(self) -> float:
        with self._lock:
            if not self._samples:
                raise SensorUnavailableError(f"{self.command[0]} has produced no sample")
            return self._samples[-1][1]

    def poll_samples(self) -> list[tuple[float, float]]:
        with self._lock:
            new, self._taken = self._samples[self._taken:], len(self._samples)
        return new

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "command": self.command}

    def close(self) -> None:
        if getattr(self, "_proc", None) is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()


def read_sysfs_number(path: Path) -> float:
    """One number from a sysfs attribute; :class:`SensorUnavailableError` when unreadable."""
    try:
        return float(path.read_text().strip())
    except PermissionError:
        raise SensorUnavailableError(f"{path} is not readable") from None
    except (OSError, ValueError) as exc:
        raise SensorUnavailableError(f"{path} unreadable: {exc}") from None


def trapezoid_energy(samples: Sequence[tuple[float, float]], t0: float, t1: float) -> float:
    """Energy (J) of piecewise-linear power through ``samples`` over ``[t0, t1]``, held flat at the ends."""
    if t1 <= t0:
        raise ValueError(f"window end {t1} must be after its start {t0}")
    if not samples:
        raise ValueError("no power samples to integrate")
    pts = sorted(samples)

    def at(t: float) -> float:
        times = [p[0] for p in pts]
        i = bisect.bisect_left(times, t)
        if i <= 0:
            return pts[0][1]
        if i >= len(pts):
            return pts[-1][1]
        (ta, wa), (tb, wb) = pts[i - 1], pts[i]
        return wa if tb == ta else wa + (wb - wa) * (t - ta) / (tb - ta)

    inner = [(t, w) for t, w in pts if t0 < t < t1]
    knots = [(t0, at(t0)), *inner, (t1, at(t1))]
    return sum((tb - ta) * (wa + wb) / 2 for (ta, wa), (tb, wb) in zip(knots, knots[1:]))


def window_power(
    counter: Sequence[tuple[float, float]], t0: float, t1: float, min_coverage: float = 0.5
) -> tuple[float, float, int] | None:
    """Mean power over ``[t0, t1]`` from counter updates inside it: ``(watts, covered_s, n_updates)``.

    Returns ``None`` when fewer than two updates fall inside, or they cover less than ``min_coverage``
    of the window (the counter is too coarse for it).
    """
    inside = [(t, e) for t, e in counter if t0 <= t <= t1]
    if len(inside) < 2:
        return None
    (ta, ea), (tb, eb) = inside[0], inside[-1]
    if tb - ta < min_coverage * (t1 - t0) or tb <= ta:
        return None
    return (eb - ea) / (tb - ta), tb - ta, len(inside) - 1


class PowerRecorder:
    """Background thread that records a meter's power samples and energy-counter updates.

    Use as a context manager; ``samples`` and ``counter`` grow while it runs. Errors in the thread
    are kept and re-raised by :meth:`stop` (a sensor that fails mid-run fails the measurement).
    """

    def __init__(self, meter: Meter, poll_interval_s: float | None = None) -> None:
        self.meter = meter
        self.poll_interval_s = poll_interval_s or meter.poll_interval_s
        self.samples: list[tuple[float, float]] = []
        self.counter: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.t_start = time.perf_counter()

    def _poll_counter(self) -> None:
        e = self.meter.read_energy_j()
        t = time.perf_counter()
        if not self.counter or e != self.counter[-1][1]:
            self.counter.append((t, e))

    def _run(self) -> None:
        next_sample = 0.0
        try:
            while not self._stop.is_set():
                now = time.perf_counter()
                if self.meter.has_energy_counter:
                    self._poll_counter()
                if now >= next_sample:
                    self.samples.extend(self.meter.poll_samples())
                    next_sample = now + self.meter.sample_interval_s
                self._stop.wait(self.poll_interval_s)
            if self.meter.has_energy_counter:
                self._poll_counter()
            self.samples.extend(self.meter.poll_samples())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in stop()
            self._error = exc

    def start(self) -> "PowerRecorder":
        self.t_start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="power-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, SensorUnavailableError):
                raise err
            raise SensorUnavailableError(f"{type(self.meter).__name__} failed while recording: {err}") from err

    def __enter__(self) -> "PowerRecorder":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ----------------------------------------------------------------- windows
    def mean_power(self, t0: float, t1: float) -> tuple[float, str]:
        """Mean power over ``[t0, t1]`` and how it was obtained (``counter`` or ``samples``)."""
        if self.meter.has_energy_counter:
            got = window_power(self.counter, t0, t1)
            if got is not None:
                return got[0], "counter"
        samples = self.samples_between(t0, t1, margin=self.meter.sample_interval_s)
        if not samples:
            raise SensorUnavailableError(
                f"{type(self.meter).__name__}: no power sample in a {t1 - t0:.3f} s window "
                f"(sample interval {self.meter.sample_interval_s} s)"
            )
        return trapezoid_energy(samples, t0, t1) / (t1 - t0), "samples"

    def samples_between(self, t0: float, t1: float, margin: float = 0.0) -> list[tuple[float, float]]:
        return [(t, w) for t, w in sorted(self.samples) if t0 - margin <= t <= t1 + margin]

    def sub_window_powers(self, t0: float, t1: float, n: int = 4) -> list[float]:
        """Mean power of ``n`` equal sub-windows (for the spread of the energy figure)."""
        edges = [t0 + (t1 - t0) * i / n for i in range(n + 1)]
        out = []
        for a, b in zip(edges, edges[1:]):
            if self.meter.has_energy_counter:
                got = window_power(self.counter, a, b, min_coverage=0.3)
                if got is not None:
                    out.append(got[0])
                    continue
            samples = self.samples_between(a, b, margin=self.meter.sample_interval_s)
            if samples:
                out.append(trapezoid_energy(samples, a, b) / (b - a))
        return out


class ModelledCPUMeter(Meter):
    """Labelled model, not a measurement: power = (process CPU seconds per second) x ``watts_per_core``.

    Energy is the process's CPU time (user + system, all threads, :func:`time.process_time`) times a
    per-core power figure, so it counts active CPU energy only: no idle draw, no memory, no
    uncore. The model and its parameters go into ``Measurement.meta['energy_model']``. Resolution:
    ``CLOCK_PROCESS_CPUTIME_ID`` (nanoseconds), sampled every 50 ms for the trace.
    """

    source = "modelled:cpu-time"
    sample_interval_s = 0.05
    counter_interval_s = 0.0  # a continuous counter: read it whenever asked
    measures_idle = False

    def __init__(self, watts_per_core: float = 10.0) -> None:
        if not (isinstance(watts_per_core, (int, float)) and 0 < watts_per_core < 1000):
            raise ValueError(f"watts_per_core must be a positive number of watts (< 1000), got {watts_per_core!r}")
        self.watts_per_core = float(watts_per_core)
        self._last: tuple[float, float] | None = None
        self.energy_resolution_j = self.watts_per_core * time.get_clock_info("process_time").resolution

    @property
    def min_window_s(self) -> float:
        return 0.5

    @property
    def poll_interval_s(self) -> float:
        return self.sample_interval_s

    @staticmethod
    def cpu_seconds() -> float:
        return time.process_time()

    def read_energy_j(self) -> float:
        return self.cpu_seconds() * self.watts_per_core

    def read_power_w(self) -> float:
        if self._last is None:  # no reference yet: take one and read again shortly after
            self._last = (time.perf_counter(), self.cpu_seconds())
            time.sleep(self.sample_interval_s)
        now, cpu = time.perf_counter(), self.cpu_seconds()
        last, self._last = self._last, (now, cpu)
        return max(0.0, cpu - last[1]) / max(now - last[0], 1e-9) * self.watts_per_core

    def poll_samples(self) -> list[tuple[float, float]]:
        # The first call only primes the CPU-time reference: no sample.
        if self._last is None:
            self._last = (time.perf_counter(), self.cpu_seconds())
            return []
        w = self.read_power_w()
        return [(time.perf_counter(), w)]

    def model(self) -> dict[str, Any]:
        return {
            "kind": "modelled:cpu-time",
            "formula": "energy_j = process_cpu_seconds * watts_per_core; power = cpu_seconds_per_second * watts_per_core",
            "watts_per_core": self.watts_per_core,
            "includes_idle": False,
            "note": "a model, not a measurement: no energy counter was readable on this machine",
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "energy_model": self.model()}

"""The measurement protocol shared by every torch platform (CPU, CUDA, Jetson, Apple, Raspberry Pi).

:func:`measure_model` measures one model under one :class:`~protran_tune.platforms.base.Workload`:

1. **Build** the model once (weights seeded by ``workload.seed``), move it to the device; for
   training also an AdamW optimiser. Out of memory here or later -> :class:`MeasurementError`.
2. **Idle** power: a short window (``idle_window_s``, default the meter's ``min_window_s``) with the
   model resident and nothing running, recorded by the meter's background recorder.
3. **Batch size**: ``workload.batch_size`` or, when it is ``None`` ("auto"), the largest power of two
   that fits in memory and still raises throughput by at least ``auto_gain`` (5%) over half of it;
   every size tried and its throughput go into ``meta['auto_batch']``.
4. **Warm-up**: ``workload.warmup`` iterations and at least ``warmup_s`` seconds (clocks ramp up,
   kernels are selected), then device synchronisation.
5. **Latency**: timed iterations in chunks (CUDA events around every iteration, host clock after
   synchronisation elsewhere) until the 95% confidence interval of the median, from order statistics
   (ranks ``n/2 -+ 1.96 sqrt(n)/2``), is within ``workload.target_ci_rel`` of the median, or
   ``workload.max_repeats`` or ``time_budget_s`` is reached (``meta['stopped_by']``). Median and IQR.
6. **Energy window**: the step runs back to back for ``energy_window_s`` (default: the meter's
   ``min_window_s``, 1 s for NVML's 10 Hz counter) while the recorder reads the energy counter at
   every update (or integrates power samples where there is no counter). Mean power P over the
   window between the first and last counter update inside it; the window's batch time
   ``T = window length / batches run``; energy of one batch ``energy_j = P x T`` (the energy the
   window consumed per batch), ``energy_above_idle_j = (P - P_idle) x T``. Short batches (BERT-Tiny
   at 128x128 is under 1 ms on an H200) thus get a thousand iterations, so a 10 Hz counter still
   resolves them; ``energy_spread_rel`` is the IQR/median of the mean powers of sub-windows of
   about three counter updates each. ``meta['energy_window']`` keeps P, T, the update count and the
   sub-window powers.
7. **Peak power**: the highest power sample from warm-up to the end of the energy window; the trace
   (idle window included, ``t`` from the start of the idle window) is kept in the result with phase
   boundaries in ``meta['phases']``.

Training = forward + backward + ``AdamW.step`` (``zero_grad(set_to_none=True)`` first).
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from protran_tune.platforms.base import MeasurementError, SensorUnavailableError, Workload
from protran_tune.platforms.measurement import Measurement
from protran_tune.platforms.meters import Meter, PowerRecorder

__all__ = ["measure_model", "median_ci_rel", "is_out_of_memory"]

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cublas_status_alloc_failed", "failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError and allocation failures on CPU, CUDA and MPS."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if oom_type and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in _OOM_MARKERS)
    )


def median_ci_rel(times: np.ndarray | list[float]) -> float:
    """Half-width of the distribution-free 95% CI of the median, relative to the median (inf if n < 3)."""
    x = np.sort(np.asarray(times, dtype=float))
    n = len(x)
    if n < 3:
        return math.inf
    half = 1.959964 * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)) - 1)
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    med = float(np.median(x))
    return float((x[hi] - x[lo]) / 2 / med) if med > 0 else math.inf


class _Device:
    """Synchronisation and per-iteration timing for one torch device type."""

    def __init__(self, device: Any) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.type = self.device.type

    def sync(self) -> None:
        if self.type == "cuda":
            self.torch.cuda.synchronize(self.device)
        elif self.type == "mps":
            self.torch.mps.synchronize()
        elif self.type == "xpu":
            self.torch.xpu.synchronize(self.device)

    def time_iterations(self, step: Callable[[], Any], n: int) -> list[float]:
        """Seconds of each of ``n`` back-to-back iterations."""
        if self.type == "cuda":
            ev = self.torch.cuda.Event
            starts = [ev(enable_timing=True) for _ in range(n)]
            ends = [ev(enable_timing=True) for _ in range(n)]
            for s, e in zip(starts, ends):
                s.record()
                step()
                e.record()
            self.sync()
            return [s.elapsed_time(e) / 1000.0 for s, e in zip(starts, ends)]
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            self.sync()
            out.append(time.perf_counter() - t0)
        return out

    def run_for(self, step: Callable[[], Any], seconds: float, max_in_flight: int = 2) -> tuple[int, float, float]:
        """Run ``step`` back to back for ``seconds``; ``(iterations, t_start, t_end)`` on perf_counter."""
        in_flight: deque = deque()
        n = 0
        t0 = time.perf_counter()
        while True:
            step()
            n += 1
            if self.type == "cuda":
                event = self.torch.cuda.Event()
                event.record()
                in_flight.append(event)
                if len(in_flight) > max_in_flight:
                    in_flight.popleft().synchronize()
            elif self.type != "cpu":
                self.sync()
            if time.perf_counter() - t0 >= seconds:
                break
        self.sync()
        return n, t0, time.perf_counter()

    def empty_cache(self) -> None:
        if self.type == "cuda":
            self.torch.cuda.empty_cache()
        elif self.type == "mps":
            self.torch.mps.empty_cache()

    def name(self) -> str:
        if self.type == "cuda":
            return self.torch.cuda.get_device_name(self.device)
        if self.type == "mps":
            return "Apple MPS"
        import platform

        return f"{platform.processor() or platform.machine()} CPU x{self.torch.get_num_threads()} threads"


def _loss(output: Any, labels: Any) -> Any:
    """Training loss of a model output: its ``loss`` if it computed one, else cross-entropy on logits."""
    import torch.nn.functional as F

    loss = getattr(output, "loss", None)
    if loss is not None:
        return loss
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output[0] if isinstance(output, (tuple, list)) else output
    if logits.dim() == 2 and logits.shape[0] == labels.shape[0]:
        return F.cross_entropy(logits.float(), labels)
    return logits.float().pow(2).mean()


def _make_step(model: Any, optimizer: Any, mode: str, ids: Any, labels: Any, pass_labels: bool) -> Callable[[], Any]:
    import torch

    if mode == "inference":

        def infer() -> Any:
            with torch.inference_mode():
                return model(ids)

        return infer

    def train() -> Any:
        optimizer.zero_grad(set_to_none=True)
        out = model(ids, labels=labels) if pass_labels else model(ids)
        _loss(out, labels).backward()
        optimizer.step()

    return train


def _accepts_labels(model: Any) -> bool:
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return "labels" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _stats(times: list[float]) -> tuple[float, float]:
    x = np.asarray(times)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return float(med), float(q3 - q1)


def _thin(trace: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    """At most ``limit`` points, evenly strided, the peak sample always kept."""
    if len(trace) <= limit:
        return trace
    stride = math.ceil(len(trace) / limit)
    keep = set(range(0, len(trace), stride)) | {max(range(len(trace)), key=lambda i: trace[i][1])}
    return [trace[i] for i in sorted(keep)]


def measure_model(
    build: Callable[[], Any],
    workload: Workload,
    meter: Meter,
    *,
    platform: str,
    device: Any = "cpu",
    idle_window_s: float | None = None,
    energy_window_s: float | None = None,
    warmup_s: float = 0.0,
    time_budget_s: float = 60.0,
    max_auto_batch: int = 1024,
    auto_gain: float = 0.05,
    n_classes: int = 2,
    trace_limit: int = 5000,
    cuda_graph: bool = False,
    meta: Mapping[str, Any] | None = None,
) -> Measurement:
    """Measure the model ``build()`` returns on ``device`` with ``meter`` (see the module docstring).

    Args:
        build: returns a fresh ``torch.nn.Module`` taking ``input_ids`` of shape ``(batch, seq_len)``.
        workload: mode, batch size (``None`` = auto), sequence length, repeats, CI target, seed.
        meter: the platform's power/energy meter (kept open by the caller).
        platform: registry name written into the result.
        device: torch device for model and inputs.
        idle_window_s / energy_window_s: window lengths, seconds (default: ``meter.min_window_s``).
        warmup_s: minimum warm-up duration, seconds, on top of ``workload.warmup`` iterations.
        time_budget_s: cap on the latency loop, seconds.
        cuda_graph: inference on CUDA replays a captured CUDA graph of the forward pass instead of
            launching it eagerly (removes host launch overhead, which dominates sub-millisecond
            batches); ``meta['execution']`` says which ran (capture failure falls back to eager
            and records why).
        max_auto_batch / auto_gain: bounds of the automatic batch-size search.
        meta: extra facts recorded in ``Measurement.meta``.

    Raises:
        MeasurementError: out of memory (at build, batch search or run) or a sensor failure.
    """
    t_begin = time.perf_counter()
    dev = _Device(device)
    idle_window_s = meter.min_window_s if idle_window_s is None else float(idle_window_s)
    energy_window_s = max(meter.min_window_s, 0.0) if energy_window_s is None else float(energy_window_s)
    if idle_window_s <= 0 or energy_window_s <= 0:
        raise ValueError(f"idle_window_s and energy_window_s must be positive, got {idle_window_s}, {energy_window_s}")
    recorder = PowerRecorder(meter)
    info: dict[str, Any] = dict(meta or {})
    options = _RunOptions(idle_window_s, energy_window_s, warmup_s, time_budget_s, max_auto_batch, auto_gain,
                          n_classes, cuda_graph)
    run = _run_protocol(build, workload, dev, recorder, options, info)
    return _measurement(run, recorder, meter, workload, dev, info, platform=platform, trace_limit=trace_limit,
                        t_begin=t_begin)


@dataclass(frozen=True)
class _RunOptions:
    """The protocol's settings (see :func:`measure_model`): windows and budgets in seconds."""

    idle_window_s: float
    energy_window_s: float
    warmup_s: float
    time_budget_s: float
    max_auto_batch: int
    auto_gain: float
    n_classes: int
    cuda_graph: bool


@dataclass(frozen=True)
class _Run:
    """What one run of the protocol observed: the batch size, the timed iterations, and the phases'
    boundaries on ``time.perf_counter`` (s)."""

    batch: int
    times: list[float]
    stopped_by: str
    n_warm: int
    n_win: int
    t_idle0: float
    t_idle1: float
    t_warm: float
    t_lat: float
    t_win0: float
    t_win1: float


def _run_protocol(build: Callable[[], Any], workload: Workload, dev: _Device, recorder: PowerRecorder,
                  options: _RunOptions, info: dict[str, Any]) -> _Run:
    """Steps 1-6 with the power recorder running: build, idle window, batch size, warm-up, latency, energy
    window. The recorder is stopped and the model freed whatever happens."""
    import torch

    switch = sys.getswitchinterval()
    model = optimizer = None
    try:
        sys.setswitchinterval(0.0005)  # let the recorder thread timestamp counter updates promptly
        recorder.start()
        torch.manual_seed(workload.seed)
        model, optimizer = _build(build, workload, dev)
        info["n_parameters"] = int(sum(p.numel() for p in model.parameters()))
        pass_labels = workload.mode == "training" and _accepts_labels(model)
        gen = torch.Generator().manual_seed(workload.seed)

        def inputs(batch: int) -> tuple[Any, Any]:
            ids = torch.randint(0, workload.vocab_size, (batch, workload.seq_len), generator=gen)
            labels = torch.randint(0, options.n_classes, (batch,), generator=gen)
            return ids.to(dev.device), labels.to(dev.device)

        t_idle0 = time.perf_counter()
        time.sleep(options.idle_window_s)
        t_idle1 = time.perf_counter()
        batch = workload.batch_size
        if batch is None:
            batch, info["auto_batch"] = _auto_batch(model, optimizer, workload, dev, inputs, pass_labels,
                                                    options.max_auto_batch, options.auto_gain)
        ids, labels = inputs(batch)
        step = _make_step(model, optimizer, workload.mode, ids, labels, pass_labels)
        try:
            t_warm = time.perf_counter()
            n_warm = _warm_up(step, workload, dev, options.warmup_s)
            info["execution"] = "eager"
            if options.cuda_graph and dev.type == "cuda" and workload.mode == "inference":
                step, info["execution"] = _capture_graph(model, ids, dev, step)
            t_lat = time.perf_counter()
            times, stopped_by = _time_latency(step, workload, dev, options.time_budget_s)
            n_win, t_win0, t_win1 = dev.run_for(step, options.energy_window_s)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise MeasurementError(f"out of memory at batch size {batch}: {str(exc).splitlines()[0]}") from None
            raise
        recorder.stop()
    except BaseException:
        try:
            recorder.stop()
        except SensorUnavailableError:
            pass
        raise
    finally:
        sys.setswitchinterval(switch)
        del model, optimizer
        gc.collect()
        dev.empty_cache()
    return _Run(batch, times, stopped_by, n_warm, n_win, t_idle0, t_idle1, t_warm, t_lat, t_win0, t_win1)


def _build(build: Callable[[], Any], workload: Workload, dev: _Device) -> tuple[Any, Any]:
    """Step 1: the model on the device in the workload's mode, and for training an AdamW optimiser."""
    import torch

    try:
        model = build().to(dev.device)
        model.train(workload.mode == "training")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if workload.mode == "training" else None
        dev.sync()
    except Exception as exc:
        if is_out_of_memory(exc):
            raise MeasurementError(f"out of memory building the model: {str(exc).splitlines()[0]}") from None
        raise
    return model, optimizer


def _warm_up(step: Callable[[], Any], workload: Workload, dev: _Device, warmup_s: float) -> int:
    """Step 4: ``workload.warmup`` iterations and at least ``warmup_s`` seconds; returns the iterations run."""
    t_warm = time.perf_counter()
    n_warm = 0
    while n_warm < workload.warmup or time.perf_counter() - t_warm < warmup_s:
        step()
        n_warm += 1
        if n_warm % 8 == 0 or n_warm >= workload.warmup:
            dev.sync()
    dev.sync()
    return n_warm


def _time_latency(step: Callable[[], Any], workload: Workload, dev: _Device, time_budget_s: float) -> tuple[list[float], str]:
    """Step 5: seconds of each timed iteration, in chunks until the median's CI is tight enough, and
    what stopped the loop (``ci``, ``max_repeats`` or ``time_budget``)."""
    t_lat = time.perf_counter()
    times: list[float] = []
    chunk = workload.min_repeats
    while True:
        times += dev.time_iterations(step, chunk)
        if median_ci_rel(times) <= workload.target_ci_rel and len(times) >= workload.min_repeats:
            return times, "ci"
        if len(times) >= workload.max_repeats:
            return times, "max_repeats"
        if time.perf_counter() - t_lat >= time_budget_s:
            return times, "time_budget"
        chunk = min(workload.max_repeats - len(times), len(times))


def _energy_window(run: _Run, recorder: PowerRecorder, meter: Meter, unavailable: dict[str, str]) -> dict[str, Any]:
    """Step 6: mean power over the energy window, the window's batch time, idle power and the spread of
    sub-window powers (what a figure lacks goes into ``unavailable``)."""
    busy_w, busy_how = recorder.mean_power(run.t_win0, run.t_win1)
    batch_time = (run.t_win1 - run.t_win0) / run.n_win  # energy counted in the window / batches run in it
    if meter.measures_idle:
        idle_w, idle_how = recorder.mean_power(run.t_idle0, run.t_idle1)
        energy_above = (busy_w - idle_w) * batch_time
    else:
        idle_w, idle_how = None, None
        unavailable["idle_power_w"] = f"{meter.source} models active energy only: no idle draw"
        energy_above = busy_w * batch_time
    n_updates = sum(1 for t, _ in recorder.counter if run.t_win0 <= t <= run.t_win1)
    subs = recorder.sub_window_powers(run.t_win0, run.t_win1, n=max(3, min(8, n_updates // 3)))
    spread = None
    if len(subs) >= 3 and np.median(subs) > 0:
        q1, q3 = np.percentile(subs, [25, 75])
        spread = float((q3 - q1) / np.median(subs))
    else:
        unavailable["energy_spread_rel"] = "too few counter updates or samples in the energy window"
    return {"busy_w": busy_w, "busy_how": busy_how, "batch_time": batch_time, "idle_w": idle_w,
            "idle_how": idle_how, "energy_above": energy_above, "n_updates": n_updates, "subs": subs,
            "spread": spread}


def _measurement(run: _Run, recorder: PowerRecorder, meter: Meter, workload: Workload, dev: _Device,
                 info: dict[str, Any], *, platform: str, trace_limit: int, t_begin: float) -> Measurement:
    """Steps 5-7 as a :class:`Measurement`: latency statistics, energy, peak power and the power trace
    (``t_begin``: ``time.perf_counter()`` when the measurement began)."""
    import torch

    latency, iqr = _stats(run.times)
    unavailable: dict[str, str] = {}
    e = _energy_window(run, recorder, meter, unavailable)
    run_samples = recorder.samples_between(run.t_warm, run.t_win1)
    if run_samples:
        peak = max(w for _, w in run_samples)
    else:
        peak = None
        unavailable["peak_power_w"] = f"no power sample during the run (sample interval {meter.sample_interval_s} s)"
    t0 = run.t_idle0
    trace = _thin([(t - t0, w) for t, w in recorder.samples_between(t0, run.t_win1)], trace_limit)
    info.update(
        {
            "meter": meter.describe(),
            "stopped_by": run.stopped_by,
            "warmup_iterations": run.n_warm,
            "energy_window": {
                "seconds": run.t_win1 - run.t_win0,
                "iterations": run.n_win,
                "batch_time_s": e["batch_time"],
                "mean_power_w": e["busy_w"],
                "method": e["busy_how"],
                "counter_updates": e["n_updates"],
                "sub_window_power_w": e["subs"],
            },
            "idle_window": {"seconds": run.t_idle1 - run.t_idle0, "method": e["idle_how"]},
            "phases": {
                "idle": [0.0, run.t_idle1 - t0],
                "warmup": [run.t_warm - t0, run.t_lat - t0],
                "latency": [run.t_lat - t0, run.t_win0 - t0],
                "energy_window": [run.t_win0 - t0, run.t_win1 - t0],
            },
            "torch": torch.__version__,
            "n_power_samples": len(recorder.samples),
        }
    )
    if dev.type == "cuda":
        info["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["cudnn_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    if not meter.measures_idle and hasattr(meter, "model"):
        info["energy_model"] = meter.model()
    return Measurement(
        platform=platform, device=dev.name(), mode=workload.mode, batch_size=run.batch, seq_len=workload.seq_len,
        repeats=len(run.times), latency_s=latency, latency_iqr_s=iqr, latency_ci_rel=median_ci_rel(run.times),
        source=meter.source, energy_j=e["busy_w"] * e["batch_time"], energy_above_idle_j=e["energy_above"],
        idle_power_w=e["idle_w"], peak_power_w=peak, mean_power_w=e["busy_w"], energy_spread_rel=e["spread"],
        power_trace=tuple(trace), unavailable=unavailable, meta=info, wall_time_s=time.perf_counter() - t_begin,
    )


def _capture_graph(model: Any, ids: Any, dev: _Device, eager: Callable[[], Any]) -> tuple[Callable[[], Any], str]:
    """A replay of the captured forward pass, or ``eager`` and why capture failed."""
    import torch

    try:
        side = torch.cuda.Stream(dev.device)
        side.wait_stream(torch.cuda.current_stream(dev.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                model(ids)
        torch.cuda.current_stream(dev.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            model(ids)
        graph.replay()
        dev.sync()
        return graph.replay, "cuda-graph"
    except Exception as exc:  # noqa: BLE001 - some ops cannot be captured: measure eagerly instead
        if is_out_of_memory(exc):
            raise
        dev.sync()
        return eager, f"eager (cuda graph capture failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]})"


def _auto_batch(
    model: Any, optimizer: Any, workload: Workload, dev: _Device, inputs: Callable[[int], tuple[Any, Any]],
    pass_labels: bool, max_batch: int, gain: float,
) -> tuple[int, dict[str, Any]]:
    """Largest power of two that fits and raises throughput (sequences/s) by >= ``gain`` over half of it."""
    tried: dict[str, float] = {}
    best, best_tp, reason = None, 0.0, f"reached max_auto_batch={max_batch}"
    b = 1
    while b <= max_batch:
        try:
            ids, labels = inputs(b)
            step = _make_step(model, optimizer, workload.mode, ids, labels, pass_labels)
            for _ in range(2):
                step()
            dev.sync()
            t = float(np.median(dev.time_iterations(step, 3)))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del exc
            gc.collect()
            dev.empty_cache()
            reason = f"out of memory at {b}"
            break
        finally:
            ids = labels = step = None  # noqa: F841 - free the batch before the next size
        tp = b / t
        tried[str(b)] = tp
        if best is not None and tp < best_tp * (1 + gain):
            reason = f"throughput at {b} rose less than {gain:.0%}"
            break
        best, best_tp = b, tp
        b *= 2
    if best is None:
        raise MeasurementError("out of memory at batch size 1")
    return best, {"chosen": best, "throughput_seq_per_s": tried, "stopped": reason, "min_gain": gain}

"""Probe NVML's sensors on the GPU machine: energy-counter update period, power-sample spacing, idle.

    PYTHONPATH=. python3 benchmarks/bench_gpu_probe.py OUT.json

Polls ``nvmlDeviceGetTotalEnergyConsumption`` every 0.5 ms for 2 s idle and 2 s under a bf16 matmul
load, records the intervals between counter changes, and reads the power-sample buffer
(``nvmlDeviceGetSamples``) for its spacing. These figures set the protocol's windows.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np


def main(out: str) -> None:
    import pynvml
    import torch

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    res: dict = {"gpu": pynvml.nvmlDeviceGetName(h), "driver": pynvml.nvmlSystemGetDriverVersion(),
                 "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000, "torch": torch.__version__}

    def poll(seconds: float, work=None) -> dict:
        changes, last = [], None
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if work is not None:
                work()
            e = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            t = time.perf_counter()
            if last is None or e != last:
                changes.append((t, e))
                last = e
            if work is None:
                time.sleep(0.0005)
        ts = np.array([c[0] for c in changes[1:]])
        es = np.array([c[1] for c in changes[1:]], dtype=float)
        dt = np.diff(ts)
        return {"updates": len(ts), "update_interval_ms_median": float(np.median(dt) * 1e3) if len(dt) else None,
                "update_interval_ms_p10_p90": [float(np.percentile(dt, 10) * 1e3), float(np.percentile(dt, 90) * 1e3)] if len(dt) else None,
                "mean_power_w": float((es[-1] - es[0]) / 1e3 / (ts[-1] - ts[0])) if len(ts) > 1 else None}

    res["idle"] = poll(2.0)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    res["load"] = poll(2.0, work=lambda: (a @ a, torch.cuda.synchronize()))
    try:
        vt, samples = pynvml.nvmlDeviceGetSamples(h, pynvml.NVML_TOTAL_POWER_SAMPLES, 0)
        ts = np.array(sorted(s.timeStamp for s in samples), dtype=float)
        res["samples_buffer"] = {"count": len(samples), "value_type": vt,
                                 "spacing_ms_median": float(np.median(np.diff(ts)) / 1e3) if len(ts) > 1 else None,
                                 "newest_minus_walltime_s": float(ts[-1] / 1e6 - time.time()) if len(ts) else None,
                                 "last_w": [s.sampleValue.uiVal / 1000 for s in samples[-5:]]}
    except pynvml.NVMLError as exc:
        res["samples_buffer"] = {"error": str(exc)}
    try:
        f = pynvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_POWER_INSTANT])[0]
        res["instant_power_w"] = f.value.uiVal / 1000 if f.nvmlReturn == 0 else f"error {f.nvmlReturn}"
    except pynvml.NVMLError as exc:
        res["instant_power_w"] = str(exc)
    res["power_usage_w"] = pynvml.nvmlDeviceGetPowerUsage(h) / 1000
    print(json.dumps(res, indent=1))
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gpu_probe.json")

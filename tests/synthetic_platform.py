"""A deterministic test platform: latency/energy/power from the analytic cost model, no sensors.

Registered as ``synthetic-test``. Options: ``fail_every`` (every k-th measurement raises an out-of-memory
error), ``sleep_s`` (seconds each measurement takes), ``log_path`` (append each measured hash). Used where the test is about the workflow, not
about measuring; the real ``cpu`` platform is used elsewhere.
"""

from __future__ import annotations

import time

from protran_tune.platforms import Measurement, MeasurementError, Platform, Workload, register_platform
from protran_tune.space import Architecture, encoder_flops


@register_platform("synthetic-test")
class SyntheticPlatform(Platform):
    calls = 0

    def __init__(self, fail_every: int = 0, sleep_s: float = 0.0, fail_hashes: tuple = (), log_path: str = "") -> None:
        self.fail_every = fail_every
        self.sleep_s = sleep_s
        self.fail_hashes = set(fail_hashes)
        self.log_path = log_path

    def measure(self, arch: Architecture, workload: Workload) -> Measurement:
        type(self).calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if (self.fail_every and type(self).calls % self.fail_every == 0) or arch.content_hash() in self.fail_hashes:
            raise MeasurementError(f"CUDA out of memory while measuring {arch.content_hash()}")
        if self.log_path:  # one line per finished measurement (tests count them)
            with open(self.log_path, "a") as fh:
                fh.write(arch.content_hash() + "\n")
        batch = workload.batch_size or 4
        flops = encoder_flops(arch, workload.seq_len) * batch
        latency = 1e-3 + flops / 5e10
        power = 20.0 + 30.0 * min(1.0, flops / 1e10)
        trace = tuple((0.01 * i, power * (0.9 + 0.02 * i)) for i in range(6))
        return Measurement(
            platform="synthetic-test", device="synthetic", mode=workload.mode, batch_size=batch,
            seq_len=workload.seq_len, repeats=10, latency_s=latency, latency_iqr_s=latency * 0.02,
            latency_ci_rel=0.01, source="modelled:synthetic-test", energy_j=latency * power,
            energy_above_idle_j=latency * (power - 10.0), idle_power_w=10.0, peak_power_w=max(w for _, w in trace),
            mean_power_w=power, energy_spread_rel=0.02, power_trace=trace, wall_time_s=0.01,
        )

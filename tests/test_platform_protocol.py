"""The shared measurement protocol on the real CPU, the platform registry and sensor-less platforms."""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from protran_tune.platforms import (
    Measurement,
    MeasurementError,
    SensorUnavailableError,
    Workload,
    available_platforms,
    get_platform,
)
from protran_tune.platforms.protocol import median_ci_rel
from protran_tune.space import Architecture

FX = Path(__file__).parent / "fixtures" / "platforms"
TINY = Architecture.homogeneous(2, 128, 2, 256)
FAST = {"idle_window_s": 0.2, "energy_window_s": 0.3}


def _small_workload(**kw: Any) -> Workload:
    base = dict(batch_size=2, seq_len=16, min_repeats=5, max_repeats=12, target_ci_rel=0.05, warmup=1)
    return Workload(**{**base, **kw})


def _no_zero_for_missing(m: Measurement) -> None:
    for name in ("energy_j", "energy_above_idle_j", "idle_power_w", "peak_power_w", "mean_power_w"):
        value = getattr(m, name)
        if value is None:
            assert name in m.unavailable and m.unavailable[name]
        elif name != "energy_above_idle_j":
            assert value > 0, f"{name} is {value}"


def test_median_ci_rel() -> None:
    assert median_ci_rel([1.0, 1.0]) == math.inf
    assert median_ci_rel([2.0] * 50) == 0.0
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 1.0, 4000)
    few, many = median_ci_rel(x[:40]), median_ci_rel(x)
    assert many < few
    # normal data: CI half-width of the median ~ 1.96 * 1.2533 * sigma / sqrt(n)
    assert many == pytest.approx(1.96 * 1.2533 / math.sqrt(4000) / 10.0, rel=0.3)


def test_registry_has_the_builtin_platforms() -> None:
    assert {"cpu", "cuda", "jetson", "apple", "rpi-ina219"} <= set(available_platforms())
    with pytest.raises(ValueError, match="known platforms"):
        get_platform("tpu")


def test_cpu_inference_with_labelled_model() -> None:
    with get_platform("cpu", energy="model", watts_per_core=7.5, **FAST) as cpu:
        m = cpu.measure(TINY, _small_workload())
    assert m.platform == "cpu" and m.mode == "inference" and m.batch_size == 2 and m.seq_len == 16
    assert 5 <= m.repeats <= 12
    assert m.latency_s > 0 and m.latency_iqr_s >= 0 and m.latency_ci_rel >= 0
    assert m.source == "modelled:cpu-time"
    assert m.meta["energy_model"]["watts_per_core"] == 7.5
    assert "not a measurement" in m.meta["energy_model"]["note"]
    assert m.idle_power_w is None and "idle" in m.unavailable["idle_power_w"]
    window = m.meta["energy_window"]
    assert m.energy_j == pytest.approx(m.mean_power_w * window["batch_time_s"])
    assert m.energy_above_idle_j == pytest.approx(m.energy_j)  # the model counts active energy only
    assert 0 < m.mean_power_w <= 7.5 * (os.cpu_count() or 1) * 1.2  # at most every core busy
    assert m.power_trace and all(w >= 0 for _, w in m.power_trace)
    assert m.meta["n_parameters"] > 0 and m.meta["first_in_process"] is True
    _no_zero_for_missing(m)
    again = Measurement.from_dict(m.to_dict())
    assert again == m


def test_cpu_training_updates_weights_and_inference_does_not() -> None:
    built: list[torch.nn.Module] = []

    def factory(arch: Architecture, workload: Workload) -> torch.nn.Module:
        from protran_tune.models import build_model

        model = build_model(arch, task="classification", vocab_size=workload.vocab_size)
        built.append(model)
        built.append(copy.deepcopy(model))
        return model

    def changed(model: torch.nn.Module, initial: torch.nn.Module) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), initial.state_dict().values()))

    with get_platform("cpu", energy="model", model_factory=factory, **FAST) as cpu:
        m_inf = cpu.measure(TINY, _small_workload())
        m_train = cpu.measure(TINY, _small_workload(mode="training"))
    assert not changed(built[0], built[1])
    assert changed(built[2], built[3])  # forward + backward + AdamW step ran
    assert m_inf.mode == "inference" and m_train.mode == "training"
    assert m_train.meta["first_in_process"] is False


class _Hungry(torch.nn.Module):
    """Asks the allocator for a petabyte on its first forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(30522, 8)

    def forward(self, ids: torch.Tensor, **kw: Any) -> torch.Tensor:
        big = torch.empty(2**50, dtype=torch.uint8)
        return self.embed(ids).mean() + big[0]


def test_out_of_memory_becomes_measurement_error() -> None:
    with get_platform("cpu", energy="model", model_factory=lambda a, w: _Hungry(), **FAST) as cpu:
        with pytest.raises(MeasurementError, match="out of memory"):
            cpu.measure(TINY, _small_workload())


def test_auto_batch_size_is_a_power_of_two_and_recorded() -> None:
    with get_platform("cpu", energy="model", max_auto_batch=4, **FAST) as cpu:
        m = cpu.measure(TINY, _small_workload(batch_size=None))
    auto = m.meta["auto_batch"]
    assert m.batch_size == auto["chosen"] in (1, 2, 4)
    assert set(auto["throughput_seq_per_s"]) <= {"1", "2", "4"} and "1" in auto["throughput_seq_per_s"]
    assert all(v > 0 for v in auto["throughput_seq_per_s"].values())


def test_cpu_rapl_requested_without_counters_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SensorUnavailableError, match="powercap"):
        get_platform("cpu", energy="rapl", powercap_root=tmp_path / "none")
    with get_platform("cpu", energy="auto", powercap_root=tmp_path / "none") as cpu:
        assert cpu.meter.source == "modelled:cpu-time"
        assert "powercap" in cpu.describe()["rapl_unavailable"]
    with get_platform("cpu", energy="auto", powercap_root=FX / "powercap") as cpu:
        assert cpu.meter.source == "measured:rapl"


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("jetson", {"sysfs_root": "/nonexistent"}, "INA3221"),
        ("apple", {"command": ["/nonexistent/powermetrics"]}, "powermetrics"),
        ("rpi-ina219", {"hwmon_root": "/nonexistent", "bus": 99}, "ina219"),
    ],
)
def test_missing_sensors_are_clear_errors(name: str, options: dict, match: str) -> None:
    with pytest.raises(SensorUnavailableError, match=match):
        get_platform(name, **options)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_platform_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(SensorUnavailableError, match="no CUDA device"):
        get_platform("cuda")


@pytest.mark.parametrize(
    "name, options, source, watts",
    [
        ("jetson", {"sysfs_root": FX / "ina3221_iio"}, "measured:ina3221", 4.908),
        ("rpi-ina219", {"hwmon_root": FX / "ina219_hwmon"}, "measured:ina219", 3.128),
    ],
)
def test_board_platforms_measure_from_sysfs(name: str, options: dict, source: str, watts: float) -> None:
    """The fixture's sensor reads a constant board power, so every energy figure follows exactly."""
    with get_platform(name, **options, **FAST) as platform:
        m = platform.measure(TINY, _small_workload())
    t = m.meta["energy_window"]["batch_time_s"]
    assert m.source == source and m.meta["energy_window"]["method"] == "samples"
    assert m.idle_power_w == pytest.approx(watts) and m.mean_power_w == pytest.approx(watts)
    assert m.peak_power_w == pytest.approx(watts)
    assert m.energy_j == pytest.approx(watts * t)
    assert m.energy_above_idle_j == pytest.approx(0.0, abs=1e-9)
    _no_zero_for_missing(m)

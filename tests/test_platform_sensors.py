"""Sensor readers and parsers against recorded-format fixtures (tests/fixtures/platforms, see its README)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from protran_tune.platforms.apple import PowermetricsMeter, parse_powermetrics_plist
from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.ina219 import (
    INA219HwmonMeter,
    INA219SMBusMeter,
    decode_bus_voltage,
    decode_shunt_voltage,
    swap16,
)
from protran_tune.platforms.jetson import INA3221Meter, TegrastatsMeter, parse_tegrastats_line
from protran_tune.platforms.meters import Meter, ModelledCPUMeter, PowerRecorder, trapezoid_energy, window_power
from protran_tune.platforms.rapl import RaplMeter, find_zones

FX = Path(__file__).parent / "fixtures" / "platforms"


# --------------------------------------------------------------------------- RAPL
@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    shutil.copytree(FX / "powercap", root)
    return root


def _set(root: Path, zone: str, uj: int) -> None:
    (root / zone / "energy_uj").write_text(f"{uj}\n")


def test_rapl_sums_package_and_dram_only(powercap: Path) -> None:
    zones = find_zones(powercap)
    assert sorted(z.name for z in zones) == ["dram", "package-0"]
    meter = RaplMeter(powercap)
    assert meter.read_energy_j() == 0.0  # relative to opening
    _set(powercap, "intel-rapl:0", 262143000000 + 250_000)  # +0.25 J package
    _set(powercap, "intel-rapl:0:2", 12345678901 + 50_000)  # +0.05 J dram
    _set(powercap, "intel-rapl:0:0", 999)  # core: ignored
    assert meter.read_energy_j() == pytest.approx(0.30, abs=1e-9)


def test_rapl_undoes_wraparound(powercap: Path) -> None:
    meter = RaplMeter(powercap, zones=("package",))
    before = 262143000000
    max_range = 262143328850
    _set(powercap, "intel-rapl:0", 1_671_150)  # passed the wrap point: (max - before) + 1.67115 J
    step = (max_range - before + 1_671_150) * 1e-6
    assert meter.read_energy_j() == pytest.approx(step, abs=1e-9)
    assert meter.wraps == 1
    _set(powercap, "intel-rapl:0", 2_671_150)
    assert meter.read_energy_j() == pytest.approx(step + 1.0, abs=1e-9)
    assert meter.wraps == 1


def test_rapl_missing_or_unreadable_is_an_error(tmp_path: Path, powercap: Path) -> None:
    with pytest.raises(SensorUnavailableError, match="no powercap tree"):
        RaplMeter(tmp_path / "absent")
    with pytest.raises(SensorUnavailableError, match="no RAPL zone"):
        RaplMeter(powercap, zones=("gpu",))
    (powercap / "intel-rapl:0" / "energy_uj").write_text("garbage\n")
    with pytest.raises(SensorUnavailableError, match="unreadable"):
        RaplMeter(powercap)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_rapl_permission_denied_names_the_fix(powercap: Path) -> None:
    (powercap / "intel-rapl:0" / "energy_uj").chmod(0)
    with pytest.raises(SensorUnavailableError, match="root only"):
        RaplMeter(powercap)


# --------------------------------------------------------------------------- Jetson
def test_tegrastats_nano_r32_lines() -> None:
    lines = (FX / "tegrastats_nano_r32.txt").read_text().splitlines()
    idle, busy = parse_tegrastats_line(lines[0]), parse_tegrastats_line(lines[1])
    assert idle.rails_w == {"POM_5V_IN": 1.227, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.163}
    assert busy.total_w() == (4.908, "POM_5V_IN")
    assert busy.rails_avg_w["POM_5V_IN"] == 3.067
    assert busy.gpu_load_pct == 99.0 and busy.timestamp is None
    assert "RAM" not in busy.rails_w and "SWAP" not in busy.rails_w


def test_tegrastats_orin_r35_lines_with_timestamp_and_mw() -> None:
    s = parse_tegrastats_line((FX / "tegrastats_orin_r35.txt").read_text().splitlines()[1])
    assert s.timestamp is not None and (s.timestamp.hour, s.timestamp.second) == (21, 2)
    assert s.total_w() == (9.871, "VDD_IN")
    assert s.rails_w["VDD_CPU_GPU_CV"] == 3.941 and s.rails_avg_w["VDD_SOC"] == 1.817


def test_tegrastats_xavier_and_rejects_lines_without_rails() -> None:
    s = parse_tegrastats_line((FX / "tegrastats_xavier_nx_r32.txt").read_text())
    assert s.total_w() == (4.395, "VDD_IN")
    with pytest.raises(ValueError, match="no power rail"):
        parse_tegrastats_line("RAM 1772/3964MB (lfb 6x4MB) SWAP 0/1982MB (cached 0MB) CPU [12%@102]")


def test_tegrastats_meter_streams_a_running_process() -> None:
    script = (
        "import sys, time\n"
        f"lines = open({str(FX / 'tegrastats_nano_r32.txt')!r}).read().splitlines()\n"
        "for line in lines * 3:\n"
        "    print(line, flush=True); time.sleep(0.02)\n"
        "time.sleep(5)\n"
    )
    meter = TegrastatsMeter(interval_ms=20, command=[sys.executable, "-c", script])
    try:
        deadline = time.time() + 5
        got: list[tuple[float, float]] = []
        while len(got) < 9 and time.time() < deadline:
            got += meter.poll_samples()
            time.sleep(0.02)
        assert [w for _, w in got[:3]] == [1.227, 4.908, 5.012]
        assert all(b[0] >= a[0] for a, b in zip(got, got[1:]))
        assert meter.describe()["rail"] == "POM_5V_IN"
    finally:
        meter.close()


def test_tegrastats_absent_is_an_error() -> None:
    with pytest.raises(SensorUnavailableError, match="cannot run"):
        TegrastatsMeter(command=["/nonexistent/tegrastats"])


@pytest.mark.parametrize(
    "tree, rail, watts",
    [
        ("ina3221_iio", "POM_5V_IN", 4.908),
        ("ina3221_hwmon", "VDD_IN", 5.056 * 1.420),
    ],
)
def test_ina3221_sysfs_layouts(tree: str, rail: str, watts: float) -> None:
    meter = INA3221Meter(FX / tree)
    assert meter.rail == rail
    assert meter.read_power_w() == pytest.approx(watts, rel=1e-9)
    assert len(meter.rails) == 3


def test_ina3221_named_rail_and_missing_rail() -> None:
    meter = INA3221Meter(FX / "ina3221_hwmon", rail="VDD_SOC")
    assert meter.read_power_w() == pytest.approx(5.052 * 0.290)
    with pytest.raises(SensorUnavailableError, match="rails are"):
        INA3221Meter(FX / "ina3221_hwmon", rail="VDD_GPU")
    with pytest.raises(SensorUnavailableError, match="no INA3221"):
        INA3221Meter(FX / "powercap")


# --------------------------------------------------------------------------- Apple
def test_powermetrics_plist_stream() -> None:
    docs = [d for d in (FX / "powermetrics_m1pro.plist").read_bytes().split(b"\0") if d.strip()]
    samples = [parse_powermetrics_plist(d) for d in docs]
    assert len(samples) == 3
    assert samples[1].combined_w == pytest.approx(4.811 + 9.31025)
    assert samples[1].gpu_w == pytest.approx(9.31025)
    assert samples[0].elapsed_s == pytest.approx(0.102345678)
    assert samples[2].energy_j == pytest.approx((5.120 + 10.0215 + 0.0125) * 0.101002311)


def test_powermetrics_rejects_documents_without_power() -> None:
    with pytest.raises(ValueError, match="no processor power"):
        parse_powermetrics_plist(b'<?xml version="1.0"?><plist version="1.0"><dict><key>elapsed_ns</key><integer>1</integer></dict></plist>')
    with pytest.raises(ValueError, match="malformed"):
        parse_powermetrics_plist(b"<plist><dict>")


def test_powermetrics_meter_reads_a_nul_separated_stream() -> None:
    script = (
        "import sys, time\n"
        f"data = open({str(FX / 'powermetrics_m1pro.plist')!r}, 'rb').read()\n"
        "for doc in data.split(b'\\0'):\n"
        "    if doc.strip():\n"
        "        sys.stdout.buffer.write(doc + b'\\0'); sys.stdout.buffer.flush(); time.sleep(0.02)\n"
        "time.sleep(5)\n"
    )
    meter = PowermetricsMeter(interval_ms=20, command=[sys.executable, "-c", script])
    try:
        deadline, got = time.time() + 5, []
        while len(got) < 3 and time.time() < deadline:
            got += meter.poll_samples()
            time.sleep(0.02)
        assert [round(w, 5) for _, w in got] == [1.2436, 14.12125, 15.154]
    finally:
        meter.close()


def test_powermetrics_absent_is_an_error() -> None:
    with pytest.raises(SensorUnavailableError):
        PowermetricsMeter(command=["/nonexistent/powermetrics"])


# --------------------------------------------------------------------------- INA219
def test_ina219_register_decoding_datasheet_values() -> None:
    assert swap16(0x401F) == 0x1F40
    assert decode_bus_voltage(0x1F40) == pytest.approx(4.0)  # bits 15..3 = 1000 x 4 mV
    assert decode_bus_voltage(0x1F42) == pytest.approx(4.0)  # CNVR bit ignored
    assert decode_shunt_voltage(0x0FA0) == pytest.approx(0.040)  # +4000 x 10 uV
    assert decode_shunt_voltage(0xF060) == pytest.approx(-0.040)  # two's complement
    with pytest.raises(ValueError, match="overflow"):
        decode_bus_voltage(0x1F41)
    with pytest.raises(ValueError, match="16-bit"):
        decode_shunt_voltage(0x10000)


def test_ina219_hwmon_finds_the_ina219_among_hwmons() -> None:
    meter = INA219HwmonMeter(FX / "ina219_hwmon")
    assert meter.device.name == "hwmon1"
    assert meter.read_power_w() == pytest.approx(3.128)
    assert meter.describe()["update_interval_ms"] == 4.0
    with pytest.raises(SensorUnavailableError, match="no ina219"):
        INA219HwmonMeter(FX / "ina3221_iio")


class _RecordedI2C:
    """Register words as an SMBus read_word_data returns them (little-endian), recorded from a board."""

    def __init__(self, words: dict[int, int]) -> None:
        self.words = words

    def read_word_data(self, address: int, register: int) -> int:
        return swap16(self.words[register])


def test_ina219_smbus_power_from_shunt_and_bus_voltage() -> None:
    # 5.112 V bus (0x27F0 >> 3 = 1278 x 4 mV), 61.2 mV across 0.1 ohm -> 612 mA -> 3.1285 W
    bus = _RecordedI2C({0x01: 6120, 0x02: 0x27F0})
    meter = INA219SMBusMeter(bus=1, address=0x40, shunt_ohms=0.1, smbus=bus)
    assert meter.read_power_w() == pytest.approx(5.112 * 0.612, rel=1e-9)
    with pytest.raises(ValueError, match="shunt_ohms"):
        INA219SMBusMeter(shunt_ohms=0, smbus=bus)


# --------------------------------------------------------------------------- windows and the recorder
def test_trapezoid_and_window_power_exact() -> None:
    samples = [(0.0, 100.0), (1.0, 200.0), (2.0, 200.0)]
    assert trapezoid_energy(samples, 0.0, 2.0) == pytest.approx(150.0 + 200.0)
    assert trapezoid_energy(samples, 0.5, 1.5) == pytest.approx(0.5 * (150 + 200) / 2 + 0.5 * 200)
    counter = [(0.05 + 0.1 * i, 30.0 * i) for i in range(20)]  # 300 W, updates every 100 ms
    watts, covered, updates = window_power(counter, 0.0, 1.0)
    assert watts == pytest.approx(300.0) and updates == 9 and covered == pytest.approx(0.9)
    assert window_power(counter, 0.0, 0.12) is None  # one update only
    with pytest.raises(ValueError):
        trapezoid_energy(samples, 1.0, 1.0)


class _TenHertzCounter(Meter):
    """A counter of a constant 250 W load that publishes only every 100 ms, like NVML's."""

    source = "measured:test-counter"
    sample_interval_s = 0.02
    counter_interval_s = 0.1

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def read_energy_j(self) -> float:
        t = time.perf_counter() - self.t0
        return 250.0 * (int(t / 0.1) * 0.1)

    def read_power_w(self) -> float:
        return 250.0


def test_recorder_resolves_a_10hz_counter_to_its_updates() -> None:
    meter = _TenHertzCounter()
    with PowerRecorder(meter) as rec:
        t0 = time.perf_counter()
        time.sleep(1.05)
        t1 = time.perf_counter()
    watts, how = rec.mean_power(t0, t1)
    assert how == "counter"
    assert watts == pytest.approx(250.0, rel=0.05)  # update instants timed to the 2 ms poll
    assert len(rec.counter) >= 10
    assert max(w for _, w in rec.samples) == 250.0


def test_recorder_raises_a_sensor_that_fails_mid_run() -> None:
    class Failing(_TenHertzCounter):
        def read_energy_j(self) -> float:
            raise OSError("i2c bus gone")

    rec = PowerRecorder(Failing()).start()
    time.sleep(0.05)
    with pytest.raises(SensorUnavailableError, match="i2c bus gone"):
        rec.stop()


def test_modelled_cpu_meter_is_labelled_and_follows_cpu_time() -> None:
    meter = ModelledCPUMeter(watts_per_core=8.0)
    assert meter.source == "modelled:cpu-time" and not meter.measures_idle
    assert meter.model()["watts_per_core"] == 8.0 and meter.model()["includes_idle"] is False
    e0, c0 = meter.read_energy_j(), time.process_time()
    x = 0
    for i in range(2_000_000):  # burn CPU in this thread
        x += i * i
    e1, c1 = meter.read_energy_j(), time.process_time()
    assert e1 - e0 == pytest.approx((c1 - c0) * 8.0, rel=0.05, abs=1e-3)
    with pytest.raises(ValueError, match="watts_per_core"):
        ModelledCPUMeter(watts_per_core=0)


def test_recorder_threads_do_not_leak() -> None:
    before = threading.active_count()
    with PowerRecorder(_TenHertzCounter()):
        time.sleep(0.05)
    assert threading.active_count() == before

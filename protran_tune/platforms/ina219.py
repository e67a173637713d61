"""Raspberry Pi board power from a TI INA219 current/power monitor on I2C.

Two ways to read it:

* **hwmon** (kernel ``ina2xx`` driver, ``dtoverlay=i2c-sensor,ina219``): ``/sys/class/hwmon/hwmon<N>/``
  with ``name`` = ``ina219``, ``power1_input`` (uW), ``in1_input`` (bus mV), ``curr1_input`` (mA) and
  ``update_interval`` (ms). Power is ``power1_input``, or ``in1_input x curr1_input`` where the power
  file is missing.
* **SMBus** (``smbus2``, no driver): registers are big-endian 16-bit words, so an SMBus
  ``read_word_data`` (little-endian) must be byte-swapped. Shunt voltage (reg 0x01) is signed with a
  10 uV LSB; bus voltage (reg 0x02) is bits 15..3 with a 4 mV LSB. Without writing the calibration
  register we compute ``I = V_shunt / R_shunt`` and ``P = V_bus x I`` (``shunt_ohms`` = 0.1 on the
  common breakout boards).

There is no energy counter: energy is the integral of samples. The driver's conversion time is
532 us per channel (12-bit) and the hwmon update interval is a few ms; we poll every 10 ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protran_tune.platforms.base import SensorUnavailableError
from protran_tune.platforms.meters import Meter, read_sysfs_number

REG_SHUNT_VOLTAGE = 0x01
REG_BUS_VOLTAGE = 0x02


def swap16(word: int) -> int:
    """Swap the bytes of a 16-bit SMBus word (INA219 registers are big-endian)."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def decode_shunt_voltage(register: int) -> float:
    """Shunt voltage register (already big-endian-corrected) -> volts; two's complement, 10 uV LSB."""
    if not 0 <= register <= 0xFFFF:
        raise ValueError(f"register must be a 16-bit value, got {register!r}")
    signed = register - 0x10000 if register & 0x8000 else register
    return signed * 10e-6


def decode_bus_voltage(register: int) -> float:
    """Bus voltage register -> volts: bits 15..3, 4 mV LSB; ``ValueError`` on math overflow (OVF bit)."""
    if not 0 <= register <= 0xFFFF:
        raise ValueError(f"register must be a 16-bit value, got {register!r}")
    if register & 0x1:
        raise ValueError("INA219 math overflow flag set: current or power out of range")
    return (register >> 3) * 4e-3


def find_ina219_hwmon(root: str | Path = "/sys/class/hwmon") -> Path:
    root = Path(root)
    for dev in sorted(root.glob("hwmon*")):
        try:
            if (dev / "name").read_text().strip() == "ina219":
                return dev
        except OSError:
            continue
    raise SensorUnavailableError(f"no ina219 hwmon device under {root} (load the ina2xx driver / i2c-sensor overlay)")


class INA219HwmonMeter(Meter):
    """INA219 through the ``ina2xx`` hwmon driver (power in uW)."""

    source = "measured:ina219"
    sample_interval_s = 0.01

    def __init__(self, root: str | Path = "/sys/class/hwmon") -> None:
        self.device = find_ina219_hwmon(root)
        self.update_interval_ms = read_sysfs_number(self.device / "update_interval") if (self.device / "update_interval").exists() else None
        self.read_power_w()

    def read_power_w(self) -> float:
        power = self.device / "power1_input"
        if power.exists():
            return read_sysfs_number(power) / 1e6
        return read_sysfs_number(self.device / "in1_input") * read_sysfs_number(self.device / "curr1_input") / 1e6

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "hwmon": str(self.device), "update_interval_ms": self.update_interval_ms}


class INA219SMBusMeter(Meter):
    """INA219 read over SMBus with ``smbus2`` (power = bus voltage x shunt voltage / shunt ohms)."""

    source = "measured:ina219"
    sample_interval_s = 0.01

    def __init__(self, bus: int = 1, address: int = 0x40, shunt_ohms: float = 0.1, smbus: Any = None) -> None:
        if not shunt_ohms > 0:
            raise ValueError(f"shunt_ohms must be positive, got {shunt_ohms!r}")
        self.bus_number, self.address, self.shunt_ohms = bus, address, float(shunt_ohms)
        if smbus is None:
            try:
                from smbus2 import SMBus
            except ImportError:
                raise SensorUnavailableError("INA219 over I2C needs smbus2 (pip install smbus2) or the ina2xx hwmon driver") from None
            try:
                smbus = SMBus(bus)
            except OSError as exc:
                raise SensorUnavailableError(f"cannot open I2C bus {bus}: {exc}") from None
        self._bus = smbus
        self.read_power_w()

    def _register(self, reg: int) -> int:
        try:
            return swap16(self._bus.read_word_data(self.address, reg))
        except OSError as exc:
            raise SensorUnavailableError(f"INA219 at 0x{self.address:02x} on bus {self.bus_number} unreadable: {exc}") from None

    def read_power_w(self) -> float:
        v_shunt = decode_shunt_voltage(self._register(REG_SHUNT_VOLTAGE))
        v_bus = decode_bus_voltage(self._register(REG_BUS_VOLTAGE))
        return abs(v_bus * v_shunt / self.shunt_ohms)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "i2c_bus": self.bus_number, "address": hex(self.address), "shunt_ohms": self.shunt_ohms}

    def close(self) -> None:
        close = getattr(self._bus, "close", None)
        if close:
            close()


def open_ina219_meter(hwmon_root: str | Path = "/sys/class/hwmon", bus: int = 1, address: int = 0x40, shunt_ohms: float = 0.1) -> Meter:
    """hwmon driver where present, else direct SMBus; ``SensorUnavailableError`` naming both failures."""
    try:
        return INA219HwmonMeter(hwmon_root)
    except SensorUnavailableError as first:
        try:
            return INA219SMBusMeter(bus, address, shunt_ohms)
        except SensorUnavailableError as second:
            raise SensorUnavailableError(f"no INA219: {first}; {second}") from None

"""Shared fixtures. Tests that need ``../shared/data`` skip cleanly where it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PROTRAN_SHARED_DATA", REPO.parent / "shared" / "data"))
MEASUREMENTS = SHARED_DATA / "protran-measurements"


@pytest.fixture(scope="session")
def measurement_files() -> list[Path]:
    """The seven recorded ProTran measurement files (skips without ``../shared/data``)."""
    files = sorted(p for p in MEASUREMENTS.glob("results_*.json") if not p.name.endswith(".max_values.json"))
    if not files:
        pytest.skip(f"no recorded measurements under {MEASUREMENTS}")
    return files


@pytest.fixture(scope="session")
def original_design_space_yaml() -> Path:
    path = SHARED_DATA / "edgetran-accuracy" / "design_space.yaml"
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path

"""Shared fixtures: the recorded data shipped inside the package (a plain clone has all of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protran_tune.datasets import protran_measurement_files
from protran_tune.datasets.registry import DATA_FILES


@pytest.fixture(scope="session")
def measurement_files() -> list[Path]:
    """The seven recorded ProTran measurement files, as shipped in the package."""
    return sorted(protran_measurement_files())


@pytest.fixture(scope="session")
def original_design_space_yaml() -> Path:
    """The original ``design_space.yaml`` of EdgeTran, as shipped in the package."""
    return DATA_FILES / "edgetran" / "design_space.yaml"

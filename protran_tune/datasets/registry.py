"""Datasets shipped inside the package, by name, and loading of any table file.

========================  ==============================================================================
``nas-bench-bert``        500 architectures with GLUE and per-task scores (Serianni & Kalita, ACL 2023;
                          CC BY 4.0)
``protran:<device>``      the 7 ProTran measurement files (latency, energy, peak power per sequence;
                          Tuli & Jha, BSD-3-Clause): ``gpu_a100``, ``cpu_m1-pro``, ``gpu_m1-pro``,
                          ``cpu_rpi``, ``npu_ncs``, ``cpu_jetson-nano``, ``gpu_jetson-nano``
``protran-nasbench:h200`` the 500 NAS-Bench-BERT architectures measured by protran-tune on an NVIDIA H200
                          (batch 128 x 128 tokens, fp32) joined with their GLUE scores
``protran-nasbench:cpu``  the same on a 2-core CPU (batch 1 x 128 tokens; energy modelled, labelled)
========================  ==============================================================================

:func:`load_dataset` takes one of these names or a path: a table file (``.jsonl``, the generic format
of :mod:`protran_tune.datasets.table`), a ProTran measurement file or a ``BERT_benchmark.json``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from protran_tune.datasets.table import Table, TableError

DATA_FILES = Path(str(resources.files("protran_tune.datasets") / "files"))
_PROTRAN_DEVICES = ("gpu_a100_b128_r3", "cpu_m1-pro_b32_r1", "gpu_m1-pro_b32_r3", "cpu_rpi_b1_r1", "npu_ncs_b1_r1",
                    "cpu_jetson-nano_b1_r1", "gpu_jetson-nano_b1_r1")


def _protran_file(stem: str) -> Path:
    return DATA_FILES / "protran" / f"results_{stem}.json"


def _nasbench() -> Path:
    return DATA_FILES / "nas-bench-bert" / "BERT_benchmark.json"


def _registry() -> dict[str, Callable[[], Path]]:
    out: dict[str, Callable[[], Path]] = {"nas-bench-bert": _nasbench}
    for stem in _PROTRAN_DEVICES:
        device = stem.rsplit("_b", 1)[0]
        out[f"protran:{device}"] = lambda stem=stem: _protran_file(stem)
    for platform in ("h200", "cpu"):
        out[f"protran-nasbench:{platform}"] = lambda p=platform: DATA_FILES / "protran-nasbench" / f"{p}.jsonl"
    return out


DATASETS: dict[str, Callable[[], Path]] = _registry()


def list_datasets(available_only: bool = True) -> list[str]:
    """Names of the shipped datasets (those whose file is present, unless ``available_only=False``)."""
    return [name for name, path in DATASETS.items() if not available_only or path().is_file()]


def dataset_path(name: str) -> Path:
    """File behind a dataset name; ``ValueError`` lists the known names."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: shipped datasets are {list_datasets()} (or give a file path)")
    path = DATASETS[name]()
    if not path.is_file():
        raise ValueError(f"dataset {name!r} is not part of this installation ({path} is missing)")
    return path


def protran_measurement_files() -> list[Path]:
    """The shipped ProTran measurement files (largest first, as in the paper's tables)."""
    return [_protran_file(stem) for stem in _PROTRAN_DEVICES]


def load_dataset(name_or_path: str | Path, *, on_error: str = "raise", space: str = "flexibert2") -> Table:
    """A shipped dataset by name, or a table / ProTran / NAS-Bench-BERT file by path, as a :class:`Table`."""
    text = str(name_or_path)
    if text in DATASETS:
        path, name = dataset_path(text), text
    else:
        path, name = Path(text), None
        if not path.is_file():
            raise ValueError(f"{text!r} is neither a shipped dataset ({list_datasets()}) nor an existing file")
    if path.suffix == ".jsonl":
        from protran_tune.datasets.table import read_table

        return read_table(path, name=name, space=space, on_error=on_error)
    return _load_json_dataset(path, name, on_error, space)


def _load_json_dataset(path: Path, name: str | None, on_error: str, space: str) -> Table:
    from protran_tune.datasets.nasbench import is_nasbench_file, load_nasbench_bert
    from protran_tune.datasets.protran import load_recorded

    try:
        head = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: not a readable JSON file: {exc}") from None
    if is_nasbench_file(head):
        return load_nasbench_bert(path, on_error=on_error, name=name or "nas-bench-bert")
    if isinstance(head, dict):
        return load_recorded(path, space=space, on_error=on_error).to_table()
    raise TableError(f"{path}: neither a table (.jsonl), a ProTran measurement file nor a NAS-Bench-BERT file")


def dataset_info(name_or_path: str | Path) -> dict[str, Any]:
    """``{"name", "records", "metrics", "sources", ...}`` of a dataset."""
    return load_dataset(name_or_path).info()

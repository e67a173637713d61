"""``replay``: a platform backed by a recorded measurement file (the pool is the file).

``measure(arch)`` looks the architecture up in the file and returns its recorded latency, energy and
peak power as a :class:`~protran_tune.platforms.measurement.Measurement` with
``source="replay:<file name>"``; an architecture that is not in the file raises
:class:`~protran_tune.platforms.base.MeasurementError`. The file records totals only: idle power,
energy above idle and mean power are ``None`` with the reason in ``unavailable``, and the latency
spread was not recorded (``latency_iqr_s`` and ``latency_ci_rel`` are 0, ``meta["spread"]`` says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from protran_tune.datasets import RecordedDataset, load_recorded
from protran_tune.platforms.base import MeasurementError, Platform, Workload, register_platform
from protran_tune.platforms.measurement import Measurement
from protran_tune.space import Architecture


@register_platform("replay")
class ReplayPlatform(Platform):
    """Answers measurements from a recorded file.

    Args:
        dataset: path of a recorded file, or a loaded :class:`~protran_tune.datasets.RecordedDataset`.
        space: design space of the embeddings.
        on_error: ``raise`` on a bad record (default) or ``skip`` it (listed in ``describe()``).
    """

    def __init__(self, dataset: str | Path | RecordedDataset, space: str = "flexibert2", on_error: str = "raise") -> None:
        self.dataset = dataset if isinstance(dataset, RecordedDataset) else load_recorded(_file_of(dataset), space, on_error)
        self.queries = 0

    @classmethod
    def pool(cls, **options: Any) -> tuple[Architecture, ...]:
        """The architectures of the recorded file (what ``profile`` proposes from)."""
        return cls(**options).dataset.archs

    @property
    def source(self) -> str:
        return f"replay:{self.dataset.path.name}"

    def describe(self) -> dict[str, Any]:
        return {"platform": self.name, "source": self.source, **self.dataset.describe()}

    def measure_index(self, i: int, workload: Workload | None = None) -> Measurement:
        """The measurement of record ``i`` (file order)."""
        workload = workload or Workload()
        ds = self.dataset
        if workload.mode != "inference":
            raise MeasurementError(f"{self.source} holds inference measurements only, not {workload.mode!r}")
        batch = ds.batch_size or 1
        if workload.batch_size is not None and workload.batch_size != batch:
            raise MeasurementError(f"{self.source} was measured at batch size {batch}, not {workload.batch_size}")
        latency, energy, peak = (float(v) for v in ds.Y_raw[i])
        self.queries += 1
        return Measurement(
            platform=self.name,
            device=ds.device,
            mode="inference",
            batch_size=batch,
            seq_len=workload.seq_len,
            repeats=ds.runs or 1,
            latency_s=latency * batch,
            latency_iqr_s=0.0,
            latency_ci_rel=0.0,
            source=self.source,
            energy_j=energy * batch,
            peak_power_w=peak,
            unavailable={
                "energy_above_idle_j": "the recorded file holds total energy only",
                "idle_power_w": "not recorded in the replayed file",
                "mean_power_w": "not recorded in the replayed file",
                "energy_spread_rel": "not recorded in the replayed file",
            },
            meta={"record_key": ds.keys[i], "record_index": i, "spread": "not recorded in the replayed file"},
        )

    def measure(self, arch: Architecture, workload: Workload | None = None) -> Measurement:
        try:
            i = self.dataset.index_of(arch)
        except ValueError as exc:
            raise MeasurementError(f"{self.source}: architecture outside the design space: {exc}") from None
        if i is None:
            raise MeasurementError(f"{self.source}: architecture {arch.content_hash()} is not in the recorded file")
        return self.measure_index(i, workload)


def _file_of(dataset: str | Path) -> Path:
    """The file of a shipped ProTran dataset name (``protran:cpu_rpi``), or the path as given."""
    from protran_tune.datasets import DATASETS, dataset_path

    return dataset_path(str(dataset)) if str(dataset) in DATASETS else Path(dataset)

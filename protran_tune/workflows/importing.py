"""``import``: measurement JSONL records into an Optuna study and MLflow runs, idempotently.

Each record (the ``measure`` format: ``arch_hash, architecture, platform, status, error, measurement,
workload``) becomes a finished trial: COMPLETE with values ``[latency_s, energy_j, peak_power_w]`` per
sequence, or FAIL with its error. Records are keyed by (architecture hash, platform, mode, batch size,
sequence length); a key already in the study is skipped, so importing a file twice adds nothing.
One study per platform (``<prefix>-<platform>``) unless a study name is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from protran_tune.platforms.measurement import Measurement
from protran_tune.platforms.records import read_records, record_key
from protran_tune.space import Architecture


@dataclass
class ImportResult:
    added: dict[str, int] = field(default_factory=dict)  # study -> trials added
    skipped: int = 0  # already present
    failed_records: int = 0  # imported as FAIL trials

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "skipped": self.skipped, "failed_records": self.failed_records}


def import_measurements(paths: Sequence[str | Path], storage: Any, *, study_name: str | None = None,
                        prefix: str = "measurements", space: str = "flexibert2", tracker: Any | None = None) -> ImportResult:
    """Import ``paths`` into ``storage`` (and ``tracker``); returns counts."""
    from protran_tune.tracking.optuna_tracking import StudyRecorder, create_study

    result = ImportResult()
    recorders: dict[str, StudyRecorder] = {}
    keys: dict[str, set[str]] = {}
    parents: dict[str, str] = {}
    for path in paths:
        for lineno, record in read_records(path, repair=False, require=("architecture",), missing_ok=False):
            where = f"{path}:{lineno}"
            try:
                arch = Architecture.from_dict(record["architecture"])
                m = Measurement.from_dict(record["measurement"]) if record.get("measurement") else None
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where}: {exc}") from None
            platform = record.get("platform") or (m.platform if m else None)
            if not platform:
                raise ValueError(f"{where}: record names no platform")
            wl = record.get("workload") or {}
            key = record_key({**record, "arch_hash": arch.content_hash(), "platform": platform}, measured=True)
            name = study_name or f"{prefix}-{platform}"
            if name not in recorders:
                study = create_study(storage, name, user_attrs={"platform": platform, "space": space})
                recorders[name] = StudyRecorder(study, storage)
                keys[name] = {t.user_attrs.get("record_key") for t in study.get_trials(deepcopy=False)}
                if tracker is not None:
                    parents[name] = tracker.study_run(name, tags={"protran.platform": platform})
            if key in keys[name]:
                result.skipped += 1
                continue
            error = record.get("error") or (None if m else f"status {record.get('status')!r}")
            trial = recorders[name].add(arch, m, platform, space=space, error=error, workload=wl,
                                        extra_attrs={"imported_from": f"{Path(path).name}:{lineno}"})
            keys[name].add(key)
            result.added[name] = result.added.get(name, 0) + 1
            result.failed_records += trial.state.name == "FAIL"
            if tracker is not None:
                tracker.log_trial(study=name, parent_run_id=parents[name], trial_number=trial.number, arch=arch,
                                  measurement=m if trial.state.name == "COMPLETE" else None, platform=platform,
                                  workload=wl, error=trial.user_attrs.get("fail_reason"),
                                  extra_tags={"protran.imported_from": Path(path).name})
    if tracker is not None:  # also log trials an interrupted import left untracked
        for name, recorder in recorders.items():
            tracker.log_untracked_trials(recorder.study, parents[name])
            tracker.finish_study(parents[name])
    return result

"""Checking a search's front for real: measured hardware, trained or recorded accuracy.

``verify`` (``--verify``) says where the front's hardware values are checked:

* ``auto``: the platform the hardware values stand for: ``platform:X`` -> X; ``table:protran-nasbench:cpu``
  -> ``cpu`` at the table's batch size and sequence length; ``table:protran-nasbench:h200`` -> ``cuda``
  (batch 128, CUDA graphs); otherwise nothing, with a note;
* a platform name (``cpu``, ``cuda``, ...): measured there with the providers' workload;
* ``records:FILE``: ``protran-tune measure`` records made elsewhere (e.g. on a GPU machine, from the
  ``front_archs.jsonl`` a search writes);
* ``none``: nothing is checked.

Accuracy is checked by training again with other seeds where it came from training, and by the recorded
NAS-Bench-BERT score where the predictor was used and the architecture is one of the table's (otherwise
it cannot be checked without training, and the verification says so). Exact (zero-cost) values need no check.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from protran_tune.objectives.targets import get_target
from protran_tune.space.architecture import Architecture

Verifier = Callable[[Sequence[Architecture]], list[dict[str, Any]]]
_TABLE_PLATFORMS = {"protran-nasbench:cpu": ("cpu", {}), "protran-nasbench:h200": ("cuda", {"cuda_graph": True})}


def _hardware_check(cfg: Any, hw_targets: list[str]) -> tuple[Callable[[Sequence[Architecture]], list[dict[str, Any]]] | None, str | None]:
    from protran_tune.objectives.providers import MeasuredHardware
    from protran_tune.platforms.base import SensorUnavailableError, Workload

    opts = cfg.providers
    kind, _, rest = opts.hardware.partition(":")
    verify = cfg.verify
    if not hw_targets:
        return None, None
    if verify.startswith("records:"):
        return _from_records(verify.split(":", 1)[1], hw_targets), None
    options: dict[str, Any] = dict(opts.platform_options)
    batch, seq = opts.batch_size, opts.seq_len
    if verify == "auto":
        if kind == "platform":
            platform = rest
        elif kind == "table" and rest in _TABLE_PLATFORMS:
            from protran_tune.datasets import load_dataset

            platform, extra = _TABLE_PLATFORMS[rest]
            options.update(extra)
            meta = load_dataset(rest).meta
            batch, seq = meta.get("batch_size", batch), meta.get("seq_len", seq)
        else:
            return None, f"hardware not verified: no platform known for --hardware {opts.hardware} (pass --verify PLATFORM)"
    else:
        platform = verify
    try:
        provider = MeasuredHardware(platform, Workload(batch_size=batch, seq_len=seq), hw_targets, **options)
    except SensorUnavailableError as exc:
        return None, (f"hardware not verified: platform {platform!r} is unusable here ({exc}); measure front_archs.jsonl "
                      f"there with `protran-tune measure --platform {platform}` and pass --verify records:FILE")

    def check(archs: Sequence[Architecture]) -> list[dict[str, Any]]:
        v = provider.evaluate(archs)
        return [{"values": {t: _num(v.mean[i, j]) for j, t in enumerate(v.targets)}, "sources": dict(v.sources)}
                for i in range(len(archs))]

    return check, None


def _from_records(path: str, targets: list[str]) -> Callable[[Sequence[Architecture]], list[dict[str, Any]]]:
    from protran_tune.datasets.measured import table_from_records

    table = table_from_records([path], name=f"records:{path}")

    def check(archs: Sequence[Architecture]) -> list[dict[str, Any]]:
        out = []
        for a in archs:
            i = table.index_of(a)
            values = {t: (None if i is None or t not in table.metrics else _num(table.metrics[t][i])) for t in targets}
            out.append({"values": values, "sources": {t: table.sources.get(t, "not measured") for t in targets}})
        return out

    return check


def _accuracy_check(cfg: Any, objectives: Any, acc_targets: list[str]) -> tuple[Callable[[Sequence[Architecture]], list[dict[str, Any]]] | None, str | None]:
    if not acc_targets:
        return None, None
    kind = cfg.providers.accuracy.split(":", 1)[0]
    if kind == "train":
        provider = next(p for p in objectives.providers if p.targets == tuple(acc_targets))
        fresh = tuple(s + 1000 for s in provider.seeds)

        def retrain(archs: Sequence[Architecture]) -> list[dict[str, Any]]:
            old, provider.seeds = provider.seeds, fresh
            try:
                v = provider.evaluate(archs)
            finally:
                provider.seeds = old
            return [{"values": {t: _num(v.mean[i, j]) for j, t in enumerate(v.targets)},
                     "sources": {t: f"{v.sources[t]} (seeds {list(fresh)})" for t in v.targets}} for i in range(len(archs))]

        return retrain, None
    from protran_tune.datasets import load_dataset

    table = load_dataset("nas-bench-bert")

    def lookup(archs: Sequence[Architecture]) -> list[dict[str, Any]]:
        out = []
        for a in archs:
            i = table.index_of(a)
            out.append({"values": {t: None if i is None else float(table.metrics[t][i]) for t in acc_targets},
                        "sources": {t: "nas-bench-bert (recorded)" if i is not None else "not in NAS-Bench-BERT: not verifiable without training"
                                    for t in acc_targets}})
        return out

    return lookup, None


def verifier_for(cfg: Any, objectives: Any) -> tuple[Verifier | None, list[str]]:
    """A function giving, per front member, ``{"values": {objective: measured or None}, "sources": {...}}``."""
    if cfg.verify == "none":
        return None, ["front not verified (--verify none)"]
    kinds = {o: get_target(o).kind for o in cfg.objectives}
    hw_check, hw_note = _hardware_check(cfg, [o for o, k in kinds.items() if k == "hardware"])
    acc_check, acc_note = _accuracy_check(cfg, objectives, [o for o, k in kinds.items() if k == "accuracy"])
    notes = [n for n in (hw_note, acc_note) if n]
    checks = [c for c in (hw_check, acc_check) if c is not None]
    if not checks:
        return None, notes

    def verify(archs: Sequence[Architecture]) -> list[dict[str, Any]]:
        merged = [{"values": {}, "sources": {}} for _ in archs]
        for check in checks:
            for m, part in zip(merged, check(archs)):
                m["values"].update(part["values"])
                m["sources"].update(part["sources"])
        return merged

    return verify, notes


def _num(x: float) -> float | None:
    import math

    return float(x) if math.isfinite(x) else None

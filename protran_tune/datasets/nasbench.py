"""NAS-Bench-BERT (Serianni & Kalita, ACL 2023): 500 architectures of our space with real GLUE scores.

Mapping of one NAS-Bench-BERT encoder layer to a :class:`~protran_tune.space.Layer`:

* ``operation_type``/``operation_parameter`` ``SA/SDP``, ``SA/WMA``, ``LT/DFT``, ``LT/DCT``, ``DSC/5``,
  ``DSC/9`` -> head op ``sa-sdp``, ``sa-wma``, ``l-dft``, ``l-dct``, ``c-5``, ``c-9``;
* ``num_operation_heads`` (2 or 4) -> that many heads of the op;
* ``feed_forward_dimension`` x ``num_feed_forward`` -> that many stacked feed-forward layers;
* the model's ``hidden_size`` (128 or 256) -> every layer's hidden size.

Approximation: the original ``DSC`` is a depthwise-separable convolution; ours ``c-k`` is ConvBERT-style
dynamic convolution. The accuracy values are the original's. Scores are GLUE dev scores in points;
``sst``/``sts`` are named ``sst2``/``stsb`` here (:data:`~protran_tune.objectives.targets.GLUE_TASKS`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from protran_tune.datasets.table import Table, TableError, table_from_rows
from protran_tune.space import Architecture, Layer

CITATION = ('A. Serianni and J. Kalita, "Training-free Neural Architecture Search for RNNs and Transformers", '
            "ACL 2023 (data CC BY 4.0)")
SOURCE = "nas-bench-bert"
_OPS = {("SA", "SDP"): "sa-sdp", ("SA", "WMA"): "sa-wma", ("LT", "DFT"): "l-dft", ("LT", "DCT"): "l-dct",
        ("DSC", "5"): "c-5", ("DSC", "9"): "c-9"}
_OPS_BACK = {v: k for k, v in _OPS.items()}
_TASKS = {"cola": "cola", "mnli": "mnli", "mrpc": "mrpc", "qnli": "qnli", "qqp": "qqp", "rte": "rte",
          "sst": "sst2", "sts": "stsb", "glue": "glue"}


def layer_from_config(config: Mapping[str, Any], hidden: int) -> Layer:
    """The :class:`Layer` of one NAS-Bench-BERT ``encoder_layers`` entry; ``ValueError`` names the field."""
    if not isinstance(config, Mapping):
        raise ValueError(f"an encoder layer must be an object, got {type(config).__name__}")
    for key in ("operation_type", "operation_parameter", "num_operation_heads", "feed_forward_dimension", "num_feed_forward"):
        if key not in config:
            raise ValueError(f"encoder layer lacks {key!r}")
    op = _OPS.get((str(config["operation_type"]), str(config["operation_parameter"])))
    if op is None:
        raise ValueError(
            f"operation {config['operation_type']}/{config['operation_parameter']} is not one of "
            f"{sorted('/'.join(k) for k in _OPS)}"
        )
    n_heads, width, depth = config["num_operation_heads"], config["feed_forward_dimension"], config["num_feed_forward"]
    for key, v in (("num_operation_heads", n_heads), ("feed_forward_dimension", width), ("num_feed_forward", depth)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{key} must be a positive integer, got {v!r}")
    return Layer(hidden=hidden, heads=(op,) * n_heads, feed_forward=(width,) * depth)


def architecture_from_config(hidden: int, encoder_layers: Iterable[Mapping[str, Any]]) -> Architecture:
    """The :class:`Architecture` of a NAS-Bench-BERT ``(hidden_size, encoder_layers)`` configuration."""
    layers = []
    for j, config in enumerate(encoder_layers):
        try:
            layers.append(layer_from_config(config, hidden))
        except ValueError as exc:
            raise ValueError(f"encoder_layers[{j}]: {exc}") from None
    return Architecture(tuple(layers))



def config_from_architecture(arch: Architecture) -> dict[str, Any]:
    """Inverse of :func:`architecture_from_config`: ``{"hidden_size", "nas_config": {"encoder_layers"}}``.

    ``ValueError`` if ``arch`` is outside NAS-Bench-BERT's form (one hidden size, one op per layer, a
    feed-forward stack of equal widths).
    """
    if len(set(arch.hidden_sizes)) != 1:
        raise ValueError(f"NAS-Bench-BERT architectures have one hidden size, got {arch.hidden_sizes}")
    layers = []
    for j, layer in enumerate(arch.layers):
        if len(set(layer.heads)) != 1 or layer.heads[0] not in _OPS_BACK:
            raise ValueError(f"layer {j}: NAS-Bench-BERT layers have one op of {sorted(_OPS_BACK)}, got {layer.heads}")
        if len(set(layer.feed_forward)) != 1:
            raise ValueError(f"layer {j}: NAS-Bench-BERT stacks equal feed-forward widths, got {layer.feed_forward}")
        op_type, param = _OPS_BACK[layer.heads[0]]
        layers.append({
            "operation_type": op_type, "operation_parameter": int(param) if param.isdigit() else param,
            "num_operation_heads": layer.n_heads, "feed_forward_dimension": layer.feed_forward[0],
            "num_feed_forward": len(layer.feed_forward),
        })
    return {"hidden_size": arch.layers[0].hidden, "nas_config": {"encoder_layers": layers}}


def _row(record: Any) -> dict[str, Any]:
    """A table row of one ``BERT_benchmark.json`` record (``TableError`` names the field)."""
    if not isinstance(record, Mapping):
        raise TableError(f"a record must be an object, got {type(record).__name__}")
    try:
        overrides = record["hparams"]["model_hparam_overrides"]
        hidden = overrides["hidden_size"]
        layers = overrides["nas_config"]["encoder_layers"]
    except (KeyError, TypeError):
        raise TableError("field 'hparams.model_hparam_overrides' lacks hidden_size or nas_config.encoder_layers") from None
    try:
        arch = architecture_from_config(hidden, layers)
    except ValueError as exc:
        raise TableError(f"field 'hparams.model_hparam_overrides': {exc}") from None
    scores = record.get("scores")
    if not isinstance(scores, Mapping):
        raise TableError("field 'scores' must be an object of GLUE task scores")
    metrics = {_TASKS[k]: v for k, v in scores.items() if k in _TASKS}
    return {"id": f"nb{record.get('id')}", "architecture": arch.to_dict(), "metrics": metrics,
            "sources": {k: SOURCE for k in metrics}}


def _merge_replicates(rows: list[tuple[str, Any]]) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """Rows of one architecture trained more than once merged into one (mean of each score).

    Returns the merged rows (first occurrence's position) and ``[{"ids", "glue"}]`` of the replicates.
    """
    groups: dict[str, list[int]] = {}
    for i, (_, row) in enumerate(rows):
        if isinstance(row, dict):
            groups.setdefault(json.dumps(row["architecture"], sort_keys=True), []).append(i)
    first = {members[0]: members for members in groups.values() if len(members) > 1}
    drop = {i for members in first.values() for i in members[1:]}
    out, replicates = [], []
    for i, (where, row) in enumerate(rows):
        if i in drop:
            continue
        if i in first:
            group = [rows[j][1] for j in first[i]]
            names = [k for k in row["metrics"] if all(k in g["metrics"] for g in group)]
            row = {**row, "id": "+".join(g["id"] for g in group),
                   "metrics": {k: sum(g["metrics"][k] for g in group) / len(group) for k in names}}
            replicates.append({"ids": [g["id"] for g in group], "glue": [g["metrics"].get("glue") for g in group]})
        out.append((where, row))
    return out, replicates


def load_nasbench_bert(path: str | Path, *, on_error: str = "raise", name: str = "nas-bench-bert") -> Table:
    """Read ``BERT_benchmark.json`` into a :class:`Table` (metrics ``glue`` and the 8 tasks, in points).

    The file trains 9 architectures twice (500 records, 491 architectures): such replicates become one
    row with the mean scores and an id joining both (``nb60+nb222``); ``meta["replicates"]`` lists their
    GLUE scores, a direct measure of the benchmark's seed-to-seed noise.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TableError(f"{path}: not a readable NAS-Bench-BERT file: {exc}") from None
    if not isinstance(data, list):
        raise TableError(f"{path}: expected a JSON list of records, got {type(data).__name__}")

    rows: list[tuple[str, Any]] = []
    for i, record in enumerate(data):
        where = f"{path}[{i}]"
        try:
            rows.append((where, _row(record)))
        except TableError as exc:
            if on_error == "raise":
                raise TableError(f"{where}: {exc}") from None
            rows.append((where, exc))  # skipped, with its reason, by table_from_rows
    rows, replicates = _merge_replicates(rows)
    return table_from_rows(rows, name=name, path=path, on_error=on_error,
                           meta={"citation": CITATION, "licence": "CC BY 4.0", "unit": "points",
                                 "n_records": len(data), "replicates": replicates})


def is_nasbench_file(data: Any) -> bool:
    """True for the parsed content of a ``BERT_benchmark.json``-like file."""
    return isinstance(data, list) and bool(data) and isinstance(data[0], Mapping) and "hparams" in data[0] and "scores" in data[0]

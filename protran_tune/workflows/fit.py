"""Fit surrogates on measured architectures and evaluate them on an honest held-out set.

Data come from an Optuna study (``COMPLETE`` trials with an ``architecture`` user attr; the targets are
the study's metric names) or from ``measure`` JSONL files (the hardware targets ``latency_s``,
``energy_j``, ``peak_power_w`` per sequence). Targets are normalised by their maximum over the data (as
the paper and the replay benchmark do), so test MSE reads as a fraction of the largest value (0.003 =
0.3%). Scores come from the one held-out scorer, :mod:`protran_tune.objectives.scoring`.

Fitted surrogates are logged to MLflow as ``pyfunc`` models (:class:`SurrogateModel`): input a
DataFrame with an ``architecture`` column (JSON), output mean and std per target in physical units.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from protran_tune.objectives.scoring import HeldOutScore, score_heldout, split_test
from protran_tune.objectives.targets import HARDWARE_TARGETS, canonical_name
from protran_tune.space import Architecture, get_space
from protran_tune.tracking.records import architecture_from_attr


@dataclass
class Dataset:
    """Measured architectures and their target values (physical units)."""

    archs: list[Architecture]
    Y: np.ndarray  # (n, k) values of ``targets``
    platforms: list[str] = field(default_factory=list)
    targets: tuple[str, ...] = HARDWARE_TARGETS

    def __len__(self) -> int:
        return len(self.archs)


def dataset_from_trials(trials: Iterable[Any], metric_names: Sequence[str] | None = None) -> Dataset:
    """Dataset of finished Optuna trials (COMPLETE, with an ``architecture`` user attr); the targets are
    ``metric_names`` (the study's; default the hardware targets)."""
    targets = tuple(canonical_name(n) for n in metric_names) if metric_names else HARDWARE_TARGETS
    archs, ys, plats = [], [], []
    for t in trials:
        if t.values is None or "architecture" not in t.user_attrs:
            continue
        archs.append(architecture_from_attr(t.user_attrs["architecture"]))
        ys.append(list(t.values))
        plats.append(t.user_attrs.get("platform", ""))
    return Dataset(archs, np.asarray(ys, dtype=np.float64).reshape(-1, len(targets)), plats, targets)


def dataset_from_study(storage: Any, study_name: str) -> Dataset:
    import optuna
    from optuna.trial import TrialState

    from protran_tune.errors import UsageError

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise UsageError(f"study {study_name!r} not found in the storage; studies there: {names}") from None
    return dataset_from_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), study.metric_names)


def dataset_from_files(paths: Sequence[str | Path]) -> tuple[Dataset, list[str]]:
    """Dataset of ``measure`` JSONL files (read-only); returns it and what was skipped: failed records and a
    torn last line (a writer killed, or still writing)."""
    from protran_tune.platforms.measurement import Measurement
    from protran_tune.platforms.records import read_records

    archs, ys, plats, skipped = [], [], [], []
    for path in paths:
        for lineno, record in read_records(path, repair=False, warn=skipped.append, require=("architecture",),
                                           missing_ok=False):
            where = f"{path}:{lineno}"
            if record.get("measurement") is None:
                skipped.append(f"{where}: status {record.get('status')!r} ({record.get('error')})")
                continue
            try:
                arch = Architecture.from_dict(record["architecture"])
                m = Measurement.from_dict(record["measurement"])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where}: {exc}") from None
            y = [m.latency_per_sequence_s, m.energy_per_sequence_j, m.peak_power_w]
            if any(v is None or not math.isfinite(v) or v < 0 for v in y):
                skipped.append(f"{where}: missing or invalid objective {y}")
                continue
            archs.append(arch)
            ys.append(y)
            plats.append(m.platform)
    return Dataset(archs, np.asarray(ys, dtype=np.float64).reshape(-1, len(HARDWARE_TARGETS)), plats), skipped


# --------------------------------------------------------------------------- surrogates
def embed(space: str, archs: Sequence[Architecture]) -> np.ndarray:
    """ProTran embeddings ``(n, embedding_dim)`` of ``archs`` (the surrogates' input)."""
    sp = get_space(space)
    return np.stack([sp.embed(a) for a in archs]) if archs else np.zeros((0, sp.embedding_dim))


@dataclass
class Evaluation:
    """Held-out quality of a surrogate (:class:`~protran_tune.objectives.scoring.HeldOutScore`) and its
    test predictions in physical units."""

    score: HeldOutScore
    y_true: np.ndarray  # (n_test, k)
    y_pred: np.ndarray
    y_std: np.ndarray

    @property
    def n_train(self) -> int:
        return self.score.n_train

    @property
    def n_test(self) -> int:
        return self.score.n_test

    def converged(self, threshold: float) -> bool:
        return self.score.converged(threshold)

    def metrics(self) -> dict[str, float]:
        return self.score.metrics()

    def curve_point(self) -> dict[str, Any]:
        return self.score.curve_point()


def fit_and_evaluate(surrogate: Any, space: str, train: Dataset, test: Dataset,
                     scale: np.ndarray | None = None) -> Evaluation:
    """Fit on ``train`` (normalised by ``scale``, default max over train and test) and score on ``test``."""
    if len(train) < 2 or len(test) < 2:
        raise ValueError(f"need at least 2 train and 2 test architectures, got {len(train)} and {len(test)}")
    if scale is None:
        scale = np.maximum(np.abs(np.vstack([train.Y, test.Y])).max(0), 1e-30)
    Xtr, Xte = embed(space, train.archs), embed(space, test.archs)
    surrogate.fit(Xtr, train.Y / scale)
    mean, std = surrogate.predict(Xte, return_std=True)
    mean, std = np.asarray(mean).reshape(len(test), -1) * scale, np.asarray(std).reshape(len(test), -1) * scale
    score = score_heldout(test.Y, mean, std, targets=train.targets, scale=scale,
                          depth=[a.n_layers for a in test.archs], n_train=len(train))
    return Evaluation(score, test.Y, mean, std)


def split(data: Dataset, test_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Seeded random split (:func:`~protran_tune.objectives.scoring.split_test`, not by query order)."""
    test = split_test(len(data), test_fraction, seed)
    train = np.setdiff1d(np.arange(len(data)), test)

    def take(idx: np.ndarray) -> Dataset:
        return Dataset([data.archs[i] for i in idx], data.Y[idx],
                       [data.platforms[i] for i in idx] if data.platforms else [], data.targets)

    return take(train), take(test)


# --------------------------------------------------------------------------- MLflow model
try:
    import mlflow.pyfunc as _pyfunc

    _PythonModel: Any = _pyfunc.PythonModel
except ImportError:  # measuring machines without MLflow still import this module
    _PythonModel = object


class SurrogateModel(_PythonModel):  # type: ignore[misc, valid-type]
    """MLflow pyfunc wrapper: architectures (JSON column) -> per-target mean and std, physical units."""

    # The input is a JSON column, not a typed schema: MLflow's type-hint validation has nothing to check (and
    # would warn at every import of this module that predict has no type hints).
    _skip_type_hint_validation = True

    def __init__(self, surrogate: Any, space: str, seq_len: int, scale: Sequence[float],
                 targets: Sequence[str] = HARDWARE_TARGETS) -> None:
        self.surrogate = surrogate
        self.space = space
        self.seq_len = seq_len
        self.scale = np.asarray(scale, dtype=np.float64)
        self.targets = tuple(targets)

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 (MLflow inspects hints)
        """``model_input``: DataFrame with an ``architecture`` column (JSON) -> DataFrame of mean/std."""
        import pandas as pd

        column = model_input["architecture"] if hasattr(model_input, "columns") else model_input
        archs = [Architecture.from_json(a) if isinstance(a, str) else Architecture.from_dict(a) for a in column]
        X = embed(self.space, archs)
        mean, std = self.surrogate.predict(X, return_std=True)
        mean, std = np.asarray(mean) * self.scale, np.asarray(std) * self.scale
        data = {}
        for k, name in enumerate(getattr(self, "targets", HARDWARE_TARGETS)):  # models logged before targets
            data[name] = mean[:, k]
            data[f"{name}_std"] = std[:, k]
        return pd.DataFrame(data)


def log_surrogate_model(tracking_uri: str, experiment_id: str, *, name: str, model: SurrogateModel,
                        evaluation: Evaluation, params: Mapping[str, Any], tags: Mapping[str, str],
                        parent_run_id: str | None = None) -> str:
    """Log ``model`` as an MLflow pyfunc model in a new run with its test metrics; returns the run id."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run_tags = {"protran.role": "surrogate", "protran.surrogate": name, "mlflow.runName": f"surrogate-{name}", **tags}
    if parent_run_id:
        run_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, tags=run_tags)
    run_id = run.info.run_id
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({**evaluation.metrics(), "n_train": evaluation.n_train, "n_test": evaluation.n_test})
        with warnings.catch_warnings():  # input is a JSON column: no type-hint schema to infer
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.log_model(
                name="surrogate", python_model=model,
                pip_requirements=["protran-tune", "scikit-learn", "numpy", "pandas"],
            )
    return run_id


# --------------------------------------------------------------------------- the fit workflow
@dataclass
class FitReport:
    surrogate: str
    n_train: int
    n_test: int
    metrics: dict[str, float]
    run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"surrogate": self.surrogate, "n_train": self.n_train, "n_test": self.n_test,
                "metrics": self.metrics, "run_id": self.run_id}


def fit_surrogates(data: Dataset, names: Sequence[str], *, space: str = "flexibert2", seq_len: int = 128,
                   test_fraction: float = 0.2, seed: int = 0, tracker: Any | None = None,
                   source: str = "", save_dir: str | Path | None = None,
                   params: dict[str, Any] | None = None) -> list[FitReport]:
    """Fit each surrogate on a seeded random split, score it, log it to MLflow as a pyfunc model.

    ``params``: constructor parameters given to every surrogate in ``names`` (e.g. ``kernel`` for
    ``gp``); an unknown one is a ``ValueError`` before anything is fitted. The final model is refitted
    on all data (its logged metrics are the held-out ones of the split fit).
    """
    import pickle

    from protran_tune.surrogates import make_surrogate

    if len(data) < 6:
        raise ValueError(f"need at least 6 measured architectures to fit and test, got {len(data)}")
    params = dict(params or {})
    for name in names:
        make_surrogate(name, seed, default_space=space, **params)  # unknown parameters fail before any fit
    train, test = split(data, test_fraction, seed)
    scale = np.maximum(data.Y.max(0), 1e-30)
    reports = []
    for name in names:
        evaluation = fit_and_evaluate(make_surrogate(name, seed, default_space=space, **params), space, train, test,
                                      scale=scale)
        final = make_surrogate(name, seed, default_space=space, **params).fit(embed(space, data.archs), data.Y / scale)
        model = SurrogateModel(final, space, seq_len, scale, data.targets)
        run_id = None
        if tracker is not None:
            platforms = sorted(set(data.platforms)) or ["?"]
            run_id = log_surrogate_model(
                tracker.tracking_uri, tracker.experiment_id, name=name, model=model, evaluation=evaluation,
                params={"surrogate": name, "surrogate_params": json.dumps(params, sort_keys=True), "space": space,
                        "seq_len": seq_len, "test_fraction": test_fraction,
                        "seed": seed, "n_samples": len(data), "source": source},
                tags={"protran.platform": ",".join(platforms), "protran.source": source},
            )
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            with (Path(save_dir) / f"surrogate-{name}.pkl").open("wb") as fh:
                pickle.dump(model, fh)
        reports.append(FitReport(name, evaluation.n_train, evaluation.n_test, evaluation.metrics(), run_id))
    return reports

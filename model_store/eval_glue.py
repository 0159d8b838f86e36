"""GLUE frozen probes: how much of the teacher's task knowledge survives compression, for a frozen encoder.

Protocol (issue 23): a logistic regression on frozen sentence embeddings, trained on the task's train split and
scored on its dev split with GLUE's own metric; the score is the mean over four tasks:

| task  | features                     | train rows        | metric                      |
|-------|------------------------------|-------------------|-----------------------------|
| CoLA  | u                            | all (8,551)       | Matthews correlation        |
| SST-2 | u                            | the first 20,000  | accuracy                    |
| MRPC  | [u, v, abs(u - v), u * v]    | all (3,667)       | mean of accuracy and F1     |
| RTE   | [u, v, abs(u - v), u * v]    | all (2,490)       | accuracy                    |

EI-BERT claims ">92% of BERT on GLUE" after fine-tuning; a bundle cannot be fine-tuned on a device, so this is
the closest measure of the same thing for a frozen encoder: whatever the embedding carries, the probe reads.
Scores are x100. The probe is scikit-learn's `LogisticRegression` with its defaults (L2, C = 1, lbfgs) and
enough iterations to converge, so the number depends on the embeddings, not on a tuned classifier.

`--data DIR` is a GLUE directory in the shared data's layout (`<TASK>/train.tsv.gz`, `<TASK>/dev.tsv.gz`);
`limit` caps the rows per split (the build's quick preset), so tests stay fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from model_store.data.glue import load_glue
from model_store.encoders import Encoder

MAX_ITER = 2000  # lbfgs converges well within this on every task; the default 100 stops short on SST-2


@dataclass(frozen=True)
class ProbeTask:
    name: str
    pair: bool  # [u, v, |u-v|, u*v] of two sentences, else u
    metric: str  # "mcc", "accuracy" or "acc_f1" (mean of accuracy and F1)
    positive: str  # the label the probe's 1 stands for
    train_rows: int | None = None  # the first rows of the train split only (SST-2: 20,000 of 67,349)


PROBE_TASKS = (
    ProbeTask("CoLA", pair=False, metric="mcc", positive="1"),
    ProbeTask("SST-2", pair=False, metric="accuracy", positive="1", train_rows=20_000),
    ProbeTask("MRPC", pair=True, metric="acc_f1", positive="1"),
    ProbeTask("RTE", pair=True, metric="accuracy", positive="entailment"),
)
SPLITS = ("train", "dev")


class GlueScores(BaseModel):
    """One encoder's probe scores (x100) per task, and their mean."""

    encoder: str
    tasks: dict[str, float]
    mean: float
    rows: dict[str, dict[str, int]]  # rows used per task and split (train, dev)


class GlueComparison(BaseModel):
    """A student beside the teacher, from the same data: per-task and mean shares of the teacher."""

    student: GlueScores
    teacher: GlueScores
    task_retention: dict[str, float | None]  # None where the teacher scores 0 or below (CoLA's MCC can)
    mean_retention: float  # student mean / teacher mean


@dataclass(frozen=True)
class TaskData:
    texts_a: dict[str, list[str]]  # per split
    texts_b: dict[str, list[str]] | None
    labels: dict[str, np.ndarray]  # 0/1 per split


def glue_dir_files(data: Path) -> list[Path]:
    """The files a probe run reads: what caches of its scores are keyed by."""
    return [data / t.name / f"{split}.tsv.gz" for t in PROBE_TASKS for split in SPLITS]


def load_task(data: Path, task: ProbeTask, limit: int | None = None) -> TaskData:
    """One task's train and dev rows from `data/<task>/<split>.tsv.gz`, labels as 0/1; unknown labels raise."""
    a: dict[str, list[str]] = {}
    b: dict[str, list[str]] = {}
    labels: dict[str, np.ndarray] = {}
    for split in SPLITS:
        path = data / task.name / f"{split}.tsv.gz"
        if not path.is_file():
            raise FileNotFoundError(f"GLUE data {data}: no {task.name}/{split}.tsv.gz")
        rows = load_glue(task.name, path)
        caps = [c for c in (task.train_rows if split == "train" else None, limit) if c is not None]
        rows = rows[: min(caps)] if caps else rows
        if len({r.label for r in rows}) < 2:
            raise ValueError(f"{path}: a probe needs both classes; found {sorted({r.label for r in rows})}")
        a[split] = [r.text_a for r in rows]
        if task.pair:
            b[split] = [r.text_b or "" for r in rows]
        labels[split] = np.array([r.label == task.positive for r in rows], dtype=np.int64)
    return TaskData(texts_a=a, texts_b=b if task.pair else None, labels=labels)


def features(emb: Callable[[list[str]], np.ndarray], data: TaskData, split: str) -> np.ndarray:
    u = emb(data.texts_a[split])
    if data.texts_b is None:
        return u
    v = emb(data.texts_b[split])
    return np.hstack([u, v, np.abs(u - v), u * v])


def probe_score(
    task: ProbeTask, x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray, y_dev: np.ndarray
) -> float:
    """Fit the probe on train, score dev with the task's GLUE metric (x100)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    clf = LogisticRegression(max_iter=MAX_ITER)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # an unconverged probe is a bug, not a score
        clf.fit(x_train, y_train)
    pred = clf.predict(x_dev)
    if task.metric == "mcc":
        value = matthews_corrcoef(y_dev, pred)
    elif task.metric == "accuracy":
        value = accuracy_score(y_dev, pred)
    else:
        value = (accuracy_score(y_dev, pred) + f1_score(y_dev, pred)) / 2
    return round(100.0 * float(value), 2)


class _Embedder:
    """Each distinct text encoded once per run (GLUE repeats sentences across rows and tasks)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self, texts: list[str]) -> np.ndarray:
        distinct = sorted(set(texts))
        index = {t: i for i, t in enumerate(distinct)}
        emb = self.encoder.encode(distinct)
        return np.asarray(emb, dtype=np.float32)[[index[t] for t in texts]]


def evaluate_glue(
    encoder: Encoder, data: Path, *, limit: int | None = None, tasks: Sequence[ProbeTask] = PROBE_TASKS
) -> GlueScores:
    """The frozen-probe scores of one encoder on the GLUE directory `data`."""
    embed = _Embedder(encoder)
    scores: dict[str, float] = {}
    rows: dict[str, dict[str, int]] = {}
    for task in tasks:
        d = load_task(data, task, limit)
        x = {split: features(embed, d, split) for split in SPLITS}
        scores[task.name] = probe_score(task, x["train"], d.labels["train"], x["dev"], d.labels["dev"])
        rows[task.name] = {split: len(d.labels[split]) for split in SPLITS}
    mean = round(sum(scores.values()) / len(scores), 2)
    return GlueScores(encoder=encoder.name, tasks=scores, mean=mean, rows=rows)


def compare(student: GlueScores, teacher: GlueScores) -> GlueComparison:
    """Shares of the teacher. A task the teacher scores 0 or below on (CoLA's MCC can) has no share."""
    share = {k: round(v / teacher.tasks[k], 4) if teacher.tasks[k] > 0 else None for k, v in student.tasks.items()}
    return GlueComparison(
        student=student,
        teacher=teacher,
        task_retention=share,
        mean_retention=round(student.mean / teacher.mean, 4),
    )

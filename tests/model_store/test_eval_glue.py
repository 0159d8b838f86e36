"""`eibert eval glue`: the frozen-probe protocol of issue 23 (features, row caps, labels, GLUE's metrics)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from eibert.cli import main
from model_store.eval_glue import (
    PROBE_TASKS,
    GlueScores,
    compare,
    evaluate_glue,
    features,
    load_task,
    probe_score,
)

TASKS = {t.name: t for t in PROBE_TASKS}
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def _rows(task: str, n: int, seed: int) -> list[tuple[str, str | None, str]]:
    """n rows whose label is written in the text: 'good ...' sentences are the positive class."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        positive = i % 2 == 0
        words = " ".join(rng.choice(WORDS, 4))
        a = f"{'good' if positive else 'bad'} {words} {i}"
        b = f"second {words} {i}" if TASKS[task].pair else None
        label = {"RTE": "entailment" if positive else "not_entailment"}.get(task, "1" if positive else "0")
        out.append((a, b, label))
    return out


def _line(task: str, a: str, b: str | None, label: str) -> str:
    """One row in the shared data's column layout of each task (model_store/data/glue.py)."""
    if task == "CoLA":
        return f"src\t{label}\t\t{a}"
    if task == "SST-2":
        return f"{a}\t{label}"
    if task == "MRPC":
        return f"{label}\t1\t2\t{a}\t{b}"
    return f"0\t{a}\t{b}\t{label}"  # RTE


HEADERS = {"SST-2": "sentence\tlabel", "MRPC": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
           "RTE": "index\tsentence1\tsentence2\tlabel"}  # fmt: skip


def write_glue(root: Path, n_train: int = 40, n_dev: int = 20) -> Path:
    """A GLUE directory in the shared data's layout, gzip-compressed, for the four probe tasks."""
    for task in TASKS:
        (root / task).mkdir(parents=True, exist_ok=True)
        for split, n, seed in (("train", n_train, 0), ("dev", n_dev, 1)):
            lines = ([HEADERS[task]] if task in HEADERS else []) + [_line(task, *r) for r in _rows(task, n, seed)]
            (root / task / f"{split}.tsv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return root


class LabelReader:
    """An encoder that sees the label in the text ('good' vs 'bad') plus noise: a perfect probe scores 100."""

    name = "label-reader"
    dim = 8

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        out = np.random.default_rng(0).normal(size=(len(texts), self.dim)) * 0.01
        out[:, 0] += [1.0 if t.startswith("good") else -1.0 for t in texts]
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


class Blind(LabelReader):
    """An encoder that carries no label information at all (every text the same vector)."""

    name = "blind"

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        return np.tile(np.eye(1, self.dim, dtype=np.float32), (len(texts), 1))


def test_an_encoder_that_carries_the_label_scores_100_on_every_task(tmp_path: Path) -> None:
    scores = evaluate_glue(LabelReader(), write_glue(tmp_path))
    # RTE's positive class is 'entailment': reading its labels as 0/1 strings would make every row negative.
    assert scores.tasks == {"CoLA": 100.0, "SST-2": 100.0, "MRPC": 100.0, "RTE": 100.0}
    assert scores.mean == 100.0
    assert scores.rows["MRPC"] == {"train": 40, "dev": 20}


def test_an_encoder_without_information_scores_chance(tmp_path: Path) -> None:
    scores = evaluate_glue(Blind(), write_glue(tmp_path))
    assert scores.tasks["CoLA"] == 0.0  # MCC of a constant prediction
    assert scores.tasks["SST-2"] == scores.tasks["RTE"] == 50.0  # balanced dev sets
    assert scores.tasks["MRPC"] < 60.0  # accuracy 50 and F1 of 0 or 66.7, averaged


def test_pair_features_are_u_v_absdiff_product() -> None:
    d = load_task_from_rows([("x", "y", "1"), ("y", "x", "0")])
    vec = {"x": np.array([1.0, 2.0]), "y": np.array([3.0, -1.0])}
    got = features(lambda texts: np.stack([vec[t] for t in texts]), d, "train")
    assert got[0].tolist() == [1.0, 2.0, 3.0, -1.0, 2.0, 3.0, 3.0, -2.0]
    assert got.shape == (2, 8)


def load_task_from_rows(rows):
    from model_store.eval_glue import TaskData

    labels = np.array([r[2] == "1" for r in rows], dtype=np.int64)
    return TaskData(texts_a={"train": [r[0] for r in rows]}, texts_b={"train": [r[1] for r in rows]},
                    labels={"train": labels})  # fmt: skip


def test_metrics_are_glues() -> None:
    # A probe that can only learn the sign of x: dev predictions are known, so each metric is known exactly.
    x_train = np.array([[-1.0], [-2.0], [1.0], [2.0]] * 5)
    y_train = np.array([0, 0, 1, 1] * 5)
    x_dev = np.array([[1.0], [1.0], [1.0], [-1.0]])  # predicts 1 1 1 0
    y_dev = np.array([1, 1, 0, 0])  # accuracy 3/4; F1 = 2*2/(2*2+1) = 0.8; MCC = 1/sqrt(3)
    assert probe_score(TASKS["SST-2"], x_train, y_train, x_dev, y_dev) == 75.0
    assert probe_score(TASKS["MRPC"], x_train, y_train, x_dev, y_dev) == 77.5
    assert probe_score(TASKS["CoLA"], x_train, y_train, x_dev, y_dev) == round(100 / np.sqrt(3), 2)


def test_sst2_trains_on_its_first_20000_rows_and_limit_caps_every_split(data_dir: Path) -> None:
    full = load_task(data_dir / "glue", TASKS["SST-2"])
    assert len(full.labels["train"]) == 20_000 and len(full.labels["dev"]) == 872
    capped = load_task(data_dir / "glue", TASKS["RTE"], limit=50)
    assert len(capped.labels["train"]) == len(capped.labels["dev"]) == 50
    assert capped.texts_b is not None and len(capped.texts_b["dev"]) == 50


def test_one_class_or_missing_files_are_clear_errors(tmp_path: Path) -> None:
    root = write_glue(tmp_path / "glue")
    with pytest.raises(ValueError, match="both classes"):
        load_task(root, TASKS["CoLA"], limit=1)
    (root / "RTE" / "dev.tsv.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"RTE/dev\.tsv\.gz"):
        load_task(root, TASKS["RTE"])


def test_shares_of_the_teacher() -> None:
    rows: dict = {}
    teacher = GlueScores(encoder="t", tasks={"CoLA": -2.0, "SST-2": 80.0}, mean=39.0, rows=rows)
    student = GlueScores(encoder="s", tasks={"CoLA": 1.0, "SST-2": 60.0}, mean=30.5, rows=rows)
    c = compare(student, teacher)
    assert c.task_retention == {"CoLA": None, "SST-2": 0.75}  # no share of a score at or below zero
    assert c.mean_retention == round(30.5 / 39.0, 4)


def test_eval_glue_prints_one_json_line(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    data = write_glue(tmp_path / "glue")
    assert main(["eval", "glue", "--bundle", str(tiny_bundle), "--data", str(data), "--limit", "30"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert set(result["tasks"]) == {"CoLA", "SST-2", "MRPC", "RTE"} and result["rows"]["CoLA"]["train"] == 30
    assert "teacher" not in result


@pytest.mark.slow
def test_eval_glue_with_the_teacher_beside(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    data = write_glue(tmp_path / "glue", n_train=30, n_dev=10)
    assert main(["eval", "glue", "--bundle", str(tiny_bundle), "--data", str(data), "--with-teacher"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["teacher"]["encoder"] == "teacher"
    assert result["mean_retention"] == round(result["mean"] / result["teacher"]["mean"], 4)
    assert result["teacher"]["tasks"]["SST-2"] >= 70.0  # the real teacher reads 'good' vs 'bad'


def test_eval_glue_bad_input_is_one_clear_line(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", "glue", "--bundle", str(tiny_bundle), "--data", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "not a directory" in err and "Traceback" not in err
    assert main(["eval", "glue", "--bundle", str(tiny_bundle), "--data", str(tmp_path)]) == 1
    assert "CoLA/train.tsv.gz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["eval", "glue", "--bundle", str(tiny_bundle), "--limit", "0"])
    assert exc.value.code == 2 and "at least 1" in capsys.readouterr().err

"""GLUE task files (`<TASK>/train.tsv.gz`, `<TASK>/dev.tsv.gz`) and the QQP train subset.

Every task has its own columns, so each gets a `_Layout`. Pitfalls handled here (see shared/data/README.md):
CoLA has no header; MRPC's header starts with a byte-order mark; bare `"` characters appear everywhere (we
split on tabs only); the QQP subset has no header and its first row lacks the tab before the label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from model_store.data.paths import data_file
from model_store.data.textio import read_tsv


@dataclass(frozen=True, slots=True)
class GlueExample:
    text_a: str
    text_b: str | None  # None for single-sentence tasks (CoLA, SST-2)
    label: str  # as written in the file: "0"/"1", "entailment", or a 0-5 score for STS-B


@dataclass(frozen=True, slots=True)
class _Layout:
    header: bool
    n_fields: int
    text_a: int
    text_b: int | None
    label: int


_LAYOUTS: dict[str, _Layout] = {
    "CoLA": _Layout(header=False, n_fields=4, text_a=3, text_b=None, label=1),
    "SST-2": _Layout(header=True, n_fields=2, text_a=0, text_b=None, label=1),
    "MRPC": _Layout(header=True, n_fields=5, text_a=3, text_b=4, label=0),
    "QNLI": _Layout(header=True, n_fields=4, text_a=1, text_b=2, label=3),
    "RTE": _Layout(header=True, n_fields=4, text_a=1, text_b=2, label=3),
    "WNLI": _Layout(header=True, n_fields=4, text_a=1, text_b=2, label=3),
    "STS-B": _Layout(header=True, n_fields=10, text_a=7, text_b=8, label=9),
    "QQP": _Layout(header=False, n_fields=6, text_a=3, text_b=4, label=5),
}
GLUE_TASKS = tuple(_LAYOUTS)
QQP_SUBSET = "qqp_train_subset_23496.tsv.gz"
_TRAILING_LABEL = re.compile(r"^(.*\S)\s+([01])$")


def glue_path(task: str, split: str) -> Path:
    """Default location of a task split under the data root."""
    if task == "QQP":
        if split != "train":
            raise FileNotFoundError("QQP ships only a train subset; there is no QQP dev file")
        return data_file("glue", "QQP", QQP_SUBSET)
    return data_file("glue", task, f"{split}.tsv.gz")


def load_glue(task: str, path: str | Path | None = None, *, split: str = "train") -> list[GlueExample]:
    """Load one GLUE task file; rows that cannot be repaired raise with their line number."""
    if task not in _LAYOUTS:
        raise ValueError(f"unknown GLUE task {task!r}; known: {', '.join(GLUE_TASKS)}")
    layout = _LAYOUTS[task]
    src = Path(path) if path is not None else glue_path(task, split)
    out: list[GlueExample] = []
    for lineno, fields in enumerate(read_tsv(src, header=layout.header), start=1):
        if task == "QQP" and len(fields) == layout.n_fields - 1:
            fields = _repair_qqp_row(fields, src, lineno)
        if len(fields) != layout.n_fields:
            raise ValueError(f"{src}:{lineno}: {task} expects {layout.n_fields} fields, got {len(fields)}")
        text_b = fields[layout.text_b] if layout.text_b is not None else None
        out.append(GlueExample(text_a=fields[layout.text_a], text_b=text_b, label=fields[layout.label].strip()))
    return out


def _repair_qqp_row(fields: list[str], src: Path, lineno: int) -> list[str]:
    """The subset's first row reads `...question2 0` with a space where the tab before the label should be."""
    m = _TRAILING_LABEL.match(fields[-1])
    if m is None:
        raise ValueError(f"{src}:{lineno}: QQP row has 5 fields and no trailing 0/1 label to split off")
    return [*fields[:-1], m.group(1), m.group(2)]

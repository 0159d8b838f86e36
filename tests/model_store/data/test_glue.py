from __future__ import annotations

import pytest

from model_store.data.glue import load_glue

# Row counts as documented in shared/data/README.md and the GLUE release (header rows excluded).
DOCUMENTED = {
    ("SST-2", "train"): 67349,
    ("SST-2", "dev"): 872,
    ("MRPC", "train"): 3667,
    ("MRPC", "dev"): 408,
    ("QNLI", "dev"): 5463,
    ("CoLA", "train"): 8551,
    ("CoLA", "dev"): 1043,
    ("RTE", "train"): 2490,
    ("RTE", "dev"): 277,
    ("WNLI", "dev"): 71,
    ("STS-B", "train"): 5749,
    ("STS-B", "dev"): 1500,
}


@pytest.mark.parametrize(("task", "split"), sorted(DOCUMENTED))
def test_real_glue_files(data_dir, task: str, split: str) -> None:
    rows = load_glue(task, data_dir / "glue" / task / f"{split}.tsv.gz")
    assert len(rows) == DOCUMENTED[(task, split)]
    assert all(r.text_a for r in rows)
    pair_task = task not in ("CoLA", "SST-2")
    assert all((r.text_b is not None) == pair_task for r in rows)


def test_mrpc_bom_header_is_skipped_and_labels_are_binary(data_dir) -> None:
    rows = load_glue("MRPC", data_dir / "glue" / "MRPC" / "train.tsv.gz")
    assert {r.label for r in rows} == {"0", "1"}
    assert rows[0].text_a.startswith("Amrozi accused")


def test_qqp_subset_first_row_is_repaired(data_dir) -> None:
    rows = load_glue("QQP", data_dir / "glue" / "QQP" / "qqp_train_subset_23496.tsv.gz")
    # The file holds 23,497 rows: the README's 23,496 plus the first row, whose label tab is missing.
    assert len(rows) == 23497
    assert rows[0].text_b == "Which level of prepration is enough for the exam jlpt5?"
    assert rows[0].label == "0"
    assert {r.label for r in rows} == {"0", "1"}


def test_bare_quotes_never_join_rows(tmp_path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text('sentence\tlabel\nhe said " yes \t1\nno quote here\t0\n')
    rows = load_glue("SST-2", path)
    assert [r.label for r in rows] == ["1", "0"]
    assert rows[0].text_a == 'he said " yes '


def test_wrong_field_count_raises(tmp_path) -> None:
    path = tmp_path / "dev.tsv"
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\tonly\tthree\n")
    with pytest.raises(ValueError, match="expects 4 fields"):
        load_glue("RTE", path)


def test_unknown_task_and_missing_qqp_dev() -> None:
    with pytest.raises(ValueError, match="unknown GLUE task"):
        load_glue("MNLI")
    with pytest.raises(FileNotFoundError, match="no QQP dev"):
        load_glue("QQP", split="dev")

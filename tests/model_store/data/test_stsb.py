from __future__ import annotations

import gzip

import pytest

from model_store.data.stsb import load_sts


def test_real_files_have_documented_row_counts(data_dir) -> None:
    train = load_sts(data_dir / "stsb" / "sts-train.csv.gz")
    dev = load_sts(data_dir / "stsb" / "sts-dev.csv.gz")
    assert (len(train), len(dev)) == (5749, 1500)
    assert all(0.0 <= p.score <= 5.0 for p in train + dev)
    assert dev[0].sentence1 and dev[0].sentence2


def test_rows_with_extra_columns_and_bare_quotes(tmp_path) -> None:
    path = tmp_path / "sts.csv.gz"
    rows = [
        'g\ts\t2016\t0001\t4.2\tHe said "hi\tShe said hi"',
        "g\ts\t2016\t0002\t1\tA b\tC d\tsource-a\tsource-b",
    ]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    pairs = load_sts(path)
    assert [p.score for p in pairs] == [4.2, 1.0]
    assert pairs[0].sentence1 == 'He said "hi' and pairs[0].sentence2 == 'She said hi"'
    assert pairs[1].sentence2 == "C d"


@pytest.mark.parametrize(
    ("row", "message"),
    [("g\ts\t2016\t0001\t4.2\tonly one", "expected >= 7"), ("g\ts\t2016\t0001\tx\ta\tb", "not a number")],
)
def test_bad_rows_raise_with_line_number(tmp_path, row: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(row + "\n")
    with pytest.raises(ValueError, match=message):
        load_sts(path)


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_sts(tmp_path / "nope.csv.gz")

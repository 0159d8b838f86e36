"""The model pipeline's subcommands through the root parser: eval sts and eval rank on any encoder."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eibert.cli import build_parser, main
from tests.conftest import FIXTURES
from tests.model_store.data.test_paths import absolute_paths


def test_eval_rank_with_missing_files_is_one_clear_line(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    argv = ["eval", "rank", "--bundle", str(tiny_bundle), "--movies", str(tmp_path / "m.csv.gz")]
    assert main([*argv, "--ratings", str(tmp_path / "r.csv.gz")]) == 1
    err = capsys.readouterr().err
    assert "m.csv.gz" in err and "Traceback" not in err


def test_eval_sts_on_a_bundle_prints_one_json_line(tiny_bundle: Path, capsys) -> None:
    assert main(["eval", "sts", "--bundle", str(tiny_bundle), "--data", str(FIXTURES / "sts_tiny.tsv")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    result = json.loads(out[0])
    assert result["pairs"] == 5 and -100.0 <= result["spearman"] <= 100.0


def test_eval_sts_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", "sts", "--bundle", str(tmp_path / "nope"), "--data", str(FIXTURES / "sts_tiny.tsv")]) == 1
    err = capsys.readouterr().err
    assert "teacher' or a bundle directory" in err and "Traceback" not in err
    assert main(["eval", "sts", "--bundle", str(tmp_path), "--data", str(FIXTURES / "sts_tiny.tsv")]) == 1
    assert "no manifest.json" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_sts_teacher_through_the_console_script(data_dir: Path, tmp_path: Path) -> None:
    """The issue's acceptance command, end to end through the console script, on the first 300 pairs of STS-B dev
    (the full-dev score of the teacher is `tests/model_store/test_teacher.py`'s, in process: one run, not two).
    The command must print exactly what the library computes on the same file."""
    from model_store.eval_sts import evaluate_sts_file
    from model_store.teacher import TeacherEncoder

    lines = gzip.decompress((data_dir / "stsb" / "sts-dev.csv.gz").read_bytes()).splitlines(keepends=True)
    head = tmp_path / "sts-dev-head.csv.gz"
    head.write_bytes(gzip.compress(b"".join(lines[:300])))
    exe = Path(sys.executable).parent / "eibert"
    proc = subprocess.run([str(exe), "eval", "sts", "--bundle", "teacher", "--data", str(head)], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = evaluate_sts_file(TeacherEncoder(threads=2), head)
    assert result["pairs"] == expected.pairs == 300
    assert result["spearman"] == pytest.approx(expected.spearman, abs=0.01) and result["spearman"] > 75.0


def test_build_device_defaults_to_auto() -> None:
    args = build_parser().parse_args(["build", "--config", "c.toml", "--out", "o"])
    assert args.device == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_build_on_cuda_without_cuda_is_one_clear_line(tmp_path: Path, capsys) -> None:
    argv = ["build", "--config", str(tmp_path / "unread.toml"), "--out", str(tmp_path / "b"), "--device", "cuda"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cuda" in err and "no CUDA device" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()  # refused before reading the config or writing anything


def test_recorded_command_has_no_absolute_paths(tmp_path: Path) -> None:
    from model_store.build import portable_arg

    assert portable_arg("--quick") == "--quick" and portable_arg("model_store/x.toml") == "model_store/x.toml"
    for arg in (str(tmp_path / "out"), f"--out={tmp_path / 'out'}"):
        assert not absolute_paths(portable_arg(arg)) and portable_arg(arg).endswith("out")


def test_build_refuses_missing_glue_data_before_any_work(tmp_path: Path, capsys) -> None:
    config = Path(__file__).resolve().parents[2] / "model_store" / "configs" / "eibert-1.9m.toml"
    argv = ["build", "--config", str(config), "--out", str(tmp_path / "out"), "--quick", "--cache", str(tmp_path / "c")]
    assert main([*argv, "--glue-data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--glue-data" in err and "CoLA/train.tsv.gz" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()  # refused before the first stage

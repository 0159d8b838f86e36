"""`eibert build --quick` end to end with your own teacher: a tiny random BERT from a temporary directory.

The bundle's width follows the teacher (32, not 384), the manifest names the teacher and records its path
relative to the repository, and the anchor rows (Model2Vec's distill, the int8 teacher) are measured from it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from model_store.data.paths import REPO_ROOT
from service.common.manifest import verify_bundle
from service.edge.encoder import OnnxEncoder
from tests.model_store.tiny_teacher import TINY_DIM, make_tiny_teacher

pytestmark = pytest.mark.slow  # a second quick build (a tiny teacher: about a minute)

CONFIG = REPO_ROOT / "model_store" / "configs" / "eibert-1.9m.toml"


def build(config: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "eibert"
    cmd = [str(exe), "build", "--config", str(config), "--out", str(out), "--quick", "--cache", str(cache), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def own_teacher_config(root: Path, teacher: Path) -> Path:
    text = re.sub(r"^anchors = .*$", "", CONFIG.read_text(), flags=re.M)  # set below, whatever the config says
    assert "\n[corpus]\n" in text
    own = f'anchors = ["model2vec", "int8_teacher"]\n\n[teacher]\npath = {json.dumps(str(teacher))}\n\n[corpus]\n'
    config = root / "own-teacher.toml"
    config.write_text(text.replace("\n[corpus]\n", "\n" + own, 1))
    return config


@pytest.fixture(scope="module")
def own_teacher_build(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("own-teacher-build")
    teacher = make_tiny_teacher(root / "tiny-bert")
    proc = build(own_teacher_config(root, teacher), root / "bundle", root / "cache", "--skip-ablations")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, teacher, proc.stdout


def test_the_bundle_takes_the_teachers_width_and_name(own_teacher_build) -> None:
    root, teacher, stdout = own_teacher_build
    manifest = verify_bundle(root / "bundle")
    assert manifest.dim == TINY_DIM and manifest.teacher == teacher.name
    recorded = manifest.build["config"]["teacher"]["path"]
    assert not Path(recorded).is_absolute() and (REPO_ROOT / recorded).resolve() == teacher.resolve()
    assert manifest.build["config"]["student"]["out_dim"] == TINY_DIM
    emb = OnnxEncoder(root / "bundle").encode(["a man plays the guitar", "toy story"])
    assert emb.shape == (2, TINY_DIM)
    m = manifest.metrics
    assert json.loads(stdout.strip().splitlines()[-1])["teacher_sts_dev_spearman"] == m["teacher_sts_dev_spearman"]
    assert m["teacher_sts_dev_spearman"] < 60  # random weights: nothing like all-MiniLM-L6-v2's 86.7


def test_the_anchor_rows_come_from_the_same_teacher(own_teacher_build) -> None:
    root, _, _ = own_teacher_build
    m = verify_bundle(root / "bundle").metrics
    rows = {a["name"]: a for a in m["anchors"]}
    assert set(rows) == {"model2vec", "int8_teacher", "teacher_fp32_onnx"}
    # Model2Vec: one row per token but the [unused] ones, PCA capped at the teacher's width.
    assert "x 32 dims" in rows["model2vec"]["detail"]
    assert rows["model2vec"]["bytes"] <= m["size_budget_bytes"]
    assert rows["int8_teacher"]["bytes"] < rows["teacher_fp32_onnx"]["bytes"] / 3
    # The fp32 ONNX teacher scores what the PyTorch teacher scores.
    assert rows["teacher_fp32_onnx"]["sts"] == pytest.approx(m["teacher_sts_dev_spearman"], abs=0.05)
    assert all(a["ms_per_sentence"] > 0 for a in rows.values()) and m["ms_per_sentence"] > 0
    report = (root / "bundle" / "report.md").read_text()
    assert "## Anchors" in report and "Model2Vec distill (library)" in report


def test_a_teacher_path_that_is_no_directory_fails_before_any_stage(tmp_path) -> None:
    config = own_teacher_config(tmp_path, tmp_path / "missing")
    proc = build(config, tmp_path / "bundle", tmp_path / "cache")
    assert proc.returncode != 0 and "[teacher] path" in proc.stderr and "no such directory" in proc.stderr
    assert not (tmp_path / "cache").exists()  # nothing ran

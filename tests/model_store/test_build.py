"""`eibert build --quick`: every stage end to end on a small slice, through the real CLI."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from service.common.manifest import verify_bundle
from service.edge.encoder import OnnxEncoder
from tests.model_store.data.test_paths import absolute_paths
from tests.model_store.test_eval_rank import write_fixture

CONFIG = Path(__file__).resolve().parents[2] / "model_store" / "configs" / "eibert-1.9m.toml"
ABLATIONS = ["oneway", "interplay", "static", "no_pruning", "recurrence", "no_bottleneck"]  # the config has E = H/2
pytestmark = pytest.mark.slow  # the quick build trains seven variants against the real teacher


# Your own distillation text, read by the one quick build: a sentence repeated with other spacing is kept once.
OWN_SENTENCES = ["My own distillation sentence about lighthouses.", "my own  distillation sentence about lighthouses."]


class QuickBuild(NamedTuple):
    out: Path
    cache: Path
    stdout: str
    config: Path  # the committed config plus `[corpus] files`


@pytest.fixture(scope="session")
def quick_build(tmp_path_factory: pytest.TempPathFactory) -> QuickBuild:
    root = tmp_path_factory.mktemp("quick-build")
    out, cache, rank_data = root / "bundle", root / "cache", root / "movielens"
    rank_data.mkdir()
    for plain in write_fixture(rank_data):  # the build reads the shared data's .csv.gz layout
        (rank_data / f"{plain.name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
        plain.unlink()
    own = root / "own.jsonl"
    own.write_text("".join(json.dumps({"text": t}) + "\n" for t in OWN_SENTENCES))
    config = root / "eibert-own-text.toml"
    text = CONFIG.read_text().replace("[corpus]\n", f"[corpus]\nfiles = [{json.dumps(str(own))}]\n", 1)
    # No anchors here (Model2Vec's distill of the real teacher alone takes minutes): the own-teacher quick build,
    # whose teacher is tiny, measures them (tests/model_store/test_build_own_teacher.py).
    # Every ablation the pipeline knows, end to end: the config's own and the recurrence and bottleneck rows.
    more, n = re.subn(r"^ablations = .*$", f"ablations = {json.dumps(ABLATIONS)}", text, count=1, flags=re.M)
    more = re.sub(r"^anchors = .*$", "", more, flags=re.M)
    assert n == 1 and "anchors" not in tomllib.loads(more)
    config.write_text(more)
    exe = Path(sys.executable).parent / "eibert"
    cmd = [str(exe), "build", "--config", str(config), "--out", str(out), "--quick", "--cache", str(cache)]
    cmd += ["--rank-data", str(rank_data)]  # the quick preset skips rank evaluation unless given data
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return QuickBuild(out, cache, proc.stdout, config)


def test_bundle_is_complete_and_loads(quick_build) -> None:
    out, _, stdout, _ = quick_build
    manifest = verify_bundle(out)
    assert manifest.version.endswith("-quick") and manifest.dim == 384
    assert (out / "model.onnx").stat().st_size <= manifest.metrics["size_budget_bytes"]
    assert manifest.build["command"].startswith("eibert build --config")
    assert manifest.build["config"]["prune"]["vocab_size"] == 2500
    enc = OnnxEncoder(out)
    emb = enc.encode(["a man plays the guitar", "toy story"])
    assert emb.shape == (2, 384)
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert printed["sts_dev_spearman"] == manifest.metrics["sts_dev_spearman"]


def test_manifest_records_every_stage(quick_build) -> None:
    out = quick_build.out
    m = verify_bundle(out).metrics
    assert set(m["ablations"]) == {
        "shipped",
        "oneway",
        "with_interplay",
        "recurrence",
        "no_bottleneck",
        "static",
        "no_pruning",
    }
    assert {row["group"] for row in m["quantization"]["table"]} == {"embeddings", "attention", "ffn", "head"}
    assert m["export_check"]["min_cosine"] > 0.9999
    assert m["prune"]["kept_vocab"] == 2500 and m["prune"]["unk_rate_pruned"] <= m["prune"]["unk_rate_teacher"]
    assert 80 < m["teacher_sts_dev_spearman"] < 90
    # The rank evaluation ran on every variant and the teacher (fixture: one user, 100 candidates).
    assert m["rank"]["users"] == 1 and m["teacher_rank"]["candidates"] == 100
    assert m["rank_ndcg_retention"] == pytest.approx(
        m["rank"]["ranker"]["ndcg@10"] / m["teacher_rank"]["ranker"]["ndcg@10"], abs=1e-4
    )
    assert all(0.0 <= a["rank"]["ndcg"] <= 1.0 for a in m["ablations"].values())
    # GLUE frozen probes on every variant and the teacher, on the quick preset's 100 rows per task and split.
    g = m["glue"]
    assert m["glue_limit"] == 100 and m["glue_eval_data"] == "glue"
    assert g["teacher"]["rows"] == {t: {"train": 100, "dev": 100} for t in ("CoLA", "SST-2", "MRPC", "RTE")}
    assert m["glue_mean_retention"] == pytest.approx(g["student"]["mean"] / g["teacher"]["mean"], abs=1e-4)
    assert g["teacher"]["tasks"]["SST-2"] > 60  # the real teacher's sentiment probe beats chance on 100 rows
    assert all(a["glue"]["rows"] == g["teacher"]["rows"] for a in m["ablations"].values())
    # Each variant's schedule: the quick preset's 40 steps, no early stop in this config.
    assert all(a["steps_run"] == 40 and a["early_stop"]["stopped_at"] is None for a in m["ablations"].values())
    # Strict JSON: no NaN or Infinity anywhere (a schedule's "no best yet" once wrote -Infinity).
    json.loads((out / "manifest.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in manifest.json"))
    # Ablations were trained at the byte budget of the shipped student.
    shipped = m["ablations"]["shipped"]["est_int8_bytes"]
    for name in ("static", "no_pruning", "recurrence", "no_bottleneck"):
        assert m["ablations"][name]["est_int8_bytes"] <= shipped


def test_report_and_plots_exist(quick_build) -> None:
    out = quick_build.out
    report = (out / "report.md").read_text()
    needles = ("## Ablations", "## Module-wise int8", "## Hard token pruning", "teacher all-MiniLM-L6-v2", "NDCG@10",
               "GLUE frozen probes", "| share of the teacher |", "GLUE mean int8")  # fmt: skip
    for needle in needles:
        assert needle in report
    for png in ("report-size-breakdown.png", "report-quality-vs-size.png", "report-training.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_rerun_reuses_the_cache_and_refuses_to_overwrite(quick_build, tmp_path: Path) -> None:
    out, cache, _, config = quick_build
    exe = Path(sys.executable).parent / "eibert"
    refused = subprocess.run(
        [str(exe), "build", "--config", str(config), "--out", str(out), "--quick", "--cache", str(cache)],
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "immutable" in refused.stderr
    (teacher_eval,) = cache.glob("teacher-eval-*/summary.json")
    (teacher_glue,) = cache.glob("teacher-glue-*/summary.json")
    written = teacher_eval.stat().st_mtime_ns
    glue_written = teacher_glue.stat().st_mtime_ns
    again = tmp_path / "again"
    proc = subprocess.run(
        [str(exe), "build", "--config", str(config), "--out", str(again), "--quick", "--cache", str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "teacher targets" not in proc.stderr and "distill shipped" not in proc.stderr  # cached stages skipped
    assert (again / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()
    # The teacher's scores on the same data come from the cache: not encoded again, and the same figure.
    assert teacher_eval.stat().st_mtime_ns == written and teacher_glue.stat().st_mtime_ns == glue_written
    metrics = [verify_bundle(b).metrics for b in (out, again)]
    assert metrics[0]["teacher_sts_dev_spearman"] == metrics[1]["teacher_sts_dev_spearman"]


def test_own_corpus_file_is_read_deduplicated_and_reported(quick_build) -> None:
    manifest = verify_bundle(quick_build.out)
    (recorded,) = manifest.build["config"]["corpus"]["files"]
    assert recorded.endswith("own.jsonl") and not Path(recorded).is_absolute()
    (own,) = manifest.build["corpus"]["files"]
    assert own == {"path": recorded, "bytes": own["bytes"], "sentences": 2, "kept": 1} and own["bytes"] > 0
    assert manifest.build["corpus"]["sources"][f"files/{recorded}"] == 2
    report = (quick_build.out / "report.md").read_text()
    assert f"| `{recorded}` | {own['bytes']:,} | 2 | 1 |" in report


def test_manifest_and_report_record_no_absolute_path(quick_build) -> None:
    manifest = verify_bundle(quick_build.out)
    assert not Path(manifest.build["data_root"]).is_absolute()  # "../shared/data" beside the checkout
    assert manifest.metrics["eval_data"] == "stsb/sts-dev.csv.gz"
    assert not Path(manifest.metrics["rank_eval_data"]).is_absolute()
    for name in ("manifest.json", "report.md"):
        assert absolute_paths((quick_build.out / name).read_text()) == [], name


def test_manifest_records_the_device(quick_build) -> None:
    import torch

    assert verify_bundle(quick_build.out).build["device"] == ("cuda" if torch.cuda.is_available() else "cpu")

"""The committed bundles: each config in `model_store/configs/` has the bundle it builds, and they agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_store.build_config import BuildConfig
from service.common.manifest import verify_bundle
from service.edge.encoder import OnnxEncoder
from tests.model_store.data.test_paths import absolute_paths

ROOT = Path(__file__).resolve().parents[2] / "model_store"
CONFIGS = sorted((ROOT / "configs").glob("*.toml"))


RECORDS = sorted(
    p
    for d in ("bundles", "configs/experiments")
    for p in (ROOT / d).glob("*/*")
    if p.name in ("manifest.json", "report.md")
)


def test_there_are_configs() -> None:
    assert len(CONFIGS) >= 1


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_matches_its_shipped_bundle(config: Path) -> None:
    cfg = BuildConfig.from_toml(config)
    bundle = ROOT / "bundles" / f"{cfg.name}-{cfg.version}"
    manifest = verify_bundle(bundle)  # sha256 and bytes of every file
    # The bundle was built from exactly this config (a changed config needs a new version and a rebuild).
    assert manifest.build["config"] == cfg.model_dump(mode="json")
    assert manifest.build["command"].startswith(f"eibert build --config model_store/configs/{config.name} ")
    m = manifest.metrics
    assert (bundle / "model.onnx").stat().st_size == m["model_onnx_bytes"] <= cfg.size_budget_bytes
    assert 0 < m["sts_retention"] == pytest.approx(m["sts_dev_spearman"] / m["teacher_sts_dev_spearman"], abs=1e-4)
    assert (bundle / "report.md").is_file()
    emb = OnnxEncoder(bundle).encode(["Toy Story (1995). Adventure, Animation, Children, Comedy, Fantasy"])
    assert emb.shape == (1, manifest.dim)


PREVIOUS_CONFIGS = sorted((ROOT / "configs" / "previous").glob("*.toml"))


@pytest.mark.parametrize("config", PREVIOUS_CONFIGS, ids=lambda p: p.name)
def test_a_previous_config_still_matches_its_committed_bundle(config: Path) -> None:
    """A config whose path a newer version took moves to previous/; the bundles still committed (the demo starts
    on one) keep a config that rebuilds them: the manifest's recorded config, field for field."""
    cfg = BuildConfig.from_toml(config)
    manifest = verify_bundle(ROOT / "bundles" / f"{cfg.name}-{cfg.version}")
    assert manifest.build["config"] == cfg.model_dump(mode="json")


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_records_name_no_machine_paths(record: Path) -> None:
    """What a builder's machine called its data root means nothing on the next one (`absolute_paths` is made to fail
    on planted paths in tests/model_store/data/test_paths.py)."""
    assert absolute_paths(record.read_text()) == []


RANKER_CONFIGS = sorted((ROOT / "configs" / "ranker").glob("*.toml"))
RANKER_MAX_SHIPPED_BYTES = 100_000  # issue 21's budget for the ranker file


@pytest.mark.parametrize("config", RANKER_CONFIGS, ids=lambda p: p.name)
def test_ranker_config_matches_its_shipped_bundle(config: Path) -> None:
    import tomllib

    from model_store.ranker_build import RankerBuildConfig
    from service.common.contract import MODEL_FILE, RANKER_FILE
    from service.edge.slot import load_model

    cfg = RankerBuildConfig.model_validate(tomllib.loads(config.read_text()))
    source = verify_bundle(ROOT.parent / cfg.source_bundle)
    bundle = ROOT / "bundles" / f"{source.name}-{cfg.version}"
    manifest = verify_bundle(bundle)
    assert manifest.files[MODEL_FILE] == source.files[MODEL_FILE]  # the encoder, byte for byte
    assert manifest.build["ranker"]["command"].startswith(
        f"eibert ranker build --config model_store/configs/ranker/{config.name} "
    )
    assert manifest.files[RANKER_FILE].bytes == manifest.metrics["basket"]["ranker_bytes"] <= RANKER_MAX_SHIPPED_BYTES
    assert load_model(bundle, warm_up=False).ranker is not None
    assert {"ranker", "p_topfreq_time", "tifuknn"} <= set(manifest.metrics["basket"]["methods"])
    assert (bundle / "report.md").is_file()

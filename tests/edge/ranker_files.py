"""Hand-made `ranker.json` files and bundles that carry them, for tests that need a known ranking."""

from __future__ import annotations

import shutil
from pathlib import Path

from service.common.contract import MODEL_FILE, RANKER_FILE, TOKENIZER_FILE
from service.common.manifest import read_manifest
from service.edge.learned_ranker import RankerFile
from service.edge.ranker_features import FEATURES


def hand_ranker(linear: dict[str, float], hidden: int = 2) -> RankerFile:
    """A ranker whose score is the given linear combination of raw features (hidden units are off)."""
    f = len(FEATURES)
    return RankerFile(
        schema_version=1,
        kind="eibert-learned-ranker",
        features=list(FEATURES),
        mean=[0.0] * f,
        scale=[1.0] * f,
        hidden_weight=[[0.0] * f for _ in range(hidden)],
        hidden_bias=[0.0] * hidden,
        out_weight=[0.0] * hidden,
        linear_weight=[linear.get(name, 0.0) for name in FEATURES],
        top_n=5,
        temperature=0.1,
    )


def bundle_with_ranker(source: Path, out: Path, ranker_json: bytes, *, version: str = "0.0.1-ranker") -> Path:
    """`source`'s encoder plus `ranker_json` as a new bundle version (manifest and hashes written for real)."""
    from service.common.manifest import write_bundle

    manifest = read_manifest(source)
    out.mkdir(parents=True, exist_ok=True)
    (out / RANKER_FILE).write_bytes(ranker_json)
    shutil.copyfile(source / MODEL_FILE, out / MODEL_FILE)
    write_bundle(
        out,
        model_onnx=out / MODEL_FILE,
        tokenizer_json=source / TOKENIZER_FILE,
        name=manifest.name,
        version=version,
        dim=manifest.dim,
        max_length=manifest.max_length,
        teacher=manifest.teacher,
        build={"command": "tests/edge/ranker_files.py"},
        extra_files={RANKER_FILE: out / RANKER_FILE},
    )
    return out

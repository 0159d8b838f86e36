"""The learned ranker: a small MLP over `ranker_features`, shipped as `ranker.json` in a bundle.

The pipeline trains it (`model_store/train_ranker.py`, torch) and writes weights as plain JSON; the edge runs it
in numpy. A bundle's manifest pins the file's sha256 like any other file and the cloud's offer signs the
manifest, so a rollout may change the ranker and keep the encoder. The file is checked against this runtime's
feature list: a ranker trained on other features (or a malformed file) is a BundleError, and the node keeps
serving what it had, as it does for a bad model.

score = w_out . relu(W (x - mean) / scale + b) + w_lin . (x - mean) / scale: the linear skip keeps the ranking
sensible where the hidden layer saturates, and makes the model's first-order dependence readable in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.common.bounded_json import RANKER_MAX_BYTES, loads_bounded
from service.common.contract import RANKER_FILE
from service.common.errors import BundleError
from service.common.manifest import Manifest
from service.edge import ranker, ranker_features

RANKER_SCHEMA_VERSION = 1
MAX_HIDDEN = 128

Weight = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]


class RankerFile(BaseModel):
    """`ranker.json`: what the file must hold, checked before any of it is used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    kind: Literal["eibert-learned-ranker"]
    features: list[str] = Field(max_length=256)
    mean: list[Weight]
    scale: list[Annotated[float, Field(allow_inf_nan=False, gt=0, le=1e6)]]
    hidden_weight: list[list[Weight]] = Field(max_length=MAX_HIDDEN)  # (hidden, features)
    hidden_bias: list[Weight] = Field(max_length=MAX_HIDDEN)
    out_weight: list[Weight] = Field(max_length=MAX_HIDDEN)
    linear_weight: list[Weight]
    top_n: int = Field(ge=1, le=64)
    temperature: float = Field(gt=0, le=10, allow_inf_nan=False)
    training: dict[str, Any] = Field(default_factory=dict)  # data, command, metrics: provenance, not used here

    @model_validator(mode="after")
    def _shapes(self) -> RankerFile:
        f, h = len(self.features), len(self.hidden_bias)
        if list(self.features) != list(ranker_features.FEATURES):
            raise ValueError(f"features {self.features} are not this runtime's {list(ranker_features.FEATURES)}")
        if len(self.mean) != f or len(self.scale) != f or len(self.linear_weight) != f:
            raise ValueError("mean, scale and linear_weight need one value per feature")
        if len(self.hidden_weight) != h or len(self.out_weight) != h or any(len(r) != f for r in self.hidden_weight):
            raise ValueError("hidden_weight must be (hidden, features) and out_weight (hidden,)")
        return self


class LearnedRanker:
    """The MLP as numpy arrays, ready to score."""

    def __init__(self, spec: RankerFile) -> None:
        self.spec = spec
        self.mean = np.array(spec.mean, dtype=np.float64)
        self.scale = np.array(spec.scale, dtype=np.float64)
        self.w1 = np.array(spec.hidden_weight, dtype=np.float64).reshape(len(spec.hidden_bias), -1)
        self.b1 = np.array(spec.hidden_bias, dtype=np.float64)
        self.w2 = np.array(spec.out_weight, dtype=np.float64)
        self.lin = np.array(spec.linear_weight, dtype=np.float64)
        self.config = ranker.RankerConfig(top_n=spec.top_n, temperature=spec.temperature)

    def score_features(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return np.maximum(z @ self.w1.T + self.b1, 0.0) @ self.w2 + z @ self.lin

    def score(
        self,
        behaviors: np.ndarray,
        ts: np.ndarray,
        kinds: list[str],
        behavior_keys: list[str],
        candidates: np.ndarray,
        candidate_keys: list[str],
        clock: ranker_features.Clock,
        prior: np.ndarray | None = None,
    ) -> np.ndarray:
        x = ranker_features.compute(
            behaviors, ts, kinds, behavior_keys, candidates, candidate_keys, clock, prior, self.config
        )
        scores = self.score_features(x)
        if not np.isfinite(scores).all():  # inputs are bounded, so this is a bug, never a client's fault
            raise ArithmeticError("the learned ranker produced a non-finite score")
        return scores


def parse_ranker(data: bytes, *, what: str = RANKER_FILE) -> LearnedRanker:
    raw = loads_bounded(data, what=what, max_bytes=RANKER_MAX_BYTES)
    try:
        return LearnedRanker(RankerFile.model_validate(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise BundleError(f"{what}: invalid ranker: {err['msg']} at {err['loc']}") from exc


def load_ranker(bundle_dir: Path, manifest: Manifest) -> LearnedRanker | None:
    """The bundle's ranker if its manifest lists one (its sha256 was checked with the rest of the bundle); a file
    the manifest does not list is never read."""
    if RANKER_FILE not in manifest.files:
        return None
    path = Path(bundle_dir) / RANKER_FILE
    with path.open("rb") as fh:
        data = fh.read(RANKER_MAX_BYTES + 1)
    return parse_ranker(data, what=str(path.name))


def load_learned(bundle: str, ranker_path: str | None) -> LearnedRanker | None:
    """For evaluation commands: `--ranker FILE`, else the bundle's own `ranker.json`, else None."""
    path = Path(ranker_path) if ranker_path else Path(bundle) / RANKER_FILE
    if not path.is_file():
        if ranker_path:
            raise FileNotFoundError(f"--ranker {ranker_path}: no such file")
        return None
    return parse_ranker(path.read_bytes(), what=str(path))

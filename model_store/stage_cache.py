"""Disk cache for pipeline stages, keyed by a hash of each stage's inputs.

A stage's directory is `<cache>/<stage>-<hash>/`; it counts as finished only when `DONE` exists, written last,
so an interrupted stage is redone (or resumed by the stage itself from its own checkpoints) on the next run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

DONE = "DONE"


def input_hash(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class StageDir:
    def __init__(self, cache: Path, stage: str, key: str) -> None:
        self.path = cache / f"{stage}-{key}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.key = key

    @property
    def done(self) -> bool:
        return (self.path / DONE).is_file()

    def finish(self, summary: dict[str, Any]) -> None:
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
        (self.path / DONE).write_text("ok\n")

    def summary(self) -> dict[str, Any]:
        return json.loads((self.path / "summary.json").read_text())

"""Early stopping on the held-out cosine: a build spends its steps only while the student still gets closer to the
teacher on sentences it never trains on.

The held-out slice is the corpus's own (`[corpus] heldout_fraction`), never STS-B or GLUE dev, so stopping tunes
nothing on the data recipes are picked by. The best weights are kept on disk beside the checkpoint, so a stopped
run that is resumed (or a killed one) ends with the same student.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel

BEST = "best.pt"


class EarlyStopState(BaseModel):
    """What the manifest records of a run's schedule: how far it went and where its kept weights come from."""

    patience: int  # held-out checks without a rise of at least `min_delta` before stopping (0 = never)
    min_delta: float
    best_step: int = 0
    best_heldout_cos: float | None = None  # None until the first check (and always, when inactive)
    checks_since_best: int = 0
    stopped_at: int | None = None  # the step training stopped at; None = it ran every configured step


class EarlyStop:
    """Tracks the best held-out cosine; `update` says when to stop. Inactive (never stops, saves nothing) at
    patience 0, the behaviour of every build before early stopping existed."""

    def __init__(self, patience: int, min_delta: float, run_dir: Path) -> None:
        self.state = EarlyStopState(patience=patience, min_delta=min_delta)
        self.best_path = run_dir / BEST
        self.last_step = -1  # the step of the weights the model holds, as far as checks saw

    @property
    def active(self) -> bool:
        return self.state.patience > 0

    @property
    def stopped(self) -> bool:
        return self.state.stopped_at is not None

    def update(self, step: int, heldout_cos: float, model: torch.nn.Module) -> bool:
        """Record one held-out check; True when training should stop here."""
        self.last_step = step
        if not self.active:
            return False
        s = self.state
        if s.best_heldout_cos is None or heldout_cos >= s.best_heldout_cos + s.min_delta:
            s.best_step, s.best_heldout_cos, s.checks_since_best = step, heldout_cos, 0
            tmp = self.best_path.with_suffix(".tmp")
            torch.save(model.state_dict(), tmp)
            tmp.replace(self.best_path)
        else:
            s.checks_since_best += 1
        if s.checks_since_best >= s.patience:
            s.stopped_at = step
        return self.stopped

    def restore_best(self, model: torch.nn.Module) -> bool:
        """Load the best weights into `model` when they are not its current ones; True when it did."""
        if not self.active or not self.best_path.is_file() or self.state.best_step == self.last_step:
            return False
        model.load_state_dict(torch.load(self.best_path, map_location="cpu"))
        self.last_step = self.state.best_step
        return True

    def to_dict(self) -> dict:
        return self.state.model_dump()

    def load(self, saved: dict | None) -> None:
        if saved:
            self.state = EarlyStopState.model_validate(saved)

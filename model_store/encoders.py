"""One interface for everything that turns texts into embeddings: the teacher and any bundle.

Evaluation, benchmarks and the pipeline take an `Encoder`, so "teacher" and a bundle directory are
interchangeable on every command line (`--bundle teacher|DIR`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

TEACHER_SPEC = "teacher"


@runtime_checkable
class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = ...) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""
        ...


def load_encoder(spec: str | Path, *, threads: int | None = None) -> Encoder:
    """`teacher` -> the PyTorch teacher; a directory -> that bundle through the edge runtime (hash-checked)."""
    if str(spec) == TEACHER_SPEC:
        from model_store.teacher import TeacherEncoder

        return TeacherEncoder(threads=threads)
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"--bundle must be 'teacher' or a bundle directory; {path} is neither")
    from service.edge.encoder import OnnxEncoder

    return OnnxEncoder(path, threads=threads or 1)

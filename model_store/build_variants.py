"""The build's variants: the shipped recipe and its ablations (one-way KD, interplay toggled, static student,
no pruning), each at the shipped student's estimated int8 byte budget so the report compares like with like.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from tokenizers import Tokenizer

from model_store.build_config import BuildConfig, DistillConfig, PruneConfig, StudentConfig
from model_store.student import Student
from model_store.teacher import teacher_dir

SHIPPED = "shipped"


class Variant(BaseModel):
    name: str
    prune: PruneConfig
    student: StudentConfig
    distill: DistillConfig


def teacher_vocab_size() -> int:
    """The teacher's vocabulary (30,522 WordPiece tokens for all-MiniLM-L6-v2), read from its tokenizer: the
    `no_pruning` ablation keeps all of it, so its embedding is sized from this."""
    return Tokenizer.from_file(str(teacher_dir() / "tokenizer.json")).get_vocab_size()


def match_bytes(base: StudentConfig, vocab: int, target: int, **fixed: Any) -> StudentConfig:
    """The widest embedding that keeps the variant within the shipped student's estimated int8 bytes."""
    best = None
    for e in range(8, 1025, 4):
        cfg = base.model_copy(update={**fixed, "embed_dim": e})
        if Student(cfg, vocab).estimated_int8_bytes() <= target:
            best = cfg
        else:
            break
    if best is None:
        raise ValueError("no embedding width fits the byte target")
    return best


def variants(cfg: BuildConfig, teacher_vocab: int) -> list[Variant]:
    """The shipped variant first, then one per configured ablation, in the config's order."""
    shipped = Variant(name=SHIPPED, prune=cfg.prune, student=cfg.student, distill=cfg.distill)
    target = Student(cfg.student, cfg.prune.vocab_size).estimated_int8_bytes()
    out = [shipped]
    for name in cfg.ablations:
        if name == "oneway":
            d = cfg.distill.model_copy(update={"labelled": False, "interplay": False})
            out.append(shipped.model_copy(update={"name": name, "distill": d}))
        elif name in ("interplay", "no_interplay"):  # the shipped recipe with mutual interplay toggled
            on = not cfg.distill.interplay
            if name == "no_interplay" and on:
                raise ValueError("ablation 'no_interplay': the shipped recipe has no interplay; use 'interplay'")
            d = cfg.distill.model_copy(update={"interplay": on})
            label = "with_interplay" if on else "no_interplay"
            out.append(shipped.model_copy(update={"name": label, "distill": d}))
        elif name == "static":
            s = match_bytes(cfg.student, cfg.prune.vocab_size, target, kind="static")
            out.append(shipped.model_copy(update={"name": name, "student": s}))
        elif name == "no_pruning":
            p = cfg.prune.model_copy(update={"enabled": False})
            s = match_bytes(cfg.student, teacher_vocab, target)
            out.append(shipped.model_copy(update={"name": name, "prune": p, "student": s}))
        else:
            raise ValueError(f"unknown ablation {name!r}")
    return out

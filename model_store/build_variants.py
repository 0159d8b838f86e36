"""The build's variants: the shipped recipe and its ablations (one-way KD, interplay toggled, static student,
no pruning, parameter recurrence toggled, bottleneck embedding toggled), each at the shipped student's estimated
int8 byte budget so the report compares like with like.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from tokenizers import Tokenizer

from model_store.build_config import BuildConfig, DistillConfig, PruneConfig, StudentConfig
from model_store.student import Student
from model_store.teacher import Teacher, load_teacher

SHIPPED = "shipped"


class Variant(BaseModel):
    name: str
    prune: PruneConfig
    student: StudentConfig
    distill: DistillConfig


def teacher_vocab_size(teacher: Teacher | None = None) -> int:
    """The teacher's vocabulary (30,522 WordPiece tokens for all-MiniLM-L6-v2), read from its tokenizer: the
    `no_pruning` ablation keeps all of it, so its embedding is sized from this."""
    return Tokenizer.from_file(str((teacher or load_teacher()).tokenizer)).get_vocab_size()


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


def match_vocab(student: StudentConfig, target: int, step: int = 100) -> int:
    """The largest kept vocabulary (a multiple of `step`) whose student stays within `target` int8 bytes: what a
    narrower embedding buys at equal bytes (the `bottleneck` ablation)."""
    vocab = step
    while Student(student, vocab + step).estimated_int8_bytes() <= target:
        vocab += step
    if Student(student, vocab).estimated_int8_bytes() > target:
        raise ValueError("no vocabulary fits the byte target")
    return vocab


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
        elif name in ("recurrence", "no_recurrence"):
            # Parameter recurrence toggled: the unique layers applied twice (depth for no bytes), or once.
            repeats = 1 if cfg.student.repeats > 1 else 2
            if (name == "recurrence") != (repeats > 1):
                raise ValueError(f"ablation {name!r}: the shipped student has repeats={cfg.student.repeats}")
            s = cfg.student.model_copy(update={"repeats": repeats})
            out.append(shipped.model_copy(update={"name": name, "student": s}))
        elif name in ("bottleneck", "no_bottleneck"):
            # The factorised embedding toggled at equal bytes: E = H/2 spends the saved bytes on a larger kept
            # vocabulary (fewer word pieces per word); E = H pays for its width with a smaller one.
            width = cfg.student.hidden // 2 if cfg.student.embed_dim == cfg.student.hidden else cfg.student.hidden
            if (name == "bottleneck") != (width < cfg.student.hidden):
                raise ValueError(f"ablation {name!r}: the shipped student has embed_dim={cfg.student.embed_dim}")
            s = cfg.student.model_copy(update={"embed_dim": width})
            p = cfg.prune.model_copy(update={"vocab_size": min(match_vocab(s, target), teacher_vocab)})
            out.append(shipped.model_copy(update={"name": name, "prune": p, "student": s}))
        else:
            raise ValueError(f"unknown ablation {name!r}")
    return out

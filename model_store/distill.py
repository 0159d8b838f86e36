"""Cross-distillation: the student learns the teacher's space while the teacher's top adapts to the student.

Losses (method.md): 1 - cos(student, teacher) per sentence, MSE between the in-batch cosine matrices
(relational term), and on labelled pairs CoSENT (STS-B train scores) and InfoNCE (QQP/MRPC paraphrases).
Mutual interplay: teacher targets pass through the teacher's top, a d x d map (d: the teacher's width) initialised
to identity that keeps training at a small rate on its own objective (stay near the original embeddings, the
labelled losses) plus a pull toward the student's current embeddings; the student learns toward the adapted targets.
We adapt only the teacher's top because its lower layers are CPU-bound here: targets are computed once and cached.
Checkpoints store model args, step and config beside the weights, so resume and export never guess.
Training runs on `device` (`eibert build --device`); the student comes back to the CPU for export, and
checkpoints load onto the CPU, so a GPU-trained run resumes and exports anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model_store.build_config import DistillConfig, StudentConfig
from model_store.early_stop import EarlyStop
from model_store.student import Student

CKPT = "ckpt.pt"
COSENT_SCALE = 20.0
NCE_TEMPERATURE = 0.05


@dataclass
class TrainData:
    ids: list[np.ndarray]  # student token ids per corpus sentence
    targets: torch.Tensor  # (N, 384) teacher embeddings
    heldout_ids: list[np.ndarray]
    heldout_targets: torch.Tensor
    sts: list[tuple[np.ndarray, np.ndarray, float, int, int]]  # ids a, ids b, score, corpus idx a, b (-1 = none)
    para: list[tuple[np.ndarray, np.ndarray]]  # paraphrase pairs
    pairs: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # related corpus pairs (indices)
    domain: list[int] = dataclasses.field(default_factory=list)  # corpus indices of catalogue texts


def pad(batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, x in enumerate(batch):
        ids[i, : len(x)] = torch.from_numpy(x)
        mask[i, : len(x)] = 1
    return ids, mask


def length_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within pools of 50 batches) to cut padding."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return [b for b in batches if len(b) > 1]


def cos_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (1.0 - (s * t).sum(-1)).mean()


def relational_loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(s @ s.T, t @ t.T)


def cosent_loss(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    cos = (a * b).sum(-1) * COSENT_SCALE  # (P,)
    diff = cos[None, :] - cos[:, None]  # diff[i, j] = cos_j - cos_i, penalised where score_i > score_j
    diff = diff - (scores[:, None] <= scores[None, :]).to(diff.dtype) * 1e12
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


def info_nce(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    logits = a @ b.T / NCE_TEMPERATURE
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels))


def lr_at(step: int, cfg: DistillConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def to_device(batch: list[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """`pad`, built on the CPU and copied once (a no-op on the CPU)."""
    ids, mask = pad(batch)
    return ids.to(device), mask.to(device)


@torch.no_grad()
def heldout_cosine(student: Student, data: TrainData, limit: int = 1000, device: str = "cpu") -> float:
    student.eval()
    sims = []
    targets = data.heldout_targets.to(device)
    for start in range(0, min(limit, len(data.heldout_ids)), 128):
        ids, mask = to_device(data.heldout_ids[start : start + 128], device)
        sims.append((student(ids, mask) * targets[start : start + len(ids)]).sum(-1))
    student.train()
    return float(torch.cat(sims).mean()) if sims else float("nan")


@dataclass
class Batch:
    """One step's texts: `idx` indexes the corpus in the order of the student's output rows, laid out as
    [random batch | pairs a0 b0 a1 b1 ... | catalogue texts]."""

    idx: list[int]
    n_pair: int  # related pairs in the batch
    n_domain: int  # catalogue texts at its end
    sts: list[tuple[np.ndarray, np.ndarray, float, int, int]] | None = None  # this step's labelled pairs


def train(
    student: Student,
    data: TrainData,
    cfg: DistillConfig,
    run_dir: Path,
    *,
    desc: str = "distill",
    device: str = "cpu",
) -> list[dict[str, float]]:
    """Train in place on `device`; resumes from `run_dir/ckpt.pt`; returns the logged history."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    dim = student.cfg.out_dim  # the teacher's width
    teacher_top = nn.Linear(dim, dim, bias=False)
    nn.init.eye_(teacher_top.weight)
    student.to(device)
    teacher_top.to(device)
    targets = data.targets.to(device)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    opt_t = torch.optim.Adam(teacher_top.parameters(), lr=cfg.teacher_lr)
    ckpt_path = run_dir / CKPT
    stopper = EarlyStop(cfg.patience, cfg.min_delta, run_dir)
    step, history = _resume(ckpt_path, student, teacher_top, opt, opt_t, rng, stopper)
    lengths = [len(x) for x in data.ids]
    batches: list[list[int]] = []
    student.train()
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, unit="step")
    while step < cfg.steps and not stopper.stopped:
        if not batches:
            batches = length_batches(lengths, cfg.batch_size, rng)
        batch, pair_idx, dom_idx = _next_batch(batches.pop(), data, cfg, rng)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        s = _student_rows(student, data, batch, pair_idx, dom_idx, device)
        t_raw = targets[batch.idx]
        t = nn.functional.normalize(teacher_top(t_raw), dim=-1) if cfg.interplay else t_raw
        loss, log = _distill_loss(s, t.detach(), batch, cfg, step)
        if cfg.labelled and step % cfg.labelled_every == 0 and data.sts:
            batch.sts = rng.sample(data.sts, min(cfg.labelled_batch, len(data.sts)))
            loss = loss + _labelled_loss(student, data, batch.sts, cfg, rng, device, log)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        if cfg.interplay:
            _teacher_step(teacher_top, opt_t, t, t_raw, s, targets, batch, cfg, device, log)
        step += 1
        bar.update(1)
        if step % 20 == 0 or step == cfg.steps:
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                log["heldout_cos"] = heldout_cosine(student, data, device=device)
                stopper.update(step, log["heldout_cos"], student)
            history.append(log)
            bar.set_postfix(cos=f"{log['cos']:.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save(ckpt_path, student, teacher_top, opt, opt_t, step, history, rng, cfg, stopper)
    bar.close()
    if stopper.restore_best(student):  # the checkpoint is what the build loads: it holds the kept weights
        _save(ckpt_path, student, teacher_top, opt, opt_t, step, history, rng, cfg, stopper)
    student.to("cpu").eval()  # export and evaluation run on the CPU, as devices do
    return history


def _resume(
    path: Path, student: Student, teacher_top: nn.Linear, opt: torch.optim.Optimizer, opt_t: torch.optim.Optimizer,
    rng: random.Random, stopper: EarlyStop,
) -> tuple[int, list[dict[str, float]]]:  # fmt: skip
    """Step and history of the checkpoint at `path` (weights, optimisers, RNGs and the early stop restored), else a
    fresh start."""
    if not path.is_file():
        return 0, []
    ckpt = torch.load(path, weights_only=False, map_location="cpu")  # the RNG state must stay a CPU tensor
    student.load_state_dict(ckpt["model"])
    teacher_top.load_state_dict(ckpt["teacher_top"])
    opt.load_state_dict(ckpt["opt"])
    opt_t.load_state_dict(ckpt["opt_t"])
    rng.setstate(ckpt["rng"])
    torch.set_rng_state(ckpt["torch_rng"])
    stopper.load(ckpt.get("early_stop"))
    return ckpt["step"], ckpt["history"]


def _next_batch(
    idx: list[int], data: TrainData, cfg: DistillConfig, rng: random.Random
) -> tuple[Batch, list[int], list[int]]:
    """A length bucket with related pairs and then catalogue texts replacing its tail; (the batch, the pairs'
    indices, the catalogue texts' indices), which the student encodes in forwards of their own."""
    n_pair = min(cfg.pair_batch, len(data.pairs), (len(idx) - 2) // 2) if cfg.w_pair > 0 else 0
    pair_idx: list[int] = []
    if n_pair > 0:  # related pairs replace the batch's tail, as a0 b0 a1 b1 ...
        pair_idx = [i for pair in rng.sample(data.pairs, n_pair) for i in pair]
        idx = idx[: len(idx) - 2 * n_pair]
    n_dom = min(cfg.domain_batch, len(data.domain), len(idx) - 2)
    dom_idx = rng.sample(data.domain, n_dom) if n_dom > 1 else []
    if dom_idx:  # catalogue texts replace the tail of what is left
        idx = idx[: len(idx) - len(dom_idx)]
    return Batch(idx=idx, n_pair=n_pair, n_domain=len(dom_idx)), pair_idx, dom_idx


def _student_rows(
    student: Student, data: TrainData, batch: Batch, pair_idx: list[int], dom_idx: list[int], device: str
) -> torch.Tensor:
    """The student's rows for the whole batch; extends `batch.idx` with the pairs and catalogue texts.

    Pairs and catalogue texts get forwards of their own: padded to their own width, not widening the
    length-bucketed part."""
    s = student(*to_device([data.ids[i] for i in batch.idx], device))
    for extra in (pair_idx, dom_idx):
        if extra:
            s = torch.cat([s, student(*to_device([data.ids[i] for i in extra], device))])
            batch.idx = batch.idx + extra
    return s


def _distill_loss(
    s: torch.Tensor, t_fixed: torch.Tensor, batch: Batch, cfg: DistillConfig, step: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cosine and relational terms, plus the catalogue and pair terms when the batch holds them; the log."""
    loss_cos = cos_loss(s, t_fixed)
    loss_rel = relational_loss(s, t_fixed)
    loss = cfg.w_cos * loss_cos + cfg.w_rel * loss_rel
    log = {"step": step, "cos": float(loss_cos), "rel": float(loss_rel)}
    if batch.n_domain:
        n = batch.n_domain
        loss_dom = relational_loss(s[-n:], t_fixed[-n:])
        loss = loss + cfg.w_domain_rel * loss_dom
        log["domain_rel"] = float(loss_dom)
    if batch.n_pair > 0:
        end = len(s) - batch.n_domain
        sp, tp = s[end - 2 * batch.n_pair : end], t_fixed[end - 2 * batch.n_pair : end]
        pair_s = (sp[0::2] * sp[1::2]).sum(-1)
        pair_t = (tp[0::2] * tp[1::2]).sum(-1)
        loss_pair = nn.functional.mse_loss(pair_s, pair_t)
        loss = loss + cfg.w_pair * loss_pair
        log["pair"] = float(loss_pair)
    return loss, log


def _labelled_loss(
    student: Student,
    data: TrainData,
    sts_batch: list[tuple[np.ndarray, np.ndarray, float, int, int]],
    cfg: DistillConfig,
    rng: random.Random,
    device: str,
    log: dict[str, float],
) -> torch.Tensor:
    """CoSENT on the step's STS pairs and InfoNCE on a sample of paraphrases, weighted; logged into `log`."""
    a_ids, a_mask = to_device([p[0] for p in sts_batch], device)
    b_ids, b_mask = to_device([p[1] for p in sts_batch], device)
    scores = torch.tensor([p[2] for p in sts_batch], device=device)
    l_cosent = cosent_loss(student(a_ids, a_mask), student(b_ids, b_mask), scores)
    para = rng.sample(data.para, min(cfg.labelled_batch, len(data.para)))
    pa, pa_mask = to_device([p[0] for p in para], device)
    pb, pb_mask = to_device([p[1] for p in para], device)
    l_nce = info_nce(student(pa, pa_mask), student(pb, pb_mask))
    log |= {"cosent": float(l_cosent), "nce": float(l_nce)}
    return cfg.w_cosent * l_cosent + cfg.w_nce * l_nce


def _teacher_step(
    teacher_top: nn.Linear,
    opt_t: torch.optim.Optimizer,
    t: torch.Tensor,
    t_raw: torch.Tensor,
    s: torch.Tensor,
    targets: torch.Tensor,
    batch: Batch,
    cfg: DistillConfig,
    device: str,
    log: dict[str, float],
) -> None:
    """The teacher's own objective (stay itself, rank labelled pairs) plus a pull toward the student."""
    anchor = cos_loss(t, t_raw)
    pull = cos_loss(t, s.detach())
    loss_t = cfg.w_teacher_anchor * anchor + cfg.w_teacher_pull * pull
    if batch.sts is not None:
        known = [p for p in batch.sts if p[3] >= 0 and p[4] >= 0]
        if len(known) > 1:
            ta = nn.functional.normalize(teacher_top(targets[[p[3] for p in known]]), dim=-1)
            tb = nn.functional.normalize(teacher_top(targets[[p[4] for p in known]]), dim=-1)
            known_scores = torch.tensor([p[2] for p in known], device=device)
            loss_t = loss_t + cfg.w_cosent * cosent_loss(ta, tb, known_scores)
    opt_t.zero_grad(set_to_none=True)
    loss_t.backward()
    opt_t.step()
    log |= {"teacher_anchor": float(anchor), "teacher_pull": float(pull)}


def _save(path: Path, student, teacher_top, opt, opt_t, step, history, rng, cfg: DistillConfig, stopper) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": student.state_dict(),
            "model_args": {"config": student.cfg.model_dump(), "vocab_size": student.vocab_size},
            "teacher_top": teacher_top.state_dict(),
            "opt": opt.state_dict(),
            "opt_t": opt_t.state_dict(),
            "step": step,
            "history": history,
            "rng": rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "config": cfg.model_dump(),
            "early_stop": stopper.to_dict(),
        },
        tmp,
    )
    tmp.replace(path)


def schedule_record(path: Path) -> dict:
    """A finished run's schedule as the manifest records it: steps trained, and the early stop's best step and
    where it stopped (from the checkpoint, so a resumed run reports the whole run)."""
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    return {"steps_run": ckpt["step"], "early_stop": ckpt.get("early_stop") or {}}


def load_student(path: Path) -> Student:
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    args = ckpt["model_args"]
    model = Student(StudentConfig.model_validate(args["config"]), args["vocab_size"])
    model.load_state_dict(ckpt["model"])
    return model.eval()


def write_history(history: list[dict[str, float]], path: Path) -> None:
    path.write_text(json.dumps(history))

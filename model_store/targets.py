"""Teacher targets, computed once: sentence embeddings (float16) and per-token attention importance.

One teacher pass serves both: embeddings are the distillation targets, and the attention each token receives
(summed over layers, heads, query positions and sentences) is the importance score hard token pruning ranks
the vocabulary by. Work is written in chunks, each finished chunk is skipped on resume.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_store.build_config import TargetsConfig
from model_store.teacher import TEACHER_DIM, Teacher

TARGETS_FILE = "targets.f16.npy"
IMPORTANCE_FILE = "importance.npy"


def compute_targets(
    texts: list[str],
    cfg: TargetsConfig,
    out: Path,
    *,
    threads: int = 1,
    workers: int = 1,
    device: str = "cpu",
    teacher: Teacher | None = None,
) -> tuple[Path, Path]:
    """Targets for `texts`, in resumable chunks; `workers` processes share the chunks (round robin); the teacher
    runs on `device` (results come back to the CPU, so the files do not depend on where they were made)."""
    if (out / TARGETS_FILE).is_file() and (out / IMPORTANCE_FILE).is_file():
        return out / TARGETS_FILE, out / IMPORTANCE_FILE
    n_chunks = (len(texts) + cfg.chunk - 1) // cfg.chunk
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            jobs = [
                pool.submit(_compute_chunks, texts, cfg, out, threads, k, workers, device, teacher)
                for k in range(workers)
            ]
            for job in jobs:
                job.result()
    else:
        _compute_chunks(texts, cfg, out, threads, 0, 1, device, teacher)
    embs = [np.load(out / f"emb-{c:05d}.npy") for c in range(n_chunks)]
    imp = sum(np.load(out / f"imp-{c:05d}.npy") for c in range(n_chunks))
    dim = embs[0].shape[1] if embs else (teacher.dim if teacher else TEACHER_DIM)
    _atomic_save(out / TARGETS_FILE, np.concatenate(embs) if embs else np.zeros((0, dim), np.float16))
    _atomic_save(out / IMPORTANCE_FILE, np.asarray(imp, dtype=np.float64))
    for c in range(n_chunks):
        (out / f"emb-{c:05d}.npy").unlink()
        (out / f"imp-{c:05d}.npy").unlink()
    return out / TARGETS_FILE, out / IMPORTANCE_FILE


def _compute_chunks(
    texts: list[str],
    cfg: TargetsConfig,
    out: Path,
    threads: int,
    worker: int,
    workers: int,
    device: str = "cpu",
    teacher: Teacher | None = None,
) -> None:
    """This worker's chunks (`c % workers == worker`); finished chunk files are skipped, so a rerun resumes."""
    import torch

    from model_store.teacher import TeacherEncoder

    n_chunks = (len(texts) + cfg.chunk - 1) // cfg.chunk
    mine = [c for c in range(n_chunks) if c % workers == worker]
    encoder = TeacherEncoder(
        threads=threads, max_length=cfg.max_length, attn_implementation="eager", device=device, teacher=teacher
    )
    vocab = encoder.model.config.vocab_size
    for c in tqdm(mine, desc=f"teacher targets [{worker + 1}/{workers}]", unit="chunk", position=worker):
        emb_path, imp_path = out / f"emb-{c:05d}.npy", out / f"imp-{c:05d}.npy"
        if emb_path.is_file() and imp_path.is_file():
            continue
        chunk = texts[c * cfg.chunk : (c + 1) * cfg.chunk]
        lengths = np.array([len(e.ids) for e in encoder.tokenizer.encode_batch(chunk)])
        order = np.argsort(-lengths, kind="stable")
        emb = np.empty((len(chunk), encoder.dim), dtype=np.float16)
        importance = torch.zeros(vocab, dtype=torch.float64, device=device)
        with torch.inference_mode():
            for start in range(0, len(chunk), cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                ids, mask = (t.to(device) for t in encoder.tokenize([chunk[i] for i in idx]))
                out_t = encoder.model(input_ids=ids, attention_mask=mask, output_attentions=True)
                emb[idx] = encoder.pool(out_t.last_hidden_state, mask).cpu().numpy().astype(np.float16)
                fmask = mask.to(torch.float32)
                received = torch.zeros_like(fmask)  # (B, T)
                for att in out_t.attentions:  # (B, heads, T_query, T_key)
                    received += (att * fmask[:, None, :, None]).sum(dim=(1, 2))
                received *= fmask
                importance.index_add_(0, ids.flatten(), received.flatten().to(torch.float64))
        _atomic_save(emb_path, emb)
        _atomic_save(imp_path, importance.cpu().numpy())


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)

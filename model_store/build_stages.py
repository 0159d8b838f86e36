"""The build's cached stages: corpus -> teacher targets -> hard token pruning -> a variant's distillation.

Every stage is cached under `<cache>/<stage>-<hash of its inputs>/`, so a rerun skips finished work and an
interrupted training run resumes from its checkpoint. Variants share corpus and targets (and pruning, where
their prune configs agree).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model_store import corpus as corpus_mod
from model_store import corpus_files, prune
from model_store.build_config import BuildConfig, PruneConfig
from model_store.build_variants import Variant
from model_store.corpus import text_key
from model_store.data import data_file, load_glue, load_sts
from model_store.distill import CKPT, TrainData, load_student, schedule_record, train, write_history
from model_store.stage_cache import StageDir, input_hash
from model_store.student import Student, teacher_static_vectors
from model_store.targets import IMPORTANCE_FILE, TARGETS_FILE, compute_targets
from model_store.teacher import load_teacher
from service.common.manifest import sha256_file
from service.edge.encoder import load_tokenizer

log = logging.getLogger("eibert.build")

PAIR_MAX_TOKENS = 48  # longer pairs (QNLI passages) would cost a wide padded forward for little STS signal
STSB_TRAIN = ("stsb", "sts-train.csv.gz")


def add_time(timings: dict[str, float], name: str, t0: float) -> None:
    """Add the seconds since `t0` to `timings[name]` (a variant trained in two sittings counts both)."""
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 1)


def tokenize(tokenizer_path: Path, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Unpadded token ids through the edge runtime's tokenizer loader, as devices tokenize."""
    tok = load_tokenizer(tokenizer_path, max_length)
    tok.no_padding()
    return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts)]


def labelled_data(tokenizer_path: Path, max_length: int, index: dict[str, int]) -> tuple[list, list]:
    """STS-B train rows (ids, ids, score, corpus indices) and QQP/MRPC paraphrase pairs for the labelled losses."""
    sts = load_sts(data_file(*STSB_TRAIN))
    para_rows = [r for r in load_glue("QQP") + load_glue("MRPC") if r.label == "1" and r.text_b]
    a = tokenize(tokenizer_path, [p.sentence1 for p in sts], max_length)
    b = tokenize(tokenizer_path, [p.sentence2 for p in sts], max_length)
    sts_rows = [
        (a[i], b[i], p.score, index.get(text_key(p.sentence1), -1), index.get(text_key(p.sentence2), -1))
        for i, p in enumerate(sts)
    ]
    pa = tokenize(tokenizer_path, [r.text_a for r in para_rows], max_length)
    pb = tokenize(tokenizer_path, [r.text_b or "" for r in para_rows], max_length)
    return sts_rows, list(zip(pa, pb, strict=True))


def related_pairs(index: dict[str, int], ids: list[np.ndarray]) -> list[tuple[int, int]]:
    """Sentence pairs of the shared data (STS-B train, every GLUE pair task, labels ignored) whose two sides
    are both short training sentences: unlabelled, they only tell pair distillation which sentences to compare."""
    raw = [(p.sentence1, p.sentence2) for p in load_sts(data_file(*STSB_TRAIN))]
    for task in ("QQP", "MRPC", "RTE", "QNLI", "WNLI"):
        raw += [(r.text_a, r.text_b) for r in corpus_mod.glue_rows(task) if r.text_b]
    key = text_key
    pairs = {(index[key(a)], index[key(b)]) for a, b in raw if key(a) in index and key(b) in index}
    return sorted((a, b) for a, b in pairs if a != b and max(len(ids[a]), len(ids[b])) <= PAIR_MAX_TOKENS)


class Stages:
    """Runs (or loads from the cache) each stage; `timings` collects the seconds spent per stage."""

    def __init__(
        self, cfg: BuildConfig, cache: Path, *, resume: bool, timings: dict[str, float], device: str = "cpu"
    ) -> None:
        self.cfg, self.cache, self.resume, self.timings, self.device = cfg, cache, resume, timings, device
        # Stages computed on another device differ within noise, not bit for bit: they get keys of their own.
        # The CPU keeps the keys it always had, so its cached stages (and the shipped bundles') stay valid.
        self._device_key = () if device == "cpu" else (device,)
        self.teacher = load_teacher(cfg.teacher.path)  # its key is empty for the packaged teacher, as before
        self._teacher_key = self.teacher.key()

    def corpus(self) -> tuple[StageDir, corpus_mod.Corpus]:
        t0 = time.perf_counter()
        files = self.cfg.corpus.files
        extra = (corpus_files.digests(files),) if files else ()
        key = input_hash(self.cfg.corpus, *extra, *self._teacher_key)  # the teacher's tokenizer counts its tokens
        st = StageDir(self.cache, "corpus", key)
        if not st.done:
            c = corpus_mod.collect(self.cfg.corpus)
            corpus_mod.save(c, st.path / "corpus.json")
            tok = load_tokenizer(self.teacher.tokenizer, 100_000)
            tok.no_padding()
            n_tokens = sum(len(e.ids) for e in tok.encode_batch(c.train))
            summary = {"train": len(c.train), "heldout": len(c.heldout), "tokens": n_tokens, "sources": c.sources}
            st.finish(summary | {"files": [f.model_dump() for f in c.files]})
        add_time(self.timings, "corpus", t0)
        return st, corpus_mod.load(st.path / "corpus.json")

    def targets(self, corpus_st: StageDir, c: corpus_mod.Corpus) -> StageDir:
        """Teacher targets, keyed by the corpus's content (its sentences, in order), not by the config section that
        made it: every build whose corpus comes out the same reuses them (the 1.9 MB and 1.2 MB configs, a config
        that lists its GLUE tasks in another order), so the stage that costs a quarter of a build runs once."""
        t0 = time.perf_counter()
        corpus_digest = sha256_file(corpus_st.path / "corpus.json")
        key = input_hash(corpus_digest, self.cfg.targets, *self._device_key, *self._teacher_key)
        st = StageDir(self.cache, "targets", key)
        if not st.done:
            compute_targets(
                c.train + c.heldout, self.cfg.targets, st.path,
                threads=self.cfg.distill.threads, workers=self.cfg.workers, device=self.device, teacher=self.teacher,
            )  # fmt: skip
            st.finish({"sentences": len(c.train) + len(c.heldout), "dtype": "float16"})
        add_time(self.timings, "targets", t0)
        return st

    def prune(self, targets_st: StageDir, c: corpus_mod.Corpus, pcfg: PruneConfig) -> StageDir:
        t0 = time.perf_counter()
        st = StageDir(self.cache, "prune", input_hash(targets_st.key, pcfg))
        if not st.done:
            teacher_tok = self.teacher.tokenizer
            importance = np.load(targets_st.path / IMPORTANCE_FILE)
            tokens, old_ids, n_chars = prune.select_vocab(teacher_tok, importance, c.train, pcfg)
            prune.write_tokenizer(teacher_tok, tokens, st.path / "tokenizer.json")
            np.save(st.path / "old_ids.npy", old_ids)
            np.save(st.path / "static.npy", teacher_static_vectors(old_ids, self.teacher))
            stats = prune.prune_stats(teacher_tok, st.path / "tokenizer.json", c.heldout, n_chars)
            st.finish(stats.model_dump())
        add_time(self.timings, "prune", t0)
        return st

    def train(
        self, v: Variant, targets_st: StageDir, prune_st: StageDir, c: corpus_mod.Corpus
    ) -> tuple[StageDir, Student, dict[str, Any]]:
        """Distil one variant (resuming its checkpoint unless told not to); its initial weights are kept too."""
        key = input_hash(targets_st.key, prune_st.key, v.student, v.distill, *self._device_key)
        # Keyed by what it trains, not by its name: an ablation that becomes the next shipped recipe (or two
        # names for one recipe) reuses the finished run instead of training it again.
        st = StageDir(self.cache, "train", key)
        tok = prune_st.path / "tokenizer.json"
        static = np.load(prune_st.path / "static.npy")
        student = Student(v.student, len(static))
        init_info = student.init_from_teacher(static)
        init_path = st.path / "init.pt"
        if not init_path.is_file():
            torch.save(student.state_dict(), init_path)
        if st.done:
            return st, load_student(st.path / "ckpt.pt"), st.summary()
        if not self.resume and (st.path / "ckpt.pt").is_file():
            log.info("%s: discarding an unfinished checkpoint (pass --resume to continue it)", v.name)
            (st.path / "ckpt.pt").unlink()
        t0 = time.perf_counter()
        targets = torch.from_numpy(np.load(targets_st.path / TARGETS_FILE).astype(np.float32))
        n = len(c.train)
        index = {text_key(t): i for i, t in enumerate(c.train)}
        sts_rows, para = labelled_data(tok, v.student.max_length, index)
        ids = tokenize(tok, c.train, v.student.max_length)
        pairs = related_pairs(index, ids) if v.distill.w_pair > 0 else []
        domain = corpus_mod.catalogue_indices(self.cfg.corpus, c) if v.distill.domain_batch > 0 else []
        data = TrainData(
            ids=ids,
            targets=targets[:n],
            heldout_ids=tokenize(tok, c.heldout, v.student.max_length),
            heldout_targets=targets[n:],
            sts=sts_rows,
            para=para,
            pairs=pairs,
            domain=domain,
        )
        history = train(student, data, v.distill, st.path, desc=f"distill {v.name}", device=self.device)
        write_history(history, st.path / "history.json")
        seconds = time.perf_counter() - t0
        st.finish({"train_seconds": round(seconds, 1), **schedule_record(st.path / CKPT), **init_info})
        add_time(self.timings, f"train:{v.name}", t0)
        return st, student, st.summary()

    def train_in_parallel(self, todo: list[Variant]) -> None:
        """Train the variants in `workers` processes; results land in the stage cache for the caller to load."""
        t0 = time.perf_counter()
        with ProcessPoolExecutor(self.cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            recipes = {}  # one process per distinct recipe: two names for one recipe share a stage directory
            for v in todo:
                recipes.setdefault(input_hash(v.prune, v.student, v.distill), v)
            jobs = [
                pool.submit(_train_one, self.cfg, self.cache, self.resume, v, self.device) for v in recipes.values()
            ]
            for job in jobs:
                job.result()
        add_time(self.timings, "train:parallel", t0)


def _train_one(cfg: BuildConfig, cache: Path, resume: bool, v: Variant, device: str) -> None:
    """One variant's training in a worker process: earlier stages are cached, so they only load here."""
    stages = Stages(cfg, cache, resume=resume, timings={}, device=device)
    corpus_st, c = stages.corpus()
    targets_st = stages.targets(corpus_st, c)
    stages.train(v, targets_st, stages.prune(targets_st, c, v.prune), c)

"""`eibert build`: corpus -> teacher targets -> hard token pruning -> cross-distillation -> int8 -> bundle.

Every stage is cached under `<cache>/<stage>-<hash of its inputs>/`, so a rerun skips finished work and an
interrupted training run resumes from its checkpoint. The shipped recipe and its ablations (one-way KD, no
mutual interplay, static student, no pruning) share corpus and targets and train for the same steps at the
same byte budget, so the report compares like with like, teacher included, from one run.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from model_store import corpus as corpus_mod
from model_store.build_config import BuildConfig, DistillConfig, PruneConfig, StudentConfig
from model_store.data import data_file, load_glue, load_sts
from model_store.eval_rank import RankEvalResult, TopKMetrics
from model_store.stage_cache import StageDir, input_hash

log = logging.getLogger("eibert.build")
SHIPPED = "shipped"


class Variant(BaseModel):
    name: str
    prune: PruneConfig
    student: StudentConfig
    distill: DistillConfig


class VariantResult(BaseModel):
    name: str
    params: int
    vocab: int
    embed_dim: int
    est_int8_bytes: int
    fp32_bytes: int
    int8_bytes: int
    sts_init: float  # before training (parameter integration alone)
    sts_fp32: float
    sts_int8: float
    module_bytes: dict[str, int]
    history: list[dict[str, float]]
    export_max_abs_diff: float
    export_min_cosine: float
    train_seconds: float
    rank: TopKMetrics | None = None  # MovieLens ranker on the int8 model (None when the build skips rank eval)


def _match_bytes(base: StudentConfig, vocab: int, target: int, **fixed: Any) -> StudentConfig:
    """The widest embedding that keeps the variant within the shipped student's estimated int8 bytes."""
    from model_store.student import Student

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
    from model_store.student import Student

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
            s = _match_bytes(cfg.student, cfg.prune.vocab_size, target, kind="static")
            out.append(shipped.model_copy(update={"name": name, "student": s}))
        elif name == "no_pruning":
            p = cfg.prune.model_copy(update={"enabled": False})
            s = _match_bytes(cfg.student, teacher_vocab, target)
            out.append(shipped.model_copy(update={"name": name, "prune": p, "student": s}))
        else:
            raise ValueError(f"unknown ablation {name!r}")
    return out


def _tokenize(tokenizer_path: Path, texts: list[str], max_length: int) -> list[np.ndarray]:
    from service.edge.encoder import load_tokenizer

    tok = load_tokenizer(tokenizer_path, max_length)
    tok.no_padding()
    return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts)]


def _labelled(tokenizer_path: Path, max_length: int, index: dict[str, int]):
    sts = load_sts(data_file("stsb", "sts-train.csv.gz"))
    para_rows = [r for r in load_glue("QQP") + load_glue("MRPC") if r.label == "1" and r.text_b]
    a = _tokenize(tokenizer_path, [p.sentence1 for p in sts], max_length)
    b = _tokenize(tokenizer_path, [p.sentence2 for p in sts], max_length)
    key = corpus_mod._key
    sts_rows = [
        (a[i], b[i], p.score, index.get(key(p.sentence1), -1), index.get(key(p.sentence2), -1))
        for i, p in enumerate(sts)
    ]
    pa = _tokenize(tokenizer_path, [r.text_a for r in para_rows], max_length)
    pb = _tokenize(tokenizer_path, [r.text_b or "" for r in para_rows], max_length)
    return sts_rows, list(zip(pa, pb, strict=True))


PAIR_MAX_TOKENS = 48  # longer pairs (QNLI passages) would cost a wide padded forward for little STS signal


def _related_pairs(index: dict[str, int], ids: list[np.ndarray]) -> list[tuple[int, int]]:
    """Sentence pairs of the shared data (STS-B train, every GLUE pair task, labels ignored) whose two sides
    are both short training sentences: unlabelled, they only tell pair distillation which sentences to compare."""
    key = corpus_mod._key
    raw = [(p.sentence1, p.sentence2) for p in load_sts(data_file("stsb", "sts-train.csv.gz"))]
    for task in ("QQP", "MRPC", "RTE", "QNLI", "WNLI"):
        raw += [(r.text_a, r.text_b) for r in corpus_mod.glue_rows(task) if r.text_b]
    pairs = {(index[key(a)], index[key(b)]) for a, b in raw if key(a) in index and key(b) in index}
    return sorted((a, b) for a, b in pairs if a != b and max(len(ids[a]), len(ids[b])) <= PAIR_MAX_TOKENS)


class Builder:
    def __init__(
        self,
        cfg: BuildConfig,
        out: Path,
        cache: Path,
        command: str,
        sts_dev: Path,
        *,
        resume: bool = True,
        rank_data: Path | None = None,
    ) -> None:
        self.cfg, self.out, self.cache, self.command, self.sts_dev = cfg, out, cache, command, sts_dev
        self.rank_data = rank_data  # MovieLens directory (movies, ratings, tags); None = no rank evaluation
        self.resume = resume
        self.timings: dict[str, float] = {}
        self.dev_pairs = load_sts(sts_dev)

    def _timed(self, name: str, t0: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 1)

    # -- stages -----------------------------------------------------------------------------------------
    def stage_corpus(self) -> tuple[StageDir, corpus_mod.Corpus]:
        t0 = time.perf_counter()
        st = StageDir(self.cache, "corpus", input_hash(self.cfg.corpus))
        if not st.done:
            c = corpus_mod.collect(self.cfg.corpus)
            corpus_mod.save(c, st.path / "corpus.json")
            from model_store.teacher import teacher_dir
            from service.edge.encoder import load_tokenizer

            tok = load_tokenizer(teacher_dir() / "tokenizer.json", 100_000)
            tok.no_padding()
            n_tokens = sum(len(e.ids) for e in tok.encode_batch(c.train))
            st.finish({"train": len(c.train), "heldout": len(c.heldout), "tokens": n_tokens, "sources": c.sources})
        self._timed("corpus", t0)
        return st, corpus_mod.load(st.path / "corpus.json")

    def stage_targets(self, corpus_st: StageDir, c: corpus_mod.Corpus) -> StageDir:
        from model_store.targets import compute_targets

        t0 = time.perf_counter()
        st = StageDir(self.cache, "targets", input_hash(corpus_st.key, self.cfg.targets))
        if not st.done:
            compute_targets(
                c.train + c.heldout, self.cfg.targets, st.path,
                threads=self.cfg.distill.threads, workers=self.cfg.workers,
            )  # fmt: skip
            st.finish({"sentences": len(c.train) + len(c.heldout), "dtype": "float16"})
        self._timed("targets", t0)
        return st

    def stage_prune(self, targets_st: StageDir, c: corpus_mod.Corpus, pcfg: PruneConfig) -> StageDir:
        from model_store import prune
        from model_store.student import teacher_static_vectors
        from model_store.targets import IMPORTANCE_FILE
        from model_store.teacher import teacher_dir

        t0 = time.perf_counter()
        st = StageDir(self.cache, "prune", input_hash(targets_st.key, pcfg))
        if not st.done:
            teacher_tok = teacher_dir() / "tokenizer.json"
            importance = np.load(targets_st.path / IMPORTANCE_FILE)
            tokens, old_ids, n_chars = prune.select_vocab(teacher_tok, importance, c.train, pcfg)
            prune.write_tokenizer(teacher_tok, tokens, st.path / "tokenizer.json")
            np.save(st.path / "old_ids.npy", old_ids)
            np.save(st.path / "static.npy", teacher_static_vectors(old_ids))
            stats = prune.prune_stats(teacher_tok, st.path / "tokenizer.json", c.heldout, n_chars)
            st.finish(stats.model_dump())
        self._timed("prune", t0)
        return st

    def train_variant(self, v: Variant, targets_st: StageDir, prune_st: StageDir, c: corpus_mod.Corpus):
        import torch

        from model_store.distill import TrainData, load_student, train, write_history
        from model_store.student import Student
        from model_store.targets import TARGETS_FILE

        st = StageDir(self.cache, f"train-{v.name}", input_hash(targets_st.key, prune_st.key, v.student, v.distill))
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
        index = {corpus_mod._key(t): i for i, t in enumerate(c.train)}
        sts_rows, para = _labelled(tok, v.student.max_length, index)
        ids = _tokenize(tok, c.train, v.student.max_length)
        pairs = _related_pairs(index, ids) if v.distill.w_pair > 0 else []
        domain = corpus_mod.catalogue_indices(self.cfg.corpus, c) if v.distill.domain_batch > 0 else []
        data = TrainData(
            ids=ids,
            targets=targets[:n],
            heldout_ids=_tokenize(tok, c.heldout, v.student.max_length),
            heldout_targets=targets[n:],
            sts=sts_rows,
            para=para,
            pairs=pairs,
            domain=domain,
        )
        history = train(student, data, v.distill, st.path, desc=f"distill {v.name}")
        write_history(history, st.path / "history.json")
        seconds = time.perf_counter() - t0
        st.finish({"train_seconds": round(seconds, 1), **init_info})
        self._timed(f"train:{v.name}", t0)
        return st, student, st.summary()

    def evaluate_variant(self, v: Variant, train_st: StageDir, prune_st: StageDir, student) -> VariantResult:
        import torch

        from model_store.export import export_onnx
        from model_store.quantize import GROUPS, quantize_groups
        from model_store.student import Student, module_bytes

        t0 = time.perf_counter()
        work = train_st.path / "onnx"
        work.mkdir(exist_ok=True)
        fp32 = export_onnx(student, work / "model.fp32.onnx", vocab_size=student.vocab_size)
        diff, cos = self.export_check(student, fp32, prune_st.path / "tokenizer.json")
        int8 = quantize_groups(fp32, work / "model.int8.onnx", list(GROUPS), self.cfg.quantize)
        int8_encoder = self._onnx_encoder(int8, prune_st.path / "tokenizer.json", v)  # one session, both scores
        init = Student(v.student, student.vocab_size)
        init.load_state_dict(torch.load(train_st.path / "init.pt"))
        init_onnx = export_onnx(init.eval(), work / "model.init.onnx", vocab_size=student.vocab_size)
        history = json.loads((train_st.path / "history.json").read_text())
        result = VariantResult(
            name=v.name,
            params=student.num_params(),
            vocab=student.vocab_size,
            embed_dim=v.student.embed_dim,
            est_int8_bytes=student.estimated_int8_bytes(),
            fp32_bytes=fp32.stat().st_size,
            int8_bytes=int8.stat().st_size,
            sts_init=self.score(init_onnx, prune_st.path / "tokenizer.json", v),
            sts_fp32=self.score(fp32, prune_st.path / "tokenizer.json", v),
            sts_int8=self.sts(int8_encoder),
            rank=r.ranker if (r := self.rank_result(int8_encoder)) else None,
            module_bytes=module_bytes(student),
            history=history,
            export_max_abs_diff=diff,
            export_min_cosine=cos,
            train_seconds=train_st.summary().get("train_seconds", 0.0),
        )
        self._timed(f"evaluate:{v.name}", t0)
        return result

    def train_in_parallel(self, todo: list[Variant]) -> None:
        """Train the variants in `workers` processes; results land in the stage cache for the caller to load."""
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        t0 = time.perf_counter()
        args = (self.cfg, self.out, self.cache, self.command, self.sts_dev, self.resume)
        with ProcessPoolExecutor(self.cfg.workers, mp_context=mp.get_context("spawn")) as pool:
            jobs = [pool.submit(_train_one, *args, v) for v in todo]
            for job in jobs:
                job.result()
        self._timed("train:parallel", t0)

    # -- helpers ----------------------------------------------------------------------------------------
    def _onnx_encoder(self, model_path: Path, tokenizer: Path, v: Variant):
        """An ONNX graph behind the edge runtime, as devices run it (a throwaway bundle around it)."""
        from model_store.export import write_bundle
        from service.edge.encoder import OnnxEncoder

        d = model_path.parent / f"bundle-{model_path.stem}"
        write_bundle(
            d, model_onnx=model_path, tokenizer_json=tokenizer, name="candidate", version="0",
            dim=v.student.out_dim, max_length=v.student.max_length, teacher="", build={},
        )  # fmt: skip
        return OnnxEncoder(d, threads=self.cfg.distill.threads)

    def score(self, model_path: Path, tokenizer: Path, v: Variant) -> float:
        """STS-B dev Spearman of an ONNX graph through the edge runtime."""
        return self.sts(self._onnx_encoder(model_path, tokenizer, v))

    def sts(self, encoder) -> float:
        from model_store.eval_sts import evaluate_sts

        return evaluate_sts(encoder, self.dev_pairs).spearman

    def rank_result(self, encoder) -> RankEvalResult | None:
        """`eibert eval rank` on `--rank-data` (the shared data's layout: movies/ratings/tags.csv.gz)."""
        from model_store.eval_rank import evaluate_rank

        if self.rank_data is None:
            return None
        d = self.rank_data
        return evaluate_rank(encoder, d / "movies.csv.gz", d / "ratings.csv.gz", d / "tags.csv.gz")

    def export_check(self, student, fp32: Path, tokenizer: Path) -> tuple[float, float]:
        """Max |difference| and min cosine between PyTorch and onnxruntime on 256 dev sentences."""
        import torch

        from model_store.distill import pad
        from service.edge.encoder import OnnxEncoder

        texts = sorted({p.sentence1 for p in self.dev_pairs})[:256]
        ids = _tokenize(tokenizer, texts, student.cfg.max_length)
        with torch.no_grad():
            ref = np.vstack([student(*pad([x])).numpy() for x in ids])
        d = fp32.parent / "bundle-export-check"
        from model_store.export import write_bundle

        write_bundle(
            d, model_onnx=fp32, tokenizer_json=tokenizer, name="check", version="0", dim=student.cfg.out_dim,
            max_length=student.cfg.max_length, teacher="", build={},
        )  # fmt: skip
        got = OnnxEncoder(d).encode(texts, batch_size=32)
        return float(np.abs(got - ref).max()), float((got * ref).sum(axis=1).min())

    # -- the whole build --------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        from model_store.eval_sts import evaluate_sts
        from model_store.teacher import TEACHER_NAME, TeacherEncoder

        started = time.perf_counter()
        corpus_st, c = self.stage_corpus()
        targets_st = self.stage_targets(corpus_st, c)
        prune_cache: dict[str, StageDir] = {}
        results: dict[str, VariantResult] = {}
        shipped_parts = None
        all_variants = variants(self.cfg, teacher_vocab=30522)
        for v in all_variants:
            pkey = input_hash(v.prune)
            if pkey not in prune_cache:
                prune_cache[pkey] = self.stage_prune(targets_st, c, v.prune)
        if self.cfg.workers > 1:
            self.train_in_parallel(all_variants)
        for v in all_variants:
            prune_st = prune_cache[input_hash(v.prune)]
            train_st, student, _ = self.train_variant(v, targets_st, prune_st, c)
            results[v.name] = self.evaluate_variant(v, train_st, prune_st, student)
            if v.name == SHIPPED:
                shipped_parts = (v, train_st, prune_st)
        assert shipped_parts is not None
        v, train_st, prune_st = shipped_parts

        from model_store.quantize import modulewise

        t0 = time.perf_counter()
        tok = prune_st.path / "tokenizer.json"
        qwork = train_st.path / "quantize"
        qwork.mkdir(exist_ok=True)
        final, qres = modulewise(
            train_st.path / "onnx" / "model.fp32.onnx",
            qwork,
            lambda p: self.score(p, tok, v),
            self.cfg.quantize,
            self.cfg.size_budget_bytes,
        )
        self._timed("quantize", t0)

        t0 = time.perf_counter()
        teacher = TeacherEncoder(threads=self.cfg.distill.threads)
        teacher_sts = evaluate_sts(teacher, self.dev_pairs).spearman
        teacher_rank = self.rank_result(teacher)
        self._timed("teacher-eval", t0)
        t0 = time.perf_counter()
        shipped_rank = self.rank_result(self._onnx_encoder(final, tok, v))
        self._timed("rank-eval", t0)

        self.timings["total"] = round(time.perf_counter() - started, 1)
        metrics = {
            "sts_dev_spearman": qres.sts,
            "sts_dev_spearman_fp32": qres.fp32_sts,
            "teacher_sts_dev_spearman": teacher_sts,
            "sts_retention": round(qres.sts / teacher_sts, 4),
            **_rank_metrics(shipped_rank, teacher_rank, self.rank_data),
            "model_onnx_bytes": qres.bytes,
            "size_budget_bytes": self.cfg.size_budget_bytes,
            "params": results[SHIPPED].params,
            "quantization": qres.model_dump(),
            "prune": prune_st.summary(),
            "ablations": {
                k: {kk: vv for kk, vv in r.model_dump().items() if kk != "history"} for k, r in results.items()
            },
            "export_check": {
                "max_abs_diff": results[SHIPPED].export_max_abs_diff,
                "min_cosine": results[SHIPPED].export_min_cosine,
            },
            "eval_data": str(self.sts_dev),
            "timings_s": self.timings,
        }
        from model_store.export import write_bundle

        manifest = write_bundle(
            self.out,
            model_onnx=final,
            tokenizer_json=tok,
            name=self.cfg.name,
            version=self.cfg.version,
            dim=v.student.out_dim,
            max_length=v.student.max_length,
            teacher=TEACHER_NAME,
            build={
                "command": self.command,
                "config": self.cfg.model_dump(mode="json"),
                "corpus": corpus_st.summary(),
                "data_root": str(data_file()),
                "student": {"params": results[SHIPPED].params, "module_bytes": results[SHIPPED].module_bytes},
            },
            metrics=metrics,
        )
        metrics["bundle_gzip_bytes"] = bundle_gzip_bytes(self.out)
        from model_store.report import write_report

        write_report(self.out, manifest.model_dump(), results, qres, teacher_sts, corpus_st.summary(), metrics)
        return metrics


def _rank_metrics(student: RankEvalResult | None, teacher: RankEvalResult | None, data: Path | None) -> dict:
    """Manifest fields for `eibert eval rank` figures measured in the build (empty when it skipped them)."""
    if student is None or teacher is None:
        return {}
    return {
        "rank": student.to_json_dict(),
        "teacher_rank": teacher.to_json_dict(),
        "rank_ndcg_retention": round(student.ranker.ndcg / teacher.ranker.ndcg, 4) if teacher.ranker.ndcg else None,
        "rank_eval_data": str(data),
    }


def _train_one(cfg: BuildConfig, out: Path, cache: Path, command: str, sts_dev: Path, resume: bool, v: Variant) -> None:
    """One variant's training in a worker process: earlier stages are cached, so they only load here."""
    b = Builder(cfg, out, cache, command, sts_dev, resume=resume)
    corpus_st, c = b.stage_corpus()
    targets_st = b.stage_targets(corpus_st, c)
    b.train_variant(v, targets_st, b.stage_prune(targets_st, c, v.prune), c)


def bundle_gzip_bytes(bundle: Path) -> int:
    from service.common.archive import pack_bundle

    return len(pack_bundle(bundle))


def cmd_build(args) -> int:
    cfg = BuildConfig.from_toml(args.config)
    if args.quick:
        cfg = cfg.quick()
    if args.skip_ablations:  # the shipped variant's cache key does not depend on the ablation list
        cfg = cfg.model_copy(update={"ablations": ()})
    out = Path(args.out)
    cache = Path(args.cache)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out} exists and is not empty; bundles are immutable (use a new version or --force)")
    command = "eibert " + " ".join(shlex.quote(a) for a in args.argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    sts_dev = Path(args.sts_data) if args.sts_data else data_file("stsb", "sts-dev.csv.gz")
    rank_data = None  # an explicit --rank-data wins; else the config decides (the quick preset skips it)
    if args.rank_data:
        rank_data = Path(args.rank_data)
    elif cfg.rank_eval:
        rank_data = data_file("movielens")
    missing = [n for n in ("movies", "ratings", "tags") if rank_data and not (rank_data / f"{n}.csv.gz").is_file()]
    if missing:  # fail before hours of training, not after
        raise FileNotFoundError(f"--rank-data {rank_data}: no {', '.join(f'{n}.csv.gz' for n in missing)}")
    metrics = Builder(cfg, out, cache, command, sts_dev, resume=args.resume, rank_data=rank_data).run()
    keys = ("sts_dev_spearman", "teacher_sts_dev_spearman", "sts_retention", "rank_ndcg_retention")
    summary = {k: metrics[k] for k in keys if k in metrics}
    print(json.dumps({"bundle": str(out), **summary, "model_onnx_bytes": metrics["model_onnx_bytes"]}))
    return 0

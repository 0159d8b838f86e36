"""Model admission: a candidate `model.onnx` is checked statically, then tried in a child process under a
memory limit and a timeout, before any long-lived process (the cloud, an edge node) loads it.

One implementation for both apps (the cloud registry on upload, the edge on every model that arrives by
update), so a bundle the cloud admitted is judged by the same rules on the device.

1. Static (`check_graph`, with the `onnx` package; nothing executes): file size, no external data (a graph
   may not make the loader read other files), no model-local functions, every operator in an allow-list that
   fits an encoder (control flow such as Loop/Scan/If is not in it), bounded node count and initializer
   bytes, and the contract's inputs and output. This refuses a Loop bomb at once and costs milliseconds.
   The tokenizer (`check_tokenizer`, on the parsed JSON): every component must be one a WordPiece BERT
   tokenizer needs (`TOKENIZER_COMPONENTS`): no `Split` or `Replace` with a regex from the bundle (a
   `(x+x+)+y` pattern took 4.3 s for one 1,839-character text), no other model than WordPiece.
2. Trial (`trial_run`): onnxruntime loads the graph with the edge's own options in a `spawn`ed child whose
   address space is capped (RLIMIT_AS, set in the child once its imports are done, so the limit is headroom
   above the runtime's own footprint) and which is killed when the wall-clock timeout expires. It runs two
   different short inputs, one at `max_length`, and the largest shape a node ever runs (MAX_RUN_ROWS texts
   at `max_length`: a graph whose cost grows with the batch, e.g. a ConstantOfShape of 8 x batch^4 floats,
   is 128 floats at a batch of 2 and 537 MB at 64), and checks shape (batch, dim), finiteness, and that the
   short inputs give different vectors (a graph that ignores its input is refused). In the same child, under
   the same limits, the bundle's tokenizer encodes `ADVERSARIAL_TEXTS` (long runs of one character, astral
   and CJK text, combining marks, whitespace, punctuation), each within `tokenize_ms`. Only a small verdict
   comes back over a pipe. An operator can be as cheap in the file as it is expensive to run
   (ConstantOfShape/Expand turn a 316-byte file into 2 GB at load): only running it, contained, tells.

The allow-list default is the union of the operators in every shipped bundle (`model_store/bundles/*`) and
the tiny test bundle (`tests/conftest.py`), all in the default ONNX domain; a test keeps it in step.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.connection
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.common.bounded_json import RANKER_MAX_BYTES, TOKENIZER_MAX_BYTES, load_bounded
from service.common.contract import (
    MAX_RUN_ROWS,
    MAX_TEXT_CHARS,
    MODEL_FILE,
    RANKER_FILE,
    TOKENIZER_FILE,
    check_contract,
    run_contract,
)
from service.common.errors import BundleError
from service.common.manifest import Manifest, verify_bundle

MIB = 1024 * 1024
DEFAULT_ALLOWED_OPS = frozenset(
    {
        # shipped int8 bundles
        "Add", "Cast", "Clip", "Concat", "Constant", "DequantizeLinear", "Div", "DynamicQuantizeLinear", "Erf",
        "Expand", "Gather", "LayerNormalization", "MatMul", "MatMulInteger", "Mul", "Range", "ReduceL2",
        "ReduceSum", "Reshape", "Shape", "Softmax", "Split", "Squeeze", "Sub", "Transpose", "Unsqueeze",
        # the float tiny test bundle adds these (and Identity: exports made before `model_store.export` folded
        # weight-feeding Identity nodes carry it; a pass-through)
        "And", "ConstantOfShape", "Equal", "Flatten", "GatherElements", "GreaterOrEqual", "Identity", "IsNaN",
        "Slice", "Where",
    }
)  # fmt: skip
_DEFAULT_DOMAINS = ("", "ai.onnx")
# What a WordPiece BERT tokenizer is made of, by `type`, per component of tokenizer.json (None: absent is
# fine). Nothing here takes a pattern from the bundle; `Sequence` is checked member by member.
TOKENIZER_COMPONENTS: dict[str, frozenset[str]] = {
    "normalizer": frozenset({"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Sequence"}),
    "pre_tokenizer": frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Punctuation", "Digits",
                                "Sequence"}),
    "model": frozenset({"WordPiece"}),
    "post_processor": frozenset({"TemplateProcessing", "BertProcessing"}),
    "decoder": frozenset({"WordPiece"}),
}  # fmt: skip
_SEQUENCE_MEMBERS = {"normalizer": "normalizers", "pre_tokenizer": "pretokenizers"}
MAX_WORDPIECE_CHARS = 512  # WordPiece's max_input_chars_per_word (BERT: 100); its longest-match is quadratic in it
# Texts the trial tokenises: each is MAX_TEXT_CHARS long (what the edge accepts per text) and stresses one
# part of the pipeline (one endless word, astral and CJK characters, combining marks, whitespace, punctuation).
ADVERSARIAL_TEXTS = (
    "x" * (MAX_TEXT_CHARS - 1) + "y",
    "xy" * (MAX_TEXT_CHARS // 2),
    "\U0001f600" * MAX_TEXT_CHARS,
    "\u4e2d" * MAX_TEXT_CHARS,
    "a" + "\u0301" * (MAX_TEXT_CHARS - 1),
    " \t\n" * (MAX_TEXT_CHARS // 3),
    "!?" * (MAX_TEXT_CHARS // 2),
    "1" * MAX_TEXT_CHARS,
    ("lorem ipsum " * MAX_TEXT_CHARS)[:MAX_TEXT_CHARS],
)
_DISTINCT_ATOL = 1e-4  # rows of L2-normalised vectors closer than this everywhere count as "the same vector"


class AdmissionLimits(BaseModel):
    """Budgets a candidate model must fit. Set on either app as JSON, e.g.
    `EIBERT_CLOUD_ADMISSION='{"timeout_s": 10}'` or `EIBERT_EDGE_ADMISSION='{"memory_mib": 512}'`.

    `allowed_ops` holds op types of the default ONNX domain; an op of another domain is written
    `domain:OpType` (e.g. `com.microsoft:Attention`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_ops: frozenset[str] = DEFAULT_ALLOWED_OPS
    max_model_bytes: int = Field(default=64 * MIB, gt=0)  # model.onnx file, checked before it is parsed
    max_nodes: int = Field(default=4096, gt=0)  # shipped: 216, tiny test bundle: 351
    max_initializer_bytes: int = Field(default=64 * MIB, gt=0)  # initializers + Constant tensors, serialized
    memory_mib: int = Field(default=512, ge=16)  # trial child's address space above its imports
    timeout_s: float = Field(default=60.0, gt=0, le=3600)  # trial child's wall clock, spawn included
    threads: int = Field(default=1, ge=1, le=64)  # onnxruntime intra-op threads in the trial
    # the slowest the trial may tokenise one adversarial text (shipped tokenizers: ~1 ms); the trial also
    # tokenises MAX_RUN_ROWS of them at once within MAX_RUN_ROWS x this
    tokenize_ms: float = Field(default=200.0, gt=0, le=60_000)


def _op_key(domain: str, op_type: str) -> str:
    return op_type if domain in _DEFAULT_DOMAINS else f"{domain}:{op_type}"


def _attribute_payloads(node: Any) -> tuple[list[Any], list[Any]]:
    """The tensors and subgraphs held in a node's attributes."""
    tensors: list[Any] = []
    graphs: list[Any] = []
    for attr in node.attribute:
        if attr.HasField("t"):
            tensors.append(attr.t)
        if attr.HasField("sparse_tensor"):
            tensors.append(attr.sparse_tensor)
        tensors.extend(attr.tensors)
        tensors.extend(attr.sparse_tensors)
        if attr.HasField("g"):
            graphs.append(attr.g)
        graphs.extend(attr.graphs)
    return tensors, graphs


def _is_external(tensor: Any) -> bool:
    import onnx

    dense = tensor.values if isinstance(tensor, onnx.SparseTensorProto) else tensor
    return dense.data_location == onnx.TensorProto.EXTERNAL or len(dense.external_data) > 0


def check_graph(path: Path, limits: AdmissionLimits) -> None:
    """Static checks of `model.onnx`; raise BundleError naming the first limit it breaks. Nothing executes."""
    import onnx

    size = Path(path).stat().st_size
    if size > limits.max_model_bytes:
        raise BundleError(f"{MODEL_FILE} is {size:,} bytes; the admission limit is {limits.max_model_bytes:,}")
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors share no useful base class
        raise BundleError(f"{MODEL_FILE} is not a readable ONNX model: {str(exc)[:200]}") from exc
    if len(model.functions):
        raise BundleError(f"{MODEL_FILE} defines model-local functions; admission refuses them")
    nodes, tensor_bytes = 0, 0
    refused: set[str] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors = [*graph.initializer, *graph.sparse_initializer]
        for node in graph.node:
            nodes += 1
            key = _op_key(node.domain, node.op_type)
            if key not in limits.allowed_ops:
                refused.add(key)
            held, subgraphs = _attribute_payloads(node)
            tensors.extend(held)
            graphs.extend(subgraphs)
        for tensor in tensors:
            if _is_external(tensor):
                raise BundleError(f"{MODEL_FILE} refers to external tensor data; admission refuses it")
            tensor_bytes += tensor.ByteSize()
    if refused:
        raise BundleError(
            f"{MODEL_FILE} uses operators outside the admission allow-list: {', '.join(sorted(refused))} "
            "(control flow such as Loop, Scan and If is not allowed unless allow-listed)"
        )
    if nodes > limits.max_nodes:
        raise BundleError(f"{MODEL_FILE} has {nodes:,} nodes; the admission limit is {limits.max_nodes:,}")
    if tensor_bytes > limits.max_initializer_bytes:
        raise BundleError(
            f"{MODEL_FILE} holds {tensor_bytes:,} bytes of initializers; the admission limit is "
            f"{limits.max_initializer_bytes:,}"
        )
    initializers = {t.name for t in model.graph.initializer}
    inputs = (i.name for i in model.graph.input if i.name not in initializers)
    check_contract(inputs, (o.name for o in model.graph.output), where=MODEL_FILE)


def check_tokenizer(tokenizer: Any) -> None:
    """BundleError unless every component of tokenizer.json is in TOKENIZER_COMPONENTS (see the module
    docstring); nothing executes."""
    if not isinstance(tokenizer, dict):
        raise BundleError(f"{TOKENIZER_FILE} is not a JSON object")
    for part, allowed in TOKENIZER_COMPONENTS.items():
        component = tokenizer.get(part)
        if component is None and part != "model":
            continue
        members = [component]
        while members:
            member = members.pop()
            kind = member.get("type") if isinstance(member, dict) else None
            if kind not in allowed:
                raise BundleError(
                    f"{TOKENIZER_FILE}: {part} {kind!r} is not one a WordPiece BERT tokenizer needs; admission "
                    f"allows {', '.join(sorted(allowed))}"
                )
            if kind == "Sequence":
                nested = member.get(_SEQUENCE_MEMBERS.get(part, ""))
                if not isinstance(nested, list):
                    raise BundleError(f"{TOKENIZER_FILE}: {part} Sequence lists no members")
                members.extend(nested)
    chars = tokenizer["model"].get("max_input_chars_per_word", 100)
    if not isinstance(chars, int) or not 1 <= chars <= MAX_WORDPIECE_CHARS:
        raise BundleError(
            f"{TOKENIZER_FILE}: WordPiece max_input_chars_per_word is {chars!r}; admission allows 1 to "
            f"{MAX_WORDPIECE_CHARS}"
        )


def tokenizer_vocab_size(tokenizer: Any) -> int:
    """How many token ids the tokenizer can emit (its model's vocabulary plus added tokens)."""
    model = tokenizer.get("model") if isinstance(tokenizer, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    size = len(vocab) if isinstance(vocab, dict | list) else 0
    added = tokenizer.get("added_tokens") if isinstance(tokenizer, dict) else None
    ids = [t.get("id") for t in added if isinstance(t, dict)] if isinstance(added, list) else []
    return max([size, *(i + 1 for i in ids if isinstance(i, int) and i >= 0)], default=0)


def _vm_bytes() -> int:
    """This process's address-space size (what RLIMIT_AS limits), from /proc; 0 where there is none."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    import resource

    return pages * resource.getpagesize()


def _trial_child(
    conn: multiprocessing.connection.Connection,
    model_path: str,
    tokenizer_path: str | None,
    dim: int,
    max_length: int,
    vocab_size: int,
    memory_bytes: int,
    cpu_seconds: int,
    threads: int,
    tokenize_ms: float,
) -> None:
    """Child process: import, cap the address space, load, run; send ("ok"|"memory"|"error", message)."""
    try:
        import resource

        import numpy as np
        import onnxruntime as ort

        footprint = _vm_bytes()
        if footprint:  # Linux; elsewhere (no /proc) RLIMIT_AS is not enforced anyway and only the fences below hold
            resource.setrlimit(resource.RLIMIT_AS, (footprint + memory_bytes, footprint + memory_bytes))
        # CPU seconds as a second fence: should the parent die before killing it, the kernel still stops it.
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 2))
        verdict = _trial(np, ort, model_path, dim, max_length, vocab_size, threads)
        if tokenizer_path is not None:
            verdict += "; " + _tokenizer_trial(tokenizer_path, max_length, tokenize_ms)
        conn.send(("ok", verdict))
    except MemoryError:
        conn.send(("memory", "out of memory"))
    except Exception as exc:  # onnxruntime's errors are untyped; report any failure, never hang the parent
        message = str(exc)[:300]
        lowered = message.lower()
        kind = "memory" if "alloc" in lowered or "memory" in lowered else "error"
        conn.send((kind, message))
    finally:
        conn.close()


def _trial(np: Any, ort: Any, model_path: str, dim: int, max_length: int, vocab_size: int, threads: int) -> str:
    """Load with the edge's session options and check three inputs; raise ValueError when the output is wrong."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the edge loads it
    opts.log_severity_level = 4  # fatal only: a failure comes back in the verdict, not on the parent's stderr
    t0 = time.perf_counter()
    session = ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1000
    rng = np.random.default_rng(0)
    rows = []
    for batch, width in ((2, 4), (1, max_length), (MAX_RUN_ROWS, max_length)):  # the last: the largest served
        ids = rng.integers(0, vocab_size, size=(batch, width), dtype=np.int64)
        emb = run_contract(session, ids, np.ones((batch, width), dtype=np.int64))
        if emb.shape != (batch, dim):
            raise ValueError(f"returns shape {emb.shape} for {batch} input(s) of {width} tokens; want ({batch}, {dim})")
        if not np.isfinite(emb).all():
            raise ValueError(f"returns non-finite values for {batch} input(s) of {width} tokens")
        if batch < MAX_RUN_ROWS:
            rows.extend(emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12))
    for i in range(len(rows)):
        for j in range(i):
            if np.allclose(rows[i], rows[j], atol=_DISTINCT_ATOL, rtol=0):
                raise ValueError("returns the same vector for different inputs")
    return f"loaded in {load_ms:.0f} ms"


def _tokenizer_trial(tokenizer_path: str, max_length: int, tokenize_ms: float) -> str:
    """Tokenise ADVERSARIAL_TEXTS one by one, then MAX_RUN_ROWS of them at once, as the edge loads the
    tokenizer (truncated to max_length); ValueError naming the slowest past the budget."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(Path(tokenizer_path).read_text(encoding="utf-8"))
    tok.enable_truncation(max_length=max_length)
    slowest = 0.0
    for text in ADVERSARIAL_TEXTS:
        t0 = time.perf_counter()
        tok.encode(text, add_special_tokens=True)
        ms = (time.perf_counter() - t0) * 1000
        if ms > tokenize_ms:
            raise ValueError(
                f"{TOKENIZER_FILE} took {ms:.0f} ms for one {len(text):,}-character text ({text[:12]!r}...); "
                f"the admission limit is {tokenize_ms:g} ms"
            )
        slowest = max(slowest, ms)
    batch = [ADVERSARIAL_TEXTS[i % len(ADVERSARIAL_TEXTS)] for i in range(MAX_RUN_ROWS)]
    t0 = time.perf_counter()
    tok.encode_batch(batch, add_special_tokens=True)
    ms = (time.perf_counter() - t0) * 1000
    if ms > tokenize_ms * MAX_RUN_ROWS:
        raise ValueError(f"{TOKENIZER_FILE} took {ms:.0f} ms for {MAX_RUN_ROWS} adversarial texts at once")
    return f"slowest adversarial text tokenised in {slowest:.1f} ms"


def trial_run(
    path: Path,
    *,
    dim: int,
    max_length: int,
    vocab_size: int,
    limits: AdmissionLimits,
    tokenizer: Path | None = None,
) -> str:
    """Load and run `model.onnx` (and tokenise with `tokenizer`, if given) in a spawned child under `limits`;
    raise BundleError naming the limit hit."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    memory_bytes = limits.memory_mib * MIB
    cpu_seconds = math.ceil(limits.timeout_s * limits.threads) + 1
    proc = ctx.Process(
        target=_trial_child,
        args=(
            sender,
            str(path),
            None if tokenizer is None else str(tokenizer),
            dim,
            max_length,
            vocab_size,
            memory_bytes,
            cpu_seconds,
            limits.threads,
            limits.tokenize_ms,
        ),
        name="eibert-model-trial",
        daemon=True,
    )
    proc.start()
    sender.close()  # the child holds the only writer: its exit reads as EOF here
    verdict: tuple[str, str] | None = None
    try:
        if receiver.poll(limits.timeout_s):
            try:
                verdict = receiver.recv()
            except EOFError:
                verdict = None
        else:
            raise BundleError(
                f"{MODEL_FILE} trial load + inference did not finish within the {limits.timeout_s:g} s "
                "admission time limit (the trial was killed)"
            )
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        receiver.close()
    if verdict is None:
        raise BundleError(
            f"{MODEL_FILE} trial process died (exit code {proc.exitcode}) within the {limits.memory_mib} MiB "
            "admission memory limit; the model does not load safely"
        )
    kind, message = verdict
    if kind == "memory":
        raise BundleError(
            f"{MODEL_FILE} exceeds the {limits.memory_mib} MiB admission memory limit at load or inference ({message})"
        )
    if kind != "ok":
        raise BundleError(f"{MODEL_FILE} fails the admission trial: {message}")
    return message


def admit_bundle(bundle_dir: Path, limits: AdmissionLimits) -> Manifest:
    """Every admission check of an unpacked bundle: files match the manifest, tokenizer.json is bounded JSON,
    the graph passes `check_graph` and `trial_run`. Blocking (seconds): call it from a worker thread."""
    bundle_dir = Path(bundle_dir)
    manifest = verify_bundle(bundle_dir)
    tokenizer = load_bounded(bundle_dir / TOKENIZER_FILE, max_bytes=TOKENIZER_MAX_BYTES)
    check_tokenizer(tokenizer)
    vocab_size = tokenizer_vocab_size(tokenizer)
    if vocab_size < 2:
        raise BundleError(f"{TOKENIZER_FILE} declares no vocabulary (model.vocab); admission needs one")
    if RANKER_FILE in manifest.files:  # its schema is the edge's to check (`service.edge.learned_ranker`)
        load_bounded(bundle_dir / RANKER_FILE, max_bytes=RANKER_MAX_BYTES)
    check_graph(bundle_dir / MODEL_FILE, limits)
    trial_run(
        bundle_dir / MODEL_FILE,
        dim=manifest.dim,
        max_length=manifest.max_length,
        vocab_size=vocab_size,
        limits=limits,
        tokenizer=bundle_dir / TOKENIZER_FILE,
    )
    return manifest

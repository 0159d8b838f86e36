"""Model admission: static checks with `onnx`, then a trial in a child process under memory and time limits.

Every bomb is generated here (tests/common/model_bombs.py); the real shipped bundles must pass the defaults.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import onnx
import pytest
from onnx import helper

from service.common.contract import MAX_RUN_ROWS, MAX_TEXT_CHARS
from service.common.errors import BundleError
from service.common.model_admission import (
    DEFAULT_ALLOWED_OPS,
    AdmissionLimits,
    admit_bundle,
    check_graph,
    check_tokenizer,
    tokenizer_vocab_size,
    trial_run,
)
from service.edge.encoder import DEFAULT_BATCH_SIZE, OnnxEncoder
from service.edge.schemas import MAX_TEXT_CHARS as EDGE_MAX_TEXT_CHARS
from tests.common.model_bombs import (
    batch_bomb,
    bundle_with_model,
    bundle_with_tokenizer,
    hostile_tokenizer,
    loop_bomb,
    memory_bomb,
)
from tests.conftest import TINY_DIM
from tests.rss import peak_rss_growth

SHIPPED = sorted(p for p in (Path(__file__).parents[2] / "model_store" / "bundles").iterdir() if p.is_dir())
FAST = AdmissionLimits(timeout_s=60)


def _ops(path: Path) -> set[str]:
    model = onnx.load(str(path), load_external_data=False)
    return {n.op_type for n in model.graph.node}


@pytest.mark.parametrize("bundle", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_bundle_is_admitted_under_the_default_limits(bundle: Path) -> None:
    assert admit_bundle(bundle, AdmissionLimits()).release_id == bundle.name


def test_the_tiny_test_bundle_is_admitted(tiny_bundle: Path) -> None:
    assert admit_bundle(tiny_bundle, AdmissionLimits()).name == "tiny"


def test_the_default_allow_list_is_the_operators_of_the_shipped_and_test_bundles(tiny_bundle: Path) -> None:
    used = set().union(*(_ops(b / "model.onnx") for b in [*SHIPPED, tiny_bundle]))
    used.add("Identity")  # exports made before the exporter folded weight-feeding Identity nodes still load
    assert used == DEFAULT_ALLOWED_OPS, (used - DEFAULT_ALLOWED_OPS, DEFAULT_ALLOWED_OPS - used)
    assert not {"Loop", "Scan", "If"} & DEFAULT_ALLOWED_OPS


# -- static -------------------------------------------------------------------------------------------------


def test_a_loop_is_refused_statically_by_default(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    with pytest.raises(BundleError, match="outside the admission allow-list: Loop"):
        check_graph(loop_bomb(tmp_path / "m.onnx", TINY_DIM), AdmissionLimits())
    assert time.perf_counter() - t0 < 5


def test_operators_of_other_domains_need_a_qualified_allow_list_entry(tmp_path: Path) -> None:
    model = onnx.load(str(memory_bomb(tmp_path / "m.onnx", TINY_DIM, elements=4)))
    model.graph.node[2].domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(BundleError, match=r"com\.microsoft:ReduceSum"):
        check_graph(tmp_path / "m.onnx", AdmissionLimits())
    check_graph(tmp_path / "m.onnx", AdmissionLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {"com.microsoft:ReduceSum"}))


def test_external_tensor_data_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    model = onnx.load(str(tiny_bundle / "model.onnx"))
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="weights.bin")
    with pytest.raises(BundleError, match="external tensor data"):
        check_graph(tmp_path / "m.onnx", AdmissionLimits())


def test_model_local_functions_are_refused(tmp_path: Path) -> None:
    model = onnx.load(str(memory_bomb(tmp_path / "m.onnx", TINY_DIM, elements=4)))
    fn = helper.make_function("local", "Twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])], [])
    model.functions.append(fn)
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(BundleError, match="model-local functions"):
        check_graph(tmp_path / "m.onnx", AdmissionLimits())


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (AdmissionLimits(max_nodes=100), "nodes; the admission limit is 100"),
        (AdmissionLimits(max_initializer_bytes=100_000), "bytes of initializers; the admission limit is 100,000"),
        (AdmissionLimits(max_model_bytes=100_000), "bytes; the admission limit is 100,000"),
    ],
    ids=["nodes", "initializers", "file"],
)
def test_graph_budgets(tiny_bundle: Path, limits: AdmissionLimits, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        check_graph(tiny_bundle / "model.onnx", limits)


def test_unreadable_and_off_contract_graphs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"definitely not a protobuf" * 10)
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        check_graph(tmp_path / "junk.onnx", AdmissionLimits())
    model = onnx.load(str(memory_bomb(tmp_path / "m.onnx", TINY_DIM, elements=4)))
    model.graph.input[1].name = "token_type_ids"
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(BundleError, match="the contract needs"):
        check_graph(tmp_path / "m.onnx", AdmissionLimits())


# -- trial in a child -----------------------------------------------------------------------------------------


def test_a_memory_bomb_is_refused_by_the_childs_memory_limit(tmp_path: Path) -> None:
    bomb = memory_bomb(tmp_path / "m.onnx", TINY_DIM)
    assert bomb.stat().st_size < 1000  # a few hundred bytes that ask for 2 GB
    check_graph(bomb, AdmissionLimits())  # statically it looks like an encoder: only running it tells
    with peak_rss_growth() as growth, pytest.raises(BundleError, match="512 MiB admission memory limit"):
        trial_run(bomb, dim=TINY_DIM, max_length=64, vocab_size=100, limits=AdmissionLimits())
    assert growth.mib < 200, f"the parent grew by {growth.mib:.0f} MiB"


def test_a_loop_bomb_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    limits = AdmissionLimits(allowed_ops=DEFAULT_ALLOWED_OPS | {"Loop"}, timeout_s=3)
    bomb = loop_bomb(tmp_path / "m.onnx", TINY_DIM)
    check_graph(bomb, limits)
    t0 = time.perf_counter()
    with pytest.raises(BundleError, match="within the 3 s admission time limit"):
        trial_run(bomb, dim=TINY_DIM, max_length=64, vocab_size=100, limits=limits)
    assert time.perf_counter() - t0 < 15


@pytest.mark.parametrize(
    ("fill", "dim", "message"),
    [
        (1.0, TINY_DIM, "same vector for different inputs"),
        (float("nan"), TINY_DIM, "non-finite"),
        (1.0, TINY_DIM // 2, f"want \\(2, {TINY_DIM}\\)"),
    ],
    ids=["constant", "nan", "wrong-dim"],
)
def test_the_trial_checks_what_the_graph_returns(tmp_path: Path, fill: float, dim: int, message: str) -> None:
    model = memory_bomb(tmp_path / "m.onnx", dim, elements=4, fill=fill)  # cheap: 4 elements, not 500 M
    with pytest.raises(BundleError, match=message):
        trial_run(model, dim=TINY_DIM, max_length=64, vocab_size=100, limits=FAST)


def test_the_trial_uses_ids_across_the_tokenizers_vocabulary(tiny_bundle: Path) -> None:
    """A model whose embedding table is smaller than the tokenizer's vocabulary fails on real text."""
    trial_run(tiny_bundle / "model.onnx", dim=TINY_DIM, max_length=64, vocab_size=30522, limits=FAST)
    with pytest.raises(BundleError, match="fails the admission trial"):
        trial_run(tiny_bundle / "model.onnx", dim=TINY_DIM, max_length=64, vocab_size=10**6, limits=FAST)


def test_admit_bundle_refuses_a_bomb_that_verifies(tiny_bundle: Path, tmp_path: Path) -> None:
    bundle = bundle_with_model(tiny_bundle, tmp_path / "b", lambda p: memory_bomb(p, TINY_DIM))
    with pytest.raises(BundleError, match="admission memory limit"):
        admit_bundle(bundle, AdmissionLimits())


def test_admit_bundle_refuses_a_deep_tokenizer(tiny_bundle: Path, tmp_path: Path) -> None:
    def deep_tokenizer(p: Path) -> None:
        p.write_bytes((tiny_bundle / "model.onnx").read_bytes())
        (p.parent / "tokenizer.json").write_text('{"model": ' + "[" * 5000 + "]" * 5000 + "}")

    bundle = bundle_with_model(tiny_bundle, tmp_path / "b", deep_tokenizer)
    with pytest.raises(BundleError, match="nests deeper than the limit"):
        admit_bundle(bundle, AdmissionLimits())


def test_tokenizer_vocab_size() -> None:
    assert tokenizer_vocab_size({"model": {"vocab": {"a": 0, "b": 1}}, "added_tokens": [{"id": 7}]}) == 8
    assert tokenizer_vocab_size({"model": {"vocab": [["a", 0.0]] * 5}}) == 5
    assert tokenizer_vocab_size(["not", "a", "tokenizer"]) == 0


def test_admit_bundle_needs_a_tokenizer_vocabulary(tiny_bundle: Path, tmp_path: Path) -> None:
    def no_vocab(p: Path) -> None:
        p.write_bytes((tiny_bundle / "model.onnx").read_bytes())
        (p.parent / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')

    with pytest.raises(BundleError, match="declares no vocabulary"):
        admit_bundle(bundle_with_model(tiny_bundle, tmp_path / "b", no_vocab), AdmissionLimits())


# -- the largest shape a node serves, and the tokenizer (issue 22) ---------------------------------------------


def test_a_model_whose_cost_grows_with_the_batch_is_refused_at_the_largest_batch_served(tmp_path: Path) -> None:
    """Issue 22: 128 floats at the old trial's batch of 2; one 64-text /v1/encode then grew the edge by 529 MB."""
    bomb = batch_bomb(tmp_path / "m.onnx", TINY_DIM, vocab_size=1000)
    check_graph(bomb, AdmissionLimits())
    with peak_rss_growth() as growth, pytest.raises(BundleError, match="512 MiB admission memory limit"):
        trial_run(bomb, dim=TINY_DIM, max_length=64, vocab_size=1000, limits=AdmissionLimits())
    assert growth.mib < 200, f"the parent grew by {growth.mib:.0f} MiB"
    assert MAX_RUN_ROWS == DEFAULT_BATCH_SIZE  # what the trial ran is the most an edge runs at once


def test_the_edge_runs_no_more_rows_at_once_than_admission_tried(tiny_bundle: Path) -> None:
    encoder = OnnxEncoder(tiny_bundle)
    shapes: list[tuple[int, ...]] = []
    run = encoder._run
    encoder._run = lambda ids, mask: (shapes.append(ids.shape), run(ids, mask))[1]  # type: ignore[method-assign]
    encoder.encode([f"text {i}" for i in range(3 * MAX_RUN_ROWS)], batch_size=10 * MAX_RUN_ROWS)
    assert max(s[0] for s in shapes) <= MAX_RUN_ROWS
    assert MAX_TEXT_CHARS == EDGE_MAX_TEXT_CHARS  # the adversarial texts are as long as the edge accepts


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: {**t, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(x+x+)+y"}}},
            "pre_tokenizer 'Split'",
        ),
        (lambda t: {**t, "normalizer": {"type": "Replace", "pattern": {"Regex": "a+"}, "content": ""}}, "'Replace'"),
        (lambda t: {**t, "model": {**t["model"], "type": "BPE"}}, "model 'BPE'"),
        (lambda t: {**t, "model": {**t["model"], "max_input_chars_per_word": 10**6}}, "max_input_chars_per_word"),
        (lambda t: {**t, "pre_tokenizer": {"type": "Sequence"}}, "Sequence lists no members"),
    ],
    ids=["split-regex", "replace-regex", "bpe", "wordpiece-chars", "empty-sequence"],
)
def test_tokenizer_components_outside_the_wordpiece_allow_list_are_refused(tiny_bundle: Path, edit, message) -> None:
    tokenizer = json.loads((tiny_bundle / "tokenizer.json").read_text())
    check_tokenizer(tokenizer)  # the real one passes
    with pytest.raises(BundleError, match=message):
        check_tokenizer(edit(tokenizer))


def test_a_regex_tokenizer_is_refused_at_admission_in_milliseconds(tiny_bundle: Path, tmp_path: Path) -> None:
    """Issue 22: a `Split` on `(x+x+)+y` was admitted; one 1,839-character text then took 4.3 s to tokenise."""
    bundle = bundle_with_tokenizer(tiny_bundle, tmp_path / "b", hostile_tokenizer(tiny_bundle / "tokenizer.json"))
    t0 = time.perf_counter()
    with pytest.raises(BundleError, match="pre_tokenizer 'Split'"):
        admit_bundle(bundle, AdmissionLimits())
    assert time.perf_counter() - t0 < 5


def test_the_trial_tokenises_adversarial_texts_within_the_limit(tiny_bundle: Path) -> None:
    verdict = trial_run(
        tiny_bundle / "model.onnx", dim=TINY_DIM, max_length=64, vocab_size=30522, limits=FAST,
        tokenizer=tiny_bundle / "tokenizer.json",
    )  # fmt: skip
    assert "slowest adversarial text tokenised in" in verdict
    with pytest.raises(BundleError, match=r"tokenizer.json took \d+ ms for one 2,000-character text"):
        trial_run(
            tiny_bundle / "model.onnx", dim=TINY_DIM, max_length=64, vocab_size=30522,
            limits=AdmissionLimits(tokenize_ms=1e-6), tokenizer=tiny_bundle / "tokenizer.json",
        )  # fmt: skip

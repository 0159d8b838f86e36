"""ONNX export of a recurrent student: the weights it reuses are stored, and quantized, once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model_store import export
from model_store.build_config import QuantizeConfig, StudentConfig
from model_store.quantize import GROUPS, quantize_groups
from model_store.student import Student

VOCAB = 800


def student(repeats: int) -> Student:
    torch.manual_seed(0)
    s = Student(StudentConfig(embed_dim=64, hidden=64, heads=2, ffn=128, repeats=repeats, max_length=32), VOCAB)
    for p in s.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return s.eval()


def int8_bytes(model: Student, d: Path) -> int:
    """Bytes of the int8 file's stored tensors (the graph's node list grows with depth; its weights should not)."""
    fp32 = export.export_onnx(model, d / "fp32.onnx", vocab_size=VOCAB)
    int8 = quantize_groups(fp32, d / "int8.onnx", list(GROUPS), QuantizeConfig())
    return sum(onnx.numpy_helper.to_array(t).nbytes for t in onnx.load(str(int8)).graph.initializer)


def test_a_recurrent_student_exports_exactly_and_shares_its_weights(tmp_path) -> None:
    model = student(repeats=2)
    path = export.export_onnx(model, tmp_path / "m.onnx", vocab_size=VOCAB)
    graph = onnx.load(str(path)).graph
    weights = {i.name for i in graph.initializer}
    assert not [n for n in graph.node if n.op_type == "Identity" and n.input[0] in weights]
    ids = torch.randint(5, VOCAB, (3, 11))
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    with torch.no_grad():
        ref = model(ids, mask).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.abs(got - ref).max() < 1e-5


def test_recurrence_costs_no_int8_weight_bytes(tmp_path) -> None:
    (tmp_path / "once").mkdir()
    (tmp_path / "twice").mkdir()
    once, twice = int8_bytes(student(1), tmp_path / "once"), int8_bytes(student(2), tmp_path / "twice")
    assert twice <= once * 1.01  # the second pass adds graph nodes, not weights


def test_without_the_fold_the_int8_file_keeps_fp32_copies(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "once").mkdir()
    (tmp_path / "unfolded").mkdir()
    once = int8_bytes(student(1), tmp_path / "once")
    monkeypatch.setattr(export, "fold_weight_identities", lambda path: 0)
    assert int8_bytes(student(2), tmp_path / "unfolded") > once * 1.3  # what eibert-0.4.0's first build hit

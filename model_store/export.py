"""Export a PyTorch sentence encoder to the bundle's ONNX contract (the bundle around it is written by
`service.common.manifest.write_bundle`, beside the `Manifest` it writes).

The exported graph includes pooling and normalisation, so a runtime only tokenises and calls `session.run`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from service.common.contract import ATTENTION_MASK, INPUT_IDS, SENTENCE_EMBEDDING

ONNX_OPSET = 17


def export_onnx(module, path: Path, *, vocab_size: int, opset: int = ONNX_OPSET) -> Path:
    """Trace `module(input_ids, attention_mask) -> (B, D)` to ONNX with dynamic batch and sequence axes."""
    import torch

    module.eval()
    ids = torch.randint(low=5, high=max(6, vocab_size), size=(2, 12), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    # Tracing warns about Python-side shape checks in HF code; the export is verified numerically instead
    # (tests compare onnxruntime against PyTorch across batch sizes and lengths).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(
            module,
            (ids, mask),
            str(path),
            input_names=[INPUT_IDS, ATTENTION_MASK],
            output_names=[SENTENCE_EMBEDDING],
            dynamic_axes={INPUT_IDS: {0: "batch", 1: "seq"}, ATTENTION_MASK: {0: "batch", 1: "seq"}},
            opset_version=opset,
            dynamo=False,
        )
    fold_weight_identities(path)
    return path


def fold_weight_identities(path: Path) -> int:
    """Rewire `Identity(initializer)` outputs to the initializer itself; returns how many were folded.

    The TorchScript exporter feeds a parameter used more than once (parameter recurrence: one block applied
    twice) through Identity nodes. `quantize_dynamic` takes those for activations: it leaves the fp32 weights
    in the file and quantizes them again on every run, so a recurrent student came out at twice its int8 bytes.
    Folded, both MatMuls read one initializer and share one int8 copy. onnx's own optimizer passes are not in
    the `onnx` wheel any more, hence this small pass; the build's export check compares the result with PyTorch.
    """
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    weights = {i.name for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias = {
        n.output[0]: n.input[0]
        for n in graph.node
        if n.op_type == "Identity" and n.input[0] in weights and n.output[0] not in outputs
    }
    if not alias:
        return 0
    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(model, str(path))
    return len(alias)

"""The edge node: bundle runtime (onnxruntime + tokenizers), local ranker, HTTP API. No torch, ever."""

from service.edge.encoder import OnnxEncoder, l2_normalize

__all__ = ["OnnxEncoder", "l2_normalize"]

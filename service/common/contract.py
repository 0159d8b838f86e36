"""The ONNX contract between the pipeline that exports a bundle and every runtime that loads one.

Defined once here so that `model_store` (export) and `service/edge` (inference) cannot drift apart: the graph
takes token ids and an attention mask and returns one L2-normalised sentence embedding per row.
"""

from __future__ import annotations

INPUT_IDS = "input_ids"  # int64 (batch, seq)
ATTENTION_MASK = "attention_mask"  # int64 (batch, seq), 1 for real tokens
SENTENCE_EMBEDDING = "sentence_embedding"  # float32 (batch, dim)

ONNX_INPUTS = (INPUT_IDS, ATTENTION_MASK)
ONNX_OUTPUTS = (SENTENCE_EMBEDDING,)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
BUNDLE_FILES = (MODEL_FILE, TOKENIZER_FILE)

MANIFEST_SCHEMA_VERSION = 1

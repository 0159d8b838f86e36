"""What the edge, the cloud and the pipeline share: the ONNX contract, the manifest, the error tree's root."""

from service.common.contract import (
    ATTENTION_MASK,
    INPUT_IDS,
    MANIFEST_FILE,
    MODEL_FILE,
    SENTENCE_EMBEDDING,
    TOKENIZER_FILE,
)
from service.common.errors import BundleError, EibertError
from service.common.manifest import FileEntry, Manifest, file_entry, read_manifest, sha256_file, verify_bundle

__all__ = [
    "ATTENTION_MASK",
    "INPUT_IDS",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "SENTENCE_EMBEDDING",
    "TOKENIZER_FILE",
    "BundleError",
    "EibertError",
    "FileEntry",
    "Manifest",
    "file_entry",
    "read_manifest",
    "sha256_file",
    "verify_bundle",
]

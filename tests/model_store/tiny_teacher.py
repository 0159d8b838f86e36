"""A randomly initialised two-layer BERT saved as a sentence-transformers directory: a teacher of your own.

It borrows the packaged teacher's WordPiece `tokenizer.json` (a BERT model directory needs one) and nothing
else: its weights, width (32) and pooling (CLS) differ, so a build that still used the packaged teacher
anywhere would show it in `dim`, in the cache keys or in the scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TINY_DIM = 32


def make_tiny_teacher(d: Path, *, pooling: str = "cls", seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from model_store.teacher import teacher_dir

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522, hidden_size=TINY_DIM, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config, add_pooling_layer=False).save_pretrained(d)
    shutil.copy(teacher_dir() / "tokenizer.json", d / "tokenizer.json")
    (d / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
            ]
        )
    )
    (d / "1_Pooling").mkdir(exist_ok=True)
    modes = {"pooling_mode_cls_token": pooling == "cls", "pooling_mode_mean_tokens": pooling == "mean",
             "pooling_mode_max_tokens": pooling == "max"}  # fmt: skip
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": TINY_DIM, **modes}))
    (d / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    return d

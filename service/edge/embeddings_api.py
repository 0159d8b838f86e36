"""The OpenAI-compatible embeddings contract: `POST /v1/embeddings` on the edge node.

It is the interface embedding users' tools already speak (the official `openai` client, LangChain,
LlamaIndex, ...): `input` a string or a list of strings, `model`, `encoding_format` float | base64, optional
`dimensions` and `user`; the answer a `list` of `embedding` objects with `usage` token counts. The bounds are
/v1/encode's (at most MAX_TEXTS inputs of MAX_TEXT_CHARS characters, MAX_REQUEST_CHARS together), so the
route costs no more than /v1/encode does. OpenAI also takes token ids (lists of integers); they are refused
here with a message that says so, because ids of another vocabulary would be meaningless to this model, and a
silent answer would put wrong vectors in someone's index. Errors come in OpenAI's shape
(`service/edge/openai_errors.py`), so the official client raises them as its typed errors with our message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from service.edge.schemas import MAX_TEXTS, EncodingFormat, Text, check_request_chars

MAX_MODEL_CHARS = 128
# `model` that names whatever eibert model a node serves now, across rollouts (README, "The edge node")
MODEL_ALIAS = "eibert"
MAX_USER_CHARS = 256
MAX_DIMENSIONS = 65536  # far above any model's width; bounds the number echoed back in a refusal


class EmbeddingsRequest(BaseModel):
    """`input`: one text or 1-64 texts of 1-2,000 characters each, at most 100,000 characters together (a 422
    naming the limit); `model`: `eibert`, the served model line or its release id (else 404)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt option fails loudly instead of being ignored

    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_TEXTS)]
    # `eibert` (whatever the node serves now), the served model line, or its release id `{name}-{version}`
    model: str = Field(min_length=1, max_length=MAX_MODEL_CHARS)
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)  # only the model width is served
    user: str | None = Field(default=None, max_length=MAX_USER_CHARS)  # accepted for compatibility; unused

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, v: Any) -> Any:
        """Clear messages for what a union of types would report twice, once per member."""
        if isinstance(v, list) and v and all(isinstance(x, int | list) for x in v):
            raise ValueError("token ids are not accepted: send the text itself (a string or a list of strings)")
        if isinstance(v, list) and len(v) > MAX_TEXTS:
            raise ValueError(f"{len(v)} inputs; the limit is {MAX_TEXTS} per request")
        if isinstance(v, list) and not v:
            raise ValueError("input is an empty list; send at least one text")
        if not isinstance(v, str | list):
            raise ValueError("input must be a string or a list of strings")
        return v

    @model_validator(mode="after")
    def _within_budget(self) -> EmbeddingsRequest:
        check_request_chars(self.texts)
        return self

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # base64 of little-endian float32 for encoding_format=base64


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int  # tokens the model read: special tokens included, after truncation to max_length
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str  # the release id (`{name}-{version}`) of the model that produced every row
    usage: EmbeddingsUsage

"""Request bodies in and embedding rows out, without a pydantic round trip for the rows.

At this model's size FastAPI's typed body parameter (dependency solving, `json.loads`, then validation of the
Python objects) and a pydantic response model that validates and re-serialises every float of every row would
cost several times the model. Here a body is parsed and validated
from its bytes in one pass by pydantic-core (`model_validate_json`: the same models, limits and 422 answer,
through the shared handler), and a result is written by orjson straight from the numpy array: float32 values
in their shortest exact form (they parse back to the same float32, at half the bytes of `tolist()`'s doubles).
The routes still name their request and response models for the OpenAPI document (`RouteDoc.body`,
`response_model`), and the conformance test checks real answers against it.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.edge.schemas import EncodingFormat

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"


def is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def parse_json(body: bytes, content_type: str | None, model: type[M]) -> M:
    """`body` as `model`, or RequestValidationError (a 422 naming the field, never echoing the input).

    A body declared as anything but JSON is a 415, as FastAPI's own body parsing refuses it: a browser may
    send a cross-origin `text/plain` POST without a preflight, so JSON must not be read out of one.
    """
    if content_type is not None and not is_json(content_type):
        raise HTTPException(status_code=415, detail="send the body as application/json")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        raise RequestValidationError(errors) from None


async def read_json(request: Request, model: type[M]) -> M:
    """The request's body as `model` (see `parse_json`); already bounded by the BodyLimit middleware."""
    return parse_json(await request.body(), request.headers.get("content-type"), model)


def rows_as(rows: np.ndarray, encoding_format: EncodingFormat) -> np.ndarray | list[str]:
    """The rows as they go on the wire: the array itself (orjson writes numbers), or one base64 string per
    row of its little-endian float32 bytes."""
    if encoding_format == "base64":
        le = np.ascontiguousarray(rows, dtype="<f4")
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in le]
    return rows


def json_bytes(content: dict[str, Any]) -> bytes:
    """`content` serialised by orjson (numpy arrays included)."""
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(content: dict[str, Any] | bytes) -> Response:
    """A 200 with `content` (or bytes `json_bytes` already wrote)."""
    return Response(content if isinstance(content, bytes) else json_bytes(content), media_type=JSON)

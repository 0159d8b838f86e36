"""The OpenAPI completion helper, and proof that the conformance run catches a document that lies.

A tiny app answers things its document does not say (a 418, a text body documented as JSON, a body that
breaks its schema, a 500): the same run the edge and cloud pass must report each. Completed with
`document_responses`, the same app passes, which is what the helper is for.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from service.common.http_errors import error_response, install_error_handlers
from service.common.openapi_docs import RouteDoc, document_responses
from tests.conformance import run_conformance
from tests.simulators.conftest import serve, stop


class Shape(BaseModel):
    value: int


async def needs_key(key: Annotated[str | None, Query(max_length=8)] = None) -> None:
    if key != "k":
        raise HTTPException(401, "no key")


def liar(*, broken_body: bool = True) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, {})

    @app.get("/teapot")
    async def teapot() -> JSONResponse:
        return error_response(418, "teapot", "short and stout")

    @app.get("/text")
    async def text() -> PlainTextResponse:
        return PlainTextResponse("metric 1\n")

    @app.get("/shape")
    async def shape() -> Shape:
        return JSONResponse({"value": "not a number"} if broken_body else {"value": 1})

    @app.get("/guarded", dependencies=[Depends(needs_key)])
    async def guarded() -> dict[str, str]:
        return {"status": "ok"}

    return app


def conformance_of(app: FastAPI) -> list[str]:
    served = serve(app)
    try:
        return run_conformance(served.url, max_examples=5).failures
    finally:
        stop(served)


def test_a_document_that_lies_fails_the_conformance_run() -> None:
    app = liar()

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("bug")

    report = "\n".join(conformance_of(app))
    assert "GET /teapot" in report and "Received: 418" in report
    assert "GET /text" in report and "Undocumented Content-Type" in report
    assert "GET /shape" in report and "Response violates schema" in report
    assert "GET /guarded" in report and "Received: 401" in report
    assert "GET /boom" in report and "Server error" in report


def test_the_completed_document_passes_the_same_run() -> None:
    app = liar(broken_body=False)
    table = {"GET /teapot": RouteDoc(errors=(418,)), "GET /text": RouteDoc(content="text/plain")}
    document_responses(app, table, by_dependency={needs_key: (401,)})
    assert conformance_of(app) == []


def test_errors_use_the_shared_schema_and_fastapis_422_shape_is_gone() -> None:
    app = liar()
    document_responses(app, {}, every=(503,), by_dependency={needs_key: (401,)})
    doc = app.openapi()
    guarded = doc["paths"]["/guarded"]["get"]["responses"]
    assert set(guarded) == {"200", "401", "422", "503"}  # 422: the dependency's query parameter
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    assert all(guarded[s]["content"]["application/json"]["schema"] == ref for s in ("401", "422", "503"))
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["ErrorBody"]["required"] == ["error", "message"]
    assert set(doc["paths"]["/teapot"]["get"]["responses"]) == {"200", "503"}  # no parameters: no 422
    assert app.openapi() == doc  # completing again changes nothing


def test_a_table_entry_naming_no_route_is_refused() -> None:
    with pytest.raises(ValueError, match=r"GET /no-such-route"):
        document_responses(liar(), {"GET /no-such-route": RouteDoc(errors=(404,))})


def test_a_body_a_route_reads_itself_is_documented_with_its_refusals() -> None:
    """A route that validates its own body (no FastAPI body parameter) gets its model as the request body,
    in components, with 415 and 422; without the table entry the document would show no body at all."""
    app = FastAPI()

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"value": Shape.model_validate_json(await request.body()).value}

    assert "requestBody" not in app.openapi()["paths"]["/raw"]["post"]
    app = FastAPI()
    app.post("/raw")(raw)
    document_responses(app, {"POST /raw": RouteDoc(body=Shape)})
    doc = app.openapi()
    op = doc["paths"]["/raw"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Shape"}
    assert doc["components"]["schemas"]["Shape"]["properties"]["value"]["type"] == "integer"
    assert {"413", "415", "422"} <= set(op["responses"])

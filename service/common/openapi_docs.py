"""Make an app's OpenAPI document say what its routes really answer, from one table per app.

FastAPI documents a route's success response and (for routes with parameters) a 422 in its own
`HTTPValidationError` shape; everything else a route can answer (401 from an auth dependency, 413 from the
body limit, 429 from load shedding, 503 when the store or model is not there) is missing, and so is a
`/metrics` that is Prometheus text, not JSON. Declaring those in every route decorator scatters them and is
forgotten on the next route, so `document_responses` adds them to the generated document, from the routes
the app really has:

- statuses every route of the app can answer (`every`);
- statuses that follow from the route's shape: 422 for any parameter or body, 400 (unparsable) and 413
  (too large) for a body;
- statuses that follow from its dependencies (`by_dependency`: e.g. the admin check gives 401 and 403),
  found by walking the route's dependency tree, so a new route that uses them is documented by itself;
- what only that route does, from the app's `ROUTE_DOCS` table keyed `"METHOD /path"`, including a
  non-JSON success body (text or a file), and the JSON body of a route that reads and validates its body
  itself (`body`: the model, documented as the request body with 415 and 422; see `service/edge/wire.py`).

Every error status is declared with the shared `ErrorBody` schema (FastAPI's own 422 shape, which the apps
never send, is replaced). A table key that names no route is an error at startup, so the table cannot
silently drift from the routes. The routes themselves are left untouched (FastAPI shares a router's route
objects between apps): only the document is completed, via the `app.openapi` override FastAPI documents for
extending the schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service.common.http_errors import ErrorBody

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SCHEMAS = "#/components/schemas/"
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


@dataclass(frozen=True)
class RouteDoc:
    """What one route answers beyond what its shape and dependencies imply."""

    errors: tuple[int, ...] = ()  # error statuses, documented with ErrorBody
    content: str | None = None  # media type of a non-JSON 200, e.g. "text/plain", "application/gzip"
    extra: tuple[int, ...] = ()  # success statuses besides 200 that carry `content` (e.g. 206 for a Range)
    bodiless: tuple[int, ...] = ()  # statuses without a body (304 Not Modified)
    request: str | None = None  # media type of a raw request body the route reads itself (an upload)
    body: type[BaseModel] | None = None  # the JSON body a route validates itself (no FastAPI body parameter)
    error_body: type[BaseModel] | None = None  # the route's error shape when it is not ErrorBody (OpenAI's)


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    """The route's dependant and every sub-dependency, depth first."""
    yield dependant
    for dep in dependant.dependencies:
        yield from _tree(dep)


def _body_schema(media_type: str) -> dict[str, Any]:
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def api_routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(METHOD, path template, route) for every documented API route of the app."""
    try:  # FastAPI >= 0.16x keeps included routers as such; this walks them as the schema generator does
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI copies routes into app.routes
        pairs = [(r, r.path_format) for r in app.routes if isinstance(r, APIRoute)]
    else:
        pairs = [(c.original_route, c.path_format) for c in iter_route_contexts(app.routes)]
    for route, path in pairs:
        if isinstance(route, APIRoute) and route.include_in_schema and path:
            for method in sorted(route.methods):
                yield method, path, route


def route_statuses(
    route: APIRoute, *, every: tuple[int, ...], by_dependency: Mapping[Callable[..., Any], tuple[int, ...]]
) -> set[int]:
    """The error statuses a route answers by its shape and its dependencies."""
    statuses = set(every)
    tree = list(_tree(route.dependant))  # parameters of sub-dependencies count too
    if route.body_field is not None or any(
        d.path_params or d.query_params or d.header_params or d.cookie_params for d in tree
    ):
        statuses.add(422)
    if route.body_field is not None:
        statuses.add(400)  # FastAPI: "There was an error parsing the body" (e.g. not UTF-8)
    if route.body_field is not None or route.methods & BODY_METHODS:
        statuses.add(413)
    for d in tree[1:]:
        statuses.update(by_dependency.get(d.call, ()) if d.call is not None else ())
    return statuses


def _error_response(status: int, body: str = ErrorBody.__name__) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": {"$ref": f"{SCHEMAS}{body}"}}},
    }


def _add_model_schema(schema: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """`model` (and the models it refers to) under components/schemas; returns that table."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    body = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    components.update(body.pop("$defs", {}))
    components[model.__name__] = body
    return components


def _add_error_schemas(schema: dict[str, Any]) -> None:
    components = _add_model_schema(schema, ErrorBody)
    text = json.dumps(schema["paths"])
    for name in FASTAPI_VALIDATION_SCHEMAS:
        if f'"{SCHEMAS}{name}"' not in text:
            components.pop(name, None)


def document_responses(
    app: FastAPI,
    table: Mapping[str, RouteDoc],
    *,
    every: tuple[int, ...] = (),
    by_dependency: Mapping[Callable[..., Any], tuple[int, ...]] | None = None,
) -> None:
    """Complete `app`'s OpenAPI document (call it after including the routers)."""
    deps = by_dependency or {}
    plan: list[tuple[str, str, set[int], RouteDoc | None]] = []
    for method, path, route in api_routes(app):
        key = f"{method} {path}"
        doc = table.get(key)
        statuses = route_statuses(route, every=every, by_dependency=deps) | set(doc.errors if doc else ())
        if doc is not None and doc.body is not None:
            statuses.update((415, 422))  # a body declared as another media type; an invalid one
        plan.append((method.lower(), path, statuses, doc))
    unknown = set(table) - {f"{m.upper()} {p}" for m, p, _, _ in plan}
    if unknown:
        raise ValueError(f"the OpenAPI table names routes that do not exist: {sorted(unknown)}")
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's own, cached on the app; completing it again changes nothing
        for method, path, statuses, doc in plan:
            responses = schema["paths"][path][method]["responses"]
            if "422" in responses:  # FastAPI's HTTPValidationError: the apps answer ErrorBody instead
                statuses.add(422)
            error_body = ErrorBody.__name__
            if doc is not None and doc.error_body is not None:
                _add_model_schema(schema, doc.error_body)
                error_body = doc.error_body.__name__
            for status in sorted(statuses):
                if status == 422 or str(status) not in responses:
                    responses[str(status)] = _error_response(status, error_body)
            if doc is None:
                continue
            if doc.content is not None:
                for status in (200, *doc.extra):
                    entry = responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
                    entry["content"] = {doc.content: {"schema": _body_schema(doc.content)}}
            for status in doc.bodiless:
                responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            if doc.request is not None:
                content = {doc.request: {"schema": _body_schema(doc.request)}}
                schema["paths"][path][method]["requestBody"] = {"required": True, "content": content}
            if doc.body is not None:
                _add_model_schema(schema, doc.body)
                content = {"application/json": {"schema": {"$ref": f"{SCHEMAS}{doc.body.__name__}"}}}
                schema["paths"][path][method]["requestBody"] = {"required": True, "content": content}
        _add_error_schemas(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

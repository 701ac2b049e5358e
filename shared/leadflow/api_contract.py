"""The contract every service's OpenAPI states, so that clients can be generated from it.

* Every refusal is an RFC 9457 problem (`application/problem+json`, `ProblemDetails`):
  the statuses a route declares, 401 and 403 on each route behind a token, and 422 on
  each route with parameters or a body, where FastAPI would document its own
  `HTTPValidationError` (which no service answers: `install_problem_handlers`).
* Operation ids are `<tag>_<function>` (`routing_routing_decisions`), not FastAPI's
  generated `<function>_<path>_<method>`: they do not change when a path does, and a
  generated client's method names stay the same.
* A route that parses its own body (for its own 415, 400 and 422 problems) declares the
  body's model with `openapi_extra=json_body(Model)`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from leadflow.auth import is_public
from leadflow.problems import PROBLEM_JSON, TITLES, ProblemDetails

REF = "#/components/schemas/"
# Where `json_body` leaves the schemas a body needs, for `_state_contract` to move them
# into the document's components (FastAPI copies `openapi_extra` into the operation).
_SCHEMAS_KEY = "x-leadflow-schemas"
# FastAPI's default validation error schemas, documented for no route once problems are.
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_PROBLEM = {"$ref": REF + "ProblemDetails"}


def operation_id(route: APIRoute) -> str:
    """`<first tag>_<function name>`: stable when the path changes, unique in a service."""
    tag = str(route.tags[0]) if route.tags else "service"
    return f"{tag.replace('-', '_')}_{route.name}"


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` documenting each status as a problem (its content type is set to
    `application/problem+json` when the document is built)."""
    return {
        status: {"model": ProblemDetails, "description": TITLES.get(status, "Request refused")}
        for status in statuses
    }


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` declaring `model` as the required JSON body of a route that reads
    the body itself."""
    schema = model.model_json_schema(ref_template=REF + "{model}")
    schemas = {**schema.pop("$defs", {}), model.__name__: schema}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF + model.__name__}}},
        },
        _SCHEMAS_KEY: schemas,
    }


def install_contract(app: FastAPI) -> None:
    """Make `app.openapi()` state the contract above (build `app` with
    `generate_unique_id_function=operation_id` for the operation ids)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if not app.openapi_schema:
            app.openapi_schema = _state_contract(build(), app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _state_contract(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    components: dict[str, Any] = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = ProblemDetails.model_json_schema(ref_template=REF + "{model}")
    components.update({**problem.pop("$defs", {}), "ProblemDetails": problem})
    # The routes as served: an included router's dependencies (its scope) are in its context.
    guarded = {
        (route.path_format, method.lower())
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and not is_public(route.dependant)
        for method in route.methods or ()
    }
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            components.update(operation.pop(_SCHEMAS_KEY, {}))
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if (path, method) in guarded:
                for refused in (401, 403):
                    responses.setdefault(str(refused), {"description": TITLES[refused]})
            for status, response in responses.items():
                if status.startswith(("4", "5")) and _is_refusal(response):
                    response["content"] = {PROBLEM_JSON: {"schema": _PROBLEM}}
    for name in _FASTAPI_ERRORS:
        components.pop(name, None)
    return schema


def _is_refusal(response: dict[str, Any]) -> bool:
    """Whether an error response is a refusal (a problem), not a document of its own such
    as a not-ready `/readyz` (declared with a schema other than FastAPI's or ours)."""
    content = response.get("content")
    if not content:
        return True
    refs = {str(media.get("schema", {}).get("$ref", "")) for media in content.values()}
    return refs <= {_PROBLEM["$ref"], *(REF + name for name in _FASTAPI_ERRORS)}

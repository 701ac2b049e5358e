"""RFC 9457 problem details: every refusal says what was wrong and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    """One field that was wrong, named as the sender wrote it."""

    field: str
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem: what was wrong, and for a 422, which fields."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] = Field(default_factory=list)


class Problem(Exception):
    """A request refused with a status, a reason code, a sentence and optional field errors."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def response(self, instance: str) -> JSONResponse:
        """The problem as an `application/problem+json` response."""
        body: dict[str, Any] = {
            "type": f"https://leadflow.dev/problems/{self.reason.replace('_', '-')}",
            "title": TITLES.get(self.status, "Request refused"),
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(
            body, status_code=self.status, headers=self.headers, media_type=PROBLEM_JSON
        )


TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, message}` pairs a sender can act on."""
    return [
        {
            "field": ".".join(str(p) for p in e["loc"] if p not in ("body",)) or "(body)",
            "message": str(e["msg"]).removeprefix("Value error, "),
        }
        for e in errors
    ]


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` (ours, routing, validation) as problem+json."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return Problem(exc.status_code, "http_error", detail).response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = Problem(
            422, "invalid_request", "The request is not valid.", errors=field_errors(exc.errors())
        )
        return problem.response(request.url.path)

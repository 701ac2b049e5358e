"""`POST /v1/webhooks/{source}`: authenticate, validate, publish (or spool), then answer 202."""

from __future__ import annotations

import functools
import logging
import time
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Path, Request
from fastapi.responses import Response
from prometheus_client import Counter, Histogram
from pydantic import BaseModel
from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from leadflow import tracing
from leadflow.auth import PUBLIC
from leadflow.problems import Problem, ProblemDetails
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow.supervisor import Supervisor
from leadflow_intake.adapters import adapter_for
from leadflow_intake.adapters.base import (
    AuthenticationError,
    InvalidPayload,
    SourceContext,
    WebhookRequest,
    content_delivery_id,
)
from leadflow_intake.delivery import Delivery
from leadflow_intake.guards import Guards
from leadflow_intake.metrics import EVENTS_IGNORED, REQUEST_SECONDS, WEBHOOKS
from leadflow_intake.ratelimit import RateLimits
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import SpoolError
from leadflow_intake.urls import signed_url

log = logging.getLogger(__name__)


class Intake:
    """What the webhook route needs: settings, rate limits and the way to the broker."""

    def __init__(
        self,
        settings: Settings,
        intake: IntakeSettings,
        delivery: Delivery,
        supervisor: Supervisor,
    ) -> None:
        self.settings = settings
        self.intake = intake
        self.delivery = delivery
        self.supervisor = supervisor
        self.guards = Guards(intake)
        self.not_stored_headers = {"Retry-After": str(intake.retry_after_s)}
        # Secrets are read once, at start: a rotation restarts the intake with both secrets.
        keys = settings.lead_keys()
        self.sources = {
            name: SourceContext(name, config, settings.source_secrets(name), keys)
            for name, config in settings.app.sources.items()
        }
        self.rate_limits = RateLimits(
            {
                name: source.rate_limit
                for name, source in settings.app.sources.items()
                if source.rate_limit is not None
            }
        )


class AcceptedEvent(BaseModel):
    """One event made from the delivery."""

    event_id: str
    lead_key: str


class Accepted(BaseModel):
    """The answer to an accepted delivery; a redelivery gets the same one."""

    event_id: str | None
    lead_key: str | None
    events: list[AcceptedEvent]
    ignored: int = 0


_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetails, "description": description}
    for status, description in {
        401: "Missing or bad signature or secret, or a stale/future timestamp.",
        404: "No source of that name is configured.",
        413: "The body is over the size limit.",
        415: "The body's content type is not the one this source's kind sends.",
        422: "The body is not a valid lead or activity; `errors` names each field.",
        429: "Over a rate limit (the source's, one person's, or this address's failed "
        "requests); retry after `Retry-After` seconds.",
        503: "The event could not be stored; retry after `Retry-After` seconds.",
    }.items()
}

# The bodies senders post, for the OpenAPI document (validated per kind, not by FastAPI).
_BODIES = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array"}]},
            },
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    }
}


_WEBHOOKS_PREFIX = "/v1/webhooks/"
_WEBHOOK_ROUTE = "/v1/webhooks/{source}"
_SOURCE_MAX = 64


def add_webhook_route(app: FastAPI) -> None:
    """Declare `POST /v1/webhooks/{source}` (documented in OpenAPI); `WebhookApp` serves it."""
    app.add_api_route(
        "/v1/webhooks/{source}",
        receive_webhook,
        methods=["POST"],
        status_code=202,
        response_model=Accepted,
        responses={202: {"description": "Accepted: the events are on their way."}, **_REFUSALS},
        openapi_extra=_BODIES,
        tags=["webhooks"],
        # Public on purpose: each webhook is authenticated by its source's signature.
        dependencies=[PUBLIC],
    )


class WebhookApp(FastAPI):
    """The intake's FastAPI app, with webhooks served ahead of its middleware and routing.

    Nearly every request the intake gets is a webhook. Served as plain ASGI, before
    FastAPI's error, telemetry and body-limit middleware, its routing and its per-request
    dependency resolution, a webhook costs about half of what it costs through them.
    `WebhookFastPath` answers every outcome itself (202, each refusal as problem+json, and a
    500 problem for a bug), so nothing of that machinery is needed; everything else goes
    through the app as usual (the tracing of FastAPI's telemetry, when on, still wraps it).
    """

    def build_middleware_stack(self) -> ASGIApp:
        return WebhookFastPath(super().build_middleware_stack())


class WebhookFastPath:
    """ASGI: webhooks straight to `accept`; anything else, and any path FastAPI would refuse
    (an empty or over-long source name), goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        source = path[len(_WEBHOOKS_PREFIX) :]
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith(_WEBHOOKS_PREFIX)
            or not 0 < len(source) <= _SOURCE_MAX
            or "/" in source
        ):
            await self.app(scope, receive, send)
            return
        tracing.name_request(_WEBHOOK_ROUTE)
        try:
            body = await accept(scope, receive, source)
        except Problem as problem:
            await problem.response(path)(scope, receive, send)
            return
        except ClientDisconnect:
            log.info("a sender hung up before its webhook was read", extra={"source": source})
            return
        except Exception:
            log.exception("a webhook could not be handled", extra={"source": source})
            await _FAILED.response(path)(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


_FAILED = Problem(
    500,
    "internal_error",
    "The webhook could not be handled. Retry the delivery later: a redelivery is never "
    "duplicated downstream.",
)


async def receive_webhook(
    request: Request,
    source: Annotated[str, Path(max_length=_SOURCE_MAX)],
) -> Response:
    """Receive one webhook from a configured source."""
    body = await accept(request.scope, request.receive, source)
    return Response(body, status_code=202, media_type="application/json")


async def accept(scope: Scope, receive: Receive, source: str) -> bytes:
    """Authenticate, validate, publish (or spool) one webhook; the 202 body (JSON) or a Problem."""
    started = time.perf_counter()
    intake: Intake = scope["app"].state.intake
    label = source if source in intake.sources else "unknown"
    accepted, latency = _source_metrics(label)
    try:
        answer = await _receive(scope, receive, intake, source)
        accepted.inc()
        if answer["ignored"]:
            EVENTS_IGNORED.labels(label).inc(answer["ignored"])
        return orjson.dumps(answer)
    except Problem as problem:
        WEBHOOKS.labels(label, problem.reason).inc()
        raise
    except ClientDisconnect:
        raise
    except Exception:
        WEBHOOKS.labels(label, _FAILED.reason).inc()
        raise
    finally:
        latency.observe(time.perf_counter() - started)


@functools.cache
def _source_metrics(label: str) -> tuple[Counter, Histogram]:
    """A source's accepted counter and latency histogram (looked up once, not per request;
    labels are configured source names and "unknown", so the cache stays small)."""
    return WEBHOOKS.labels(label, "accepted"), REQUEST_SECONDS.labels(label)


async def _receive(scope: Scope, receive: Receive, intake: Intake, name: str) -> dict[str, Any]:
    source = intake.sources.get(name)
    if source is None:
        intake.guards.failed(scope, time.monotonic())
        raise Problem(404, "unknown_source", f"No source named {name!r} is configured.")
    config = source.config
    adapter = adapter_for(config.kind)
    headers = Headers(scope=scope)
    body = await _read_body(receive, headers, intake.intake.max_body_bytes)
    webhook = WebhookRequest(
        method=scope["method"],
        # Only some kinds sign the URL; building it costs, so the others get the path.
        url=signed_url(Request(scope), name, config.public_base_url)
        if adapter.signs_url
        else scope["path"],
        headers=headers,
        body=body,
        query=QueryParams(scope["query_string"]) if scope["query_string"] else {},
    )
    try:
        if not source.secrets:
            raise AuthenticationError(f"Source {name!r} has no secret configured.")
        delivery_id = adapter.authenticate(
            webhook, source, now=time.time(), tolerance_s=intake.intake.signature_tolerance_s
        )
    except AuthenticationError as exc:
        intake.guards.failed(scope, time.monotonic())
        raise Problem(401, "bad_signature", str(exc)) from exc
    except InvalidPayload as exc:  # a body the signature cannot even be checked on
        raise Problem(422, "invalid_body", exc.detail, errors=exc.errors) from exc
    # Only an authenticated sender learns what a source takes.
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in adapter.media_types:
        expected = " or ".join(sorted(adapter.media_types))
        raise Problem(
            415,
            "unsupported_media_type",
            f"Source {name!r} ({config.kind}) takes {expected} "
            f"(got {content_type or 'no content type'}).",
        )
    now = time.monotonic()
    wait = intake.rate_limits.retry_after(name, now)
    if wait:
        raise Problem(
            429,
            "rate_limited",
            f"Source {name!r} is over its rate limit; retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )
    try:
        parsed = adapter.parse(
            webhook, source, delivery_id=delivery_id or content_delivery_id(body), now=utcnow()
        )
    except InvalidPayload as exc:
        raise Problem(422, "invalid_body", exc.detail, errors=exc.errors) from exc
    intake.guards.check_people(parsed.events, now)
    try:
        await intake.delivery.submit(parsed.events, config.lane)
    except SpoolError as exc:
        intake.guards.give_back(parsed.events)
        raise Problem(
            503,
            "not_stored",
            "The event could not be stored right now (the broker and the local spool both "
            "refused it); retry the delivery later.",
            headers=intake.not_stored_headers,
        ) from exc
    # The `Accepted` shape, built directly: this is the hot path.
    events = [{"event_id": e.id, "lead_key": e.subject} for e in parsed.events]
    first = events[0] if events else {}
    return {
        "event_id": first.get("event_id"),
        "lead_key": first.get("lead_key"),
        "events": events,
        "ignored": parsed.ignored,
    }


async def _read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (never read whole first)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "body_too_large", f"The body is over the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body_too_large", f"The body is over the {limit}-byte limit.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)

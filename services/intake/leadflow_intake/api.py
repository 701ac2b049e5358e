"""`POST /v1/webhooks/{source}`: verify, normalize, publish, then answer 202."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from leadflow import webhooks as signatures
from leadflow.bus import Publisher
from leadflow.events import Envelope
from leadflow.problems import Problem, field_errors
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow.topics import topic_for
from leadflow_intake import standard
from leadflow_intake.metrics import PUBLISH_SECONDS, REQUEST_SECONDS, WEBHOOKS
from leadflow_intake.settings import IntakeSettings

router = APIRouter(prefix="/v1", tags=["webhooks"])

_STANDARD_BODY: TypeAdapter[standard.LeadBody | standard.ActivityBody] = TypeAdapter(
    standard.StandardBody
)


class Intake:
    """What the webhook route needs: settings, secrets and a publisher."""

    def __init__(self, settings: Settings, intake: IntakeSettings, publisher: Publisher) -> None:
        self.settings = settings
        self.intake = intake
        self.publisher = publisher


def get_intake(request: Request) -> Intake:
    """The running intake (a FastAPI dependency)."""
    intake: Intake = request.app.state.intake
    return intake


IntakeDep = Annotated[Intake, Depends(get_intake)]


@router.post(
    "/webhooks/{source}",
    status_code=202,
    responses={
        202: {"description": "Accepted: the lead event is on its way."},
        401: {"description": "Missing or bad signature, or a stale/future timestamp."},
        404: {"description": "No source of that name is configured."},
        413: {"description": "The body is over the size limit."},
        415: {"description": "The body is not JSON."},
        422: {"description": "The body is not a valid lead or activity."},
        503: {"description": "The event could not be stored; retry later."},
    },
)
async def receive_webhook(
    request: Request,
    intake: IntakeDep,
    source: Annotated[str, Path(max_length=64)],
) -> JSONResponse:
    """Receive one webhook from a configured source."""
    started = time.perf_counter()
    label = source if source in intake.settings.app.sources else "unknown"
    try:
        answer = await _receive(request, intake, source)
    except Problem as problem:
        WEBHOOKS.labels(label, problem.reason).inc()
        raise
    finally:
        REQUEST_SECONDS.labels(label).observe(time.perf_counter() - started)
    WEBHOOKS.labels(label, "accepted").inc()
    return JSONResponse(answer, status_code=202)


async def _receive(request: Request, intake: Intake, source: str) -> dict[str, Any]:
    config = intake.settings.app.sources.get(source)
    if config is None:
        raise Problem(404, "unknown_source", f"No source named {source!r} is configured.")
    if config.kind != "standard":
        raise Problem(
            404, "unknown_source", f"Source {source!r} has kind {config.kind!r}, not served yet."
        )
    body = await _read_body(request, intake.intake.max_body_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Problem(
            415,
            "unsupported_media_type",
            f"Send the body as application/json (got {content_type or 'no content type'}).",
        )
    try:
        delivery_id, _ = signatures.verify(
            request.headers,
            body,
            intake.settings.source_secrets(source),
            now=time.time(),
            tolerance_s=intake.intake.signature_tolerance_s,
        )
    except signatures.SignatureError as exc:
        raise Problem(401, "bad_signature", str(exc)) from exc
    try:
        parsed = _STANDARD_BODY.validate_json(body)
    except ValidationError as exc:
        raise Problem(
            422,
            "invalid_body",
            "The body is not a valid lead or activity.",
            errors=field_errors(standard.untagged(exc.errors())),
        ) from exc
    event = standard.to_event(parsed, source=source, delivery_id=delivery_id, now=utcnow())
    await _publish(intake, event)
    return {"event_id": event.id, "lead_key": event.subject}


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it passes `limit` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "body_too_large", f"The body is over the {limit}-byte limit.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "body_too_large", f"The body is over the {limit}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _publish(intake: Intake, event: Envelope) -> None:
    started = time.perf_counter()
    try:
        await intake.publisher.publish(
            intake.settings.topic(topic_for(event.type)), event.subject, event.to_bytes()
        )
    except Exception as exc:
        raise Problem(
            503,
            "broker_unavailable",
            "The event could not be stored right now; retry the delivery later.",
            headers={"Retry-After": "5"},
        ) from exc
    PUBLISH_SECONDS.observe(time.perf_counter() - started)

"""The intake service: signed webhooks in, lead events on Kafka (or in the spool meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from leadflow.bus import Publisher
from leadflow.bus.kafka import KafkaPublisher
from leadflow.metrics import add_metrics_route
from leadflow.problems import PROBLEM_JSON, install_problem_handlers
from leadflow.runtime import add_probe_routes, telemetry, wait_for_broker
from leadflow.settings import Settings
from leadflow_intake.api import Intake, WebhookApp, add_webhook_route
from leadflow_intake.delivery import Delivery
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import Spool


def create_app(
    settings: Settings,
    intake: IntakeSettings | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """The intake's ASGI app; pass `publisher` to run it on another bus (unit tests)."""
    intake = intake or IntakeSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        spool = Spool(intake.spool_dir, intake.spool_segment_bytes)
        await asyncio.to_thread(spool.open)
        kafka: KafkaPublisher | None = None
        sink: Publisher
        if publisher is None:
            await wait_for_broker(settings)
            sink = kafka = KafkaPublisher(settings, "intake")
            await kafka.start()
        else:
            sink = publisher
        delivery = Delivery(settings, intake, sink, spool)
        delivery.start()
        app.state.intake = Intake(settings, intake, delivery)
        # What start-up made (config, phone metadata, modules) lives as long as the process:
        # moved out of the collector's generations, it is not traversed on every full
        # collection, which the allocation rate of a busy intake triggers often.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await delivery.stop()
            if kafka is not None:
                await kafka.stop()
            spool.close()

    app = WebhookApp(
        title="Leadflow intake",
        description=__doc__ or "",
        lifespan=lifespan,
        telemetry=telemetry(settings),
    )
    install_problem_handlers(app)
    add_webhook_route(app)
    add_probe_routes(app, ready=_ready)
    add_metrics_route(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _ready(app: FastAPI) -> dict[str, Any]:
    """Ready while webhooks can be accepted and kept: the spool takes them if the broker
    cannot. `degraded` says the broker is unreachable or the spool is not yet drained."""
    intake: Intake | None = getattr(app.state, "intake", None)
    if intake is None:
        return {"ready": False, "starting": True}
    delivery = intake.delivery
    spool = {
        "depth": delivery.spool.depth,
        "bytes": delivery.spool.bytes,
        "writable": delivery.spool_ok,
        "relay": delivery.relay_running,
    }
    return {
        "ready": delivery.spool_ok and delivery.relay_running,
        "degraded": not delivery.broker_ok or delivery.spool.depth > 0,
        "broker": delivery.broker_ok,
        "spool": spool,
    }


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with refusals typed as `application/problem+json`."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
    app.openapi_schema = schema
    return schema

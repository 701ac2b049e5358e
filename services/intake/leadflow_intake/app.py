"""The intake service: signed webhooks in, lead events on Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from leadflow.bus import Publisher
from leadflow.bus.kafka import KafkaPublisher
from leadflow.metrics import add_metrics_route
from leadflow.problems import install_problem_handlers
from leadflow.runtime import add_probe_routes, wait_for_broker
from leadflow.settings import Settings
from leadflow_intake.api import Intake, router
from leadflow_intake.settings import IntakeSettings


def create_app(
    settings: Settings,
    intake: IntakeSettings | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """The intake's ASGI app; pass `publisher` to run it on another bus (unit tests)."""
    intake = intake or IntakeSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if publisher is not None:
            app.state.intake = Intake(settings, intake, publisher)
            yield
            return
        await wait_for_broker(settings)
        kafka = KafkaPublisher(settings, "intake")
        await kafka.start()
        app.state.intake = Intake(settings, intake, kafka)
        try:
            yield
        finally:
            await kafka.stop()

    app = FastAPI(
        title="Leadflow intake",
        description=__doc__ or "",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    add_probe_routes(app, ready=_ready)
    add_metrics_route(app)
    app.include_router(router)
    return app


async def _ready(app: FastAPI) -> dict[str, Any]:
    intake: Intake | None = getattr(app.state, "intake", None)
    if intake is None:
        return {"ready": False, "starting": True}
    publisher = intake.publisher
    broker = getattr(publisher, "started", True)
    return {"ready": bool(broker), "broker": bool(broker)}

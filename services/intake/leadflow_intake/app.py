"""The intake service: signed webhooks in, lead events on Kafka (or in the spool meanwhile)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from leadflow.api_contract import install_contract, operation_id
from leadflow.auth import Authenticator, build_authenticator, install
from leadflow.bus import Publisher
from leadflow.bus.kafka import KafkaPublisher
from leadflow.metrics import add_metrics_route
from leadflow.problems import install_problem_handlers
from leadflow.runtime import add_probe_routes, api_docs, connect_broker, telemetry
from leadflow.settings import Settings
from leadflow.supervisor import Supervisor
from leadflow_intake import admin
from leadflow_intake.api import Intake, WebhookApp, add_webhook_route
from leadflow_intake.delivery import Delivery
from leadflow_intake.settings import IntakeSettings
from leadflow_intake.spool import Spool

log = logging.getLogger(__name__)

BROKER_TASK = "broker-connect"


def create_app(
    settings: Settings,
    intake: IntakeSettings | None = None,
    publisher: Publisher | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """The intake's ASGI app; pass `publisher` to run it on another bus (unit tests).

    Webhooks authenticate themselves (signatures); `authenticator` guards `/metrics`.
    """
    intake = intake or IntakeSettings()
    authenticator = authenticator or build_authenticator(settings.env)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        spool = Spool(intake.spool_dir, intake.spool_segment_bytes)
        await asyncio.to_thread(spool.open)
        supervisor = Supervisor("intake")
        delivery = Delivery(settings, intake, publisher, spool)
        kafka: KafkaPublisher | None = None
        if publisher is None:
            # The intake starts whether or not the broker is up: until it is reached,
            # webhooks are answered from the spool, and the relay drains it afterwards.
            kafka = KafkaPublisher(settings, "intake")
            supervisor.spawn(BROKER_TASK, functools.partial(_connect, settings, kafka, delivery))
        delivery.start(supervisor)
        app.state.intake = Intake(settings, intake, delivery, supervisor)
        # What start-up made (config, phone metadata, modules) lives as long as the process:
        # moved out of the collector's generations, it is not traversed on every full
        # collection, which the allocation rate of a busy intake triggers often.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await delivery.stop()
            await supervisor.stop()
            if kafka is not None:
                await kafka.stop()
            spool.close()

    app = WebhookApp(
        title="Leadflow intake",
        description=__doc__ or "",
        lifespan=lifespan,
        telemetry=telemetry(settings),
        generate_unique_id_function=operation_id,
        **api_docs(settings),
    )
    install_problem_handlers(app)
    install(app, authenticator)
    add_webhook_route(app)
    app.include_router(admin.router)
    add_probe_routes(app, ready=_ready)
    add_metrics_route(app, settings)
    install_contract(app)
    return app


async def _connect(settings: Settings, kafka: KafkaPublisher, delivery: Delivery) -> None:
    """Create the topics and connect the producer, for as long as the broker is away."""
    await connect_broker(settings, kafka)
    delivery.connect(kafka)
    log.info("connected to the Kafka broker")


async def _ready(app: FastAPI) -> dict[str, Any]:
    """Ready while webhooks can be accepted and kept: by the spool, or by the broker while
    nothing is spooled. `degraded` says the broker is unreachable (or not reached yet),
    the spool is not drained or cannot write; `failing` names background tasks that keep
    failing (they are restarted meanwhile), which also makes the intake not ready."""
    intake: Intake | None = getattr(app.state, "intake", None)
    if intake is None:
        return {"ready": False, "starting": True}
    delivery = intake.delivery
    failing = intake.supervisor.failing()
    spool = {
        "depth": delivery.spool.depth,
        "bytes": delivery.spool.bytes,
        "writable": delivery.spool_ok,
        "relay": delivery.relay_running,
    }
    body: dict[str, Any] = {
        "ready": delivery.accepting and delivery.relay_running and not failing,
        "degraded": not delivery.broker_ok or delivery.spool.depth > 0 or not delivery.spool_ok,
        "broker": delivery.broker_ok,
        "spool": spool,
    }
    if failing:
        body["failing"] = failing
    return body

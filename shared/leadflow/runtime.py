"""What every consuming service runs: database, publisher, outbox relay, consumer, HTTP probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leadflow import topics
from leadflow.bus.kafka import KafkaConsumerRunner, KafkaPublisher, ensure_topics
from leadflow.db.engine import create_engine, session_factory
from leadflow.metrics import ConsumerMetrics, add_metrics_route, consumer_metrics
from leadflow.outbox import OutboxRelay
from leadflow.processing import EventHandler, EventProcessor
from leadflow.settings import Settings

log = logging.getLogger(__name__)

STARTUP_RETRY_S = 60.0


@dataclass
class Runtime:
    """The live resources of one service process."""

    name: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: KafkaPublisher
    relay: OutboxRelay
    metrics: ConsumerMetrics
    consumers: list[KafkaConsumerRunner] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Extra readiness checks of the service (name -> is it ready?), shown on /readyz.
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group of a service: what it reads and the handler it applies."""

    group: str
    topics: list[str]
    accepts: set[str]
    handler: Callable[[Runtime], EventHandler]
    # Called after each consumed batch's transaction (besides waking the outbox relay).
    after_commit: Callable[[], None] | None = None


Background = Callable[[Runtime], Coroutine[Any, Any, None]]


def get_runtime(request: Request) -> Runtime:
    """The running service's resources (a FastAPI dependency)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def session_dep(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A read session for one request."""
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(session_dep)]


async def wait_for_broker(settings: Settings) -> None:
    """Create the topics, retrying while the broker is still starting."""
    deadline = asyncio.get_running_loop().time() + STARTUP_RETRY_S
    while True:
        try:
            await ensure_topics(settings, topics.ALL)
            return
        except (KafkaError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.info("waiting for the Kafka broker", extra={"bootstrap": settings.kafka_bootstrap})
            await asyncio.sleep(1)


def consumer_service(
    name: str,
    settings: Settings,
    specs: list[ConsumerSpec],
    *,
    routers: Sequence[APIRouter] = (),
    background: Sequence[Background] = (),
    description: str = "",
    ready_checks: dict[str, Callable[[], bool]] | None = None,
) -> FastAPI:
    """A FastAPI app that runs `specs` as consumer groups for as long as it is served."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await wait_for_broker(settings)
        engine = create_engine(settings.database_url)
        publisher = KafkaPublisher(settings, name)
        await publisher.start()
        metrics = consumer_metrics(name.replace("-", "_"))
        relay = OutboxRelay(engine, publisher, settings, name, metrics)
        runtime = Runtime(
            name, settings, engine, session_factory(engine), publisher, relay, metrics
        )
        runtime.checks.update(ready_checks or {})
        app.state.runtime = runtime
        relay.start()
        # Background work (e.g. SLA timers firing from the database) starts before the
        # consumers: joining a consumer group can take a while after a restart.
        runtime.tasks = [
            asyncio.create_task(job(runtime), name=f"{name}-background") for job in background
        ]
        for spec in specs:
            processor = EventProcessor(
                consumer=spec.group,
                engine=engine,
                handler=spec.handler(runtime),
                accepts=spec.accepts,
                dead_letters=publisher,
                settings=settings,
                metrics=metrics,
                after_commit=_after_commit(relay, spec.after_commit),
            )
            runner = KafkaConsumerRunner(
                settings, spec.group, [settings.topic(t) for t in spec.topics], processor
            )
            await runner.start()
            runtime.consumers.append(runner)
        runtime.tasks.append(asyncio.create_task(_watch_lag(runtime), name=f"{name}-lag"))
        log.info("service started", extra={"service": name})
        try:
            yield
        finally:
            log.info("service stopping", extra={"service": name})
            for task in runtime.tasks:
                task.cancel()
            for task in runtime.tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for runner in runtime.consumers:
                await runner.stop()
            await relay.stop()
            await publisher.stop()
            await engine.dispose()
            log.info("service stopped", extra={"service": name})

    app = FastAPI(
        title=f"Leadflow {name}",
        description=description,
        lifespan=lifespan,
        telemetry=telemetry(settings),
    )
    add_probe_routes(app, ready=_ready)
    add_metrics_route(app)
    for router in routers:
        app.include_router(router)
    return app


def _after_commit(relay: OutboxRelay, extra: Callable[[], None] | None) -> Callable[[], None]:
    if extra is None:
        return relay.wake

    def both() -> None:
        relay.wake()
        extra()

    return both


async def _ready(app: FastAPI) -> dict[str, Any]:
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        return {"ready": False, "starting": True}
    checks: dict[str, Any] = {
        "consumers": all(c.running for c in runtime.consumers),
        "outbox_relay": runtime.relay.healthy,
        "background": all(not t.done() for t in runtime.tasks),
        **{name: check() for name, check in runtime.checks.items()},
    }
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    return {"ready": all(checks.values()), **checks}


def add_probe_routes(app: FastAPI, ready: Callable[[FastAPI], Awaitable[dict[str, Any]]]) -> None:
    """`/healthz` (the process answers) and `/readyz` (it can do its work)."""

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        body = await ready(request.app)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)


async def _watch_lag(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(5)
        lag = 0
        for runner in runtime.consumers:
            lag += await runner.lag()
        runtime.metrics.consumer_lag.set(lag)


def telemetry(settings: Settings) -> TelemetryConfig:
    """FastAPI's OpenTelemetry switches: all on with `LEADFLOW_OTEL=true`, else all off."""
    return {"tracing": settings.otel, "metrics": settings.otel, "logs": settings.otel}


def serve(app: FastAPI, settings: Settings, port: int) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down gracefully (bounded)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.stop_timeout_s),
    )
    uvicorn.Server(config).run()

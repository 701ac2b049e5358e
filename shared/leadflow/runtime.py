"""What every consuming service runs: database, publisher, outbox relay, consumers, probes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from leadflow import topics, tracing
from leadflow.api_contract import install_contract, operation_id
from leadflow.auth import PUBLIC, Authenticator, build_authenticator, install
from leadflow.bus.kafka import KafkaConsumerRunner, KafkaPublisher, ensure_topics
from leadflow.db.engine import create_engine, session_factory
from leadflow.faults import describe, is_transient
from leadflow.lanes import LanePriority
from leadflow.metrics import (
    ConsumerMetrics,
    add_metrics_route,
    consumer_metrics,
    serve_metrics_port,
)
from leadflow.outbox import OutboxRelay
from leadflow.problems import install_problem_handlers
from leadflow.processing import BatchHandler, EventProcessor, Handlers
from leadflow.retention import Rule, shared_rules
from leadflow.retention import run as run_retention
from leadflow.settings import Settings
from leadflow.supervisor import Supervisor
from leadflow.topics import Lane

log = logging.getLogger(__name__)

# A readiness probe answers quickly even when the database does not.
READY_DATABASE_TIMEOUT_S = 2.0


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
    supervisor: Supervisor
    consumers: list[KafkaConsumerRunner] = field(default_factory=list)
    # Set once the topics exist and the publisher is connected.
    broker_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # Extra readiness checks of the service (name -> is it ready?), shown on /readyz.
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)


# Makes a consumer's handler from the running service's resources (its configuration).
MakeHandler = Callable[[Runtime], BatchHandler]


def ready_made(handler: BatchHandler) -> MakeHandler:
    """What makes `handler`, which needs nothing of the running service."""

    def make(_runtime: Runtime) -> BatchHandler:
        return handler

    return make


@dataclass(frozen=True)
class ConsumerSpec:
    """One consumer group of a service: what it reads, and its table of event type ->
    handler, which says both which types it applies (`accepts`) and how."""

    group: str
    topics: list[str]
    # Event type -> what makes the handler of its events. Types that share one maker share
    # one handler: their events that follow one another in a batch reach it together.
    handlers: Mapping[str, MakeHandler]
    # Called after each consumed batch's transaction (its outbox rows are published already).
    after_commit: Callable[[], None] | None = None
    # `bulk`: the consumer gives way to the service's live consumers (leadflow.lanes).
    lane: Lane = "live"

    @property
    def accepts(self) -> frozenset[str]:
        """The event types the consumer applies: its table's."""
        return frozenset(self.handlers)

    def table(self, runtime: Runtime) -> Handlers:
        """The consumer's table for `runtime`, each maker called once: the types that share
        a maker share its handler, and so its runs (leadflow.processing.runs)."""
        made: dict[MakeHandler, BatchHandler] = {}
        for make in self.handlers.values():
            if make not in made:
                made[make] = make(runtime)
        return {event_type: made[make] for event_type, make in self.handlers.items()}


# Long-running work of a service besides its consumers, run under the supervisor by name.
Background = Callable[[Runtime], Coroutine[Any, Any, None]]


def get_runtime(request: Request) -> Runtime:
    """The running service's resources (a FastAPI dependency)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def stopping(request: Request) -> bool:
    """Whether the server answering `request` has begun to shut down (`serve` says so; an
    app served otherwise, e.g. by a test client, never is)."""
    check: Callable[[], bool] | None = getattr(request.app.state, "stopping", None)
    return check is not None and check()


async def session_dep(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A read session for one request."""
    async with runtime.sessions() as session:
        yield session


# Closed as soon as the route returns, before the response is sent: on SQLite every
# transaction holds the write lock, which a slow client must not keep from the consumers.
SessionDep = Annotated[AsyncSession, Depends(session_dep, scope="function")]


async def wait_for_broker(settings: Settings) -> None:
    """Create the topics, waiting for as long as the broker is away."""
    delay = 0.25
    while True:
        try:
            await ensure_topics(settings, topics.ALL)
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.info(
                "waiting for the Kafka broker",
                extra={"bootstrap": settings.kafka_bootstrap, "reason": describe(exc)},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_backoff_max_s)


async def connect_broker(settings: Settings, publisher: KafkaPublisher) -> None:
    """Create the topics and connect `publisher`, waiting for as long as the broker is away."""
    await wait_for_broker(settings)
    delay = 0.25
    while True:
        try:
            await publisher.start()
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, settings.retry_backoff_max_s)


def consumer_service(
    name: str,
    settings: Settings,
    specs: list[ConsumerSpec],
    *,
    routers: Sequence[APIRouter] = (),
    background: Mapping[str, Background] | None = None,
    description: str = "",
    ready_checks: dict[str, Callable[[], bool]] | None = None,
    authenticator: Authenticator | None = None,
    retention: Sequence[Rule] = (),
) -> FastAPI:
    """A FastAPI app that runs `specs` as consumer groups for as long as it is served.

    The service starts whether or not the database and the broker are up: its consumers,
    outbox relay and `background` jobs run under one supervisor, wait for what they need
    and restart after an error; `/readyz` says what is missing meanwhile. Its routes
    answer the callers `authenticator` lets in (built from `LEADFLOW_TOKENS` and
    `LEADFLOW_OIDC_*` by default; a bad setting raises ConfigError). A `retention` job
    prunes the shared tables and the service's own `retention` rules (leadflow.retention).
    """
    authenticator = authenticator or build_authenticator(settings.env)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            connect_timeout_s=settings.database_connect_timeout_s,
            statement_timeout_s=settings.database_statement_timeout_s,
        )
        publisher = KafkaPublisher(settings, name)
        metrics = consumer_metrics(name)
        relay = OutboxRelay(engine, publisher, settings, name, metrics)
        supervisor = Supervisor(name, backoff_max_s=settings.retry_backoff_max_s)
        runtime = Runtime(
            name, settings, engine, session_factory(engine), publisher, relay, metrics, supervisor
        )
        runtime.checks.update(ready_checks or {})
        app.state.runtime = runtime

        async def kafka() -> None:
            await connect_broker(settings, publisher)
            runtime.broker_ready.set()

        supervisor.spawn("kafka", kafka)
        supervisor.spawn("outbox-relay", relay.run)
        # Background work (e.g. SLA timers firing from the database) starts before the
        # consumers: joining a consumer group can take a while after a restart.
        for job_name, job in (background or {}).items():
            supervisor.spawn(job_name, functools.partial(job, runtime))
        rules = [*shared_rules(settings), *retention]
        supervisor.spawn(
            "retention",
            functools.partial(
                run_retention,
                runtime.sessions,
                rules,
                settings,
                functools.partial(supervisor.ok, "retention"),
            ),
        )
        priority = LanePriority()
        for spec in specs:
            processor = EventProcessor(
                consumer=spec.group,
                engine=engine,
                handlers=spec.table(runtime),
                dead_letters=publisher,
                settings=settings,
                metrics=metrics,
                outbox=relay,
                after_commit=spec.after_commit or _nothing,
            )
            runner = KafkaConsumerRunner(
                settings,
                spec.group,
                [settings.topic(t) for t in spec.topics],
                processor,
                gate=priority.bulk if spec.lane == "bulk" else priority.live,
                batch_max=settings.consumer_bulk_batch_max if spec.lane == "bulk" else None,
            )
            runtime.consumers.append(runner)
            supervisor.spawn(f"consumer:{spec.group}", functools.partial(_consume, runtime, runner))
        supervisor.spawn("lag-watcher", functools.partial(_watch_lag, runtime))
        log.info("service started", extra={"service": name})
        try:
            yield
        finally:
            log.info("service stopping", extra={"service": name})
            for runner in runtime.consumers:
                await runner.stop()
            await supervisor.stop()
            await relay.stop()
            await publisher.stop()
            await engine.dispose()
            log.info("service stopped", extra={"service": name})

    app = FastAPI(
        title=f"Leadflow {name}",
        description=description,
        lifespan=lifespan,
        telemetry=telemetry(settings),
        generate_unique_id_function=operation_id,
        **api_docs(settings),
    )
    install_problem_handlers(app)
    install_contract(app)
    install(app, authenticator)
    add_probe_routes(app, ready=_ready)
    add_metrics_route(app, settings)
    for router in routers:
        app.include_router(router)
    return app


async def _consume(runtime: Runtime, runner: KafkaConsumerRunner) -> None:
    await runtime.broker_ready.wait()
    await runner.run()


def _nothing() -> None:
    pass


async def _ready(app: FastAPI) -> dict[str, Any]:
    """Ready while the service can do its work; otherwise `reasons` says what is missing."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        return {"ready": False, "starting": True, "reasons": ["starting"]}
    reasons: list[str] = []
    if not runtime.broker_ready.is_set():
        reasons.append("broker: not connected yet")
    for runner in runtime.consumers:
        if runner.paused is not None:
            reasons.append(f"consumer {runner.group} paused: {runner.paused}")
    if not runtime.relay.healthy:
        reasons.append("outbox relay: failing")
    failing = runtime.supervisor.failing()
    reasons += [f"task {name} failing: {error}" for name, error in failing.items()]
    checks: dict[str, Any] = {
        "consumers": all(r.running and r.paused is None for r in runtime.consumers),
        "outbox_relay": runtime.relay.healthy,
        "background": not failing,
        **{name: check() for name, check in runtime.checks.items()},
    }
    reasons += [f"{name}: not ready" for name in runtime.checks if not checks[name]]
    try:
        async with asyncio.timeout(READY_DATABASE_TIMEOUT_S), runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception as exc:
        checks["database"] = False
        reasons.append(f"database: {describe(exc)}")
    return {"ready": not reasons, **checks, "reasons": reasons}


class Health(BaseModel):
    """The process answers."""

    status: Literal["ok"]


class Readiness(BaseModel):
    """Whether the service can do its work; each service adds its own checks (booleans,
    or its spool's state for the intake) beside `ready`."""

    model_config = ConfigDict(extra="allow")

    ready: bool
    reasons: list[str] = Field(default_factory=list, description="What is missing, if any.")


def add_probe_routes(app: FastAPI, ready: Callable[[FastAPI], Awaitable[dict[str, Any]]]) -> None:
    """`/healthz` (the process answers) and `/readyz` (it can do its work)."""

    @app.get("/healthz", tags=["operations"], dependencies=[PUBLIC])
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["operations"],
        dependencies=[PUBLIC],
        responses={
            200: {"model": Readiness, "description": "Ready."},
            503: {"model": Readiness, "description": "Not ready: `reasons` says why."},
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        body = await ready(request.app)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)


async def _watch_lag(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(5)
        for runner in runtime.consumers:
            runtime.metrics.consumer_lag.labels(runner.group).set(await runner.lag())
        runtime.supervisor.ok("lag-watcher")


class ApiDocs(TypedDict):
    """FastAPI's arguments that place the API's documents."""

    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def api_docs(settings: Settings) -> ApiDocs:
    """Where FastAPI serves the API's documents: nowhere in production (`/docs`, `/redoc`
    and `/openapi.json` tell a stranger every route), the usual paths elsewhere."""
    if settings.env == "production":
        return {"docs_url": None, "redoc_url": None, "openapi_url": None}
    return {"docs_url": "/docs", "redoc_url": "/redoc", "openapi_url": "/openapi.json"}


def telemetry(settings: Settings) -> TelemetryConfig:
    """FastAPI's OpenTelemetry switches: all on with `LEADFLOW_OTEL=true`, else all off.
    Its spans go to the tracer provider `leadflow.tracing.configure` installed."""
    return {
        "tracing": settings.otel,
        "metrics": settings.otel,
        "logs": settings.otel,
        "tracer_provider": tracing.provider(),
    }


def serve(app: FastAPI, settings: Settings, port: int) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down gracefully (bounded)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.stop_timeout_s),
        # The peer's address stays the peer's: a service that counts callers decides itself
        # which proxies' X-Forwarded-For to believe (the intake's LEADFLOW_INTAKE_TRUSTED_PROXIES).
        proxy_headers=False,
    )
    serve_metrics_port(settings)
    server = uvicorn.Server(config)
    # Long-lived responses (the console's event stream) watch this and end as soon as the
    # server starts stopping: uvicorn waits for every open response before the lifespan's
    # exit, so they would otherwise hold a SIGTERM up to LEADFLOW_STOP_TIMEOUT_S.
    app.state.stopping = lambda: server.should_exit
    server.run()

"""The router: consumes `leads.scored`, assigns leads to reps, explains every decision.

It also consumes `sla.escalated` (reassign, excluding the reps who missed the lead), CRM
outcomes (which close a rep's open lead and credit conversions, whichever of the person's
keys they name), contacts (so a rep marked out of office keeps the leads they reached) and
`lead.merged` (a person's keys become one), retries queued leads
as reps come on shift, sends the notifications its decisions queue, and serves the admin API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.erasure import ERASED, erasing
from leadflow.events import Envelope
from leadflow.faults import is_transient
from leadflow.notifications import EmailSender, NotificationDispatcher, WebhookSender
from leadflow.processing import BatchHandler, utcnow
from leadflow.runtime import Background, ConsumerSpec, Runtime, consumer_service, ready_made
from leadflow.settings import ConfigError, Settings
from leadflow.webhook_targets import signing_secrets, webhook_targets
from leadflow_router import admin, api, claims, handlers, pool_api, privacy, service
from leadflow_router.book_repository import SqlRoutingStore
from leadflow_router.metrics import QUEUED, UNCLAIMED
from leadflow_router.notify import PRODUCER, NotifyOptions
from leadflow_router.settings import RouterSettings

log = logging.getLogger(__name__)

RETRY_PAGE = 100


def _consumer(options: NotifyOptions) -> ConsumerSpec:
    def route(runtime: Runtime) -> BatchHandler:
        config = runtime.settings.app

        async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
            await service.apply_events(session, events, config, now, options)

        return handle

    return ConsumerSpec(
        group="leadflow-router",
        topics=[topics.SCORED, topics.ALERTS, topics.ACTIVITY],
        # Every type the batch applies in memory (`handlers.HANDLERS`) goes to one
        # `route_batch`: a run of scores, escalations, outcomes and merges loads the book once.
        handlers={
            **dict.fromkeys(handlers.HANDLERS, route),
            ERASED: ready_made(erasing(privacy.erase_people)),
        },
    )


def _bulk_consumer(options: NotifyOptions) -> ConsumerSpec:
    """Scored leads of bulk sources: routed by the same handler, while the live consumer
    leaves time (it gives way before each batch)."""
    live = _consumer(options)
    return ConsumerSpec(
        group="leadflow-router-bulk",
        topics=[topics.SCORED_BULK],
        handlers={"lead.scored": live.handlers["lead.scored"]},
        lane="bulk",
    )


def _notifications() -> Background:
    async def run(runtime: Runtime) -> None:
        settings = runtime.settings
        # Each rep's webhook and the CRM push sign with their own secret.
        secrets = signing_secrets(webhook_targets(settings.app, "router"))
        async with httpx.AsyncClient(timeout=settings.notify_timeout_s) as client:
            dispatcher = NotificationDispatcher(
                runtime.engine,
                settings,
                PRODUCER,
                {"email": EmailSender(settings), "webhook": WebhookSender(client, secrets)},
            )
            await dispatcher.run()

    return run


def _queue_retries(router_settings: RouterSettings, options: NotifyOptions) -> Background:
    async def run(runtime: Runtime) -> None:
        config = runtime.settings.app
        while True:
            await asyncio.sleep(router_settings.queue_retry_s)
            try:
                waiting, after_id = 0, 0
                while True:
                    async with runtime.sessions() as session, session.begin():
                        seen, assigned = await service.retry_queued(
                            session, config, utcnow(), options, after_id=after_id, limit=RETRY_PAGE
                        )
                    waiting += len(seen) - assigned
                    if assigned:
                        runtime.relay.wake()
                    if len(seen) < RETRY_PAGE:
                        break
                    after_id = seen[-1]
                QUEUED.set(waiting)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("database unavailable; queued leads will be retried later")

    return run


def _unclaimed(router_settings: RouterSettings, options: NotifyOptions) -> Background:
    """The pools' timer: acts once on each lead nobody claimed in time (`claims.py`)."""

    async def run(runtime: Runtime) -> None:
        config = runtime.settings.app
        if not any(team.pool is not None for team in config.teams):
            return
        while True:
            await asyncio.sleep(router_settings.pool_check_s)
            try:
                while True:
                    async with runtime.sessions() as session, session.begin():
                        done = await claims.act_on_unclaimed(
                            SqlRoutingStore(session), config, utcnow(), options, limit=RETRY_PAGE
                        )
                    UNCLAIMED.labels("distributed").inc(done.distributed)
                    UNCLAIMED.labels("kept").inc(len(done.acted_on) - done.distributed)
                    if done.acted_on:
                        runtime.relay.wake()
                    if len(done.acted_on) < RETRY_PAGE:
                        break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("database unavailable; unclaimed pool leads will be handled later")

    return run


def check(settings: Settings, router_settings: RouterSettings) -> None:
    """Refuse settings the router must not run with; raises ConfigError saying why."""
    if settings.env != "production":
        return
    if settings.app.routing.notify.crm_webhook and router_settings.crm_webhook_secret is None:
        raise ConfigError(
            "routing.notify.crm_webhook is set but LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET is not; "
            "production refuses to push assignments unsigned."
        )


def create_app(settings: Settings, router_settings: RouterSettings | None = None) -> FastAPI:
    """The router's ASGI app."""
    router_settings = router_settings or RouterSettings()
    check(settings, router_settings)
    options = NotifyOptions(public_url=router_settings.public_url.rstrip("/"))
    app = consumer_service(
        "router",
        settings,
        [_consumer(options), _bulk_consumer(options)],
        routers=[api.router, admin.router, pool_api.router],
        background={
            "notifications": _notifications(),
            "queue-retry": _queue_retries(router_settings, options),
            "pool-timer": _unclaimed(router_settings, options),
        },
        description=__doc__ or "",
    )
    app.state.notify_options = options
    return app

"""The SLA monitor: follow-up windows from `leads.assigned`, a ladder of alerts on `leads.alerts`,
emails and webhooks to reps and managers, the managers' view of open and overdue leads, and
their console's pages at `/console`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import topics
from leadflow.config import LeadflowConfig
from leadflow.erasure import ERASED, erasing
from leadflow.events import Envelope
from leadflow.faults import is_transient
from leadflow.notifications import EmailSender, NotificationDispatcher, Sender, WebhookSender
from leadflow.processing import BatchHandler, utcnow
from leadflow.retention import Rule
from leadflow.runtime import ConsumerSpec, MakeHandler, Runtime, consumer_service, ready_made
from leadflow.settings import Settings
from leadflow.webhook_targets import signing_secrets, webhook_targets
from leadflow_sla import domain, privacy, repository, service
from leadflow_sla.api import router
from leadflow_sla.console import pages as console
from leadflow_sla.console.repository import prune_expired_sessions
from leadflow_sla.metrics import OPEN_TIMERS, OPEN_WINDOWS, OVERDUE_WINDOWS
from leadflow_sla.reporting import api as reporting_api
from leadflow_sla.reporting.consumer import REPORTING_CONSUMER
from leadflow_sla.scheduler import TimerScheduler
from leadflow_sla.settings import SlaSettings

log = logging.getLogger(__name__)


def webhook_secrets(config: LeadflowConfig) -> dict[str, str]:
    """Signing secrets of the alert webhooks, read from the variables the config names."""
    return signing_secrets(webhook_targets(config, "sla-monitor"))


class Monitor:
    """The SLA monitor's moving parts: the consumer's handler, the timers, the dispatcher."""

    def __init__(self, sla_settings: SlaSettings) -> None:
        self.sla_settings = sla_settings
        self.scheduler = TimerScheduler(
            horizon_s=sla_settings.horizon_s, horizon_max=sla_settings.horizon_max
        )
        # Set while the notification job runs (it may be restarting after an error).
        self.dispatcher: NotificationDispatcher | None = None

    def handlers(self) -> dict[str, MakeHandler]:
        """The consumer's table: assignments, outcomes and merges open, close and move
        windows in one `service.apply_events` per run; erasures forget people."""
        return {
            **dict.fromkeys(domain.WINDOW_EVENTS, self.batch_handler),
            ERASED: ready_made(erasing(privacy.erase_people)),
        }

    def batch_handler(self, runtime: Runtime) -> BatchHandler:
        """Open and close a batch's windows; tell the scheduler about the timers opened."""
        config = runtime.settings.app

        async def handle(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
            await service.apply_events(session, events, config, now, self.scheduler.hint)

        return handle

    async def send_notifications(self, runtime: Runtime) -> None:
        """Send queued alerts (email, webhook, Slack) until cancelled; raises on a database
        error, to be restarted by the supervisor."""
        async with httpx.AsyncClient() as client:
            webhooks = WebhookSender(client, webhook_secrets(runtime.settings.app))
            senders: dict[str, Sender] = {
                "email": EmailSender(runtime.settings),
                "webhook": webhooks,
                "slack": webhooks,
            }
            self.dispatcher = NotificationDispatcher(
                runtime.engine, runtime.settings, service.PRODUCER, senders
            )
            try:
                await self.dispatcher.run()
            finally:
                self.dispatcher = None

    async def run_timers(self, runtime: Runtime) -> None:
        """Fire due timers until cancelled (their alerts go to the outbox and the dispatcher)."""
        config = runtime.settings.app
        router_url = self.sla_settings.router_link_url

        async def load(until: datetime, limit: int) -> list[datetime]:
            async with runtime.sessions() as session:
                return await repository.due_times(session, until, limit)

        async def fire(now: datetime) -> int:
            async with runtime.sessions() as session, session.begin():
                fired = await service.fire_due(session, config, router_url, now)
            if fired:
                runtime.relay.wake()
                if self.dispatcher is not None:
                    self.dispatcher.wake()
            return fired

        await self.scheduler.run(load, fire)

    async def refresh_gauges(self, runtime: Runtime) -> None:
        """Recount open timers and windows at a slow cadence (cheap with a million rows)."""
        teams = [t.name for t in runtime.settings.app.teams]
        while True:
            try:
                async with runtime.sessions() as session:
                    now = utcnow()
                    OPEN_TIMERS.set(await repository.count_open_timers(session))
                    rows = await repository.open_counts(session, now)
                opened = dict.fromkeys(teams, 0)
                late = dict.fromkeys(teams, 0)
                for row in rows:
                    opened[row.team] = opened.get(row.team, 0) + row.open
                    late[row.team] = late.get(row.team, 0) + row.overdue
                for team, count in opened.items():
                    OPEN_WINDOWS.labels(team).set(count)
                    OVERDUE_WINDOWS.labels(team).set(late[team])
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("database unavailable; SLA gauges not refreshed")
            await asyncio.sleep(self.sla_settings.gauge_interval_s)


def create_app(settings: Settings) -> FastAPI:
    """The SLA monitor's ASGI app."""
    sla_settings = SlaSettings()
    monitor = Monitor(sla_settings)
    spec = ConsumerSpec(
        group="leadflow-sla-monitor",
        topics=[topics.ASSIGNED, topics.ACTIVITY],
        handlers=monitor.handlers(),
        after_commit=monitor.scheduler.flush_hints,
    )
    app = consumer_service(
        "sla-monitor",
        settings,
        [spec, REPORTING_CONSUMER],
        routers=[router, reporting_api.router],
        background={
            "timers": monitor.run_timers,
            "notifications": monitor.send_notifications,
            "gauges": monitor.refresh_gauges,
        },
        description=__doc__ or "",
        ready_checks={"timers_loaded": lambda: monitor.scheduler.loaded},
        # Console sign-ins are of no use once expired, whatever their age.
        retention=[Rule("console_sessions", -1.0, prune_expired_sessions)],
    )
    console.install(app, sla_settings, settings.env)
    return app

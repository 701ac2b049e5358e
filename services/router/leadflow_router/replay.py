"""Routing in memory, one event at a time: what `leadflow simulate` routes history through.

It runs the router's own use case (`service.route_batch`) on an in-memory store that keeps
every assignment, so a simulation decides as the router would: caps per day and on open
leads, least load, weights and round-robin turns carry from one lead to the next. The
run-time roster is empty (no overrides, no absences recorded through the admin API): the
reps are the configuration's, with their working hours, holidays and configured absences.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from leadflow.config import LeadflowConfig
from leadflow.coroutines import complete
from leadflow.events import Envelope, LeadScored, new_event
from leadflow_router import service
from leadflow_router.book import Assignment, RoutingBook
from leadflow_router.domain import Decision
from leadflow_router.memory import InMemoryRoutingStore


class Replay:
    """The router's state for one configuration, kept in memory across events."""

    def __init__(self, config: LeadflowConfig, store: InMemoryRoutingStore | None = None) -> None:
        self.config = config
        self.store = store if store is not None else InMemoryRoutingStore()

    def apply(self, events: Sequence[Envelope], now: datetime) -> service.Routed:
        """Apply a batch of router events at `now`, exactly as the service would."""
        return complete(service.route_batch(self.store, events, self.config, now))

    def current(self, lead_key: str) -> Assignment | None:
        """The person's current assignment or queue entry (at any of their keys), if any."""
        person = self.store.person(lead_key)
        rows = complete(self.store.history([person])).get(person, [])
        return RoutingBook(history={person: rows}).current(person)

    def route(self, scored: LeadScored, event_id: str, now: datetime) -> Decision | None:
        """Apply one `lead.scored` at `now`: the decision when it calls for routing."""
        event = new_event(
            "lead.scored", scored, source="/leadflow/replay", time=now, event_id=event_id
        )
        [decision] = self.apply([event], now).decisions
        return decision

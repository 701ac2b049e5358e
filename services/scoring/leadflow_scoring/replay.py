"""Scoring in memory, one event at a time: what `leadflow simulate` replays history through.

It runs the service's own use case (`service.score_batch`) on an in-memory store, so a
simulation predicts exactly what the service would do: identity merges, the person's
aggregate and score, exactly-once qualification.
"""

from __future__ import annotations

from datetime import datetime

from leadflow.config import Scoring
from leadflow.events import LeadReceived, LeadScored, new_event
from leadflow.keys import LeadKeys
from leadflow_scoring import service
from leadflow_scoring.memory import InMemoryProfileStore, complete


class Replay:
    """Profiles, identifiers and touches of many people, kept in memory."""

    def __init__(self, model: Scoring, keys: LeadKeys) -> None:
        self.model = model
        self.keys = keys
        self.store = InMemoryProfileStore()

    def apply(self, received: LeadReceived, event_id: str, now: datetime) -> LeadScored:
        """Score one `lead.received` at `now`, exactly as the service would."""
        event = new_event(
            "lead.received", received, source="/leadflow/replay", time=now, event_id=event_id
        )
        [scored] = service.scores(
            complete(service.score_batch(self.store, [event], self.model, self.keys, now))
        )
        return scored

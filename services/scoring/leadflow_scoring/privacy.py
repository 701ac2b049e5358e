"""Erasing a person at scoring, which decides who is who: its own rows deleted, the erasure
recorded, `lead.erased` published for every other service. Never commits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import erasure, outbox
from leadflow.events import LeadErased, new_event
from leadflow_scoring import repository
from leadflow_scoring.service import PRODUCER, SOURCE


@dataclass(frozen=True)
class Erasure:
    """What an erasure request did: erased now, or found erased before."""

    status: Literal["erasing", "erased"]
    erasure_id: str
    erased_at: datetime
    # The keys the person was known by (erased now; none when erased before).
    keys: tuple[str, ...]


async def erase_person(session: AsyncSession, lead_key: str, now: datetime) -> Erasure | None:
    """Erase the person any of whose keys is `lead_key`; None when scoring never knew it.

    Scoring's profiles, identifiers, touches and unsent or sent events of the person go at
    once; the erasure record and `lead.erased` (same transaction, through the outbox) make
    the router, the SLA monitor and reporting erase theirs. Asking again for a key erased
    before changes nothing and says when it was.
    """
    live = await repository.live_key(session, lead_key)
    if live is None:
        before = await erasure.erased_since(session, [lead_key])
        if lead_key not in before:
            return None
        return Erasure("erased", "", before[lead_key], ())
    keys = await repository.person_keys(session, live)
    await repository.erase(session, keys)
    event = new_event(
        "lead.erased",
        LeadErased(lead_key=live, keys=sorted(keys), erased_at=now),
        source=SOURCE,
        time=now,
        event_id=erasure.erasure_id(live, now),
    )
    await erasure.forget_messages(session, PRODUCER, keys, keep_event_ids=())
    await erasure.record(session, keys, event.id, now)
    await outbox.enqueue(session, PRODUCER, event, now)
    return Erasure("erasing", event.id, now, tuple(sorted(keys)))

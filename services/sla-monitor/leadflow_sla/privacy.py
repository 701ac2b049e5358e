"""Erasing a person at the SLA monitor (`lead.erased`): follow-up windows, timers, outcomes,
alerts and unsent events deleted. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import erasure
from leadflow.events import LeadErased
from leadflow_sla import tables
from leadflow_sla.service import ALIASES, PRODUCER


async def erase_people(session: AsyncSession, erased: Sequence[LeadErased], _now: datetime) -> None:
    """Forget every person of `erased`, under every key the monitor knew them by."""
    keys = await erasure.forget_aliases(session, ALIASES, erasure.keys_of(erased))
    await erasure.forget_rows(session, erasure.tables_of(tables), keys)
    await erasure.forget_messages(session, PRODUCER, keys, keep_event_ids=())

"""Erasing a person in reporting (`lead.erased`): the lifecycle stays, so the reports keep
counting the lead, under a random key that leads to nobody. Never commits.

A lifecycle holds no name, email, phone or company: its key is what ties it to the
person. Its sources, campaigns, times, tier, owner and amounts stay (they are the
counts); a person who comes back is a new lead with a lifecycle of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import erasure
from leadflow.events import LeadErased
from leadflow_sla.reporting.service import ALIASES
from leadflow_sla.reporting.tables import lead_lifecycles

ANONYMOUS_PREFIX = "anon_"


def anonymous_key() -> str:
    """A key of no one: random, so that two erased lifecycles cannot be linked either."""
    return ANONYMOUS_PREFIX + uuid.uuid4().hex


async def erase_people(session: AsyncSession, erased: Sequence[LeadErased], now: datetime) -> None:
    """Move the lifecycles of every person of `erased` to anonymous keys (a statement to
    find them, one per lifecycle: a person has one, or a few before a merge reached
    reporting)."""
    keys = await erasure.forget_aliases(session, ALIASES, erasure.keys_of(erased))
    c = lead_lifecycles.c
    found = (
        await session.execute(select(c.lead_key).where(c.lead_key.in_(sorted(keys))))
    ).scalars()
    for key in list(found):
        await session.execute(
            update(lead_lifecycles)
            .where(c.lead_key == key)
            .values(lead_key=anonymous_key(), updated_at=now)
        )

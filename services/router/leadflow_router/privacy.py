"""Erasing a person at the router (`lead.erased`): assignments, decisions, the routed lead,
pool entries, notifications and unsent events deleted; admin audit lines naming the person
keep who did what and when, not to whom. Never commits."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Text, cast, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow import erasure
from leadflow.events import LeadErased
from leadflow_router import tables
from leadflow_router.book_repository import CONSUMER
from leadflow_router.notify import PRODUCER


async def erase_people(session: AsyncSession, erased: Sequence[LeadErased], _now: datetime) -> None:
    """Forget every person of `erased`, under every key the router knew them by."""
    keys = await erasure.forget_aliases(session, CONSUMER, erasure.keys_of(erased))
    await erasure.forget_rows(session, erasure.tables_of(tables), keys)
    await erasure.forget_messages(session, PRODUCER, keys, keep_event_ids=())
    await _forget_audit(session, keys)


async def _forget_audit(session: AsyncSession, keys: Collection[str]) -> None:
    c = tables.admin_audit.c
    naming = [
        cast(column, Text).contains(key, autoescape=True)
        for key in sorted(keys)
        for column in (c.before, c.after)
    ]
    await session.execute(
        update(tables.admin_audit).where(or_(*naming)).values(before=None, after=None)
    )

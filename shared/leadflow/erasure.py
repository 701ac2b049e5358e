"""Erasing a person: the erasure record, late events dropped, and what every consumer forgets.

Scoring erases a person on an administrator's request (`DELETE /v1/admin/people/{key}`):
it deletes its own rows, writes one `erasures` row per key of the person and publishes
`lead.erased` on `leads.activity`, keyed by the person's key like the rest of their
activity. Every other consumer handles it in its batch (`erasing` is the handler of
`lead.erased` in its table, and the table splits a batch at each run of erasures, so
events before it are applied and then erased, events after it are applied after): it
deletes what it holds under any of the person's keys, or keeps it only as an anonymous
count (reporting's lifecycles).

The erasure record keeps nothing personal: the SHA-256 of each key (itself an HMAC of
an email or a phone) and the moment. It exists because a person's events travel on
several topics: an assignment published before the erasure may reach the SLA monitor
after its `lead.erased`, a spooled webhook may be relayed an hour later. `EventProcessor`
drops (`late`) every event about an erased key that comes from before the erasure — the
lead's own time (`received_at`, an outcome's `occurred_at`, ...) — so nothing brings the
person back; a person who comes back afterwards (a new form fill) is a new lead.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime
from types import ModuleType

from sqlalchemy import Table, Text, cast, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.statements import insert_new
from leadflow.db.tables import erasures, lead_aliases, notifications, outbox
from leadflow.events import (
    Envelope,
    LeadActivity,
    LeadErased,
    LeadMerged,
    LeadScored,
    derived_event_id,
)

log = logging.getLogger(__name__)

ERASED = "lead.erased"
# A batch handler (leadflow.processing.BatchHandler) and what erases a batch's people.
Handle = Callable[[AsyncSession, Sequence[Envelope], datetime], Awaitable[None]]
Erase = Callable[[AsyncSession, Sequence[LeadErased], datetime], Awaitable[None]]


def key_hash(key: str) -> str:
    """What the erasure record keeps of a key: its SHA-256 (hex)."""
    return hashlib.sha256(key.encode()).hexdigest()


def erasure_id(lead_key: str, erased_at: datetime) -> str:
    """The `lead.erased` event's id: one per person and moment, whoever asks again."""
    return derived_event_id("lead.erased", key_hash(lead_key), erased_at.isoformat())


def keys_named(event: Envelope) -> set[str]:
    """Every key an event names its person by."""
    data = event.data
    keys = {event.subject}
    if isinstance(data, LeadActivity | LeadScored):
        keys.update(data.identifiers)
    if isinstance(data, LeadScored):
        keys.update(data.merged_from)
    if isinstance(data, LeadMerged):
        keys.update([data.survivor, *data.absorbed, *data.identifiers])
    return keys


def happened_at(event: Envelope) -> datetime:
    """When what an event tells of began: the lead's arrival for a score or an assignment
    (both follow from it), an outcome's occurrence, a merge's moment; else the event time."""
    data = event.data
    for name in ("received_at", "occurred_at", "merged_at", "assigned_at"):
        value = getattr(data, name, None)
        if isinstance(value, datetime):
            return value
    return event.time


async def record(session: AsyncSession, keys: Collection[str], erased: str, now: datetime) -> None:
    """Write the erasure record of a person's keys (one statement); a key erased before
    keeps its first record."""
    if not keys:
        return
    await session.execute(
        insert_new(session, erasures),
        [
            {"key_hash": key_hash(key), "erasure_id": erased, "erased_at": now}
            for key in sorted(set(keys))
        ],
    )


async def erased_since(session: AsyncSession, keys: Collection[str]) -> dict[str, datetime]:
    """When each of `keys` that was erased was (one statement)."""
    if not keys:
        return {}
    by_hash = {key_hash(key): key for key in keys}
    rows = await session.execute(
        select(erasures.c.key_hash, erasures.c.erased_at).where(
            erasures.c.key_hash.in_(sorted(by_hash))
        )
    )
    return {by_hash[row.key_hash]: row.erased_at for row in rows}


async def late(session: AsyncSession, events: Sequence[Envelope]) -> list[Envelope]:
    """`events` without those about an erased person from before the erasure (one
    statement). `lead.erased` itself always stays."""
    named = {event.id: keys_named(event) for event in events if event.type != ERASED}
    erased = await erased_since(session, set().union(*named.values()) if named else set())
    if not erased:
        return list(events)
    kept: list[Envelope] = []
    for event in events:
        times = [erased[key] for key in named.get(event.id, ()) if key in erased]
        if times and happened_at(event) <= max(times):
            log.info(
                "event about an erased person dropped",
                extra={"event_id": event.id, "type": event.type},
            )
            continue
        kept.append(event)
    return kept


def erasing(erase: Erase) -> Handle:
    """The handler of `lead.erased` events in a consumer's table: `erase` forgets their
    people. The table gives it each run of erasures in the batch's order, so a person's
    earlier events are applied and then erased, their later ones (a person who came
    back) applied after."""

    async def run(session: AsyncSession, events: Sequence[Envelope], now: datetime) -> None:
        await erase(session, [e.data for e in events if isinstance(e.data, LeadErased)], now)

    return run


def keys_of(erased: Sequence[LeadErased]) -> set[str]:
    """Every key of the people erased."""
    return {key for data in erased for key in (data.lead_key, *data.keys)}


async def forget_aliases(session: AsyncSession, consumer: str, keys: Collection[str]) -> set[str]:
    """Every key `consumer`'s aliases know the people of `keys` by (theirs included), and
    those alias rows deleted: two statements."""
    if not keys:
        return set()
    c = lead_aliases.c
    wanted = sorted(keys)
    roots = select(c.survivor).where(c.consumer == consumer, c.alias.in_(wanted))
    mine = or_(c.alias.in_(wanted), c.survivor.in_(wanted), c.survivor.in_(roots))
    rows = await session.execute(select(c.alias, c.survivor).where(c.consumer == consumer, mine))
    found = set(keys)
    for alias, survivor in rows:
        found.update((alias, survivor))
    await session.execute(
        delete(lead_aliases).where(
            c.consumer == consumer, or_(c.alias.in_(sorted(found)), c.survivor.in_(sorted(found)))
        )
    )
    return found


async def forget_messages(
    session: AsyncSession, producer: str, keys: Collection[str], keep_event_ids: Collection[str]
) -> None:
    """Delete `producer`'s outbox rows keyed by any of `keys` (the person's events, sent or
    not: an erased person is told of no more) but those in `keep_event_ids`, and its
    notifications naming any of them in the subject, body or payload: two statements."""
    if not keys:
        return
    await session.execute(
        delete(outbox).where(
            outbox.c.producer == producer,
            outbox.c.key.in_(sorted(keys)),
            outbox.c.event_id.not_in(sorted(keep_event_ids)),
        )
    )
    n = notifications.c
    naming = [
        column.contains(key, autoescape=True)
        for key in sorted(keys)
        for column in (n.subject, n.body, cast(n.payload, Text))
    ]
    await session.execute(delete(notifications).where(n.producer == producer, or_(*naming)))


def tables_of(module: ModuleType) -> list[Table]:
    """The tables a service's `tables` module declares (new ones are erased too)."""
    return [value for value in vars(module).values() if isinstance(value, Table)]


async def forget_rows(
    session: AsyncSession, tables: Sequence[Table], keys: Collection[str]
) -> None:
    """Delete the rows of `tables` about the people of `keys`: those with a `lead_key` among
    them, and those of a table without one whose `assignment_id` is one of their
    assignments' (a statement per table, one more to find those assignments)."""
    if not keys:
        return
    wanted = sorted(keys)
    keyed = [t for t in tables if "lead_key" in t.c]
    by_assignment = [t for t in tables if "lead_key" not in t.c and "assignment_id" in t.c]
    if by_assignment:
        found: set[str] = set()
        for table in keyed:
            if "assignment_id" in table.c:
                rows = await session.execute(
                    select(table.c.assignment_id).where(table.c.lead_key.in_(wanted))
                )
                found.update(rows.scalars())
        for table in by_assignment:
            if found:
                await session.execute(delete(table).where(table.c.assignment_id.in_(sorted(found))))
    for table in keyed:
        await session.execute(delete(table).where(table.c.lead_key.in_(wanted)))

"""Every SQL statement of the scoring service.

`SqlProfileStore` loads a batch's people and saves them in a fixed number of statements,
however many events the batch has. Locks (PostgreSQL; SQLite serialises writers anyway)
are taken in two sorted sweeps, identifiers then live profiles, so two instances scoring
one person through two of their keys run one after the other and never deadlock each
other on those rows; rows are changed only under them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.statements import insert_new
from leadflow.events import ScoreReason, Tier, TouchPoint
from leadflow_scoring import snapshot
from leadflow_scoring.profile import Touch
from leadflow_scoring.store import Claims, People, Record
from leadflow_scoring.tables import lead_identifiers, lead_profiles, lead_touches


class SqlProfileStore:
    """Scoring's profiles, identifiers and touches in the database, through one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def load(self, claims: Claims, now: datetime) -> People:
        """Claim and lock the batch's identifiers, then lock the live profiles they lead to."""
        owners = await _claim_identifiers(self._session, claims, now)
        direct = set(owners) | {key for key in owners.values() if key is not None}
        links = await _links(self._session, direct)
        records, merged = await _lock_live(self._session, {m or k for k, m in links.items()})
        merged = {**{k: m for k, m in links.items() if m is not None}, **merged}
        owned = await _owned(self._session, [*records, *merged])
        recorded = await _recorded(self._session, claims.event_ids)
        return People({**owned, **owners}, records, merged, recorded)

    async def touches(self, lead_keys: Collection[str]) -> dict[str, list[Touch]]:
        """The stored touches of some profiles, by profile key, oldest first."""
        found: dict[str, list[Touch]] = {key: [] for key in lead_keys}
        rows = await self._session.execute(
            select(lead_touches)
            .where(lead_touches.c.lead_key.in_(list(lead_keys)))
            .order_by(lead_touches.c.occurred_at, lead_touches.c.event_id)
        )
        for r in rows:
            found[r.lead_key].append(
                Touch(r.activity, r.source, r.occurred_at, r.detail, r.event_id, r.fields)
            )
        return found

    async def save(self, people: People, now: datetime) -> None:
        """Write the batch's profiles, merges, touches and identifiers, a statement each."""
        session = self._session
        created = [{"lead_key": r.lead_key, **_columns(r, now)} for r in people.created()]
        if created:
            await session.execute(insert(lead_profiles), created)
        rescored = [{"profile_key": r.lead_key, **_columns(r, now)} for r in people.rescored()]
        if rescored:
            await session.execute(
                update(lead_profiles).where(lead_profiles.c.lead_key == bindparam("profile_key")),
                rescored,
            )
        repointed = people.repointed()
        if repointed:
            await session.execute(
                update(lead_profiles)
                .where(lead_profiles.c.lead_key == bindparam("profile_key"))
                .values(merged_into=bindparam("survivor"), aggregate=None, updated_at=now),
                [{"profile_key": k, "survivor": s} for k, s in sorted(repointed.items())],
            )
        absorbed = people.absorbed()
        if absorbed:
            await session.execute(
                update(lead_touches)
                .where(lead_touches.c.lead_key == bindparam("profile_key"))
                .values(lead_key=bindparam("survivor")),
                [{"profile_key": k, "survivor": s} for k, s in sorted(absorbed.items())],
            )
        touches = [_touch_row(key, touch) for key, touch in people.recorded_touches()]
        if touches:
            await session.execute(insert_new(session, lead_touches), touches)
        attached = people.attached()
        if attached:
            await session.execute(
                update(lead_identifiers)
                .where(lead_identifiers.c.identifier == bindparam("identifier_key"))
                .values(lead_key=bindparam("owner")),
                [{"identifier_key": i, "owner": o} for i, o in sorted(attached.items())],
            )


async def _claim_identifiers(
    session: AsyncSession, claims: Claims, now: datetime
) -> dict[str, str | None]:
    """Create the missing identifier rows and lock all of them, in key order; their owners.

    On PostgreSQL a concurrent transaction claiming one of them waits here until this one
    commits, so two events of one person are never resolved at the same time.
    """
    keys = sorted(claims.identifiers)
    if not keys:
        return {}
    rows = [
        {
            "identifier": key,
            "kind": claims.identifiers[key].kind,
            "lead_key": None,
            "first_event_id": claims.identifiers[key].event_id,
            "created_at": now,
        }
        for key in keys
    ]
    await session.execute(insert_new(session, lead_identifiers), rows)
    locked = await session.execute(
        select(lead_identifiers.c.identifier, lead_identifiers.c.lead_key)
        .where(lead_identifiers.c.identifier.in_(keys))
        .order_by(lead_identifiers.c.identifier)
        .with_for_update()
    )
    return {row.identifier: row.lead_key for row in locked}


async def _links(session: AsyncSession, lead_keys: Collection[str]) -> dict[str, str | None]:
    """The profiles among some keys, each with the profile it was merged into (no lock)."""
    if not lead_keys:
        return {}
    rows = await session.execute(
        select(lead_profiles.c.lead_key, lead_profiles.c.merged_into).where(
            lead_profiles.c.lead_key.in_(list(lead_keys))
        )
    )
    return {row.lead_key: row.merged_into for row in rows}


async def _lock_live(
    session: AsyncSession, roots: Collection[str]
) -> tuple[dict[str, Record], dict[str, str]]:
    """Lock live profiles and the profiles merged into them, in key order.

    Returns the live ones and where each merged one went. A profile merged meanwhile by
    another transaction is followed to its survivor (locked in a sweep of its own).
    """
    records: dict[str, Record] = {}
    merged: dict[str, str] = {}
    wanted, seen = set(roots), set[str]()
    while wanted:
        keys = sorted(wanted - seen)
        seen |= wanted
        wanted = set()
        if not keys:
            break
        asked = set(keys)
        rows = await session.execute(
            select(lead_profiles)
            .where(or_(lead_profiles.c.lead_key.in_(keys), lead_profiles.c.merged_into.in_(keys)))
            .order_by(lead_profiles.c.lead_key)
            .with_for_update()
        )
        for row in rows:
            if row.merged_into is None:
                records[row.lead_key] = _record(row)
                continue
            merged[row.lead_key] = row.merged_into
            if row.lead_key in asked:
                wanted.add(row.merged_into)
    return records, merged


def _record(row: Row[Any]) -> Record:
    state, pending = (None, []) if row.aggregate is None else snapshot.load(row.aggregate)
    return Record(row.lead_key, row.first_seen_at, row.qualified_at, state, tuple(pending))


async def _owned(session: AsyncSession, lead_keys: Collection[str]) -> dict[str, str | None]:
    """The identifiers attached to some profiles: identifier -> profile key."""
    if not lead_keys:
        return {}
    rows = await session.execute(
        select(lead_identifiers.c.identifier, lead_identifiers.c.lead_key).where(
            lead_identifiers.c.lead_key.in_(list(lead_keys))
        )
    )
    return {row.identifier: row.lead_key for row in rows}


async def _recorded(session: AsyncSession, event_ids: Collection[str]) -> set[str]:
    """The events among `event_ids` whose touch is stored already."""
    if not event_ids:
        return set()
    rows = await session.execute(
        select(lead_touches.c.event_id).where(lead_touches.c.event_id.in_(list(event_ids)))
    )
    return set(rows.scalars())


def _columns(record: Record, now: datetime) -> dict[str, Any]:
    """A scored profile's row, but its key."""
    assert record.scored is not None, "only a scored profile has a row to write"
    profile, result = record.scored.profile, record.scored.score
    # A merged profile keeps no aggregate: its survivor's holds the person.
    state = record.state if record.merged_into is None else None
    return {
        "fields": profile.fields,
        "first_source": profile.first_touch.source,
        "last_source": profile.last_touch.source,
        "first_seen_at": profile.first_touch.occurred_at,
        "last_seen_at": profile.last_touch.occurred_at,
        "score": result.total,
        "fit": result.fit,
        "engagement": result.engagement,
        "tier": result.tier,
        "grade": result.grade,
        "model_version": record.scored.model_version,
        "qualified_at": record.qualified_at,
        "reasons": [r.model_dump(mode="json") for r in result.reasons],
        "first_touch": profile.first_touch.model_dump(mode="json"),
        "last_touch": profile.last_touch.model_dump(mode="json"),
        "merged_into": record.merged_into,
        "aggregate": snapshot.dump(state) if state is not None else None,
        "updated_at": now,
    }


def _touch_row(lead_key: str, touch: Touch) -> dict[str, Any]:
    return {
        "lead_key": lead_key,
        "event_id": touch.event_id,
        "source": touch.source,
        "activity": touch.activity,
        "occurred_at": touch.occurred_at,
        "detail": touch.detail,
        "fields": touch.fields,
    }


async def roots(session: AsyncSession, lead_keys: Collection[str]) -> set[str]:
    """The live profiles behind some profile keys (following merges); unknown keys are left out."""
    rows = await session.execute(
        select(lead_profiles.c.lead_key, lead_profiles.c.merged_into).where(
            lead_profiles.c.lead_key.in_(list(lead_keys))
        )
    )
    return {row.merged_into or row.lead_key for row in rows}


async def touches(session: AsyncSession, lead_key: str) -> list[Touch]:
    """A person's touches, oldest first (every one: not for the path of each event)."""
    rows = await session.execute(
        select(lead_touches)
        .where(lead_touches.c.lead_key == lead_key)
        .order_by(lead_touches.c.occurred_at, lead_touches.c.event_id)
    )
    return [
        Touch(r.activity, r.source, r.occurred_at, r.detail, r.event_id, r.fields) for r in rows
    ]


async def aliases(session: AsyncSession, lead_key: str) -> tuple[list[str], list[str]]:
    """A live profile's identifiers and the keys of the profiles merged into it (both sorted)."""
    merged = sorted(
        (
            await session.execute(
                select(lead_profiles.c.lead_key).where(lead_profiles.c.merged_into == lead_key)
            )
        ).scalars()
    )
    owned = (
        await session.execute(
            select(lead_identifiers.c.identifier).where(
                lead_identifiers.c.lead_key.in_([lead_key, *merged])
            )
        )
    ).scalars()
    return sorted(owned), merged


async def live_key(session: AsyncSession, key: str) -> str | None:
    """The live profile a key leads to: a profile key, a merged profile's key or an identifier."""
    owner = (
        await session.execute(
            select(lead_identifiers.c.lead_key).where(lead_identifiers.c.identifier == key)
        )
    ).scalar()
    found = await roots(session, [owner or key])
    return next(iter(found), None)


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A row of `lead_profiles` as scoring answers it (without its aggregate): the person's
    merged fields, where they came from, and their latest score with every reason."""

    lead_key: str
    # The lead's fields merged from every event, as the JSON document they are kept as.
    fields: dict[str, Any]
    first_source: str
    last_source: str
    first_seen_at: datetime
    last_seen_at: datetime
    score: int
    fit: int
    engagement: int
    tier: Tier
    grade: str
    model_version: str
    qualified_at: datetime | None
    updated_at: datetime
    reasons: list[ScoreReason]
    first_touch: TouchPoint | None
    last_touch: TouchPoint | None
    # Set when another profile absorbed this one: the person lives on under that key.
    merged_into: str | None


async def profile(session: AsyncSession, lead_key: str) -> StoredProfile | None:
    """A profile row as stored (no lock), without scoring's aggregate."""
    columns = [c for c in lead_profiles.c if c.name != "aggregate"]
    row = (
        await session.execute(select(*columns).where(lead_profiles.c.lead_key == lead_key))
    ).first()
    return _profile(row) if row is not None else None


def _profile(row: Row[Any]) -> StoredProfile:
    return StoredProfile(
        lead_key=str(row.lead_key),
        fields=dict(row.fields),
        first_source=str(row.first_source),
        last_source=str(row.last_source),
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        score=int(row.score),
        fit=int(row.fit),
        engagement=int(row.engagement),
        tier=row.tier,
        grade=str(row.grade),
        model_version=str(row.model_version),
        qualified_at=row.qualified_at,
        updated_at=row.updated_at,
        reasons=[ScoreReason.model_validate(r) for r in row.reasons],
        first_touch=_touch_point(row.first_touch),
        last_touch=_touch_point(row.last_touch),
        merged_into=row.merged_into,
    )


def _touch_point(stored: dict[str, Any] | None) -> TouchPoint | None:
    return TouchPoint.model_validate(stored) if stored is not None else None


async def person_keys(session: AsyncSession, lead_key: str) -> set[str]:
    """Every key of a live profile's person: its own, its merged profiles', each identifier's
    (two statements)."""
    identifiers, merged = await aliases(session, lead_key)
    return {lead_key, *merged, *identifiers}


async def erase(session: AsyncSession, keys: Collection[str]) -> None:
    """Delete a person's profiles, identifiers and touches (three statements): identifiers
    and profiles first, the rows a batch scoring the person locks, so that one in flight
    has committed its touches before they are deleted."""
    wanted = sorted(keys)
    await session.execute(
        delete(lead_identifiers).where(
            or_(lead_identifiers.c.identifier.in_(wanted), lead_identifiers.c.lead_key.in_(wanted))
        )
    )
    await session.execute(
        delete(lead_profiles).where(
            or_(lead_profiles.c.lead_key.in_(wanted), lead_profiles.c.merged_into.in_(wanted))
        )
    )
    await session.execute(delete(lead_touches).where(lead_touches.c.lead_key.in_(wanted)))


async def prune_touches(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` touches that happened before `before`; how many were."""
    oldest = (
        select(lead_touches.c.id)
        .where(lead_touches.c.occurred_at < before)
        .order_by(lead_touches.c.id)
        .limit(limit)
    )
    result = await session.execute(delete(lead_touches).where(lead_touches.c.id.in_(oldest)))
    return int(getattr(result, "rowcount", 0) or 0)

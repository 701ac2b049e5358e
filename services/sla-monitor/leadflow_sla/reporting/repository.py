"""Every SQL statement of reporting: lifecycles, what tier shares read of them, and run-time
costs per lead."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.statements import insert_new, upsert
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.reporting.query import ReportQuery
from leadflow_sla.reporting.tables import lead_costs, lead_lifecycles


async def lock_lifecycles(
    session: AsyncSession, lead_keys: Collection[str], now: datetime
) -> dict[str, Lifecycle]:
    """The leads' lifecycles (created empty where new), locked until the transaction ends.

    Two statements whatever the number of leads. Events of one lead come from several
    topics, so two consumers of the group may fold events of the same lead at once: the
    row locks make them take turns. Keys are created and locked in sorted order, so two
    batches sharing leads never wait for each other in a circle.
    """
    keys = sorted(set(lead_keys))
    if not keys:
        return {}
    empty = [{**Lifecycle(key).as_row(), "updated_at": now} for key in keys]
    await session.execute(insert_new(session, lead_lifecycles), empty)
    rows = await session.execute(
        select(lead_lifecycles)
        .where(lead_lifecycles.c.lead_key.in_(keys))
        .order_by(lead_lifecycles.c.lead_key)
        .with_for_update()
    )
    found = (Lifecycle.from_row(dict(row._mapping)) for row in rows)
    return {lc.lead_key: lc for lc in found}


# Sets every column given by name; the row is matched on `row_key` because SQLAlchemy
# keeps a column's own name for the value it sets.
_SAVE = update(lead_lifecycles).where(lead_lifecycles.c.lead_key == bindparam("row_key"))


async def save_lifecycles(
    session: AsyncSession, lifecycles: Iterable[Lifecycle], now: datetime
) -> None:
    """Write the lifecycles back, in one statement (their rows exist: `lock_lifecycles`)."""
    rows = [
        {"row_key": lc.lead_key, **_columns(lc), "updated_at": now}
        for lc in sorted(lifecycles, key=lambda lc: lc.lead_key)
    ]
    if rows:
        await session.execute(_SAVE, rows)


async def delete_lifecycles(session: AsyncSession, lead_keys: Collection[str]) -> None:
    """Delete the lifecycles of keys folded into another person's, in one statement."""
    if lead_keys:
        c = lead_lifecycles.c
        await session.execute(delete(lead_lifecycles).where(c.lead_key.in_(sorted(lead_keys))))


def _columns(lifecycle: Lifecycle) -> dict[str, Any]:
    row = lifecycle.as_row()
    del row["lead_key"]
    return row


async def lifecycle(session: AsyncSession, lead_key: str) -> Lifecycle | None:
    """One lead's lifecycle, if any of its events arrived."""
    row = (
        await session.execute(select(lead_lifecycles).where(lead_lifecycles.c.lead_key == lead_key))
    ).one_or_none()
    return None if row is None else Lifecycle.from_row(dict(row._mapping))


async def lifecycles(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None = None
) -> list[Lifecycle]:
    """Lifecycles of the leads a report covers (`covered`), by first touch."""
    c = lead_lifecycles.c
    statement = select(lead_lifecycles).where(*covered(query, teams))
    rows = await session.execute(statement.order_by(c.first_touch_at, c.lead_key))
    return [Lifecycle.from_row(dict(row._mapping)) for row in rows]


@dataclass(frozen=True, slots=True)
class TierLeadRow:
    """The columns of a lifecycle tier shares read (`tiers.TierLead`), and no others."""

    first_touch_at: datetime | None
    mql_at: datetime | None
    tier: str | None
    first_source: str | None
    first_campaign: str | None
    last_source: str | None
    last_campaign: str | None


async def tier_leads(
    session: AsyncSession, query: ReportQuery, teams: Collection[str] | None = None
) -> list[TierLeadRow]:
    """What tier shares read of the leads a report covers (`covered`), in one narrow
    statement: 10,000 leads are read in some 40 ms on SQLite, where building their
    lifecycles takes 300."""
    c = lead_lifecycles.c
    statement = select(
        c.first_touch_at,
        c.mql_at,
        c.tier,
        c.first_source,
        c.first_campaign,
        c.last_source,
        c.last_campaign,
    ).where(*covered(query, teams))
    return [TierLeadRow(*row) for row in await session.execute(statement)]


def covered(query: ReportQuery, teams: Collection[str] | None = None) -> list[ColumnElement[bool]]:
    """The conditions on `lead_lifecycles` of the leads a report covers: first touch in
    range, filters applied, and of `teams` alone when given (a viewer who sees some teams).

    Leads whose arrival is not known yet (an outcome overtook its lead.received) are left
    out until it is.
    """
    c = lead_lifecycles.c
    touch = query.touch
    conditions: list[ColumnElement[bool]] = [c.first_touch_at.is_not(None)]
    if query.start is not None:
        conditions.append(c.first_touch_at >= query.start)
    if query.end is not None:
        conditions.append(c.first_touch_at < query.end)
    for column, value in (
        (c[f"{touch}_source"], query.source),
        (c[f"{touch}_campaign"], query.campaign),
        (c[f"{touch}_segment"], query.segment),
        (c.team, query.team),
        (c.rep_id, query.rep),
    ):
        if value is not None:
            conditions.append(column == value)
    if teams is not None:
        conditions.append(c.team.in_(sorted(teams)))
    return conditions


@dataclass(frozen=True)
class RepTally:
    """The leads one rep of a team holds, of those that arrived in a period."""

    team: str
    rep_id: str
    leads: int
    mqls: int
    contacted: int


async def rep_tallies(
    session: AsyncSession, start: datetime, teams: Collection[str]
) -> list[RepTally]:
    """Per team and rep: the leads first seen since `start` that they hold, how many became
    MQLs and how many were contacted (one grouped statement)."""
    c = lead_lifecycles.c
    rows = await session.execute(
        select(
            c.team,
            c.rep_id,
            func.count(),
            func.count(c.mql_at),
            func.count(c.contacted_at),
        )
        .where(
            c.first_touch_at >= start,
            c.rep_id.is_not(None),
            c.team.in_(sorted(teams)),
        )
        .group_by(c.team, c.rep_id)
    )
    return [RepTally(*row) for row in rows]


async def cost_overrides(session: AsyncSession) -> dict[tuple[str, str], float]:
    """Costs per lead set at run time, by (kind, name)."""
    rows = await session.execute(
        select(lead_costs.c.kind, lead_costs.c.name, lead_costs.c.cost_per_lead)
    )
    return {(kind, name): float(cost) for kind, name, cost in rows.all()}


async def set_cost(
    session: AsyncSession, kind: str, name: str, cost_per_lead: float, now: datetime
) -> None:
    """Set (or replace) the cost per lead of a segment or campaign."""
    values = {"kind": kind, "name": name, "cost_per_lead": cost_per_lead, "updated_at": now}
    await session.execute(upsert(session, lead_costs, ("kind", "name")), [values])


async def delete_cost(session: AsyncSession, kind: str, name: str) -> bool:
    """Forget a run-time cost; False when there was none."""
    result = await session.execute(
        delete(lead_costs).where(lead_costs.c.kind == kind, lead_costs.c.name == name)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1

"""The Lead page: one person's whole journey across the services and their identifiers.

Touches and the score with every reason come from scoring's API, routing decisions with
their candidates from the router's, follow-up windows and alerts from the SLA monitor's
tables, CRM outcomes from reporting's lifecycle. `moments` lays them on one time line.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.auth import Principal
from leadflow_sla import service as sla_service
from leadflow_sla.console.rendering import counted
from leadflow_sla.console.upstream import Fetched, Upstream
from leadflow_sla.reporting import repository as reporting_repository
from leadflow_sla.reporting import service as reporting_service
from leadflow_sla.reporting.lifecycle import Lifecycle
from leadflow_sla.repository import StoredWindow, WindowHistory, lead_history


@dataclass(frozen=True)
class Moment:
    """One thing that happened to the lead, and which service saw it."""

    at: datetime
    service: str
    what: str
    detail: str = ""


@dataclass
class Journey:
    """Everything the console knows about one person."""

    lead_key: str
    asked: str
    profile: Fetched
    routing: Fetched
    windows: list[WindowHistory]
    lifecycle: Lifecycle | None
    moments: list[Moment] = field(default_factory=list)

    @property
    def teams(self) -> set[str]:
        """Every team the lead was with."""
        teams = {w.window.team for w in self.windows}
        if self.routing.ok:
            teams |= {h["team"] for h in self.routing.data.get("history", []) if h.get("team")}
        if self.lifecycle is not None and self.lifecycle.team:
            teams.add(self.lifecycle.team)
        return teams

    @property
    def known(self) -> bool:
        """Whether any service knows this key."""
        return bool(self.profile.ok or self.routing.ok or self.windows or self.lifecycle)

    def visible_to(self, principal: Principal) -> bool:
        """A manager sees the leads of their teams (a lead with no team yet: admins only)."""
        if principal.teams is None:
            return True
        return any(principal.sees_team(team) for team in self.teams)


def when(value: Any) -> datetime | None:
    """A time from a stored row or an API's JSON."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _profile_moments(profile: dict[str, Any]) -> list[Moment]:
    found = [
        Moment(at, "intake", f"touch: {t['activity']}", f"from {t['source']}")
        for t in profile.get("touches", [])
        if (at := when(t.get("occurred_at"))) is not None
    ]
    if (at := when(profile.get("qualified_at"))) is not None:
        found.append(Moment(at, "scoring", "qualified", f"score {profile.get('score')}"))
    if (at := when(profile.get("updated_at"))) is not None:
        found.append(
            Moment(
                at,
                "scoring",
                f"scored {profile.get('score')} ({profile.get('grade') or '-'}, "
                f"{profile.get('tier')})",
                f"{len(profile.get('reasons', []))} reasons",
            )
        )
    return found


def _routing_moments(routing: dict[str, Any]) -> list[Moment]:
    found = []
    for decision in routing.get("decisions", []):
        if (at := when(decision.get("decided_at"))) is None:
            continue
        target = decision.get("rep_name") or f"team {decision.get('team')}"
        found.append(
            Moment(
                at,
                "router",
                f"{decision.get('kind', 'route')}: {decision.get('outcome')} → {target}",
                str(decision.get("reason") or ""),
            )
        )
    return found


def _window_moments(windows: list[WindowHistory]) -> list[Moment]:
    found = []
    for w in (h.window for h in windows):
        who = f"{w.rep_id} ({w.team})"
        found.append(Moment(w.assigned_at, "sla", f"window opened for {who}", w.policy))
        found += _alert_moments(w, who)
        if w.contacted_at is not None:
            found.append(Moment(w.contacted_at, "sla", "first contact: window closed", who))
        elif w.closed_at is not None:
            found.append(Moment(w.closed_at, "sla", f"window closed ({w.outcome})"))
    return found


def _alert_moments(w: StoredWindow, who: str) -> list[Moment]:
    reached = (
        ("warning", w.warned_at),
        ("breached", w.breached_at),
        ("escalated", w.escalated_at),
    )
    return [Moment(at, "sla", f"alert: {stage}", who) for stage, at in reached if at is not None]


def _outcome_moments(lc: Lifecycle) -> list[Moment]:
    steps: list[tuple[datetime | None, str, str]] = [
        (lc.contacted_at, "contacted", counted(lc.contacts, "contact")),
        (lc.accepted_at, "accepted by sales", ""),
        (lc.rejected_at, "rejected by sales", lc.rejection_reason or ""),
        (lc.converted_at, "converted (SQL)", ""),
        (lc.won_at, "won", f"{counted(lc.won_deals, 'deal')}, revenue {lc.revenue:,.2f}"),
        (lc.lost_at, "lost", lc.lost_reason or ""),
    ]
    return [Moment(at, "crm", what, detail) for at, what, detail in steps if at is not None]


async def build(session: AsyncSession, upstream: Upstream, asked: str) -> Journey:
    """The journey of the person known by `asked` (any of their keys)."""
    # The other services first: a read transaction of ours kept open while they answer
    # could hold up their writers, and so them (SQLite locks the whole file).
    profile, routing = await asyncio.gather(upstream.profile(asked), upstream.routing(asked))
    person = await sla_service.person_key(session, asked)
    windows = await lead_history(session, person)
    reported = await reporting_service.person_key(session, asked)
    lifecycle = await reporting_repository.lifecycle(session, reported)
    key = person
    if routing.ok:
        key = str(routing.data.get("lead_key") or key)
    elif profile.ok:
        key = str(profile.data.get("lead_key") or key)
    journey = Journey(key, asked, profile, routing, windows, lifecycle)
    moments = _window_moments(windows)
    if profile.ok:
        moments += _profile_moments(profile.data)
    if routing.ok:
        moments += _routing_moments(routing.data)
    if lifecycle is not None:
        moments += _outcome_moments(lifecycle)
    journey.moments = sorted(moments, key=lambda m: m.at)
    return journey

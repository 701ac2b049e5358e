"""`leadflow simulate`: replay historical leads through two configurations and compare.

Nothing is written anywhere: scoring and routing run the services' own use cases
(`score_batch`, `route_batch`) on in-memory stores, one lead at a time in time order, at
the moment each lead was received. Routing keeps every assignment it makes, so caps per
day and on open leads, least load, weights and round-robin turns count what the
simulation assigned before, exactly as the router counts what it assigned. What the
history does not hold is not simulated: the router starts empty, the reps are the
configuration's (working hours, holidays and configured absences apply; no run-time
overrides or absences), no CRM outcome closes an open lead (a rep's `max_open` leads stay
open), nothing is escalated, and a queued lead stays queued (the router's queue retry
would assign it later).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from leadflow.config import LeadflowConfig
from leadflow.events import Envelope, LeadReceived, LeadScored, derived_event_id
from leadflow.keys import LeadKeys
from leadflow_intake import canonical
from leadflow_router.replay import Replay as RouterReplay
from leadflow_scoring.replay import Replay as ScoringReplay


class HistoryError(ValueError):
    """A line of the history file that is not a lead, with its line number."""


@dataclass(frozen=True)
class Outcome:
    """Where one person ends up after the whole history: tier, grade and assignment."""

    lead_key: str
    tier: str
    grade: str
    score: int
    team: str | None = None
    rep: str | None = None
    rule: str | None = None


@dataclass
class Comparison:
    """What changes when the candidate configuration replaces the current one."""

    leads: int
    events: int
    tiers: dict[str, dict[str, int]]
    grades: dict[str, dict[str, int]]
    tier_moves: dict[str, int]
    changed: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> bytes:
        """The comparison as indented JSON."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def read_history(path: Path, keys: LeadKeys) -> list[LeadReceived]:
    """Leads from a JSON-lines file: `lead.received` CloudEvents, or webhook bodies.

    A webhook body (`{"event": "lead", ...}`, as posted to a `standard` source) may carry
    `received_at` (ISO 8601 with a zone) and `source` next to `event`; it is keyed with
    `keys`, as the intake would key it.
    """
    leads: list[LeadReceived] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            leads.append(_lead(orjson.loads(line), number, keys))
        except (orjson.JSONDecodeError, ValidationError, ValueError) as exc:
            raise HistoryError(f"{path}:{number}: {_short(exc)}") from exc
    return sorted(leads, key=lambda lead: lead.received_at)


def _lead(doc: Any, number: int, keys: LeadKeys) -> LeadReceived:
    if not isinstance(doc, dict):
        raise ValueError("each line must be a JSON object.")
    if "specversion" in doc:
        event = Envelope.model_validate(doc)
        if not isinstance(event.data, LeadReceived):
            raise ValueError(f"a {event.type} event is not a lead; only lead.received replays.")
        return event.data
    received_at = datetime.fromisoformat(doc.pop("received_at", datetime.now(UTC).isoformat()))
    if received_at.tzinfo is None:
        raise ValueError("received_at needs a time zone, e.g. 2026-11-20T09:30:00Z.")
    source = str(doc.pop("source", "history"))
    body = canonical.LeadBody.model_validate(doc)
    event = canonical.to_event(
        body, keys=keys, source=source, delivery_id=f"line-{number}", now=received_at
    )
    data = event.data
    assert isinstance(data, LeadReceived)
    return data


def _short(exc: Exception) -> str:
    if isinstance(exc, orjson.JSONDecodeError):
        return f"not valid JSON ({exc})."
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
    return str(exc)


def replay(
    config: LeadflowConfig,
    keys: LeadKeys,
    history: list[LeadReceived],
    step: Callable[[], None] = lambda: None,
) -> dict[str, Outcome]:
    """Every person's outcome after replaying `history` in time order through `config`,
    people being told apart by their `keys` as scoring tells them apart.

    Each lead is scored, then its score goes to the router as the scoring service would
    publish it; a person keeps the assignment the router holds for them (their first
    routing; of two profiles routed before they merged, the earlier assignment).
    """
    engine = ScoringReplay(config.scoring, keys)
    router = RouterReplay(config)
    outcomes: dict[str, Outcome] = {}
    for received in history:
        event_id = derived_event_id("simulate", received.source, received.delivery_id)
        now = received.received_at
        scored: LeadScored = engine.apply(received, event_id, now)
        for merged in scored.merged_from:
            outcomes.pop(merged, None)
        router.route(scored, derived_event_id("lead.scored", event_id), now)
        held = router.current(scored.lead_key)
        team, rep, rule = (held.team, held.rep_id, held.rule) if held else (None, None, None)
        outcomes[scored.lead_key] = Outcome(
            scored.lead_key, scored.tier, scored.grade, scored.score, team, rep, rule
        )
        step()
    return outcomes


def compare(
    current: Mapping[str, Outcome], candidate: Mapping[str, Outcome], events: int
) -> Comparison:
    """Counts per tier and grade under both configurations, and every lead that changed."""
    keys = sorted(set(current) | set(candidate))
    moves: Counter[str] = Counter()
    changed: list[dict[str, Any]] = []
    for key in keys:
        a, b = current.get(key), candidate.get(key)
        if a is None or b is None:
            continue
        if a.tier != b.tier:
            moves[f"{a.tier} -> {b.tier}"] += 1
        if (a.tier, a.grade, a.team, a.rep) != (b.tier, b.grade, b.team, b.rep):
            changed.append({"lead_key": key, "current": asdict(a), "candidate": asdict(b)})
    return Comparison(
        leads=len(keys),
        events=events,
        tiers={"current": _count(current, "tier"), "candidate": _count(candidate, "tier")},
        grades={"current": _count(current, "grade"), "candidate": _count(candidate, "grade")},
        tier_moves=dict(sorted(moves.items())),
        changed=changed,
    )


def _count(outcomes: Mapping[str, Outcome], attr: str) -> dict[str, int]:
    return dict(sorted(Counter(getattr(o, attr) for o in outcomes.values()).items()))

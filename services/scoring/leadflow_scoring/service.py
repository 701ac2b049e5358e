"""Scoring orchestration: merge the profile, re-score, emit `lead.scored` via the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.config import Scoring
from leadflow.events import Envelope, Lead, LeadReceived, LeadScored, derived_event_id, new_event
from leadflow.outbox import enqueue
from leadflow_scoring import domain, repository
from leadflow_scoring.metrics import SCORED

PRODUCER = "scoring"


async def score_received(
    session: AsyncSession, event: Envelope, model: Scoring, now: datetime
) -> LeadScored:
    """Apply a `lead.received`: record the touch, merge the profile, score, and emit."""
    received = event.data
    assert isinstance(received, LeadReceived)
    touch = domain.Touch(
        activity=received.activity,
        source=received.source,
        occurred_at=received.received_at,
        detail=_touch_detail(received.lead),
    )
    await repository.add_touch(session, received.lead_key, event.id, touch)
    current = await repository.profile(session, received.lead_key)
    fields = domain.merge_fields(current["fields"] if current else {}, received.lead)
    result = domain.score(model, fields, await repository.touches(session, received.lead_key))
    newly_qualified = result.qualified and (current is None or current["qualified_at"] is None)
    await repository.save_profile(
        session,
        {
            "lead_key": received.lead_key,
            "fields": fields,
            "first_source": current["first_source"] if current else received.source,
            "last_source": received.source,
            "first_seen_at": current["first_seen_at"] if current else received.received_at,
            "last_seen_at": received.received_at,
            "score": result.total,
            "fit": result.fit,
            "engagement": result.engagement,
            "tier": result.tier,
            "model_version": model.version,
            "qualified_at": now if newly_qualified else (current or {}).get("qualified_at"),
        },
        exists=current is not None,
        now=now,
    )
    scored = LeadScored(
        lead_key=received.lead_key,
        model_version=model.version,
        score=result.total,
        fit=result.fit,
        engagement=result.engagement,
        tier=result.tier,
        qualified=result.qualified,
        newly_qualified=newly_qualified,
        reasons=result.reasons,
        scored_at=now,
        received_at=received.received_at,
        source=received.source,
        lead=Lead.model_validate(fields),
    )
    await enqueue(
        session,
        PRODUCER,
        new_event(
            "lead.scored",
            scored,
            source="/leadflow/scoring",
            time=now,
            event_id=derived_event_id("lead.scored", event.id),
        ),
        now,
    )
    SCORED.labels(result.tier).inc()
    return scored


def _touch_detail(lead: Lead) -> dict[str, object]:
    """What of the event itself (not the person) engagement rules may look at."""
    detail: dict[str, object] = {
        "campaign": lead.campaign,
        "content_asset": lead.content_asset,
        "call_duration_s": lead.call_duration_s,
        "utm": lead.utm,
    }
    return {k: v for k, v in detail.items() if v not in (None, {}, "")}

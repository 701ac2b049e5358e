"""Who hears about a routing decision: the rep, the manager, the CRM (pure; queued with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadflow.config import LeadflowConfig
from leadflow.delivery import Notification
from leadflow.events import Envelope, LeadScored
from leadflow_router.book import Assignment
from leadflow_router.domain import Decision

PRODUCER = "router"


@dataclass(frozen=True)
class NotifyOptions:
    """Where the explanation is served (for links in messages)."""

    public_url: str = "http://127.0.0.1:8002"


def _lead_lines(scored: LeadScored) -> list[str]:
    lead = scored.lead
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or "(no name given)"
    lines = [
        f"Name: {name}",
        f"Title: {lead.job_title or '-'}",
        f"Company: {lead.company.name or '-'}"
        + (f" ({lead.company.size} employees)" if lead.company.size else ""),
        f"Email: {lead.email or '-'}",
        f"Phone: {lead.phone or '-'}",
        f"Country: {lead.country or '-'}",
    ]
    if lead.product_interest:
        lines.append(f"Interested in: {lead.product_interest}")
    lines.append(f"Score: {scored.score} (tier {scored.tier}) from source {scored.source}")
    return lines


def _payload(event: Envelope, scored: LeadScored, why_url: str) -> dict[str, Any]:
    return {
        "type": event.type,
        "event_id": event.id,
        "assignment": event.data.model_dump(mode="json"),
        "lead": scored.lead.model_dump(mode="json", exclude_none=True),
        "score": {
            "score": scored.score,
            "tier": scored.tier,
            "model_version": scored.model_version,
        },
        "why_url": why_url,
    }


def notifications_for(
    config: LeadflowConfig,
    options: NotifyOptions,
    scored: LeadScored,
    decision: Decision,
    event: Envelope,
) -> list[Notification]:
    """Every notification this decision calls for, each under its own dedupe key."""
    settings = config.routing.notify
    why_url = f"{options.public_url}/v1/leads/{scored.lead_key}/routing"
    key = f"router:{event.id}"
    notes: list[Notification] = []
    manager = config.team(decision.team).manager
    if decision.rep_id is not None:
        rep = config.rep(decision.rep_id)
        verb = "reassigned to you" if event.type == "lead.reassigned" else "for you"
        subject = f"New lead {verb}: {scored.lead.company.name or scored.lead_key}"
        body = "\n".join(
            [
                f"Hi {rep.name},",
                "",
                f"A {scored.tier.upper()} lead is {verb}.",
                "",
                *_lead_lines(scored),
                "",
                f"Why you: {decision.reason}.",
                f"Details: {why_url}",
            ]
        )
        payload = _payload(event, scored, why_url)
        if settings.rep_email:
            notes.append(Notification("email", rep.email, subject, body, f"{key}:rep:email", {}))
        if settings.rep_webhook and rep.webhook:
            notes.append(
                Notification("webhook", rep.webhook, subject, body, f"{key}:rep:webhook", payload)
            )
        if settings.crm_webhook:
            notes.append(
                Notification(
                    "webhook", settings.crm_webhook, subject, body, f"{key}:crm:webhook", payload
                )
            )
    elif decision.outcome == "pooled":
        notes.extend(_pool_notifications(config, options, scored, decision, event))
    elif settings.manager_on_queue:
        notes.append(
            Notification(
                "email",
                manager.email,
                f"Lead queued for team {decision.team}: nobody can take it now",
                "\n".join(
                    [f"Hi {manager.name},", "", f"{decision.reason}.", ""]
                    + [f"{rep}: {why}" for rep, why in decision.skipped.items()]
                    + ["", f"Details: {why_url}"]
                ),
                f"{key}:queued:email",
                {},
            )
        )
    if decision.priority_account and settings.manager_on_priority_account:
        # The account owner's manager hears about it, wherever the lead went.
        account = next(a for a in config.accounts if a.name == decision.account)
        owner_team = config.team_of(account.owner)
        boss = owner_team.manager if owner_team is not None else manager
        taker = decision.rep_id and config.rep(decision.rep_id).name
        notes.append(
            Notification(
                "email",
                boss.email,
                f"Priority account {decision.account}: new lead "
                + (f"assigned to {taker}" if taker else "queued"),
                "\n".join(
                    [
                        f"Hi {boss.name},",
                        "",
                        f"{decision.reason}.",
                        "",
                        *decision.trace,
                        "",
                        f"Details: {why_url}",
                    ]
                ),
                f"{key}:priority:email",
                {},
            )
        )
    return notes


def merge_notifications(
    config: LeadflowConfig,
    options: NotifyOptions,
    lead_key: str,
    kept: Assignment,
    closed: Assignment,
    scored: LeadScored | None,
) -> list[Notification]:
    """What the reps hear when two of a person's assignments became one: the rep whose
    assignment closed that the lead is with the other rep now, the kept rep that a lead of
    theirs was also assigned to someone else, who stands down."""
    settings = config.routing.notify
    why_url = f"{options.public_url}/v1/leads/{lead_key}/routing"
    company = (scored.lead.company.name if scored is not None else None) or lead_key
    lines = [*_lead_lines(scored), ""] if scored is not None else []
    key = f"router:merged:{closed.assignment_id}"
    payload = {
        "type": "lead.merged",
        "lead_key": lead_key,
        "kept_assignment_id": kept.assignment_id,
        "kept_rep_id": kept.rep_id,
        "closed_assignment_id": closed.assignment_id,
        "closed_rep_id": closed.rep_id,
        "why_url": why_url,
    }
    kept_name = _rep_name(config, kept.rep_id)
    notes: list[Notification] = []
    for rep_id, role, subject, message in (
        (
            closed.rep_id,
            "closed",
            f"Lead merged: {company} is with {kept_name or 'another rep'} now",
            "two records of this lead turned out to be one person, who was assigned earlier to "
            f"{kept_name or 'another rep'}; you no longer need to follow it up",
        ),
        (
            kept.rep_id,
            "kept",
            f"Lead merged: {company} stays with you",
            "another record of this lead, assigned to "
            f"{_rep_name(config, closed.rep_id) or 'nobody yet'}, turned out to be the same "
            "person; it stays with you",
        ),
    ):
        rep = next((r for r in config.reps if r.id == rep_id), None)
        if rep is None:  # a queue entry, or a rep who left the configuration
            continue
        body = "\n".join([f"Hi {rep.name},", "", f"{message[0].upper()}{message[1:]}.", "", *lines])
        body += f"Details: {why_url}"
        if settings.rep_email:
            notes.append(Notification("email", rep.email, subject, body, f"{key}:{role}:email", {}))
        if settings.rep_webhook and rep.webhook:
            notes.append(
                Notification(
                    "webhook", rep.webhook, subject, body, f"{key}:{role}:webhook", payload
                )
            )
    return notes


def handover_notifications(
    config: LeadflowConfig,
    options: NotifyOptions,
    scored: LeadScored,
    closed: Assignment,
    taken: Assignment,
    why: str,
) -> list[Notification]:
    """What the rep a lead was taken from hears (a manager reassigned it by hand, or they
    were marked out of office): who has it now, and why; the new rep hears of it as of any
    reassignment (`notifications_for`)."""
    rep = next((r for r in config.reps if r.id == closed.rep_id), None)
    if rep is None:  # a rep who left the configuration
        return []
    settings = config.routing.notify
    why_url = f"{options.public_url}/v1/leads/{taken.lead_key}/routing"
    company = scored.lead.company.name or taken.lead_key
    taker = _rep_name(config, taken.rep_id) or "another rep"
    subject = f"Lead reassigned: {company} is with {taker} now"
    body = "\n".join(
        [
            f"Hi {rep.name},",
            "",
            f"This lead was reassigned to {taker}: {why}. You no longer need to follow it up.",
            "",
            *_lead_lines(scored),
            "",
            f"Details: {why_url}",
        ]
    )
    key = f"router:handover:{taken.assignment_id}"
    payload = {
        "type": "lead.handed_over",
        "lead_key": taken.lead_key,
        "closed_assignment_id": closed.assignment_id,
        "previous_rep_id": closed.rep_id,
        "assignment_id": taken.assignment_id,
        "rep_id": taken.rep_id,
        "reason": why,
        "why_url": why_url,
    }
    notes: list[Notification] = []
    if settings.rep_email:
        notes.append(Notification("email", rep.email, subject, body, f"{key}:email", {}))
    if settings.rep_webhook and rep.webhook:
        notes.append(Notification("webhook", rep.webhook, subject, body, f"{key}:webhook", payload))
    return notes


def _rep_name(config: LeadflowConfig, rep_id: str | None) -> str | None:
    if rep_id is None:
        return None
    return next((rep.name for rep in config.reps if rep.id == rep_id), rep_id)


def _pool_notifications(
    config: LeadflowConfig,
    options: NotifyOptions,
    scored: LeadScored,
    decision: Decision,
    event: Envelope,
) -> list[Notification]:
    """What a pool's reps hear when a lead arrives in it: that it waits, and where to
    claim it (the first of them to claim it gets it)."""
    settings = config.routing.notify
    team = config.team(decision.team)
    pool_url = f"{options.public_url}/v1/pools/{team.name}"
    claim_url = f"{options.public_url}/v1/leads/{scored.lead_key}/claim"
    subject = f"New lead in the {team.name} pool: {scored.lead.company.name or scored.lead_key}"
    payload = {
        "type": event.type,
        "event_id": event.id,
        "pooled": event.data.model_dump(mode="json"),
        "pool_url": pool_url,
        "claim_url": claim_url,
    }
    notes: list[Notification] = []
    for rep_id in team.reps:
        rep = config.rep(rep_id)
        if not rep.active:
            continue
        body = "\n".join(
            [
                f"Hi {rep.name},",
                "",
                f"A {scored.tier.upper()} lead waits in team {team.name}'s pool: the first rep "
                "to claim it gets it.",
                "",
                *_lead_lines(scored),
                "",
                f"Claim it: POST {claim_url} with your token.",
                f"The pool: {pool_url}",
            ]
        )
        key = f"router:{event.id}:pool:{rep_id}"
        if settings.rep_email:
            notes.append(Notification("email", rep.email, subject, body, f"{key}:email", {}))
        if settings.rep_webhook and rep.webhook:
            notes.append(
                Notification("webhook", rep.webhook, subject, body, f"{key}:webhook", payload)
            )
    return notes


def unclaimed_notifications(
    config: LeadflowConfig,
    options: NotifyOptions,
    scored: LeadScored,
    entry: Assignment,
    waited: str,
    outcome: str,
) -> list[Notification]:
    """What a pool's manager hears when nobody claimed a lead in time: how long it waited
    and what happened to it (`outcome`, a sentence); once per pool entry."""
    team = config.team(entry.team)
    manager = team.manager
    why_url = f"{options.public_url}/v1/leads/{entry.lead_key}/routing"
    subject = f"Lead unclaimed in the {team.name} pool for {waited}"
    body = "\n".join(
        [
            f"Hi {manager.name},",
            "",
            f"Nobody in team {team.name} claimed this lead within {waited} of its arrival in "
            f"the pool. {outcome}",
            "",
            *_lead_lines(scored),
            "",
            f"Details: {why_url}",
        ]
    )
    key = f"router:unclaimed:{entry.assignment_id}:manager:email"
    return [Notification("email", manager.email, subject, body, key, {})]

"""`leadflow demo`: a realistic mix of signed leads and CRM outcomes, posted to a running stack.

Leads come from several channels and campaigns, companies of every size and buyers of
every seniority, each through the source it comes from: forms through `web` (Standard
Webhooks), and, when the configuration has them, callers through the IVR (a Twilio Studio
request answering the source's questions, Twilio-signed) and tracked calls through CallRail
(answered or missed, first-time callers). Once the router has assigned a lead (read from
the SLA monitor's `/v1/reports/leads/{lead_key}`), the demo plays the CRM: first contact
(fast, slow or never), acceptance or rejection with a reason, SQL, then won with an amount
or lost. Outcomes carry the time they happened on the sales calendar — hours to weeks after
the lead arrived — so `occurred_at` may lie ahead of the wall clock: the demo compresses
weeks of sales follow-up into minutes, while every report still measures real intervals.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson

from leadflow.config import Source
from leadflow.senders import signed_request

# (utm source, campaign, weight, quality): quality nudges how well a channel's leads convert.
CHANNELS = (
    ("google", "search-demo-q4", 30, 0.45),
    ("linkedin", "linkedin-abm", 20, 0.6),
    ("webinar", "webinar-ai-ops", 15, 0.7),
    ("ebook", "ebook-data-guide", 20, 0.3),
    ("partner", "partner-referral", 15, 0.8),
)
ACTIVITIES = (("demo_request", 30), ("pricing_page", 15), ("content_download", 35), ("webinar", 20))
TITLES = (
    ("VP Operations", 10),
    ("Director of IT", 12),
    ("Head of Data", 8),
    ("CTO", 5),
    ("Operations Manager", 20),
    ("Data Analyst", 25),
    ("Student", 5),
    ("Software Engineer", 15),
)
INDUSTRIES = ("software", "saas", "fintech", "manufacturing", "logistics", "retail", "education")
COUNTRIES = (("US", 40), ("GB", 15), ("DE", 12), ("FR", 10), ("IN", 13), ("BR", 10))
REJECTIONS = (
    ("no budget", 30),
    ("not a decision maker", 25),
    ("wrong company size", 15),
    ("student or job seeker", 10),
    ("duplicate of an open deal", 10),
    ("competitor", 10),
)
LOSSES = (("price", 40), ("chose a competitor", 35), ("no decision", 25))
# Callers: their area codes, and the share of leads that are calls when the configuration
# has an IVR (twilio) or call-tracking (callrail) source to post them through.
AREA_CODES = ("212", "312", "415", "512", "613", "617")
CALL_SHARE = 0.1
# Speed-to-lead buckets the demo's sales team hits: (lower, upper) minutes, weight.
CONTACT_DELAYS = ((0.5, 5, 40), (5, 60, 25), (60, 24 * 60, 20), (24 * 60, 96 * 60, 15))

POLL_S = 0.5
ASSIGNMENT_WAIT_S = 20.0
DRAIN_S = 60.0


class DemoError(Exception):
    """The demo cannot run (the intake is unreachable); the message says what to check."""


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


@dataclass(frozen=True)
class DemoLead:
    """A lead the demo posts, with what drives its outcomes: the body its sender posts,
    through a source of `kind` (standard: a form; twilio: an IVR caller's form fields;
    callrail: a tracked call)."""

    body: dict[str, Any]
    quality: float
    size: int
    kind: str = "standard"


def make_lead(
    rng: random.Random,
    run: str,
    n: int,
    *,
    ivr_questions: Mapping[str, Sequence[str]] | None = None,
    tracked_calls: bool = False,
) -> DemoLead:
    """A plausible inbound lead: a form (channel, campaign, company, buyer and what they
    did), or a call when there is a source for it: to the IVR, pressing one of the keys
    `ivr_questions` lists for each question, or tracked by CallRail."""
    roll = rng.random()
    if ivr_questions is not None and roll < CALL_SHARE:
        return _ivr_call(rng, run, n, ivr_questions)
    if tracked_calls and CALL_SHARE <= roll < 2 * CALL_SHARE:
        return _tracked_call(rng, run, n)
    source, campaign, _, quality = _pick(rng, CHANNELS)
    size = int(rng.choice((rng.randint(5, 199), rng.randint(200, 999), rng.randint(1000, 20000))))
    title = _pick(rng, TITLES)[0]
    company = f"company{rng.randint(1, 400)}"
    lead = {
        "email": f"buyer.{run}.{n}@{company}.example",
        "first_name": "Demo",
        "last_name": f"Buyer {n}",
        "job_title": title,
        "company": {
            "name": company.title(),
            "domain": f"{company}.example",
            "size": size,
            "industry": rng.choice(INDUSTRIES),
        },
        "country": _pick(rng, COUNTRIES)[0],
        "campaign": campaign,
        "utm": {"source": source, "campaign": campaign},
    }
    body = {"event": "lead", "activity": _pick(rng, ACTIVITIES)[0], "lead": lead}
    return DemoLead(body, quality, size)


def _caller(rng: random.Random, run: str, n: int) -> str:
    """A valid North American number, different for each lead of a run."""
    line = (int(run[:4], 16) + n) % 10_000
    return f"+1{rng.choice(AREA_CODES)}555{line:04d}"


def _ivr_call(
    rng: random.Random, run: str, n: int, questions: Mapping[str, Sequence[str]]
) -> DemoLead:
    """The fields of the Studio request at the end of an IVR call (README's recipe)."""
    fields = {"CallSid": f"CA{rng.getrandbits(128):032x}", "From": _caller(rng, run, n)}
    fields["FromCountry"] = "US"
    fields |= {name: rng.choice(keys) for name, keys in questions.items() if keys}
    return DemoLead(
        fields, 0.7, rng.choice((rng.randint(20, 199), rng.randint(200, 5000))), "twilio"
    )


def _tracked_call(rng: random.Random, run: str, n: int) -> DemoLead:
    """A CallRail post-call webhook: a call from an ad, answered or missed."""
    source, campaign, _, quality = _pick(rng, CHANNELS)
    answered = rng.random() < 0.75
    body = {
        "resource_id": f"CAL{rng.getrandbits(128):032x}",
        "answered": answered,
        "first_call": rng.random() < 0.7,
        "duration": str(rng.randint(30, 900) if answered else 0),
        "customer_phone_number": _caller(rng, run, n),
        "customer_country": "US",
        "campaign": campaign,
        "utm_source": source,
        "utm_campaign": campaign,
    }
    return DemoLead(body, quality, rng.randint(20, 2000), "callrail")


@dataclass(frozen=True)
class PlannedOutcome:
    """One CRM outcome the demo will report, dated on the sales calendar."""

    kind: str
    occurred_at: datetime
    reason: str | None = None
    amount: float | None = None
    profit: float | None = None

    def body(self, lead_key: str, rep_id: str | None) -> dict[str, Any]:
        """The CRM webhook body."""
        body: dict[str, Any] = {
            "event": self.kind,
            "lead_key": lead_key,
            "occurred_at": self.occurred_at.isoformat(),
        }
        extra = {
            "rep_id": rep_id,
            "reason": self.reason,
            "amount": self.amount,
            "profit": self.profit,
        }
        body.update({k: v for k, v in extra.items() if v is not None})
        if self.amount is not None:
            body["currency"] = "USD"
        return body


def plan_outcomes(rng: random.Random, lead: DemoLead, arrived_at: datetime) -> list[PlannedOutcome]:
    """What the sales team does with an assigned lead, in order, from never-called to won."""
    if rng.random() < 0.12:
        return []
    low, high, _ = _pick(rng, CONTACT_DELAYS)
    at = arrived_at + timedelta(minutes=rng.uniform(low, high))
    plan = [PlannedOutcome("contacted", at)]
    if rng.random() < 0.1:
        return plan  # still being screened
    if rng.random() < 0.45 - 0.3 * lead.quality:
        at += timedelta(hours=rng.uniform(0.2, 24))
        return [*plan, PlannedOutcome("rejected", at, reason=str(_pick(rng, REJECTIONS)[0]))]
    at += timedelta(hours=rng.uniform(0.5, 48))
    plan.append(PlannedOutcome("accepted", at))
    if rng.random() > 0.4 + 0.4 * lead.quality:
        return plan
    at += timedelta(days=rng.uniform(1, 10))
    plan.append(PlannedOutcome("converted", at))
    at += timedelta(days=rng.uniform(7, 60))
    roll = rng.random()
    if roll < 0.25 + 0.35 * lead.quality:
        low_amount, high_amount = (
            (25_000, 90_000)
            if lead.size >= 1000
            else (8_000, 30_000)
            if lead.size >= 200
            else (2_000, 9_000)
        )
        amount = round(rng.uniform(low_amount, high_amount), -2)
        profit = round(amount * rng.uniform(0.55, 0.8), -2) if rng.random() < 0.3 else None
        plan.append(PlannedOutcome("won", at, amount=amount, profit=profit))
    elif roll < 0.8:
        plan.append(PlannedOutcome("lost", at, reason=str(_pick(rng, LOSSES)[0])))
    return plan


@dataclass
class DemoStats:
    """What the demo sent and what came of it."""

    leads: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    assigned: int = 0
    not_assigned: int = 0
    outcomes: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the terminal."""
        through = ", ".join(f"{n} through {s}" for s, n in sorted(self.by_source.items()))
        lines = [
            f"Sent {self.leads} leads ({through}; {self.refused} refused); {self.assigned} "
            f"were assigned and got {self.outcomes} CRM outcomes; {self.not_assigned} were not.",
            "Read the results: leadflow report funnel | speed | reasons | roi",
        ]
        lines += [f"problem: {p}" for p in self.problems[:5]]
        return "\n".join(lines)


@dataclass(frozen=True)
class DemoSource:
    """A configured source the demo posts through, and the secret its sender signs with."""

    name: str
    config: Source
    secret: str


class _Sender:
    """Signs and posts webhooks for one source, as its kind's sender does."""

    def __init__(self, client: httpx.AsyncClient, url: str, source: DemoSource) -> None:
        self._client = client
        self._url = url
        self.source = source

    async def post(self, body: dict[str, Any]) -> httpx.Response:
        source = self.source
        request = signed_request(
            source.name,
            source.config,
            source.secret,
            self._url,
            orjson.dumps(body),
            now=time.time(),
        )
        return await self._client.post(request.url, content=request.body, headers=request.headers)


async def run_demo(
    *,
    intake_url: str,
    reports_url: str,
    token: str | None = None,
    web: DemoSource,
    crm: DemoSource,
    calls: Sequence[DemoSource] = (),
    rate: float,
    duration_s: float,
    seed: int | None,
    progress: Callable[[str], None],
) -> str:
    """Post leads at `rate` per second for `duration_s`, play the CRM, return a summary.
    Callers go through `calls` (an IVR source of kind twilio, a callrail source) if given;
    `token` (`reports:read`) lets it read the lifecycles of the leads it sent."""
    rng = random.Random(seed)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    stats = DemoStats()
    # The first source of each kind takes its kind's leads.
    by_kind: dict[str, DemoSource] = {s.config.kind: s for s in reversed(calls)}
    by_kind["standard"] = web
    ivr = by_kind.get("twilio")
    questions = (
        {name: list(q.answers) or ["1", "2", "3"] for name, q in ivr.config.questions.items()}
        if ivr is not None
        else None
    )
    reader = {"authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(timeout=10) as client,
        httpx.AsyncClient(timeout=10, headers=reader) as api,
    ):
        senders = {kind: _Sender(client, intake_url, s) for kind, s in by_kind.items()}
        crm_sender = _Sender(client, intake_url, crm)
        followups: list[asyncio.Task[None]] = []
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < duration_s:
            lead = make_lead(
                rng, run, n, ivr_questions=questions, tracked_calls="callrail" in by_kind
            )
            n += 1
            lead_key = await _post_lead(senders[lead.kind], lead, stats, intake_url)
            if lead_key is not None:
                plan_rng = random.Random(rng.getrandbits(64))
                followups.append(
                    asyncio.create_task(
                        _follow_up(api, crm_sender, reports_url, lead, lead_key, plan_rng, stats)
                    )
                )
            if n % 10 == 0:
                progress(
                    f"{stats.leads} leads sent, {stats.assigned} assigned, "
                    f"{stats.outcomes} outcomes"
                )
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        progress(f"{stats.leads} leads sent; waiting for the last outcomes")
        done, pending = (
            await asyncio.wait(followups, timeout=DRAIN_S) if followups else (set(), set())
        )
        for task in pending:
            task.cancel()
        for task in done:
            error = task.exception()
            if error is not None:
                stats.problems.append(f"a follow-up failed: {type(error).__name__}: {error}")
    return stats.summary()


async def _post_lead(
    sender: _Sender, lead: DemoLead, stats: DemoStats, intake_url: str
) -> str | None:
    try:
        response = await sender.post(lead.body)
    except httpx.HTTPError as exc:
        if stats.leads == 0:
            raise DemoError(
                f"could not reach the intake at {intake_url} (--url): {type(exc).__name__}. "
                "Is Leadflow running (make run)?"
            ) from exc
        stats.problems.append(f"intake unreachable: {type(exc).__name__}")
        stats.refused += 1
        return None
    stats.leads += 1
    stats.by_source[sender.source.name] += 1
    if response.status_code != 202:
        stats.refused += 1
        stats.problems.append(f"intake answered {response.status_code}: {response.text[:200]}")
        return None
    return str(response.json()["lead_key"])


async def _follow_up(
    client: httpx.AsyncClient,
    crm: _Sender,
    reports_url: str,
    lead: DemoLead,
    lead_key: str,
    rng: random.Random,
    stats: DemoStats,
) -> None:
    lifecycle = await _wait_for_assignment(client, reports_url, lead_key)
    if lifecycle is None:
        stats.not_assigned += 1
        return
    stats.assigned += 1
    arrived_at = datetime.fromisoformat(lifecycle["first_touch_at"] or lifecycle["assigned_at"])
    for outcome in plan_outcomes(rng, lead, arrived_at):
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        try:
            response = await crm.post(outcome.body(lead_key, lifecycle.get("rep_id")))
        except httpx.HTTPError as exc:
            stats.problems.append(f"an outcome was not delivered: {type(exc).__name__}")
            return
        if response.status_code == 202:
            stats.outcomes += 1
        else:
            stats.problems.append(f"intake answered {response.status_code}: {response.text[:200]}")


async def _wait_for_assignment(
    client: httpx.AsyncClient, reports_url: str, lead_key: str
) -> dict[str, Any] | None:
    """The lead's lifecycle once it is assigned, or None if it is not within the wait."""
    deadline = time.monotonic() + ASSIGNMENT_WAIT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        try:
            response = await client.get(f"{reports_url.rstrip('/')}/v1/reports/leads/{lead_key}")
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            lifecycle: dict[str, Any] = response.json()
            if lifecycle.get("assigned_at") and lifecycle.get("first_touch_at"):
                return lifecycle
            if lifecycle.get("tier") not in (None, "mql"):
                return None
    return None

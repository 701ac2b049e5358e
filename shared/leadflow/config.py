"""The product configuration (YAML): sources, scoring, teams, reps, routing and SLA policies.

Validation errors name the file and line of the offending value, so that
`leadflow config check` points straight at what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import holidays
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from leadflow.conditions import Condition
from leadflow.events import Tier
from leadflow.schedules import (
    Absence,
    Shift,
    TimeWindow,
    holiday_calendar,
    known_zone,
    normalize_domain,
)
from leadflow.scoring_model import (
    CampaignOverride,
    Domains,
    Grades,
    HandRaise,
    Qualification,
    first_given,
    known_grades,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = r"^[a-z][a-z0-9_-]*$"


def parse_duration(value: Any) -> timedelta:
    """`"5m"`, `"90s"`, `"1.5h"`, `"2d"` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration; it must not be negative.")
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or 2d.")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 30s, 5m, 1.5h, 2d, or a number of seconds.",
        }
    ),
]


# Every tier scoring gives a lead, highest first: a move to an earlier one is an upgrade.
TIERS: tuple[str, ...] = get_args(Tier)


def tier_rank(tier: str) -> int:
    """How high a tier stands (mql highest); unknown tiers stand below every known one."""
    return len(TIERS) - TIERS.index(tier) if tier in TIERS else 0


def _known_tiers(value: list[str], field: str) -> list[str]:
    unknown = [tier for tier in value if tier not in TIERS]
    if unknown:
        raise ValueError(
            f"{field} names tiers that do not exist: {', '.join(map(repr, unknown))}; "
            f"use {', '.join(TIERS)}."
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SourceKind = Literal["standard", "hubspot", "twilio", "callrail", "marketo"]

# Where a mapped sender field may go in the canonical lead (`leadflow.events.Lead`):
# its plain fields, `company.*`, and free keys under `utm.`, `answers.` and `custom.`;
# plus `activity` (what the lead did) and `delivery_id` (the sender's id of the delivery).
MAPPING_SCALARS = frozenset(
    {
        "email",
        "phone",
        "first_name",
        "last_name",
        "job_title",
        "country",
        "region",
        "city",
        "language",
        "campaign",
        "content_asset",
        "product_interest",
        "consent",
        "call_duration_s",
        "list_source",
        "company.name",
        "company.domain",
        "company.size",
        "company.industry",
        "activity",
        "delivery_id",
    }
)
MAPPING_PREFIXES = ("utm.", "answers.", "custom.")


class RateLimit(_Model):
    """A token bucket per source: `per_second` on average, bursts of up to `burst`."""

    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class IvrQuestion(_Model):
    """One qualifying question of an IVR and how its answers read.

    `param` names the form field holding the answer when the IVR posts every answer at
    the end of the call (Twilio Studio); when a `<Gather>` posts each answer on its own,
    the request URL says `?question=<name>` and the answer is `Digits` or `SpeechResult`.
    `answers` turns a key pressed or a phrase said into a value ("1" -> "under_10k");
    an answer it does not list is kept as said.
    """

    param: str | None = Field(default=None, min_length=1, max_length=64)
    answers: dict[str, str] = Field(default_factory=dict)


class Source(_Model):
    """A webhook sender: its kind picks the payload adapter and the signature scheme."""

    kind: SourceKind
    description: str = ""
    # `bulk`: imports and re-syncs; their leads take the bulk lane, which scoring and the
    # router read only while live leads leave them time (see docs/architecture.md).
    lane: Literal["live", "bulk"] = "live"
    # Canonical lead field -> the sender's field (dotted path, or form field name); it
    # overrides the kind's default mapping field by field ("" removes a default).
    mapping: dict[str, str] = Field(default_factory=dict)
    activity: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    rate_limit: RateLimit | None = None
    # The URL senders are told to post to, up to and excluding `/v1/webhooks/...`, for
    # kinds whose signature covers the URL (twilio, hubspot) when a proxy rewrites it.
    public_base_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    # twilio: the IVR's qualifying questions (budget, authority, need, timeframe, ...).
    questions: dict[str, IvrQuestion] = Field(default_factory=dict)
    # marketo: the header that carries the shared secret (Marketo cannot sign).
    secret_header: str = Field(
        default="x-leadflow-secret", pattern=r"^[A-Za-z0-9-]+$", max_length=64
    )

    @field_validator("mapping")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value:
            if target not in MAPPING_SCALARS and not (
                target.startswith(MAPPING_PREFIXES) and target.split(".", 1)[1]
            ):
                raise ValueError(
                    f"mapping target {target!r} is not a lead field; use one of "
                    f"{', '.join(sorted(MAPPING_SCALARS))}, or utm.*, answers.*, custom.*."
                )
        return value

    @field_validator("questions")
    @classmethod
    def _question_names(cls, value: dict[str, IvrQuestion]) -> dict[str, IvrQuestion]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"question name {name!r} must be lowercase letters, digits or _.")
        return value

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Source:
        if self.kind == "standard" and self.mapping:
            raise ValueError("kind standard takes the canonical body; mapping does not apply.")
        if self.questions and self.kind != "twilio":
            raise ValueError("questions apply to kind twilio (IVR) only.")
        if self.public_base_url and self.kind not in ("twilio", "hubspot"):
            raise ValueError(
                "public_base_url applies to kinds whose signature covers the URL "
                "(twilio, hubspot) only."
            )
        if "secret_header" in self.model_fields_set and self.kind != "marketo":
            raise ValueError("secret_header applies to kind marketo only.")
        return self


class ScoringRule(_Model):
    """Points given when all conditions hold on the lead event being scored."""

    name: str = Field(pattern=_NAME)
    group: Literal["fit", "engagement"]
    points: int
    when: list[Condition] = Field(min_length=1)
    description: str = ""
    # Caps and decay: a rule's points across all its touches, its bucket, its half-life.
    max_points: int | None = Field(default=None, ge=0)
    category: str | None = Field(default=None, pattern=_NAME)
    half_life: Duration | None = None
    decays: bool = True
    # A negative rule that takes the lead out of the funnel whatever its score.
    disqualify: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ScoringRule:
        if self.group == "fit" and self.half_life is not None:
            raise ReferenceProblem(
                ("half_life",), f"fit rule {self.name!r} cannot decay: fit describes the profile."
            )
        if self.half_life is not None and self.half_life.total_seconds() <= 0:
            raise ReferenceProblem(("half_life",), "half_life must be longer than zero.")
        if self.disqualify and self.points > 0:
            raise ReferenceProblem(
                ("points",), f"disqualifying rule {self.name!r} cannot add points; use 0 or less."
            )
        return self


class Scoring(_Model):
    """Points per rule, and the thresholds that make a lead an MQL or watch-listed."""

    version: str = Field(min_length=1)
    mql_threshold: int
    watch_threshold: int | None = None
    hand_raise_activities: list[str] = Field(default_factory=lambda: ["demo_request"])
    rules: list[ScoringRule] = Field(default_factory=list)

    @field_validator("watch_threshold")
    @classmethod
    def _below_mql(cls, value: int | None, info: ValidationInfo) -> int | None:
        mql = info.data.get("mql_threshold")
        if value is not None and mql is not None and value >= mql:
            raise ValueError("watch_threshold must be below mql_threshold.")
        return value

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Scoring:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"scoring rule names must be unique; repeated: {duplicates}.")
        return self

    # The scoring model beyond points and thresholds (see leadflow.scoring_model).
    engagement_half_life: Duration | None = None
    caps: dict[str, int] = Field(default_factory=dict)
    grades: Grades = Field(default_factory=Grades)
    mql_grades: list[str] = Field(default_factory=list)
    hand_raises: list[HandRaise] = Field(default_factory=list)
    purchased_list_min_engagement: int = Field(default=1, ge=1)
    campaigns: dict[str, CampaignOverride] = Field(default_factory=dict)
    domains: Domains = Field(default_factory=Domains)

    @field_validator("rules")
    @classmethod
    def _rule_names_once(cls, rules: list[ScoringRule]) -> list[ScoringRule]:
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.name in seen:
                raise ReferenceProblem((i, "name"), f"scoring rule {rule.name!r} is defined twice.")
            seen.add(rule.name)
        return rules

    @field_validator("engagement_half_life")
    @classmethod
    def _positive_half_life(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value.total_seconds() <= 0:
            raise ValueError("engagement_half_life must be longer than zero.")
        return value

    @field_validator("mql_grades")
    @classmethod
    def _grades_exist(cls, value: list[str]) -> list[str]:
        return known_grades(value) or []

    @model_validator(mode="after")
    def _references(self) -> Scoring:
        buckets = {"fit", "engagement"} | {r.category for r in self.rules if r.category}
        for name, cap in self.caps.items():
            if name not in buckets:
                raise ReferenceProblem(
                    ("caps", name),
                    f"cap {name!r} matches no rule category; use fit, engagement or one of "
                    f"{sorted(buckets - {'fit', 'engagement'})}.",
                )
            if cap < 0:
                raise ReferenceProblem(("caps", name), f"cap {name!r} must not be negative.")
        for name, campaign in self.campaigns.items():
            mql = (
                campaign.mql_threshold if campaign.mql_threshold is not None else self.mql_threshold
            )
            watch = campaign.watch_threshold
            if watch is None:
                watch = self.watch_threshold
            if watch is not None and watch >= mql:
                raise ReferenceProblem(
                    ("campaigns", name),
                    f"campaign {name!r}: watch_threshold {watch} must be below its "
                    f"mql_threshold {mql}.",
                )
        return self

    def for_campaign(self, campaign: str | None) -> Qualification:
        """The thresholds and hand-raises that apply to a lead of `campaign`."""
        override = self.campaigns.get(campaign or "")
        base = Qualification(
            campaign=None,
            mql_threshold=self.mql_threshold,
            watch_threshold=self.watch_threshold,
            hand_raise_activities=self.hand_raise_activities,
            mql_grades=self.mql_grades,
        )
        if override is None:
            return base
        return Qualification(
            campaign=campaign,
            mql_threshold=first_given(override.mql_threshold, base.mql_threshold),
            watch_threshold=first_given(override.watch_threshold, base.watch_threshold),
            hand_raise_activities=first_given(
                override.hand_raise_activities, base.hand_raise_activities
            ),
            mql_grades=first_given(override.mql_grades, base.mql_grades),
        )


class Person(_Model):
    """Someone who is told about leads: a manager, an admin."""

    name: str
    email: str


class Rep(_Model):
    """A sales rep who can be assigned leads."""

    id: str = Field(pattern=_NAME)
    name: str
    email: str
    timezone: str = "UTC"
    active: bool = True
    # Availability: empty working_hours means always on shift; holidays follow `country`.
    country: str | None = None
    subdivision: str | None = None
    working_hours: list[Shift] = Field(default_factory=list)
    out_of_office: list[Absence] = Field(default_factory=list)
    # Capacity, share and skills.
    max_per_day: int | None = Field(default=None, ge=0)
    max_open: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, gt=0)
    languages: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list)
    webhook: str | None = Field(default=None, pattern=r"^https?://")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("languages", "products", "regions")
    @classmethod
    def _lowercase_skills(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]

    @model_validator(mode="after")
    def _known_calendar(self) -> Rep:
        if self.subdivision is not None and self.country is None:
            raise ValueError(f"rep {self.id!r} has a subdivision but no country.")
        if self.country is not None:
            holiday_calendar(self.country, self.subdivision)
        return self

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(f"{value!r} is not a country the holidays calendar knows.")
        return value


class TeamPool(_Model):
    """A team whose leads wait in a pool its reps claim from, first come, first served.

    `sla_starts`: the follow-up clock of a claimed lead starts when a rep claims it
    (`claim`) or when it arrived in the pool (`arrival`). A lead nobody claimed within
    `unclaimed_after` is reported to the team's manager and, with `fallback: distribute`,
    given through the team's `distribution` (with `none` it keeps waiting).
    """

    sla_starts: Literal["claim", "arrival"] = "claim"
    unclaimed_after: Duration
    fallback: Literal["distribute", "none"] = "distribute"

    @field_validator("unclaimed_after")
    @classmethod
    def _positive_wait(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("unclaimed_after must be longer than zero, e.g. 15m.")
        return value


class Team(_Model):
    """Reps who share leads, the way they share them, and their manager."""

    name: str = Field(pattern=_NAME)
    manager: Person
    distribution: Literal["round_robin", "weighted", "least_loaded"] = "round_robin"
    reps: list[str] = Field(min_length=1)
    # weighted: by each rep's static `weight`, or by their measured lead-to-SQL conversion.
    weights: Literal["static", "conversion"] = "static"
    balance_window: Duration = timedelta(days=7)
    conversion_window: Duration = timedelta(days=90)
    # Lead attributes a rep must cover to take the lead (language, product interest, region).
    skills: list[Literal["language", "product", "region"]] = Field(default_factory=list)
    # Marking one of the team's reps out of office (admin API) hands their open leads not yet
    # contacted to the team's other reps, through the team's distribution.
    redistribute_on_absence: bool = False
    # A pool: leads routed to the team wait until one of its reps claims one (see TeamPool);
    # `distribution` still gives the leads nobody claimed in time and escalated ones.
    pool: TeamPool | None = None


class RoutingRule(_Model):
    """First matching rule wins; it sends the lead to a team or to one named rep."""

    name: str = Field(pattern=_NAME)
    when: list[Condition] = Field(default_factory=list)
    team: str | None = None
    rep: str | None = None
    # Matches only inside one of `during` (if any) and outside every one of `outside`.
    during: list[TimeWindow] = Field(default_factory=list)
    outside: list[TimeWindow] = Field(default_factory=list)
    # When nobody the rule points at can take the lead: queue it there, or try the next rule.
    when_unavailable: Literal["queue", "next_rule"] = "queue"
    # Sticky ownership (team rules): a lead whose company domain already has an open lead
    # with a rep of the team, or whose account's owner is in the team, goes to that rep
    # (caps do not stop them; being inactive, away, off shift or without the skill does).
    sticky: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> RoutingRule:
        if (self.team is None) == (self.rep is None):
            raise ValueError(f"routing rule {self.name!r} needs exactly one of team or rep.")
        if self.sticky and self.team is None:
            raise ValueError(
                f"routing rule {self.name!r} is sticky but names a rep: only a team rule "
                "can keep a company's leads with the rep who works it."
            )
        return self


class RoutingNotify(_Model):
    """Who hears about routing decisions, and how."""

    rep_email: bool = True
    rep_webhook: bool = True
    manager_on_queue: bool = True
    manager_on_priority_account: bool = True
    # The CRM push: a signed (Standard Webhooks) POST of every assignment; the secret is
    # read from LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET, never from this file.
    crm_webhook: str | None = Field(default=None, pattern=r"^https?://")


class Account(_Model):
    """A named or priority account: its leads go to the owner (matched by email/company domain)."""

    name: str = Field(min_length=1)
    domains: list[str] = Field(min_length=1)
    owner: str
    priority: bool = False

    @field_validator("domains")
    @classmethod
    def _normalized_domains(cls, value: list[str]) -> list[str]:
        domains = [normalize_domain(d) for d in value]
        for raw, domain in zip(value, domains, strict=True):
            if "." not in domain or " " in domain:
                raise ValueError(f"{raw!r} is not a domain (e.g. acme.com).")
        return domains


class Routing(_Model):
    """Ordered routing rules and the queue that takes what no rule matches."""

    version: str = Field(min_length=1)
    # The tiers whose leads are routed: a lead is routed when it enters one of them for the
    # first time (an MQL when it newly qualifies), and again on an upgrade to a higher one.
    tiers: list[str] = Field(default_factory=lambda: ["mql"], min_length=1)
    # Tiers at which leads of priority accounts (`accounts[].priority`) are routed too.
    priority_account_tiers: list[str] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)
    fallback_team: str
    # The zone of the `time.*` fields routing conditions can test.
    timezone: str = "UTC"
    notify: RoutingNotify = Field(default_factory=lambda: RoutingNotify())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("tiers")
    @classmethod
    def _routed_tiers(cls, value: list[str]) -> list[str]:
        return _known_tiers(value, "routing.tiers")

    @field_validator("priority_account_tiers")
    @classmethod
    def _account_tiers(cls, value: list[str]) -> list[str]:
        return _known_tiers(value, "routing.priority_account_tiers")

    def routed_tiers(self, priority_account: bool) -> list[str]:
        """The tiers at which a lead is routed (more for a priority account's)."""
        return [*self.tiers, *self.priority_account_tiers] if priority_account else self.tiers


class SlaPolicy(_Model):
    """A follow-up window for leads of some tiers, teams, sources and rules (empty list: any).

    The ladder: a warning to the rep at `warn_at_percent` of the window, a breach alert to
    the manager when it closes, and an escalation (the router reassigns) `escalate_after`
    later, at most `max_escalations` times per lead. `clock: business` counts only the
    rep's working hours (time zone, shifts, public holidays); `wall` counts every minute.
    """

    name: str = Field(pattern=_NAME)
    window: Duration
    tiers: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    clock: Literal["wall", "business"] = "wall"
    warn_at_percent: int | None = Field(default=None, gt=0, lt=100)
    escalate_after: Duration | None = None
    max_escalations: int = Field(default=1, ge=0)

    @field_validator("tiers")
    @classmethod
    def _policy_tiers(cls, value: list[str]) -> list[str]:
        return _known_tiers(value, "tiers")

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than zero, e.g. 5m.")
        return value

    def applies(
        self, tier: str, team: str, source: str | None = None, rule: str | None = None
    ) -> bool:
        """Whether this policy covers a lead of `tier` assigned within `team`."""
        return (
            (not self.tiers or tier in self.tiers)
            and (not self.teams or team in self.teams)
            and (not self.sources or source in self.sources)
            and (not self.rules or rule in self.rules)
        )


SlaStage = Literal["warning", "breached", "escalated"]
_ALERTING_STAGES: list[SlaStage] = ["breached", "escalated"]


class SlaWebhook(_Model):
    """Where SLA alerts are posted: plain JSON (the alert) or a Slack-compatible `{"text"}`."""

    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    stages: list[SlaStage] = Field(default_factory=lambda: _ALERTING_STAGES.copy(), min_length=1)
    teams: list[str] = Field(default_factory=list)
    # Name of the environment variable holding a `whsec_` secret to sign JSON posts with.
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")

    def wants(self, stage: str, team: str) -> bool:
        """Whether this webhook subscribes to alerts of `stage` for `team`."""
        return stage in self.stages and (not self.teams or team in self.teams)


class Sla(_Model):
    """SLA policies (the first that applies sets the window) and where alerts go."""

    policies: list[SlaPolicy] = Field(min_length=1)
    email: bool = True
    webhooks: list[SlaWebhook] = Field(default_factory=list)

    def policy_for(
        self, tier: str, team: str, source: str | None = None, rule: str | None = None
    ) -> SlaPolicy | None:
        """The first policy covering this tier, team, source and rule, if any."""
        return next((p for p in self.policies if p.applies(tier, team, source, rule)), None)

    def policy(self, name: str) -> SlaPolicy | None:
        """The policy called `name`, if it is still configured."""
        return next((p for p in self.policies if p.name == name), None)


class ReportingSegment(_Model):
    """A named group of leads for reports and ROI, defined by conditions on the lead."""

    name: str = Field(pattern=_NAME)
    when: list[Condition] = Field(default_factory=list)
    gross_margin: float | None = Field(default=None, gt=0, le=1)
    target_roi: float | None = Field(default=None, gt=-1)
    cost_per_lead: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class Reporting(_Model):
    """Closed-loop reporting: segments, margins, the target ROI and what leads cost.

    A lead belongs to the first segment whose conditions all hold (a segment without
    conditions takes every lead), else to `other_segment`.
    """

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    gross_margin: float = Field(default=1.0, gt=0, le=1)
    target_roi: float = Field(default=0.0, gt=-1)
    other_segment: str = Field(default="other", pattern=_NAME)
    segments: list[ReportingSegment] = Field(default_factory=list)
    campaign_costs: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    # The share of leads each tier should take (e.g. mql 0.05, watch 0.10): the tiers report
    # flags a period, source or campaign whose share is further than `tier_tolerance` (in
    # share points) from it, once it has at least `tier_min_leads` leads.
    tier_targets: dict[str, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    tier_tolerance: float = Field(default=0.02, ge=0, le=1, allow_inf_nan=False)
    tier_min_leads: int = Field(default=20, ge=1)

    @field_validator("tier_targets")
    @classmethod
    def _targeted_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        _known_tiers(list(value), "reporting.tier_targets")
        if sum(value.values()) > 1:
            raise ValueError("reporting.tier_targets add up to more than 1 (all leads).")
        return value

    @model_validator(mode="after")
    def _unique_segment_names(self) -> Reporting:
        names = [segment.name for segment in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"reporting segment names must be unique; repeated: {duplicates}.")
        if self.other_segment in names:
            raise ValueError(
                f"other_segment {self.other_segment!r} is also a segment's name; "
                "pick a name no segment uses."
            )
        return self

    def segment_names(self) -> list[str]:
        """Every segment a lead can fall in, `other_segment` last."""
        return [segment.name for segment in self.segments] + [self.other_segment]

    def segment(self, name: str) -> ReportingSegment | None:
        """The configured segment of this name (None for `other_segment` or unknown)."""
        return next((s for s in self.segments if s.name == name), None)


class LeadflowConfig(_Model):
    """The whole product configuration."""

    sources: dict[str, Source]
    scoring: Scoring
    reps: list[Rep] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    routing: Routing
    sla: Sla
    accounts: list[Account] = Field(default_factory=list)
    reporting: Reporting = Field(default_factory=Reporting)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, Source]) -> dict[str, Source]:
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits, - or _.")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> LeadflowConfig:
        rep_ids = [rep.id for rep in self.reps]
        for i, rep in enumerate(self.reps):
            if rep_ids.index(rep.id) != i:
                raise ReferenceProblem(("reps", i, "id"), f"rep id {rep.id!r} is used twice.")
        team_names = {team.name for team in self.teams}
        for i, team in enumerate(self.teams):
            for j, rep_id in enumerate(team.reps):
                if rep_id not in rep_ids:
                    raise ReferenceProblem(
                        ("teams", i, "reps", j), f"team {team.name!r} lists unknown rep {rep_id!r}."
                    )
        for i, rule in enumerate(self.routing.rules):
            if rule.team is not None and rule.team not in team_names:
                raise ReferenceProblem(
                    ("routing", "rules", i, "team"),
                    f"routing rule {rule.name!r} names unknown team {rule.team!r}.",
                )
            if rule.rep is not None and rule.rep not in rep_ids:
                raise ReferenceProblem(
                    ("routing", "rules", i, "rep"),
                    f"routing rule {rule.name!r} names unknown rep {rule.rep!r}.",
                )
        if self.routing.fallback_team not in team_names:
            raise ReferenceProblem(
                ("routing", "fallback_team"),
                f"routing.fallback_team {self.routing.fallback_team!r} is not a team.",
            )
        owners: dict[str, str] = {}
        for i, account in enumerate(self.accounts):
            if account.owner not in rep_ids:
                raise ReferenceProblem(
                    ("accounts", i, "owner"),
                    f"account {account.name!r} names unknown owner {account.owner!r}.",
                )
            for domain in account.domains:
                if domain in owners:
                    raise ReferenceProblem(
                        ("accounts", i, "domains"),
                        f"domain {domain!r} belongs to accounts {owners[domain]!r} "
                        f"and {account.name!r}; give it to one.",
                    )
                owners[domain] = account.name
        self._sla_references_resolve(team_names)
        return self

    def _sla_references_resolve(self, team_names: set[str]) -> None:
        for i, policy in enumerate(self.sla.policies):
            for j, team_name in enumerate(policy.teams):
                if team_name not in team_names:
                    raise ReferenceProblem(
                        ("sla", "policies", i, "teams", j),
                        f"SLA policy {policy.name!r} names unknown team {team_name!r}.",
                    )
        for i, hook in enumerate(self.sla.webhooks):
            for j, team_name in enumerate(hook.teams):
                if team_name not in team_names:
                    raise ReferenceProblem(
                        ("sla", "webhooks", i, "teams", j),
                        f"SLA webhook names unknown team {team_name!r}.",
                    )

    def rep(self, rep_id: str) -> Rep:
        """The rep with this id."""
        return next(rep for rep in self.reps if rep.id == rep_id)

    def team(self, name: str) -> Team:
        """The team with this name."""
        return next(team for team in self.teams if team.name == name)

    def team_of(self, rep_id: str) -> Team | None:
        """The first team that lists this rep."""
        return next((team for team in self.teams if rep_id in team.reps), None)


class ReferenceProblem(ValueError):
    """A value that names something the configuration does not define, and where it is."""

    def __init__(self, loc: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class ConfigFileError(ValueError):
    """A configuration file that cannot be used, with one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """A YAML syntax error as (`line N, column M`, what is wrong), for messages that name
    the file themselves (PyYAML's own text names `<unicode string>` over several lines)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    what = f"{problem} ({context})" if context else str(problem)
    return (f"line {mark.line + 1}, column {mark.column + 1}" if mark else "", what)


def load_config(path: Path) -> LeadflowConfig:
    """Read and validate a YAML configuration; errors carry `file:line`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(path, [f"cannot read the file ({exc.strerror})"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where, what = yaml_problem(exc)
        problem = f"is not valid YAML: {what}"
        raise ConfigFileError(path, [f"{where}: {problem}" if where else problem]) from exc
    if not isinstance(data, dict):
        raise ConfigFileError(path, ["must be a YAML mapping with sources, scoring, teams, ..."])
    try:
        return LeadflowConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [part for part in error["loc"] if not str(part).startswith("function-")]
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, ReferenceProblem):
                loc += list(cause.loc)
            line = _line_of(node, loc)
            where = ".".join(str(p) for p in loc) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"line {line}: {where}: {message}" if line else f"{where}: {message}")
        raise ConfigFileError(path, problems) from exc


def line_of(path: Path, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at `loc` in a YAML file (None when it cannot be read)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return _line_of(node, list(loc)) if node is not None else None


def _line_of(node: yaml.Node | None, loc: list[int | str]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its closest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:
                child = next((k for k, _ in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line

"""The event contract: a CloudEvents 1.0 envelope and a typed payload per event type.

Every event of one person carries the same `subject` (the lead key), which is also the
Kafka key, so a person's events land on one partition and are processed in order.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Namespace of deterministic event ids (uuid5): the same delivery gives the same id.
EVENT_NAMESPACE = uuid.UUID("6f0d6f3e-3b1a-4d0c-9a55-1e7d2b5f0c11")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes

ActivityKind = Literal["contacted", "accepted", "rejected", "converted", "won", "lost"]
Tier = Literal["mql", "watch", "nurture", "disqualified"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Company(_Payload):
    """The lead's company as the sender described it."""

    name: str | None = None
    domain: str | None = None
    size: int | None = Field(default=None, ge=0)
    industry: str | None = None


class Lead(_Payload):
    """The canonical lead: what every source's payload is normalized into."""

    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    job_title: str | None = None
    company: Company = Field(default_factory=Company)
    country: str | None = None
    region: str | None = None
    city: str | None = None
    language: str | None = None
    campaign: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    content_asset: str | None = None
    product_interest: str | None = None
    consent: bool | None = None
    answers: dict[str, str] = Field(default_factory=dict)
    call_duration_s: int | None = Field(default=None, ge=0)
    # None means "not said" (an inbound touch): a later update must not erase "purchased_list".
    list_source: Literal["inbound", "purchased_list", "event", "partner"] | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class LeadReceived(_Payload):
    """A lead arrived at intake (a form fill, a download, a call...)."""

    lead_key: str
    source: str
    source_kind: str
    delivery_id: str
    activity: str = "form_fill"
    received_at: AwareDatetime
    lead: Lead


class LeadActivity(_Payload):
    """An outcome reported by the CRM: contacted, accepted, rejected, converted, won, lost."""

    lead_key: str
    activity: ActivityKind
    occurred_at: AwareDatetime
    source: str
    rep_id: str | None = None
    reason: str | None = None
    amount: float | None = Field(default=None, ge=0)
    currency: str | None = None
    # The gross profit of a won deal, when the CRM knows it (else reports use a margin).
    profit: float | None = None
    # Every key the CRM named the person by (its lead_key, its email's, its phone's), best
    # first; `lead_key` is the first. A consumer resolves them through its aliases
    # (`leadflow.aliases.person_of`), so an outcome reported by phone finds the lead routed
    # under the email. Empty on events written before it: then `lead_key` alone.
    identifiers: list[str] = Field(default_factory=list)


class ScoreReason(_Payload):
    """One rule that fired, and what it was worth."""

    rule: str
    group: Literal["fit", "engagement", "qualification"]
    points: int
    detail: str = ""
    # How the points came about: before decay and caps, the share decay kept, and when.
    base_points: int | None = None
    decay: float = 1.0
    half_life_s: float | None = None
    age_s: float | None = None
    occurred_at: AwareDatetime | None = None
    disqualifies: bool = False


class TouchPoint(_Payload):
    """Where a person came from at one touch: for first-touch and last-touch attribution."""

    source: str
    activity: str
    occurred_at: AwareDatetime
    campaign: str | None = None
    utm_source: str | None = None


class LeadScored(_Payload):
    """The result of (re)scoring a lead, with every reason behind it."""

    lead_key: str
    model_version: str
    score: int
    fit: int
    engagement: int
    tier: Tier
    qualified: bool
    newly_qualified: bool
    reasons: list[ScoreReason]
    scored_at: AwareDatetime
    received_at: AwareDatetime
    source: str
    lead: Lead
    # Added by the scoring model: defaults keep events written before them readable.
    grade: str = ""
    fit_grade: str = ""
    engagement_grade: str = ""
    qualified_by: str | None = None
    disqualified_by: list[str] = Field(default_factory=list)
    activity: str = ""
    identifiers: list[str] = Field(default_factory=list)
    merged_from: list[str] = Field(default_factory=list)
    first_touch: TouchPoint | None = None
    last_touch: TouchPoint | None = None
    touches: int = 0


class LeadMerged(_Payload):
    """Scoring found more keys that mean one person: every key in `absorbed` and
    `identifiers` (other than `survivor`) now means `survivor`.

    Published with the survivor's `lead.scored` whenever an event merges profiles or
    attaches a new identifier (a phone next to the email). Both lists are the person's
    whole set so far, not only this event's, so one `lead.merged` is enough to learn every
    alias; consumers keep them in `leadflow.aliases` and move their state to the survivor.
    """

    survivor: str
    # The profiles merged into the survivor, by key (empty when only identifiers linked).
    absorbed: list[str] = Field(default_factory=list)
    # The keys of every email and phone the person was seen with (the survivor's among them).
    identifiers: list[str] = Field(default_factory=list)
    merged_at: AwareDatetime

    @property
    def lead_key(self) -> str:
        """The survivor: the event's subject and Kafka key."""
        return self.survivor

    def aliases(self) -> list[str]:
        """Every key that now means the survivor, but the survivor's own (sorted)."""
        return sorted({*self.absorbed, *self.identifiers} - {self.survivor})


class LeadErased(_Payload):
    """A person was erased (a privacy request): every service deletes what it holds under
    any of `keys`, or keeps it only as an anonymous count (reports).

    Published by scoring on `leads.activity`, keyed by the person's key like their other
    activity, after it deleted its own rows and wrote the erasure record
    (`leadflow.erasure`) that keeps events from before `erased_at` from bringing them back.
    """

    lead_key: str
    # Every key the person was known by: their profile's, merged profiles', each identifier's.
    keys: list[str] = Field(min_length=1)
    erased_at: AwareDatetime


class LeadAssigned(_Payload):
    """A lead was given to a rep (first assignment, or a reassignment)."""

    lead_key: str
    assignment_id: str
    rep_id: str
    rep_name: str
    team: str
    rule: str
    tier: Tier
    reason: str
    assigned_at: AwareDatetime
    received_at: AwareDatetime
    previous_rep_ids: list[str] = Field(default_factory=list)
    # The source the lead came from (SLA policies can differ by source).
    source: str | None = None
    # How many SLA escalations the lead went through before this assignment (a manager's
    # reassignment by hand is not one); None on events written before the router said,
    # where every previous rep was an escalation.
    escalations: int | None = None
    # When the follow-up clock started, when not at `assigned_at`: the lead's arrival in a
    # team pool whose policy starts the clock at arrival (`teams[].pool.sla_starts`).
    clock_from: AwareDatetime | None = None
    # The assignment's place among those the router made at the same `assigned_at`, in the
    # order it decided them: of a person's two assignments made in one batch, the first
    # is the one a merge keeps (`aliases.assignment_order`). None on older events.
    batch_position: int | None = Field(default=None, ge=0)


class LeadPooled(_Payload):
    """The lead waits in a team's pool until one of its reps claims it."""

    lead_key: str
    assignment_id: str
    team: str
    rule: str
    tier: Tier
    reason: str
    pooled_at: AwareDatetime
    received_at: AwareDatetime
    # When the team's manager hears that nobody claimed it (and, per the team's fallback,
    # the team's distribution gives it).
    unclaimed_at: AwareDatetime
    # Whether the follow-up clock of the rep who claims it runs from `pooled_at` (arrival)
    # or from the claim.
    sla_starts: Literal["claim", "arrival"]
    source: str | None = None


class LeadUnassigned(_Payload):
    """Nobody could take the lead: it waits in a team queue."""

    lead_key: str
    team: str
    rule: str
    tier: Tier
    reason: str
    queued_at: AwareDatetime
    received_at: AwareDatetime


class SlaAlert(_Payload):
    """A follow-up window reached a stage (warning, breach, escalation) for a lead."""

    lead_key: str
    assignment_id: str
    stage: Literal["warning", "breached", "escalated"]
    policy: str
    rep_id: str
    rep_name: str
    team: str
    manager_email: str
    assigned_at: AwareDatetime
    due_at: AwareDatetime
    fired_at: AwareDatetime
    late_by_s: float
    message: str


Payload = (
    LeadReceived
    | LeadActivity
    | LeadScored
    | LeadMerged
    | LeadErased
    | LeadAssigned
    | LeadPooled
    | LeadUnassigned
    | SlaAlert
)

PAYLOAD_TYPES: dict[str, type[_Payload]] = {
    "lead.received": LeadReceived,
    **{f"lead.{kind}": LeadActivity for kind in get_args(ActivityKind)},
    "lead.scored": LeadScored,
    "lead.merged": LeadMerged,
    "lead.erased": LeadErased,
    "lead.assigned": LeadAssigned,
    "lead.reassigned": LeadAssigned,
    "lead.pooled": LeadPooled,
    "lead.unassigned": LeadUnassigned,
    "sla.warning": SlaAlert,
    "sla.breached": SlaAlert,
    "sla.escalated": SlaAlert,
}


class Envelope(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str
    subject: str = Field(min_length=1)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    data: Payload

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        payload_type = PAYLOAD_TYPES.get(values.get("type", ""))
        if payload_type is None:
            raise ValueError(f"unknown event type {values.get('type')!r}.")
        data = values.get("data")
        if isinstance(data, dict):
            return {**values, "data": payload_type.model_validate(data)}
        if isinstance(data, BaseModel) and not isinstance(data, payload_type):
            raise ValueError(
                f"a {values['type']} event carries {payload_type.__name__}, "
                f"not {type(data).__name__}."
            )
        return values

    def to_bytes(self) -> bytes:
        """The event as CloudEvents JSON."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse and validate an event; raises ValueError when it is not one."""
        return cls.model_validate(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class SerializedEvent:
    """An event ready to publish: its CloudEvents JSON, and the id, type and subject (the
    Kafka key) that routing it and answering for it need, without parsing it again."""

    id: str
    type: str
    subject: str
    value: bytes

    @classmethod
    def of(cls, event: Envelope) -> SerializedEvent:
        """The serialized form of an envelope."""
        return cls(event.id, event.type, event.subject, event.to_bytes())

    def envelope(self) -> Envelope:
        """The event parsed and validated."""
        return Envelope.from_bytes(self.value)


def new_event(
    type_: str, data: Payload, *, source: str, time: datetime, event_id: str | None = None
) -> Envelope:
    """An envelope for `data`; the subject is the payload's lead key."""
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        source=source,
        type=type_,
        subject=data.lead_key,
        time=time,
        data=data,
    )


def derived_event_id(*parts: str) -> str:
    """A deterministic event id: the same parts (e.g. source and delivery id) give the same id."""
    # `str(uuid.uuid5(EVENT_NAMESPACE, name))` (RFC 4122 4.3), at a third of its cost: this
    # runs on every webhook. The unit tests compare the two.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

"""The canonical lead and activity as senders post them, and the events made from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from leadflow.aliases import outcome_keys
from leadflow.events import (
    ActivityKind,
    Company,
    Envelope,
    Lead,
    LeadActivity,
    SerializedEvent,
    derived_event_id,
    new_event,
)
from leadflow.keys import LeadKeys
from leadflow_intake.bounds import (
    MAX_INT,
    Domain,
    Key,
    Name,
    Text,
    check_custom,
    make_single_line,
    single_line_map,
)
from leadflow_intake.normalize import normalize_email, normalize_phone

# The text fields made single-line (see `bounds`).
_LEAD_TEXT = (
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
)
_COMPANY_TEXT = ("name", "domain", "industry")
_ACTIVITY_TEXT = ("rep_id", "reason")


class CompanyIn(Company):
    """The company as a sender posts it."""

    name: Name | None = None
    domain: Domain | None = None
    size: int | None = Field(default=None, ge=0, le=MAX_INT)
    industry: Name | None = None


class LeadIn(Lead):
    """A lead as a sender posts it: an email or a valid phone is required; with an email,
    a phone that is a number but not a valid one is kept (scoring marks it invalid).

    Text fields are single-line and bounded (see `bounds`); `email` and `phone` are
    bounded by their own checks.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    first_name: Name | None = None
    last_name: Name | None = None
    job_title: Name | None = None
    company: CompanyIn = Field(default_factory=CompanyIn)
    country: Name | None = None
    region: Name | None = None
    city: Name | None = None
    language: Key | None = None
    campaign: Name | None = None
    utm: dict[Key, Text] = Field(default_factory=dict)
    content_asset: Name | None = None
    product_interest: Name | None = None
    answers: dict[Key, Text] = Field(default_factory=dict)
    call_duration_s: int | None = Field(default=None, ge=0, le=MAX_INT)

    @field_validator("custom")
    @classmethod
    def _custom_fits_an_event(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            check_custom(value)
        return value

    @model_validator(mode="after")
    def _identity(self) -> LeadIn:
        make_single_line(self, _LEAD_TEXT)
        make_single_line(self.company, _COMPANY_TEXT)
        if self.utm:
            self.utm = single_line_map(self.utm)
        if self.answers:
            self.answers = single_line_map(self.answers)
        if self.email:
            self.email = _field("email", normalize_email, self.email)
        if self.phone:
            self.phone = _field("phone", self._phone, self.phone)
        if not self.email and not self.phone:
            raise ValueError("a lead needs an email or a phone number to be identified.")
        return self

    def _phone(self, value: str) -> str:
        return normalize_phone(value, self.country, require_valid=not self.email)

    def identity(self) -> str:
        """The normalized email, else the E.164 phone."""
        return self.email or self.phone or ""


def _field(name: str, normalize: Callable[[str], str], value: str) -> str:
    """The normalized value; an error located at the field itself (`lead.phone`, not `lead`),
    though it is found by the model's validator (the phone needs the country)."""
    try:
        return normalize(value)
    except ValueError as exc:
        error = PydanticCustomError("value_error", "{message}", {"message": f"{name} {exc}"})
        raise ValidationError.from_exception_data(
            "lead", [InitErrorDetails(type=error, loc=(name,), input=value)]
        ) from exc


class LeadBody(BaseModel):
    """`{"event": "lead", "activity": "demo_request", "lead": {...}}`."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["lead"]
    activity: str = Field(default="form_fill", pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    lead: LeadIn


class ActivityBody(BaseModel):
    """`{"event": "contacted", "lead_key": "lk_...", "occurred_at": "...", ...}` from a CRM."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event: ActivityKind
    lead_key: str | None = Field(default=None, pattern=r"^lk_[0-9a-f]{24}$")
    email: str | None = None
    phone: str | None = None
    occurred_at: AwareDatetime
    rep_id: Name | None = None
    reason: Text | None = None
    amount: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    profit: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _identified(self) -> ActivityBody:
        make_single_line(self, _ACTIVITY_TEXT)
        if self.email:
            self.email = _field("email", normalize_email, self.email)
        if self.phone:
            self.phone = _field("phone", normalize_phone, self.phone)
        if not (self.lead_key or self.email or self.phone):
            raise ValueError("an activity needs the lead_key, email or phone of its lead.")
        if self.event == "rejected" and not self.reason:
            raise ValueError("a rejection needs a reason.")
        if self.event == "won" and self.amount is None:
            raise ValueError("a won deal needs its amount.")
        if self.profit is not None and self.event != "won":
            raise ValueError("profit is only reported with a won deal.")
        return self

    def keys(self, lead_keys: LeadKeys) -> list[str]:
        """Every key the activity names its lead by, best first: the lead key, the email's,
        the phone's (consumers resolve them to the person's current key)."""
        return outcome_keys(lead_keys, self.lead_key, self.email, self.phone)

    def key(self, lead_keys: LeadKeys) -> str:
        """The lead key this activity is published under: the first it names."""
        return self.keys(lead_keys)[0]


StandardBody = Annotated[LeadBody | ActivityBody, Field(discriminator="event")]


_TAGS = {"lead", *get_args(ActivityKind)}


def untagged(errors: Sequence[Any]) -> list[Any]:
    """Validation errors without the union's tag in their location (`lead.email`, not
    `lead.lead.email`), so that field names read as the sender wrote them."""
    return [{**e, "loc": e["loc"][1:]} if e["loc"] and e["loc"][0] in _TAGS else e for e in errors]


def lead_event(
    lead: LeadIn,
    *,
    keys: LeadKeys,
    source: str,
    kind: str,
    delivery_id: str,
    activity: str,
    now: datetime,
) -> SerializedEvent:
    """The `lead.received` event of a verified, valid lead; its id derives from the delivery.

    Its JSON is written directly from the validated lead: exactly what a `LeadReceived` in
    an `Envelope` serializes to (the unit tests compare the two, byte for byte), at a third
    of the cost of building and dumping both models, on every webhook.
    """
    if now.tzinfo is None:
        raise ValueError("an event's time needs a time zone.")
    lead_key = keys.key(lead.identity())
    event_id = derived_event_id(source, delivery_id)
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"/leadflow/intake/{source}",
        "type": "lead.received",
        "subject": lead_key,
        "time": now,
        "datacontenttype": "application/json",
        "data": {
            "lead_key": lead_key,
            "source": source,
            "source_kind": kind,
            "delivery_id": delivery_id,
            "activity": activity,
            "received_at": now,
            "lead": lead.model_dump(mode="json"),
        },
    }
    return SerializedEvent(
        event_id, "lead.received", lead_key, orjson.dumps(event, option=orjson.OPT_UTC_Z)
    )


def activity_event(
    body: ActivityBody, *, keys: LeadKeys, source: str, delivery_id: str, now: datetime
) -> Envelope:
    """The `lead.<outcome>` event of a verified, valid CRM activity."""
    named = body.keys(keys)
    activity = LeadActivity(
        lead_key=named[0],
        identifiers=named,
        activity=body.event,
        occurred_at=body.occurred_at,
        source=source,
        rep_id=body.rep_id,
        reason=body.reason,
        amount=body.amount,
        currency=body.currency,
        profit=body.profit,
    )
    return new_event(
        f"lead.{body.event}",
        activity,
        source=f"/leadflow/intake/{source}",
        time=now,
        event_id=derived_event_id(source, delivery_id),
    )


def to_event(
    body: LeadBody | ActivityBody, *, keys: LeadKeys, source: str, delivery_id: str, now: datetime
) -> Envelope:
    """The event a canonical body becomes when a `standard` source posts it."""
    if isinstance(body, LeadBody):
        return lead_event(
            body.lead,
            keys=keys,
            source=source,
            kind="standard",
            delivery_id=delivery_id,
            activity=body.activity,
            now=now,
        ).envelope()
    return activity_event(body, keys=keys, source=source, delivery_id=delivery_id, now=now)

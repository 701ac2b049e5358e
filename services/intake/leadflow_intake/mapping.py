"""Field mapping: a sender's fields into the canonical lead, with errors named as the sender
named them.

A mapping is `{canonical field: sender field}`; each kind has a default, and a source's
configuration overrides it field by field (an empty sender field removes a default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from leadflow.config import MAPPING_PREFIXES
from leadflow.events import SerializedEvent
from leadflow_intake.adapters.base import InvalidPayload, SourceContext
from leadflow_intake.canonical import LeadIn, lead_event
from leadflow_intake.normalize import normalize_email, normalize_phone

Reader = Callable[[str], Any]

# Not lead fields: what the lead did, and the sender's own id of the delivery.
_META = ("activity", "delivery_id")


def effective_mapping(default: Mapping[str, str], source: SourceContext) -> dict[str, str]:
    """The kind's default mapping with the source's overrides applied."""
    merged = {**default, **source.config.mapping}
    return {target: path for target, path in merged.items() if path}


def read_path(document: Any, path: str) -> Any:
    """The value at a dotted path in a JSON document (None when any step is missing)."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def load_json(body: bytes) -> Any:
    """The body as JSON; raises InvalidPayload when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(
            "The body is not valid JSON.", [{"field": "(body)", "message": str(exc)}]
        ) from exc


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _text(value: Any) -> Any:
    """Scalars as text, for the string-valued maps (utm, answers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def map_fields(mapping: Mapping[str, str], read: Reader) -> tuple[dict[str, Any], dict[str, Any]]:
    """The lead's fields as nested data, and the meta fields (activity, delivery_id)."""
    lead: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for target, path in mapping.items():
        value = read(path)
        if not _present(value):
            continue
        if target in _META:
            meta[target] = value
        elif target.startswith(MAPPING_PREFIXES):
            group, key = target.split(".", 1)
            lead.setdefault(group, {})[key] = value if group == "custom" else _text(value)
        elif target.startswith("company."):
            lead.setdefault("company", {})[target.split(".", 1)[1]] = value
        else:
            lead[target] = value
    return lead, meta


def identified(lead: Mapping[str, Any]) -> bool:
    """Whether mapped lead data carries an email or a phone."""
    return _present(lead.get("email")) or _present(lead.get("phone"))


def validate_lead(data: dict[str, Any], mapping: Mapping[str, str], prefix: str = "") -> LeadIn:
    """The canonical lead; raises InvalidPayload with errors named by the sender's fields."""

    def sender_field(target: str) -> str:
        # The longest mapped part of the location names it (`custom.id.a` -> `leadId.a`).
        parts = target.split(".")
        for cut in range(len(parts), 0, -1):
            mapped = mapping.get(".".join(parts[:cut]))
            if mapped is not None:
                return prefix + ".".join([mapped, *parts[cut:]])
        return prefix + target

    errors: list[dict[str, Any]] = []
    for name, normalize in (("email", normalize_email), ("phone", None)):
        value = data.get(name)
        if not _present(value):
            continue
        if not isinstance(value, str):
            errors.append({"field": sender_field(name), "message": f"{name} must be text."})
            continue
        try:
            if normalize is not None:
                normalize(value)
            else:
                country = data.get("country")
                normalize_phone(
                    value,
                    country if isinstance(country, str) else None,
                    require_valid=not _present(data.get("email")),
                )
        except ValueError as exc:
            errors.append({"field": sender_field(name), "message": f"{name} {exc}"})
    if errors:
        raise InvalidPayload("The lead's identity is not valid.", errors)
    if not identified(data):
        raise InvalidPayload(
            "The lead has no email or phone number to identify it.",
            [
                {
                    "field": f"{sender_field('email')} / {sender_field('phone')}",
                    "message": "a lead needs an email or a phone number to be identified.",
                }
            ],
        )
    try:
        return LeadIn.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(
            "The body is not a valid lead.",
            [
                {
                    "field": sender_field(".".join(str(p) for p in e["loc"]))
                    if e["loc"]
                    else "(body)",
                    "message": str(e["msg"]).removeprefix("Value error, "),
                }
                for e in exc.errors()
            ],
        ) from exc


def mapped_lead_event(
    source: SourceContext,
    mapping: Mapping[str, str],
    read: Reader,
    *,
    delivery_id: str,
    default_activity: str,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
    prefix: str = "",
) -> SerializedEvent:
    """The `lead.received` event of a mapped payload (its delivery id overridable by mapping)."""
    data, meta = map_fields(mapping, read)
    for group, values in (extra or {}).items():
        data.setdefault(group, {}).update(values)
    lead = validate_lead(data, mapping, prefix)
    activity = meta.get("activity") or source.config.activity or default_activity
    if not isinstance(activity, str) or not activity.strip():
        raise InvalidPayload(
            "The activity is not valid.",
            [{"field": prefix + mapping["activity"], "message": "activity must be text."}],
        )
    sender_id = meta.get("delivery_id")
    return lead_event(
        lead,
        keys=source.keys,
        source=source.name,
        kind=source.config.kind,
        delivery_id=str(sender_id) if sender_id is not None else delivery_id,
        activity=_activity_name(activity),
        now=now,
    )


def _activity_name(value: str) -> str:
    """An activity as the scoring rules name them: `Demo Request` -> `demo_request`."""
    name = "_".join(value.strip().lower().replace("-", " ").split())
    cleaned = "".join(c for c in name if c.isalnum() or c == "_").strip("_")[:64]
    if not cleaned or not cleaned[0].isalpha():
        return "form_fill"
    return cleaned

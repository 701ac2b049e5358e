"""The AsyncAPI 3.0 document of Leadflow's topics, generated from the event models.

`leadflow events asyncapi` prints it; `docs/asyncapi.yaml` is its output, checked in, and
a unit test fails when the two differ. What is generated, and from where:

* a channel per topic (`leadflow.topics.ALL`), its messages the event types that
  `topic_for` puts on it, in either lane (the dead-letter topic carries any of them);
* a message per event type (`leadflow.events.PAYLOAD_TYPES`): the CloudEvents envelope
  with the type's `data`, JSON Schema from the pydantic models, the lead key as the
  Kafka key, and the record headers (`content-type` of the structured mode, `traceparent`);
* a send operation per service and topic it publishes to, and a receive operation per
  consumer group and topic it reads (`RECEIVES` mirrors the services' `ConsumerSpec`s;
  a unit test compares the two).
"""

from __future__ import annotations

from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from leadflow import __version__
from leadflow.bus import CLOUDEVENTS_JSON
from leadflow.events import PAYLOAD_TYPES, ActivityKind, Envelope
from leadflow.topics import (
    ACTIVITY,
    ALERTS,
    ALL,
    ASSIGNED,
    DLQ,
    RECEIVED,
    RECEIVED_BULK,
    SCORED,
    SCORED_BULK,
    Lane,
    topic_for,
)

_ACTIVITIES = tuple(f"lead.{kind}" for kind in get_args(ActivityKind))

# The event types each service publishes (on the topics `topic_for` gives, in both lanes).
SENDS: dict[str, tuple[str, ...]] = {
    "intake": ("lead.received", *_ACTIVITIES),
    "scoring": ("lead.scored", "lead.merged", "lead.erased"),
    "router": ("lead.assigned", "lead.reassigned", "lead.pooled", "lead.unassigned"),
    "sla-monitor": ("sla.warning", "sla.breached", "sla.escalated"),
}

# What each service's consumer groups read: service -> group -> topics.
RECEIVES: dict[str, dict[str, tuple[str, ...]]] = {
    "scoring": {"leadflow-scoring": (RECEIVED,), "leadflow-scoring-bulk": (RECEIVED_BULK,)},
    "router": {
        "leadflow-router": (SCORED, ALERTS, ACTIVITY),
        "leadflow-router-bulk": (SCORED_BULK,),
    },
    "sla-monitor": {
        "leadflow-sla-monitor": (ASSIGNED, ACTIVITY),
        "leadflow-reporting": (
            RECEIVED,
            SCORED,
            ASSIGNED,
            ACTIVITY,
            RECEIVED_BULK,
            SCORED_BULK,
        ),
    },
}

_LANES: tuple[Lane, ...] = ("live", "bulk")
_SCHEMAS = "#/components/schemas/{model}"


def _id(name: str) -> str:
    """An AsyncAPI object id for a topic or event type (ids allow no dots)."""
    return name.replace(".", "-")


def types_on(topic: str) -> list[str]:
    """The event types that travel on `topic`, in the order of `PAYLOAD_TYPES`."""
    if topic == DLQ:
        return list(PAYLOAD_TYPES)
    return [t for t in PAYLOAD_TYPES if topic in {topic_for(t, lane) for lane in _LANES}]


def _schemas() -> dict[str, Any]:
    """JSON Schema of the envelope and of every payload model, as components."""
    models: list[type[BaseModel]] = [Envelope, *dict.fromkeys(PAYLOAD_TYPES.values())]
    _, top = models_json_schema([(m, "serialization") for m in models], ref_template=_SCHEMAS)
    schemas: dict[str, Any] = top["$defs"]
    schemas["Headers"] = {
        "type": "object",
        "properties": {
            "content-type": {
                "type": "string",
                "const": CLOUDEVENTS_JSON,
                "description": "CloudEvents Kafka binding, structured content mode: the "
                "value is the whole event as JSON. Records written before it have none; "
                "consumers read every value as a structured event.",
            },
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the lead's trace, while tracing is on.",
            },
        },
    }
    return dict(sorted(schemas.items()))


def _message(event_type: str) -> dict[str, Any]:
    model = PAYLOAD_TYPES[event_type]
    return {
        "name": event_type,
        "title": event_type,
        "summary": (model.__doc__ or "").strip().splitlines()[0],
        "contentType": CLOUDEVENTS_JSON,
        "headers": {"$ref": _SCHEMAS.format(model="Headers")},
        "payload": {
            "allOf": [
                {"$ref": _SCHEMAS.format(model="Envelope")},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": _SCHEMAS.format(model=model.__name__)},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The lead key (the event's `subject`): every event of "
                    "one person lands on one partition, in order.",
                },
                "bindingVersion": "0.5.0",
            }
        },
    }


def _channel(topic: str) -> dict[str, Any]:
    description = f"{', '.join(types_on(topic))} events, keyed by the lead key."
    if topic == DLQ:
        description = (
            "Records a consumer can never apply: the original record (any event type, "
            "its headers kept) with `leadflow-error-reason`, `leadflow-error-message`, "
            "`leadflow-consumer` and `leadflow-original-topic/-partition/-offset` headers."
        )
    return {
        "address": topic,
        "description": description + " The topic name gets `LEADFLOW_TOPIC_PREFIX` in front of it.",
        "messages": {_id(t): {"$ref": f"#/components/messages/{_id(t)}"} for t in types_on(topic)},
    }


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for service, sent in SENDS.items():
        for topic in ALL:
            mine = [t for t in types_on(topic) if t in sent and topic != DLQ]
            if mine:
                operations[f"{service}-sends-{_id(topic)}"] = {
                    "action": "send",
                    "title": f"{service} publishes on {topic}",
                    "channel": {"$ref": f"#/channels/{_id(topic)}"},
                    "messages": [
                        {"$ref": f"#/channels/{_id(topic)}/messages/{_id(t)}"} for t in mine
                    ],
                }
    for service, groups in RECEIVES.items():
        for group, read in groups.items():
            for topic in read:
                operations[f"{group}-receives-{_id(topic)}"] = {
                    "action": "receive",
                    "title": f"{service} reads {topic} (consumer group {group})",
                    "channel": {"$ref": f"#/channels/{_id(topic)}"},
                }
    operations["any-consumer-sends-leads-dlq"] = {
        "action": "send",
        "title": "Any consumer dead-letters a record it can never apply",
        "channel": {"$ref": f"#/channels/{_id(DLQ)}"},
    }
    return operations


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of Leadflow's topics."""
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Leadflow events",
            "version": __version__,
            "description": "CloudEvents 1.0 in structured JSON mode on Kafka topics, "
            "generated from the event models by `leadflow events asyncapi`.",
        },
        "defaultContentType": CLOUDEVENTS_JSON,
        "channels": {_id(topic): _channel(topic) for topic in ALL},
        "operations": _operations(),
        "components": {
            "messages": {_id(t): _message(t) for t in PAYLOAD_TYPES},
            "schemas": _schemas(),
        },
    }


def render() -> str:
    """The document as YAML, as checked in at `docs/asyncapi.yaml`."""
    return yaml.safe_dump(document(), sort_keys=False, width=100, allow_unicode=True)

"""The AsyncAPI document: checked in as generated, well formed, and true to the services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI

import leadflow_router.app
import leadflow_scoring.app
import leadflow_sla.app
from leadflow.events import PAYLOAD_TYPES
from leadflow.runtime import ConsumerSpec
from leadflow.settings import Settings
from leadflow.topics import ALL
from leadflow_cli.asyncapi import RECEIVES, SENDS, render

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"


def refs(node: Any) -> list[str]:
    """Every `$ref` in `node`, however deep."""
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert DOCUMENT.read_text() == render(), (
        "docs/asyncapi.yaml is out of date: run `leadflow events asyncapi > docs/asyncapi.yaml`"
    )


def test_the_document_is_asyncapi_3_with_every_event_type_and_every_ref_resolving() -> None:
    document = yaml.safe_load(render())
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    assert {c["address"] for c in document["channels"].values()} == set(ALL)
    for channel in document["channels"].values():
        assert channel["messages"], channel["address"]
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        assert resolve(document, operation["channel"]["$ref"])
    messages = document["components"]["messages"]
    assert {m["name"] for m in messages.values()} == set(PAYLOAD_TYPES)
    for message in messages.values():
        assert message["contentType"] == "application/cloudevents+json; charset=UTF-8"
        headers = resolve(document, message["headers"]["$ref"])
        assert set(headers["properties"]) == {"content-type", "traceparent"}
    found = refs(document)
    assert len(found) > len(PAYLOAD_TYPES)
    for ref in found:
        resolve(document, ref)


def test_a_broken_ref_is_caught() -> None:
    with pytest.raises(AssertionError, match="does not resolve"):
        resolve({"components": {}}, "#/components/schemas/Nothing")


def test_each_message_s_payload_is_the_envelope_with_its_types_data() -> None:
    document = yaml.safe_load(render())
    for event_type, model in PAYLOAD_TYPES.items():
        message = document["components"]["messages"][event_type.replace(".", "-")]
        envelope, narrowed = message["payload"]["allOf"]
        assert envelope == {"$ref": "#/components/schemas/Envelope"}
        assert narrowed["properties"]["type"] == {"const": event_type}
        data = resolve(document, narrowed["properties"]["data"]["$ref"])
        assert set(data["properties"]) == set(model.model_fields)


def test_the_receive_operations_are_the_services_consumer_groups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups: dict[str, dict[str, tuple[str, ...]]] = {}

    def capture(name: str, settings: Settings, specs: list[ConsumerSpec], **_: Any) -> FastAPI:
        groups[name] = {spec.group: tuple(spec.topics) for spec in specs}
        return FastAPI()

    settings = Settings(env="development")
    for module in (leadflow_scoring.app, leadflow_router.app, leadflow_sla.app):
        monkeypatch.setattr(module, "consumer_service", capture)
        module.create_app(settings)
    assert groups == RECEIVES
    assert set(SENDS) == {"intake", *RECEIVES}

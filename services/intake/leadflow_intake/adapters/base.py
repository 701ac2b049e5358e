"""The interface of a source kind: authenticate a raw request, then parse its payload.

An adapter is two pure steps behind one small interface:
`authenticate` checks the sender's signature (or shared secret) on the raw request and
returns the sender's delivery id when it gives one; `parse` turns the verified payload
into canonical Leadflow events, using the kind's default field mapping as overridden by
the source's configuration. Neither does IO; the clock is passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from leadflow.config import Source
from leadflow.events import SerializedEvent
from leadflow.keys import LeadKeys


@dataclass(frozen=True)
class WebhookRequest:
    """What an adapter sees of a request: method, URL (as the sender signed it, for the kinds
    that sign it), headers, body."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceContext:
    """A configured source: its name, configuration, the secrets valid right now, and the
    deployment's lead keys (for the people its events name)."""

    name: str
    config: Source
    secrets: Sequence[str]
    keys: LeadKeys


@dataclass(frozen=True)
class Parsed:
    """The events of one delivery, in order, and how many items it carried that were ignored."""

    events: list[SerializedEvent]
    ignored: int = 0


class AuthenticationError(Exception):
    """The request is not authentic; the message says why (never which secret)."""


class InvalidPayload(Exception):
    """The payload is not a valid lead or activity; `errors` name the sender's fields."""

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class Adapter(Protocol):
    """One source kind: its media types, its authentication and its payload parsing."""

    kind: str
    media_types: frozenset[str]
    # Whether the signature covers the full request URL (then `WebhookRequest.url` is the
    # URL as the sender saw it; otherwise just the path).
    signs_url: bool
    default_mapping: Mapping[str, str]

    def authenticate(
        self, request: WebhookRequest, source: SourceContext, *, now: float, tolerance_s: int
    ) -> str | None:
        """Verify the request; returns the sender's delivery id, or None when it has none."""
        ...

    def parse(
        self, request: WebhookRequest, source: SourceContext, *, delivery_id: str, now: datetime
    ) -> Parsed:
        """The events carried by a verified request; raises InvalidPayload."""
        ...


def content_delivery_id(body: bytes) -> str:
    """A delivery id for senders that give none: the same body is the same delivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()

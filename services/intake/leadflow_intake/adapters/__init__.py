"""Source kinds: one adapter module per kind, behind the interface in `base`."""

from __future__ import annotations

from leadflow.config import SourceKind
from leadflow_intake.adapters import callrail, hubspot, marketo, standard, twilio
from leadflow_intake.adapters.base import Adapter

ADAPTERS: dict[SourceKind, Adapter] = {
    "standard": standard.ADAPTER,
    "hubspot": hubspot.ADAPTER,
    "twilio": twilio.ADAPTER,
    "callrail": callrail.ADAPTER,
    "marketo": marketo.ADAPTER,
}


def adapter_for(kind: SourceKind) -> Adapter:
    """The adapter of a source kind."""
    return ADAPTERS[kind]

"""What each kind of source gives scoring: the activity of its events.

The intake's adapters read the defaults here, and `leadflow config check` reads them to
tell which scoring rules a configured source can trigger (`leadflow.reachability`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from leadflow.config import SourceKind

# The activity of a mapped kind's events when neither the payload nor the source's
# `activity` names one. (A `standard` body names its own; it defaults to form_fill.)
DEFAULT_ACTIVITY: Mapping[SourceKind, str] = MappingProxyType(
    {
        "hubspot": "form_fill",
        "twilio": "ivr_call",
        "callrail": "phone_call",
        "marketo": "form_fill",
    }
)

# Kinds whose payload names the activity unless the source maps `activity` to "": the
# canonical body, and Marketo's webhook template (its `activity` field).
PAYLOAD_NAMES_ACTIVITY: frozenset[SourceKind] = frozenset({"standard", "marketo"})

"""The stored form of a person's `Aggregate` (`lead_profiles.aggregate`, JSON).

    {"v": 1, "keep": 50, "touches": 7,
     "first": TOUCH, "last": TOUCH, "recent": [TOUCH, ...],
     "fields": {"plain": {name: [value, at, event_id, sound]},
                "nested": {name: {key: [value, at, event_id]}}},
     "settled": null | {"key": str, "touches": int, "newest": [at, event_id],
                "seen": {activity: n}, "firsts": {activity: [at, event_id]},
                "rules": {name: [hits, [at, id], [at, id], "activity via source", points]},
                "hand_raises": {name: [[at, event_id], activity]}},
     "pending": [TOUCH with "fields", ...]}

TOUCH is {"activity", "source", "at", "id", "detail"}; times are ISO 8601 with an offset.
`pending` holds touches not folded yet: the migration that introduced aggregates wrote
each person's touches there (it cannot evaluate the scoring model), and the first event
of that person folds them. Every key but "v" may be left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from leadflow_scoring.aggregate import RECENT_TOUCHES, Aggregate
from leadflow_scoring.fields import Entry, Fields, Stamp
from leadflow_scoring.profile import Touch
from leadflow_scoring.tally import FirstTouch, RuleTally, Tally

VERSION = 1


def dump(state: Aggregate) -> dict[str, Any]:
    """The JSON document of an aggregate."""
    return {
        "v": VERSION,
        "keep": state.keep,
        "touches": state.touches,
        "first": _touch(state.first) if state.first else None,
        "last": _touch(state.last) if state.last else None,
        "recent": [_touch(t) for t in state.recent],
        "fields": {
            "plain": {
                name: [e.value, *_stamp(e.stamp), e.sound] for name, e in state.fields.plain.items()
            },
            "nested": {
                name: {key: [e.value, *_stamp(e.stamp)] for key, e in keys.items()}
                for name, keys in state.fields.nested.items()
            },
        },
        "settled": _tally(state.settled) if state.settled else None,
    }


def load(document: Mapping[str, Any]) -> tuple[Aggregate, list[Touch]]:
    """An aggregate from its JSON document, and the touches still to fold into it."""
    if document.get("v") != VERSION:
        raise ValueError(f"unknown aggregate version {document.get('v')!r}; expected {VERSION}.")
    given = document.get("fields") or {}
    plain = {
        name: Entry(value, (_time(at), event_id), sound)
        for name, (value, at, event_id, sound) in (given.get("plain") or {}).items()
    }
    nested = {name: _read_keys(keys) for name, keys in (given.get("nested") or {}).items()}
    first, last = document.get("first"), document.get("last")
    state = Aggregate(
        fields=Fields(plain, nested),
        touches=int(document.get("touches", 0)),
        first=_read_touch(first) if first else None,
        last=_read_touch(last) if last else None,
        recent=tuple(_read_touch(t) for t in document.get("recent") or []),
        settled=_read_tally(document["settled"]) if document.get("settled") else None,
        keep=int(document.get("keep", RECENT_TOUCHES)),
    )
    return state, [_read_touch(t) for t in document.get("pending") or []]


def _read_keys(keys: Mapping[str, list[Any]]) -> dict[str, Entry]:
    return {key: Entry(value, (_time(at), event_id)) for key, (value, at, event_id) in keys.items()}


def _touch(touch: Touch) -> dict[str, Any]:
    return {
        "activity": touch.activity,
        "source": touch.source,
        "at": touch.occurred_at.isoformat(),
        "id": touch.event_id,
        "detail": touch.detail,
    }


def _read_touch(data: Mapping[str, Any]) -> Touch:
    return Touch(
        activity=data["activity"],
        source=data["source"],
        occurred_at=_time(data["at"]),
        detail=data.get("detail") or {},
        event_id=data["id"],
        fields=data.get("fields") or {},
    )


def _tally(tally: Tally) -> dict[str, Any]:
    return {
        "key": tally.key,
        "touches": tally.touches,
        "newest": _stamp(tally.newest),
        "seen": dict(tally.seen),
        "firsts": {activity: _stamp(s) for activity, s in tally.firsts.items()},
        "rules": {
            name: [r.hits, _stamp(r.first), _stamp(r.latest), r.latest_what, r.points]
            for name, r in tally.rules.items()
        },
        "hand_raises": {
            name: [_stamp(first.stamp), first.activity] for name, first in tally.hand_raises.items()
        },
    }


def _read_tally(data: Mapping[str, Any]) -> Tally:
    return Tally(
        key=data["key"],
        touches=int(data["touches"]),
        newest=_read_stamp(data["newest"]),
        seen={activity: int(n) for activity, n in data["seen"].items()},
        firsts={activity: _read_stamp(s) for activity, s in data["firsts"].items()},
        rules={
            name: RuleTally(int(hits), _read_stamp(first), _read_stamp(latest), what, float(points))
            for name, (hits, first, latest, what, points) in data["rules"].items()
        },
        hand_raises={
            name: FirstTouch(_read_stamp(s), activity)
            for name, (s, activity) in data["hand_raises"].items()
        },
    )


def _stamp(stamp: Stamp) -> list[str]:
    return [stamp[0].isoformat(), stamp[1]]


def _read_stamp(data: list[str]) -> Stamp:
    return _time(data[0]), data[1]


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value

"""A person's fields kept as registers: each value with the touch that gave it.

Folding touches in time order (`profile.merge_values`) keeps, per field, the value of
the latest touch that gave a non-empty one; nested mappings (company, utm, answers,
custom) key by key; and a valid phone number over any later mistyped one. A register
holds that value with its touch's (time, event id) and keeps whichever ranks higher, so
touches can be recorded in any order, and two people merged, with the same result as
the fold. Key order in the resulting mapping may differ from the fold's; nothing reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadflow_scoring.profile import phone_facts

Stamp = tuple[datetime, str]


@dataclass(frozen=True)
class Entry:
    """One field's value, the touch that gave it, and whether it outranks later ones."""

    value: Any
    stamp: Stamp
    # False for a phone that is not a valid number: a valid one, even older, wins.
    sound: bool = True

    def outranks(self, other: Entry) -> bool:
        """Whether this value is the one the fold would keep over `other`."""
        return (self.sound, self.stamp) > (other.sound, other.stamp)


@dataclass(frozen=True)
class Fields:
    """Registers of plain fields, and of the keys of mapping fields (present even if empty)."""

    plain: Mapping[str, Entry] = field(default_factory=dict)
    nested: Mapping[str, Mapping[str, Entry]] = field(default_factory=dict)


def record(fields: Fields, given: Mapping[str, Any], stamp: Stamp) -> Fields:
    """`fields` after one touch that said `given` about the person."""
    plain = dict(fields.plain)
    nested = dict(fields.nested)
    for name, value in given.items():
        if isinstance(value, dict):
            keys = dict(nested.get(name, {}))
            for key, inner in value.items():
                _keep(keys, key, Entry(inner, stamp))
            nested[name] = keys
        elif value not in ("", []):
            _keep(plain, name, Entry(value, stamp, _sound(name, value)))
    return Fields(plain, nested)


def merge(a: Fields, b: Fields) -> Fields:
    """The registers of two people made one."""
    plain = dict(a.plain)
    for name, entry in b.plain.items():
        _keep(plain, name, entry)
    nested = dict(a.nested)
    for name, keys in b.nested.items():
        merged = dict(nested.get(name, {}))
        for key, entry in keys.items():
            _keep(merged, key, entry)
        nested[name] = merged
    return Fields(plain, nested)


def values(fields: Fields) -> dict[str, Any]:
    """The profile's fields: what folding every touch in time order gives."""
    result = {name: entry.value for name, entry in fields.plain.items()}
    # A field is a mapping in every event or in none (the lead schema); were it both, the
    # mapping would win here.
    result.update(
        {name: {k: e.value for k, e in keys.items()} for name, keys in fields.nested.items()}
    )
    return result


def _keep(registers: dict[str, Entry], name: str, entry: Entry) -> None:
    current = registers.get(name)
    if current is None or entry.outranks(current):
        registers[name] = entry


def _sound(name: str, value: Any) -> bool:
    # Only the phone has a "worse" value: a number that is not valid never replaces one that is.
    return name != "phone" or not isinstance(value, str) or phone_facts(value)[1]

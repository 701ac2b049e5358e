"""Scoring's store in memory: for `leadflow simulate` and tests, with no database.

It keeps what the tables keep (profiles, identifiers, touches) in dicts, indexed so that
loading a batch costs what the batch touches, not what the store holds. A batch works on
copies: one that fails leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from leadflow.coroutines import complete
from leadflow_scoring.profile import Touch
from leadflow_scoring.store import Claims, People, Record

__all__ = ["InMemoryProfileStore", "complete"]


class InMemoryProfileStore:
    """Profiles, identifiers and touches of many people, kept in memory."""

    def __init__(self) -> None:
        self._profiles: dict[str, Record] = {}
        self._members: dict[str, set[str]] = {}
        self._owners: dict[str, str | None] = {}
        self._owned: dict[str, set[str]] = {}
        self._touches: dict[str, list[Touch]] = {}
        self._recorded: set[str] = set()

    async def load(self, claims: Claims, now: datetime) -> People:
        """Everything the batch's identifiers lead to (as the database store finds it)."""
        owners = {key: self._owners.get(key) for key in claims.identifiers}
        direct = set(owners) | {key for key in owners.values() if key is not None}
        records: dict[str, Record] = {}
        merged: dict[str, str] = {}
        pending = sorted(direct)
        while pending:
            key = pending.pop()
            found = self._profiles.get(key)
            if found is None or key in records or key in merged:
                continue
            if found.merged_into is not None:
                merged[key] = found.merged_into
                pending.append(found.merged_into)
                continue
            records[key] = replace(found)
            for member in self._members.get(key, ()):
                merged[member] = key
        for key in [*records, *merged]:
            owners.update(dict.fromkeys(self._owned.get(key, ()), key))
        recorded = {e for e in claims.event_ids if e in self._recorded}
        return People(owners, records, merged, recorded)

    async def touches(self, lead_keys: Collection[str]) -> dict[str, list[Touch]]:
        """The stored touches of some profiles, by profile key."""
        return {key: list(self._touches.get(key, [])) for key in lead_keys}

    async def save(self, people: People, now: datetime) -> None:
        """Keep what the batch changed."""
        changed = [*people.created(), *people.rescored()]
        changed += [people.records[key] for key in people.absorbed()]
        for record in changed:
            state = None if record.merged_into is not None else record.state
            self._profiles[record.lead_key] = replace(
                record, state=state, pending=(), stored=True, scored=None
            )
        for key, target in people.repointed().items():
            self._profiles[key] = replace(self._profiles[key], merged_into=target)
        for key, members in people.members.items():
            if key in people.records and people.records[key].merged_into is None:
                self._members[key] = set(members)
            else:
                self._members.pop(key, None)
        for key, target in people.absorbed().items():
            self._touches.setdefault(target, []).extend(self._touches.pop(key, []))
        for key, touch in people.recorded_touches():
            self._touches.setdefault(key, []).append(touch)
            self._recorded.add(touch.event_id)
        for identifier, owner in people.attached().items():
            before = self._owners.get(identifier)
            if before is not None:
                self._owned[before].discard(identifier)
            self._owners[identifier] = owner
            self._owned.setdefault(owner, set()).add(identifier)

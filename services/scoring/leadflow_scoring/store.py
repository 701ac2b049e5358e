"""The people a batch of events is about, held in memory, and the store they come from.

Scoring a batch is three steps: load everything its events need (`ProfileStore.load`),
apply the events one by one to `People` in Kafka order, save what changed
(`ProfileStore.save`). The database store (`repository.SqlProfileStore`) does each step
in a few statements whatever the size of the batch; the in-memory one
(`memory.InMemoryProfileStore`) serves `leadflow simulate` and tests. The scoring itself
(`service.score_batch`) is written once, over `People`, for both.

`People` mirrors the stored rows: `owners` is `lead_identifiers.lead_key` (the profile an
identifier was last attached to, which may since have been merged into another), a merged
profile points at its survivor, and an absorbed profile's rows point at the new survivor
when it is merged in turn — so what is saved is what the rows would be had the events
been applied one transaction each.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from leadflow_scoring.aggregate import Aggregate
from leadflow_scoring.domain import Score
from leadflow_scoring.identity import IdentifierKind
from leadflow_scoring.profile import Profile, Touch


class Claim(NamedTuple):
    """An identifier a batch carries: its kind and the first event of the batch with it."""

    kind: IdentifierKind
    event_id: str


@dataclass(frozen=True)
class Claims:
    """What a batch asks of the store: its identifiers (by key) and its event ids."""

    identifiers: dict[str, Claim]
    event_ids: list[str]


@dataclass(frozen=True, slots=True)
class Scored:
    """What an event scored a profile as: the profile row's columns follow from it."""

    profile: Profile
    score: Score
    model_version: str


@dataclass(slots=True)
class Record:
    """One profile during a batch."""

    lead_key: str
    first_seen_at: datetime
    qualified_at: datetime | None
    # The person's aggregate and the touches stored for it but not folded in yet (profiles
    # written before aggregates); None when it must be folded again from the touches.
    state: Aggregate | None
    pending: tuple[Touch, ...] = ()
    # Set when this batch merged the profile into another.
    merged_into: str | None = None
    # False for a profile this batch started.
    stored: bool = True
    # Set when this batch scored the profile.
    scored: Scored | None = None


@dataclass
class People:
    """Every profile, identifier and touch a batch's events can reach, changed in memory."""

    # identifier -> the profile it is attached to (None: claimed by this batch, not yet).
    owners: dict[str, str | None]
    # The live profiles the batch's identifiers lead to (locked by the database store).
    records: dict[str, Record]
    # Profiles merged before the batch: key -> the profile it was merged into.
    merged: dict[str, str]
    # Event ids whose touch is stored already.
    recorded: set[str]
    # Stored touches by profile key, of the people who must be folded again.
    history: dict[str, list[Touch]] = field(default_factory=dict)
    # Touches this batch recorded, with the profile key they were recorded under.
    touches: list[tuple[str, Touch]] = field(default_factory=list)
    # profile key -> the profiles merged into it; profile key -> its identifiers.
    members: dict[str, set[str]] = field(init=False, default_factory=dict)
    owned: dict[str, set[str]] = field(init=False, default_factory=dict)
    _stored_owners: dict[str, str | None] = field(init=False, default_factory=dict)
    _stored_merged: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for key, target in self.merged.items():
            self.members.setdefault(target, set()).add(key)
        for identifier, owner in self.owners.items():
            if owner is not None:
                self.owned.setdefault(owner, set()).add(identifier)
        self._stored_owners = dict(self.owners)
        self._stored_merged = dict(self.merged)

    def live(self, key: str) -> Record | None:
        """The live profile a profile key leads to (following merges), if any."""
        seen = 0
        while key in self.merged and seen <= len(self.merged):
            key, seen = self.merged[key], seen + 1
        record = self.records.get(key)
        return record if record is not None and record.merged_into is None else None

    def reached(self, identifiers: Collection[str]) -> list[Record]:
        """The live profiles an event's identifiers lead to (directly or through owners)."""
        keys = set(identifiers) | {o for k in identifiers if (o := self.owners.get(k)) is not None}
        found = {r.lead_key: r for k in keys if (r := self.live(k)) is not None}
        return [found[key] for key in sorted(found)]

    def start(self, lead_key: str, first_seen_at: datetime) -> Record:
        """A new profile (no touch yet)."""
        record = Record(lead_key, first_seen_at, None, Aggregate(), stored=False)
        self.records[lead_key] = record
        return record

    def merge(self, survivor: Record, absorbed: Collection[Record]) -> None:
        """Merge profiles into `survivor`, with the profiles merged into them before."""
        into = self.members.setdefault(survivor.lead_key, set())
        for record in absorbed:
            moved = {record.lead_key} | self.members.pop(record.lead_key, set())
            for key in moved:
                self.merged[key] = survivor.lead_key
                if key in self.records:
                    self.records[key].merged_into = survivor.lead_key
            into |= moved

    def attach(self, identifiers: Collection[str], lead_key: str) -> None:
        """Attach identifiers to a profile."""
        for identifier in identifiers:
            owner = self.owners.get(identifier)
            if owner == lead_key:
                continue
            if owner is not None:
                self.owned[owner].discard(identifier)
            self.owners[identifier] = lead_key
            self.owned.setdefault(lead_key, set()).add(identifier)

    def record_touch(self, lead_key: str, touch: Touch) -> bool:
        """Record a touch of a profile; False when its event was recorded before."""
        if touch.event_id in self.recorded:
            return False
        self.recorded.add(touch.event_id)
        self.touches.append((lead_key, touch))
        return True

    def aliases(self, lead_key: str) -> tuple[list[str], list[str]]:
        """A live profile's identifiers and the keys of the profiles merged into it (sorted)."""
        merged = self.members.get(lead_key, set())
        owned = set().union(*(self.owned.get(key, ()) for key in (lead_key, *merged)))
        return sorted(owned), sorted(merged)

    def every_touch(self, lead_key: str) -> list[Touch]:
        """Every touch of a live profile: stored ones (loaded into `history`) and this batch's.

        Raises when a stored profile of the person was not loaded: its touches would be
        missing from the fold.
        """
        keys = {lead_key} | self.members.get(lead_key, set())
        stored: list[Touch] = []
        for key in sorted(keys):
            record = self.records.get(key)
            if record is None or not record.stored:
                continue
            if key not in self.history:
                raise RuntimeError(f"the touches of profile {key} were not loaded.")
            stored += self.history[key]
        fresh = [t for key, t in self.touches if (r := self.live(key)) and r.lead_key == lead_key]
        return stored + fresh

    # What changed, for the store to save.

    def created(self) -> list[Record]:
        """Profiles this batch started (some maybe merged away since)."""
        return [r for r in self.records.values() if not r.stored]

    def rescored(self) -> list[Record]:
        """Stored profiles this batch scored (some maybe merged away since)."""
        return [r for r in self.records.values() if r.stored and r.scored is not None]

    def absorbed(self) -> dict[str, str]:
        """Stored profiles this batch merged into another: key -> survivor."""
        return {
            key: r.merged_into
            for key, r in self.records.items()
            if r.stored and r.merged_into is not None
        }

    def repointed(self) -> dict[str, str]:
        """Stored profiles, not scored by this batch, now merged into another: key -> survivor."""
        return {
            key: target
            for key, target in self.merged.items()
            if self._stored_merged.get(key) != target
            and (
                key not in self.records
                or (self.records[key].stored and not self.records[key].scored)
            )
        }

    def recorded_touches(self) -> list[tuple[str, Touch]]:
        """This batch's touches with the live profile each belongs to now."""
        found = []
        for key, touch in self.touches:
            record = self.live(key)
            found.append((record.lead_key if record is not None else key, touch))
        return found

    def attached(self) -> dict[str, str]:
        """Identifiers attached to another profile by this batch: identifier -> profile key."""
        return {
            identifier: owner
            for identifier, owner in self.owners.items()
            if owner is not None and self._stored_owners.get(identifier) != owner
        }


class ProfileStore(Protocol):
    """Where scoring's profiles, identifiers and touches live between batches."""

    async def load(self, claims: Claims, now: datetime) -> People:
        """Everything the batch's identifiers lead to; claims the identifiers for the batch."""
        ...

    async def touches(self, lead_keys: Collection[str]) -> dict[str, list[Touch]]:
        """The stored touches of some profiles, by profile key (only to fold a person again)."""
        ...

    async def save(self, people: People, now: datetime) -> None:
        """Write what the batch changed."""
        ...

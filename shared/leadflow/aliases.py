"""One key per person everywhere: each consumer's aliases, from every key a person was known
by to the one key they are known by now.

Scoring decides who is who. When an event merges two profiles, or attaches a new
identifier to a person (a phone next to the email), it publishes `lead.merged` (and puts
`merged_from`/`identifiers` on the survivor's `lead.scored`). Each consumer records what it
learns in its own rows of `lead_aliases` (keyed by consumer name), moves its state from the
keys that stopped meaning a person of their own to the survivor, and looks every key it is
given up here: an event's, a CRM outcome's (`person_of`), an API caller's.

A row always points at the final survivor, never at another alias, so resolving is one
look-up. Merges may arrive in any order (`lead.merged` and `lead.scored` travel on
different topics; a later merge can overtake an earlier one): `AliasBook.apply` works on
the whole group of keys a merge touches and picks its root, the one key no merge absorbed,
so the same merges give the same rows whatever their order. That holds for merges as
scoring publishes them, where no key is ever absorbed by two people. Merges that
contradict each other (a cycle, or one key absorbed by two unrelated survivors) still leave
one root per group, the smallest free key, but which one may then depend on their order.

A consumer batch costs a constant number of statements: `resolve` (one SELECT) for the
keys its events name, `load` (one SELECT) before applying merges in memory and `save` (one
upsert) after; `record` is the two together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from leadflow.db.statements import upsert
from leadflow.db.tables import lead_aliases
from leadflow.events import LeadMerged, LeadScored, Payload
from leadflow.keys import LeadKeys


@dataclass(frozen=True, slots=True)
class Alias:
    """What one alias row says: the person's key now, and when the alias was first merged."""

    survivor: str
    merged_at: datetime


@dataclass(frozen=True, slots=True)
class Merge:
    """Keys that now mean `survivor`: merged profiles and linked identifiers."""

    survivor: str
    aliases: tuple[str, ...]
    merged_at: datetime

    def named(self) -> set[str]:
        """The survivor and its aliases."""
        return {self.survivor, *self.aliases}


def merge_of(data: Payload) -> Merge | None:
    """The merge an event tells of: a `lead.merged`, or the `merged_from` and `identifiers`
    of a `lead.scored`; None for any other event, or one that links nothing."""
    if isinstance(data, LeadMerged):
        aliases, survivor, at = data.aliases(), data.survivor, data.merged_at
    elif isinstance(data, LeadScored):
        survivor, at = data.lead_key, data.scored_at
        aliases = sorted({*data.merged_from, *data.identifiers} - {survivor})
    else:
        return None
    return Merge(survivor, tuple(aliases), at) if aliases else None


class AliasBook:
    """A consumer's aliases in memory: the rows a batch loaded (`load`), or every row (an
    in-memory store's), changed by `apply` and saved by `save`."""

    def __init__(self, rows: Mapping[str, Alias] | None = None) -> None:
        self._rows: dict[str, Alias] = dict(rows or {})
        self._members: dict[str, set[str]] = {}
        for alias, row in self._rows.items():
            self._members.setdefault(row.survivor, set()).add(alias)
        self._changed: set[str] = set()

    def canonical(self, key: str) -> str:
        """The key the person known by `key` is known by now (`key` itself if no alias)."""
        row = self._rows.get(key)
        return row.survivor if row is not None else key

    def resolve(self, keys: Iterable[str]) -> dict[str, str]:
        """Each key's canonical key."""
        return {key: self.canonical(key) for key in keys}

    def keys_of(self, key: str) -> list[str]:
        """Every key of the person known by `key`: the canonical one first, then its aliases."""
        root = self.canonical(key)
        return [root, *sorted(self._members.get(root, set()) - {root})]

    def apply(self, merge: Merge) -> dict[str, str]:
        """Record a merge; the keys that stopped meaning a person of their own, each with the
        key that took its place (where a consumer moves the state it keeps under them)."""
        involved = merge.named()
        roots_before = {self.canonical(key) for key in involved}
        group = involved | roots_before
        for root in roots_before:
            group |= self._members.get(root, set())
        newly = set(merge.aliases) - {merge.survivor}
        absorbed = {key for key in group if key in self._rows} | newly
        free = group - absorbed
        # One free key unless merges contradict each other; then the smallest.
        root = min(free) if free else min(group)
        moved: dict[str, str] = {}
        for key in sorted(group):
            before = self._rows.get(key)
            if key == root:
                if before is not None and before.survivor != root:
                    self._set(key, Alias(root, before.merged_at))
                continue
            if before is None:
                moved[key] = root
            merged_at = merge.merged_at if key in newly or before is None else before.merged_at
            if before is not None:
                merged_at = min(merged_at, before.merged_at)
            self._set(key, Alias(root, merged_at))
        return moved

    def _set(self, key: str, row: Alias) -> None:
        before = self._rows.get(key)
        if before == row:
            return
        if before is not None:
            self._members[before.survivor].discard(key)
        self._rows[key] = row
        self._members.setdefault(row.survivor, set()).add(key)
        self._changed.add(key)

    def keep(self, rows: Mapping[str, Alias]) -> None:
        """Take rows a batch saved (an in-memory store keeping every row); not `changed`."""
        for key, row in rows.items():
            before = self._rows.get(key)
            if before is not None:
                self._members[before.survivor].discard(key)
            self._rows[key] = row
            self._members.setdefault(row.survivor, set()).add(key)

    def rows(self) -> dict[str, Alias]:
        """Every row held (a copy)."""
        return dict(self._rows)

    def rows_of(self, keys: Iterable[str]) -> dict[str, Alias]:
        """The rows of these keys (those that are aliases)."""
        return {key: self._rows[key] for key in keys if key in self._rows}

    def changed(self) -> dict[str, Alias]:
        """The rows `apply` wrote or changed since the book was made."""
        return {key: self._rows[key] for key in sorted(self._changed)}


def assignment_order(
    assigned_at: datetime, batch_position: int | None, assignment_id: str
) -> tuple[datetime, bool, int, str]:
    """Which of a person's live assignments comes first when a merge keeps one (the router
    and the SLA monitor both keep the first): the earlier `assigned_at`; of two made at the
    same instant (one batch decided both), the one the router decided first
    (`batch_position`), as batches of one event each would have kept it. Assignment ids
    are hashes of event ids: they only order rows written before positions were recorded."""
    return (assigned_at, batch_position is None, batch_position or 0, assignment_id)


def outcome_keys(
    lead_keys: LeadKeys,
    lead_key: str | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> list[str]:
    """The keys a CRM outcome names its person by, best first: its lead key, then the keys
    of its (normalized) email, then of its (E.164) phone — derived as the intake derives a
    lead's key, so each is the key a lead with that email or phone was received under; during
    a key rotation, under the current secret first, then under the previous ones."""
    derived = (key for value in (email, phone) if value for key in lead_keys.candidates(value))
    return list(dict.fromkeys(key for key in (lead_key, *derived) if key))


def person_of(
    keys: Sequence[str], canonical: Mapping[str, str], known: Callable[[str], bool]
) -> str:
    """The person an event naming `keys` (best first) is about, as their current key: that
    of the first key whose person the consumer `known`s, else that of the first key.

    A CRM outcome may name the person by an email scoring never saw next to the phone their
    lead came in by: the phone's person is then the one with the open window.
    """
    current = [canonical.get(key, key) for key in keys]
    return next((key for key in current if known(key)), current[0])


async def resolve(session: AsyncSession, consumer: str, keys: Collection[str]) -> dict[str, str]:
    """Each key's canonical key in `consumer`'s aliases (the key itself if none), in one
    statement."""
    if not keys:
        return {}
    c = lead_aliases.c
    rows = await session.execute(
        select(c.alias, c.survivor).where(c.consumer == consumer, c.alias.in_(sorted(keys)))
    )
    found: dict[str, str] = {row.alias: row.survivor for row in rows}
    return {key: found.get(key, key) for key in keys}


async def load(session: AsyncSession, consumer: str, keys: Collection[str]) -> AliasBook:
    """The rows of every person `keys` name (each key's row, and every alias of its person),
    in one statement: what `AliasBook.apply` needs for merges of these keys."""
    if not keys:
        return AliasBook()
    c = lead_aliases.c
    wanted = sorted(keys)
    roots = select(c.survivor).where(c.consumer == consumer, c.alias.in_(wanted))
    rows = await session.execute(
        select(c.alias, c.survivor, c.merged_at).where(
            c.consumer == consumer,
            or_(c.alias.in_(wanted), c.survivor.in_(wanted), c.survivor.in_(roots)),
        )
    )
    return AliasBook({alias: Alias(survivor, at) for alias, survivor, at in rows})


async def save(session: AsyncSession, consumer: str, book: AliasBook) -> None:
    """Write the rows `book` changed, in one statement."""
    await save_rows(session, consumer, book.changed())


async def save_rows(session: AsyncSession, consumer: str, changed: Mapping[str, Alias]) -> None:
    """Write alias rows (`AliasBook.changed`), in one statement."""
    if not changed:
        return
    await session.execute(
        upsert(session, lead_aliases, ["consumer", "alias"]),
        [
            {
                "consumer": consumer,
                "alias": alias,
                "survivor": row.survivor,
                "merged_at": row.merged_at,
            }
            for alias, row in changed.items()
        ],
    )


async def record(session: AsyncSession, consumer: str, merges: Sequence[Merge]) -> dict[str, str]:
    """Record merges (load, apply in order, save: two statements); the keys that stopped
    meaning a person of their own, each with the key that took its place."""
    if not merges:
        return {}
    book = await load(session, consumer, set().union(*(m.named() for m in merges)))
    moved: dict[str, str] = {}
    for merge in merges:
        for key, root in book.apply(merge).items():
            moved[key] = root
        # A key moved by an earlier merge of the batch follows its survivor's later moves.
        moved = {key: book.canonical(root) for key, root in moved.items()}
    await save(session, consumer, book)
    return moved

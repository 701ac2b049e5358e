"""Aliases in memory: chains point at the final survivor, whatever order merges arrive in."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.aliases import Alias, AliasBook, Merge, merge_of, outcome_keys, person_of
from leadflow.events import (
    Lead,
    LeadActivity,
    LeadMerged,
    LeadScored,
    new_event,
)
from leadflow.keys import LeadKeys
from tests.fixtures.keys import KEYS, lead_key_for

OLD_SECRET = "the-secret-before-the-rotation-0123456789"
NEW_SECRET = "the-secret-after-the-rotation-9876543210"

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_an_absorbed_key_resolves_to_its_survivor() -> None:
    book = AliasBook()
    moved = book.apply(Merge("a", ("b",), at(1)))
    assert moved == {"b": "a"}
    assert book.resolve(["a", "b", "c"]) == {"a": "a", "b": "a", "c": "c"}
    assert book.keys_of("b") == ["a", "b"]
    assert book.changed() == {"b": Alias("a", at(1))}


def test_a_survivor_absorbed_later_takes_its_aliases_along() -> None:
    book = AliasBook()
    book.apply(Merge("a", ("b",), at(1)))
    moved = book.apply(Merge("c", ("a",), at(2)))
    # Only `a` stopped being a person of its own: `b` was not one any more.
    assert moved == {"a": "c"}
    assert book.rows() == {"a": Alias("c", at(2)), "b": Alias("c", at(1))}
    assert book.keys_of("b") == ["c", "a", "b"]


def test_the_same_merges_in_the_other_order_give_the_same_rows() -> None:
    first, second = AliasBook(), AliasBook()
    m1, m2 = Merge("a", ("b",), at(1)), Merge("c", ("a",), at(2))
    first.apply(m1)
    first.apply(m2)
    second.apply(m2)
    moved = second.apply(m1)
    assert first.rows() == second.rows()
    # Arriving late, the older merge moves `b` straight to the final survivor.
    assert moved == {"b": "c"}


def test_merging_a_key_into_the_person_it_already_means_changes_nothing() -> None:
    book = AliasBook({"b": Alias("a", at(1))})
    assert book.apply(Merge("a", ("b",), at(5))) == {}
    assert book.changed() == {}
    assert book.rows() == {"b": Alias("a", at(1))}


def test_an_alias_keeps_the_time_it_was_first_merged() -> None:
    book = AliasBook({"b": Alias("a", at(5))})
    book.apply(Merge("a", ("b",), at(1)))
    assert book.rows() == {"b": Alias("a", at(1))}


def test_a_merge_naming_an_alias_as_survivor_goes_to_the_final_survivor() -> None:
    book = AliasBook({"a": Alias("c", at(2))})
    assert book.apply(Merge("a", ("d",), at(3))) == {"d": "c"}
    assert book.canonical("d") == "c"


def test_contradicting_merges_still_leave_one_root() -> None:
    book = AliasBook()
    book.apply(Merge("a", ("b",), at(1)))
    book.apply(Merge("b", ("a",), at(2)))
    assert {book.canonical("a"), book.canonical("b")} == {"a"}


def test_merge_of_reads_lead_merged_and_lead_scored() -> None:
    merged = LeadMerged(survivor="a", absorbed=["b"], identifiers=["a", "p"], merged_at=at(1))
    assert merge_of(merged) == Merge("a", ("b", "p"), at(1))
    assert new_event("lead.merged", merged, source="/t", time=at(1)).subject == "a"
    scored = LeadScored(
        lead_key="a",
        model_version="v1",
        score=1,
        fit=1,
        engagement=0,
        tier="nurture",
        qualified=False,
        newly_qualified=False,
        reasons=[],
        scored_at=at(2),
        received_at=at(2),
        source="web",
        lead=Lead(),
        identifiers=["a", "p"],
        merged_from=["b"],
    )
    assert merge_of(scored) == Merge("a", ("b", "p"), at(2))
    alone = scored.model_copy(update={"identifiers": ["a"], "merged_from": []})
    assert merge_of(alone) is None
    outcome = LeadActivity(lead_key="a", activity="contacted", occurred_at=at(3), source="crm")
    assert merge_of(outcome) is None


def test_outcome_keys_are_the_intakes_keys_best_first() -> None:
    email, phone = "ana@northwind.example", "+16135550101"
    assert outcome_keys(KEYS, email=email, phone=phone) == [
        lead_key_for(email),
        lead_key_for(phone),
    ]
    assert outcome_keys(KEYS, "lk_000000000000000000000001", phone=phone) == [
        "lk_000000000000000000000001",
        lead_key_for(phone),
    ]
    assert outcome_keys(KEYS, lead_key_for(email), email=email) == [lead_key_for(email)]
    assert outcome_keys(KEYS) == []


def test_during_a_key_rotation_an_outcome_finds_a_person_known_under_the_previous_secret() -> None:
    email, phone = "ana@northwind.example", "+16135550101"
    old, new = LeadKeys(OLD_SECRET), LeadKeys(NEW_SECRET)
    rotating = LeadKeys(NEW_SECRET, [OLD_SECRET])

    keys = outcome_keys(rotating, email=email, phone=phone)

    assert keys == [new.key(email), old.key(email), new.key(phone), old.key(phone)]
    # Ana's lead came in before the rotation: her window is open under her old key.
    assert person_of(keys, {}, lambda key: key == old.key(email)) == old.key(email)
    # Without the previous secret, the outcome names nobody anyone knows.
    assert old.key(email) not in outcome_keys(new, email=email, phone=phone)


def test_person_of_prefers_a_known_person_then_the_first_key() -> None:
    canonical = {"e": "e", "p": "s"}
    assert person_of(["e", "p"], canonical, {"s"}.__contains__) == "s"
    assert person_of(["e", "p"], canonical, {"e", "s"}.__contains__) == "e"
    assert person_of(["e", "p"], canonical, lambda key: False) == "e"
    assert person_of(["p"], {}, lambda key: False) == "p"


# Order independence, on merges as scoring publishes them.


@dataclass
class Scoring:
    """A small model of scoring's identity resolution: profiles, identifiers, merges."""

    owner: dict[str, str] = field(default_factory=dict)  # identifier -> profile
    merged_into: dict[str, str] = field(default_factory=dict)
    born: dict[str, int] = field(default_factory=dict)
    published: list[Merge] = field(default_factory=list)

    def person(self, key: str) -> str:
        return self.live(self.owner.get(key, key))

    def live(self, key: str) -> str:
        while key in self.merged_into:
            key = self.merged_into[key]
        return key

    def event(self, identifiers: list[str], step: int, cumulative: bool) -> None:
        reached = sorted({self.live(self.owner[k]) for k in identifiers if k in self.owner})
        if not reached:
            root, absorbed = identifiers[0], []
            self.born[root] = step
        else:
            root = min(reached, key=lambda k: (self.born[k], k))
            absorbed = [k for k in reached if k != root]
        for key in absorbed:
            self.merged_into[key] = root
        new_ids = [k for k in identifiers if k not in self.owner]
        for key in identifiers:
            self.owner[key] = root
        members = {k for k in self.merged_into if self.live(k) == root}
        ids = {k for k, o in self.owner.items() if self.live(o) == root}
        if cumulative:
            aliases = (members | ids) - {root}
        else:
            aliases = (set(absorbed) | set(new_ids)) - {root}
        if aliases:
            self.published.append(Merge(root, tuple(sorted(aliases)), at(step)))


events = st.lists(
    st.lists(st.sampled_from([f"k{i}" for i in range(8)]), min_size=1, max_size=3, unique=True),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(events, st.booleans(), st.randoms(use_true_random=False))
def test_any_order_of_scorings_merges_gives_the_same_rows(
    history: list[list[str]], cumulative: bool, rng: random.Random
) -> None:
    scoring = Scoring()
    for step, identifiers in enumerate(history):
        scoring.event(identifiers, step, cumulative)
    in_order = AliasBook()
    for merge in scoring.published:
        in_order.apply(merge)
    shuffled = list(scoring.published)
    rng.shuffle(shuffled)
    other = AliasBook()
    for merge in shuffled:
        other.apply(merge)
    assert other.rows() == in_order.rows()
    keys = {k for m in scoring.published for k in m.named()}
    assert {k: other.canonical(k) for k in keys} == {k: scoring.person(k) for k in keys}
    assert all(row.survivor not in other.rows() for row in other.rows().values())


@pytest.mark.parametrize("split", [1, 2, 3])
def test_moves_tell_where_each_persons_state_goes_in_any_order(split: int) -> None:
    merges = [
        Merge("a", ("b",), at(1)),
        Merge("c", ("d",), at(2)),
        Merge("a", ("b", "c", "d"), at(3)),
    ]
    order = merges[split:] + merges[:split]
    book, moved = AliasBook(), {}
    for merge in order:
        for key, root in book.apply(merge).items():
            moved[key] = root
        moved = {key: book.canonical(root) for key, root in moved.items()}
    assert moved == {"b": "a", "c": "a", "d": "a"}

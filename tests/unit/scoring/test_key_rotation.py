"""A new key secret: people known before keep their key and gain the new one; new people get
keys under the new secret only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from leadflow.events import Envelope, LeadMerged, LeadScored
from leadflow.keys import LeadKeys, unsalted_key
from leadflow_intake.canonical import LeadBody, to_event
from leadflow_scoring import service
from leadflow_scoring.memory import InMemoryProfileStore, complete
from tests.unit.scoring.test_service import MODEL, NOW, T0

OLD_SECRET = "the-secret-before-the-rotation-0123456789"
NEW_SECRET = "the-secret-after-the-rotation-9876543210"
OLD, NEW = LeadKeys(OLD_SECRET), LeadKeys(NEW_SECRET)
ROTATING = LeadKeys(NEW_SECRET, [OLD_SECRET])
ANA, ANA_PHONE, CY = "ana@northwind.example", "+16135550101", "cy@contoso.example"


def event(keys: LeadKeys, lead: dict[str, Any], hours: int, delivery: str) -> Envelope:
    """The `lead.received` an intake deriving `keys` publishes for a webhook."""
    body = LeadBody.model_validate({"event": "lead", "activity": "webinar", "lead": lead})
    at = T0 + timedelta(hours=hours)
    return to_event(body, keys=keys, source="web", delivery_id=delivery, now=at)


def emit(store: InMemoryProfileStore, keys: LeadKeys, batch: list[Envelope]) -> list[Envelope]:
    """Score a batch as a scoring service deriving `keys` does; every event to publish."""
    return complete(service.score_batch(store, batch, MODEL, keys, NOW))


def scored(emitted: list[Envelope]) -> LeadScored:
    [score] = service.scores(emitted)
    return score


def test_a_known_person_keeps_their_key_and_gains_the_new_one() -> None:
    store = InMemoryProfileStore()
    before = scored(emit(store, OLD, [event(OLD, {"email": ANA, "phone": ANA_PHONE}, 0, "d1")]))

    arriving = event(ROTATING, {"email": ANA}, 1, "d2")
    emitted = emit(store, ROTATING, [arriving])
    after = scored(emitted)

    assert before.lead_key == OLD.key(ANA)
    assert arriving.subject == NEW.key(ANA)
    assert after.lead_key == OLD.key(ANA)
    assert after.touches == 2
    assert set(after.identifiers) == {OLD.key(ANA), OLD.key(ANA_PHONE), NEW.key(ANA)}
    # Every consumer learns that the new key means her: her state stays under her old key.
    assert [e.type for e in emitted] == ["lead.merged", "lead.scored"]
    merged = emitted[0].data
    assert isinstance(merged, LeadMerged)
    assert (merged.survivor, merged.absorbed) == (OLD.key(ANA), [])
    assert NEW.key(ANA) in merged.identifiers


def test_a_person_known_only_by_phone_is_found_by_the_phone_under_the_previous_secret() -> None:
    store = InMemoryProfileStore()
    emit(store, OLD, [event(OLD, {"phone": ANA_PHONE}, 0, "d1")])

    after = scored(emit(store, ROTATING, [event(ROTATING, {"phone": ANA_PHONE}, 1, "d2")]))

    assert after.lead_key == OLD.key(ANA_PHONE)
    assert after.touches == 2


def test_a_new_person_during_a_rotation_gets_the_new_key() -> None:
    store = InMemoryProfileStore()
    emit(store, OLD, [event(OLD, {"email": ANA}, 0, "d1")])

    cy = scored(emit(store, ROTATING, [event(ROTATING, {"email": CY}, 1, "d2")]))

    assert cy.lead_key == NEW.key(CY)
    assert cy.touches == 1


def test_once_the_rotation_is_over_a_person_seen_during_it_is_still_found() -> None:
    store = InMemoryProfileStore()
    emit(store, OLD, [event(OLD, {"email": ANA}, 0, "d1")])
    emit(store, ROTATING, [event(ROTATING, {"email": ANA}, 1, "d2")])

    later = scored(emit(store, NEW, [event(NEW, {"email": ANA}, 2, "d3")]))

    assert later.lead_key == OLD.key(ANA)
    assert later.touches == 3


def test_a_new_secret_without_the_previous_one_splits_people() -> None:
    # Why a rotation names the previous secret: without it, a known person is a stranger.
    store = InMemoryProfileStore()
    emit(store, OLD, [event(OLD, {"email": ANA}, 0, "d1")])

    after = scored(emit(store, NEW, [event(NEW, {"email": ANA}, 1, "d2")]))

    assert after.lead_key == NEW.key(ANA)
    assert after.touches == 1


def legacy_event(email: str, hours: int, delivery: str) -> Envelope:
    """The `lead.received` a release before key secrets published: keyed by plain SHA-256."""
    envelope = event(OLD, {"email": email}, hours, delivery)
    data = envelope.data.model_copy(update={"lead_key": unsalted_key(email)})
    return envelope.model_copy(update={"subject": unsalted_key(email), "data": data})


def test_an_upgrade_from_unsalted_keys_finds_the_people_keyed_before_key_secrets() -> None:
    store = InMemoryProfileStore()
    known = scored(emit(store, OLD, [legacy_event(ANA, 0, "d1")]))
    upgrading = LeadKeys(NEW_SECRET, previous_unsalted=True)

    after = scored(emit(store, upgrading, [event(upgrading, {"email": ANA}, 1, "d2")]))

    assert known.lead_key == unsalted_key(ANA)
    assert after.lead_key == unsalted_key(ANA)
    assert NEW.key(ANA) in after.identifiers
    assert after.touches == 2

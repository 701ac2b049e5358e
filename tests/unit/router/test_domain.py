"""Routing decisions: account owner, rule order, named reps, teams, overflow, fallback, queueing."""

from __future__ import annotations

from datetime import UTC, datetime

from leadflow.events import Company, Lead
from leadflow_router.availability import MISSED, RepLoad
from leadflow_router.domain import ACCOUNT_RULE, FALLBACK_RULE, Decision, in_play, route
from tests.fixtures.routing import NOW, make_config, scored, state

CONFIG = make_config()
BIG = Lead(company=Company(size=2000))
SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OFFICE_HOURS = {"working_hours": [{"days": ["mon-fri"], "start": "09:00", "end": "18:00"}]}


def test_named_rep_outside_any_team_is_assigned_within_the_fallback_team() -> None:
    decision = route(CONFIG, scored(Lead(country="AT")), NOW, state(CONFIG))

    assert decision == Decision(
        outcome="assigned",
        rule="dach-to-felix",
        team="smb",
        rep_id="felix",
        candidates=["felix"],
        reason="rule 'dach-to-felix' names Felix Wagner",
        method="named_rep",
        trace=["rule 'dach-to-felix' matched and names Felix Wagner"],
    )


def test_named_rep_is_assigned_within_their_team() -> None:
    decision = route(CONFIG, scored(Lead(language="de")), NOW, state(CONFIG))

    assert (decision.rule, decision.team, decision.rep_id) == ("german-to-dev", "smb", "dev")
    assert decision.by_rotation is False


def test_unavailable_named_rep_queues_the_lead_with_the_reason() -> None:
    config = make_config(reps={"felix": {"active": False}})

    decision = route(config, scored(Lead(country="CH")), NOW, state(config))

    assert decision.outcome == "queued"
    assert (decision.rule, decision.team, decision.rep_id) == ("dach-to-felix", "smb", None)
    assert decision.skipped == {"felix": "inactive"}
    assert decision.reason == (
        "rule 'dach-to-felix' names Felix Wagner, who cannot take it (inactive); "
        "queued for team 'smb'"
    )


def test_unavailable_named_rep_can_overflow_to_the_next_rule() -> None:
    config = make_config(
        reps={"felix": OFFICE_HOURS},
        rules=[
            {
                "name": "dach-to-felix",
                "rep": "felix",
                "when": [{"field": "lead.country", "equals": "DE"}],
                "when_unavailable": "next_rule",
            },
            {"name": "everyone", "team": "enterprise"},
        ],
    )

    decision = route(config, scored(Lead(country="DE")), SATURDAY, state(config))

    assert (decision.outcome, decision.rule, decision.rep_id) == ("assigned", "everyone", "ana")
    assert decision.skipped == {"felix": "off shift (local time Sat 12:00 UTC)"}
    assert decision.trace[0].startswith("rule 'dach-to-felix' matched and names Felix Wagner: off")


def test_rule_on_the_source() -> None:
    decision = route(CONFIG, scored(source="partner"), NOW, state(CONFIG))

    assert (decision.rule, decision.rep_id) == ("partners-to-gus", "gus")


def test_earlier_rule_wins() -> None:
    big_german = Lead(country="DE", language="de", company=Company(size=5000))

    decision = route(CONFIG, scored(big_german), NOW, state(CONFIG))

    assert (decision.rule, decision.team, decision.rep_id) == (
        "enterprise-size",
        "enterprise",
        "ana",
    )


def test_team_rule_uses_round_robin_from_the_last_turn() -> None:
    names = {"ana": "Ana Silva", "ben": "Ben Carter", "chloe": "Chloé Martin"}
    turns = [
        (None, ["ana", "ben", "chloe"]),
        ("ana", ["ben", "chloe", "ana"]),
        ("ben", ["chloe", "ana", "ben"]),
        ("chloe", ["ana", "ben", "chloe"]),
    ]
    for last, order in turns:
        decision = route(
            CONFIG, scored(BIG), NOW, state(CONFIG, last_turn={"enterprise": last, "smb": "dev"})
        )
        assert decision == Decision(
            outcome="assigned",
            rule="enterprise-size",
            team="enterprise",
            rep_id=order[0],
            candidates=["ana", "ben", "chloe"],
            reason="rule 'enterprise-size' sends it to team 'enterprise'; "
            f"round robin gives {names[order[0]]} the next turn",
            method="round_robin",
            trace=["rule 'enterprise-size' sends it to team 'enterprise'; 3 of 3 reps can take it"],
            details={"rotation": order},
        )
        assert decision.by_rotation


def test_round_robin_skips_reps_off_shift_capped_or_out_of_office() -> None:
    config = make_config(
        reps={
            "ana": {"max_per_day": 2},
            "ben": {"out_of_office": [{"start": "2026-11-26", "end": "2026-11-27"}]},
            "chloe": {"timezone": "Asia/Tokyo", **OFFICE_HOURS},
        },
    )
    loads = {"ana": RepLoad(today=2)}

    decision = route(config, scored(BIG), NOW, state(config, loads=loads))

    # 14:30 UTC is 23:30 in Tokyo; Ana is capped; Ben is away: nobody can take it.
    assert decision.outcome == "queued"
    assert decision.team == "enterprise"
    assert decision.skipped == {
        "ana": "daily cap reached (2/2 today)",
        "ben": "out of office until 2026-11-28 00:00 UTC",
        "chloe": "off shift (local time Thu 23:30 Asia/Tokyo)",
    }
    assert decision.reason == (
        "rule 'enterprise-size' sends it to team 'enterprise', where nobody can take it now; "
        "queued for the team"
    )


def test_team_skills_filter_candidates() -> None:
    config = make_config(
        teams={"enterprise": {"skills": ["language"]}},
        reps={"ana": {"languages": ["en"]}, "ben": {"languages": ["en", "pt"]}},
    )

    decision = route(
        config, scored(Lead(company=Company(size=2000), language="pt-PT")), NOW, state(config)
    )

    assert decision.rep_id == "ben"
    assert decision.skipped == {"ana": "does not speak 'pt'", "chloe": "does not speak 'pt'"}


def test_excluded_reps_are_skipped_as_having_missed_the_lead() -> None:
    decision = route(CONFIG, scored(BIG), NOW, state(CONFIG, excluded=frozenset({"ana", "ben"})))

    assert decision.rep_id == "chloe"
    assert decision.skipped == {"ana": MISSED, "ben": MISSED}


def test_fallback_team_when_no_rule_matches() -> None:
    decision = route(CONFIG, scored(), NOW, state(CONFIG, last_turn={"smb": "dev"}))

    assert (decision.outcome, decision.rule, decision.team, decision.rep_id) == (
        "assigned",
        FALLBACK_RULE,
        "smb",
        "emma",
    )
    assert decision.reason == (
        "no rule matched; the fallback sends it to team 'smb'; "
        "round robin gives Emma Jones the next turn"
    )


def test_queued_in_the_fallback_team_when_nobody_there_can_take_it() -> None:
    config = make_config(reps={"dev": {"active": False}, "emma": {"active": False}})

    decision = route(config, scored(), NOW, state(config))

    assert (decision.outcome, decision.rule, decision.team) == ("queued", FALLBACK_RULE, "smb")
    assert decision.candidates == ["dev", "emma"]
    assert decision.skipped == {"dev": "inactive", "emma": "inactive"}


def test_rotation_state_of_another_team_is_ignored() -> None:
    decision = route(CONFIG, scored(), NOW, state(CONFIG, last_turn={"enterprise": "dev"}))

    assert decision.rep_id == "dev"


def test_after_hours_rule_sends_leads_elsewhere_at_night() -> None:
    config = make_config(
        rules=[
            {
                "name": "after-hours",
                "team": "smb",
                "outside": [
                    {
                        "timezone": "Europe/Lisbon",
                        "days": ["mon-fri"],
                        "start": "09:00",
                        "end": "18:00",
                    }
                ],
            },
            {"name": "day", "team": "enterprise"},
        ]
    )

    assert route(config, scored(), NOW, state(config)).rule == "day"
    assert route(config, scored(), SATURDAY, state(config)).rule == "after-hours"


ACCOUNTS = [
    {"name": "Acme", "domains": ["acme.com"], "owner": "chloe", "priority": True},
    {"name": "Globex", "domains": ["globex.io"], "owner": "felix"},
]


def test_account_lead_goes_to_the_owner_before_any_rule() -> None:
    config = make_config(accounts=ACCOUNTS)

    decision = route(
        config, scored(Lead(email="jo@acme.com", company=Company(size=5000))), NOW, state(config)
    )

    assert decision == Decision(
        outcome="assigned",
        rule=ACCOUNT_RULE,
        team="enterprise",
        rep_id="chloe",
        candidates=["chloe"],
        reason="priority account Acme (domain acme.com) is owned by Chloé Martin",
        method="account_owner",
        account="Acme",
        priority_account=True,
        trace=["priority account Acme matched on domain acme.com"],
    )
    assert not decision.by_rotation


def test_owner_outside_any_team_is_assigned_within_the_fallback_team() -> None:
    config = make_config(accounts=ACCOUNTS)

    decision = route(config, scored(Lead(email="x@globex.io")), NOW, state(config))

    assert (decision.rep_id, decision.team, decision.priority_account) == ("felix", "smb", False)


def test_unavailable_owner_lets_the_rules_decide_and_says_so() -> None:
    config = make_config(accounts=ACCOUNTS, reps={"chloe": OFFICE_HOURS})

    decision = route(
        config,
        scored(Lead(email="jo@acme.com", company=Company(size=5000))),
        SATURDAY,
        state(config),
    )

    assert (decision.rule, decision.rep_id) == ("enterprise-size", "ana")
    assert decision.account == "Acme"
    assert decision.priority_account is True
    assert decision.skipped == {"chloe": "off shift (local time Sat 12:00 UTC)"}
    assert decision.trace[0] == (
        "priority account Acme (domain acme.com) is owned by Chloé Martin, who cannot take it: "
        "off shift (local time Sat 12:00 UTC); trying the rules"
    )


def test_owner_who_missed_the_lead_is_not_picked_again() -> None:
    config = make_config(accounts=ACCOUNTS)

    decision = route(
        config,
        scored(Lead(email="jo@acme.com", company=Company(size=5000))),
        NOW,
        state(config, excluded=frozenset({"chloe"})),
    )

    assert decision.rep_id == "ana"
    assert decision.skipped["chloe"] == MISSED


def test_in_play_lists_every_rep_and_team_the_decision_may_read() -> None:
    config = make_config(accounts=ACCOUNTS)

    play = in_play(
        config, scored(Lead(email="x@globex.io", country="DE", company=Company(size=5000))), NOW
    )

    assert play.teams == {"enterprise", "smb"}
    assert play.reps == {"ana", "ben", "chloe", "dev", "emma", "felix"}
    assert in_play(config, scored(source="partner"), NOW).reps == {"gus", "dev", "emma"}

"""What routing works out once (rules, teams, reps' calendars) never outlives a change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.config import Team
from leadflow.events import Lead
from leadflow_router.availability import RepLoad, off_duty
from leadflow_router.domain import RoutingState, in_play, route
from leadflow_router.roster import effective
from tests.fixtures.routing import NOW, make_config, scored, state

AUSTRIA = scored(Lead(country="AT"))  # the default rules name felix for DACH leads


def test_a_cap_raised_at_run_time_is_seen_by_the_next_decision() -> None:
    config = make_config(reps={"felix": {"max_per_day": 3}})
    reps = {rep.id: rep for rep in config.reps}
    loads = {"felix": RepLoad(today=3)}

    capped = route(config, AUSTRIA, NOW, RoutingState(reps, loads))
    reps["felix"] = effective(reps["felix"], {"max_per_day": 10}, [])
    raised = route(config, AUSTRIA, NOW, RoutingState(reps, loads))
    reps["felix"] = effective(config.rep("felix"), {"max_per_day": 2}, [])
    lowered = route(config, AUSTRIA, NOW, RoutingState(reps, {"felix": RepLoad(today=2)}))

    assert (capped.outcome, capped.skipped) == (
        "queued",
        {"felix": "daily cap reached (3/3 today)"},
    )
    assert (raised.outcome, raised.rep_id, raised.skipped) == ("assigned", "felix", {})
    assert lowered.skipped == {"felix": "daily cap reached (2/2 today)"}


def test_an_absence_or_new_hours_at_run_time_are_seen_by_the_next_decision() -> None:
    config = make_config()
    reps = {rep.id: rep for rep in config.reps}
    before = route(config, AUSTRIA, NOW, RoutingState(reps))

    reps["felix"] = effective(
        config.rep("felix"), {}, [(NOW - timedelta(hours=1), NOW + timedelta(hours=1), "dentist")]
    )
    away = route(config, AUSTRIA, NOW, RoutingState(reps))
    reps["felix"] = effective(
        config.rep("felix"),
        {"working_hours": [{"days": ["sat"], "start": "09:00", "end": "10:00"}]},
        [],
    )
    saturdays_only = route(config, AUSTRIA, NOW, RoutingState(reps))
    reps["felix"] = config.rep("felix")
    back = route(config, AUSTRIA, NOW, RoutingState(reps))

    assert before.rep_id == back.rep_id == "felix"
    assert away.skipped == {"felix": "out of office until 2026-11-26 15:30 UTC (dentist)"}
    assert saturdays_only.skipped == {"felix": "off shift (local time Thu 14:30 UTC)"}


def test_a_changed_configuration_routes_by_its_own_rules_and_teams() -> None:
    to_felix = make_config(rules=[{"name": "all-to-felix", "rep": "felix", "when": []}])
    to_gus = make_config(rules=[{"name": "all-to-gus", "rep": "gus", "when": []}])
    lead = scored()

    assert route(to_felix, lead, NOW, state(to_felix)).rep_id == "felix"
    assert route(to_gus, lead, NOW, state(to_gus)).rep_id == "gus"
    assert route(to_felix, lead, NOW, state(to_felix)).rep_id == "felix"

    # Same rules, other teams: felix joins enterprise, so his queue is enterprise's now.
    teams = [
        Team.model_validate(t.model_dump() | {"reps": [*t.reps, "felix"]})
        if t.name == "enterprise"
        else t
        for t in to_felix.teams
    ]
    regrouped = to_felix.model_copy(update={"teams": teams})
    unavailable = {"felix": RepLoad(open=1)}
    felix_capped = make_config(reps={"felix": {"max_open": 1}})
    capped_reps = {r.id: r for r in felix_capped.reps}

    assert route(to_felix, lead, NOW, RoutingState(capped_reps, unavailable)).team == "smb"
    assert route(regrouped, lead, NOW, RoutingState(capped_reps, unavailable)).team == "enterprise"
    assert in_play(regrouped, lead, NOW).teams == {"smb", "enterprise"}
    assert in_play(to_felix, lead, NOW).teams == {"smb"}


def test_a_reps_calendar_is_read_for_each_moment_asked() -> None:
    [rep] = make_config(
        reps={
            "ana": {
                "country": "PT",
                "timezone": "Europe/Lisbon",
                "working_hours": [{"days": ["mon-fri"], "start": "09:00", "end": "18:00"}],
            }
        }
    ).reps[:1]
    christmas_eve = datetime(2026, 12, 24, 12, 0, tzinfo=UTC)

    assert off_duty(rep, christmas_eve) is None
    assert off_duty(rep, christmas_eve + timedelta(days=1)) == (
        "public holiday in PT (Christmas Day)"
    )
    assert off_duty(rep, christmas_eve + timedelta(hours=7)) == (
        "off shift (local time Thu 19:00 Europe/Lisbon)"
    )
    assert off_duty(rep, christmas_eve + timedelta(days=2)) == (
        "off shift (local time Sat 12:00 Europe/Lisbon)"
    )
    assert off_duty(rep, christmas_eve - timedelta(days=1)) is None

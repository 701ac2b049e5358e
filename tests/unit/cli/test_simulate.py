"""`leadflow simulate` routes as the router does: caps, loads and turns carry across leads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from leadflow.config import LeadflowConfig, load_config
from leadflow.events import LeadReceived
from leadflow_cli import simulate as sim
from tests.fixtures.keys import KEYS

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example.yaml"
# A Thursday morning: the enterprise desk has no working hours (always on shift).
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ANA = "{id: ana, name: Ana Silva, email: ana@example.com, timezone: Europe/Lisbon,\n"
ANA_CAPS = "     max_per_day: 40, max_open: 25, languages: [en, pt, es]}"


def config(tmp_path: Path, name: str, replacements: dict[str, str]) -> LeadflowConfig:
    """The example configuration with some of its text replaced."""
    text = EXAMPLE.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load_config(path)


def history(tmp_path: Path, times: list[datetime]) -> list[LeadReceived]:
    """Demo requests from VPs of large companies (each routed to enterprise), one per time."""
    lines = []
    for i, at in enumerate(times):
        company = {"name": f"Big {i}", "domain": f"big{i}.example", "size": 1500}
        lead = {"email": f"vp{i}@big{i}.example", "job_title": "VP Sales", "company": company}
        body = {"event": "lead", "activity": "demo_request", "lead": lead | {"country": "US"}}
        lines.append(orjson.dumps(body | {"received_at": at.isoformat()}).decode())
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return sim.read_history(path, KEYS)


def reps(outcomes: dict[str, sim.Outcome], leads: list[LeadReceived]) -> list[str | None]:
    """Who got each lead, in history order."""
    return [outcomes[lead.lead_key].rep for lead in leads]


def test_a_cap_on_open_leads_changes_who_the_simulation_assigns(tmp_path: Path) -> None:
    leads = history(tmp_path, [T0 + timedelta(minutes=i) for i in range(4)])
    current = config(tmp_path, "current", {})
    capped = config(
        tmp_path, "capped", {ANA + ANA_CAPS: ANA + ANA_CAPS.replace("max_open: 25", "max_open: 1")}
    )

    before, after = sim.replay(current, KEYS, leads), sim.replay(capped, KEYS, leads)

    assert reps(before, leads) == ["ana", "ben", "chloe", "ana"]  # plain rotation
    assert reps(after, leads) == ["ana", "ben", "chloe", "ben"]  # ana holds her one open lead
    report = sim.compare(before, after, len(leads))
    [change] = report.changed
    assert change["lead_key"] == leads[3].lead_key
    assert (change["current"]["rep"], change["candidate"]["rep"]) == ("ana", "ben")
    assert change["candidate"]["rule"] == "enterprise-size"


def test_a_daily_cap_counts_again_on_the_reps_next_day(tmp_path: Path) -> None:
    times = [T0 + timedelta(minutes=i) for i in range(4)]
    times += [T0 + timedelta(days=1, minutes=i) for i in range(2)]
    leads = history(tmp_path, times)
    capped = config(
        tmp_path,
        "daily",
        {ANA + ANA_CAPS: ANA + ANA_CAPS.replace("max_per_day: 40", "max_per_day: 1")},
    )

    outcomes = sim.replay(capped, KEYS, leads)

    # Thursday: ana had her one lead, so her second turn goes to ben; Friday she takes one.
    assert reps(outcomes, leads) == ["ana", "ben", "chloe", "ben", "chloe", "ana"]


def test_a_lead_nobody_can_take_is_queued_in_the_simulation(tmp_path: Path) -> None:
    leads = history(tmp_path, [T0 + timedelta(minutes=i) for i in range(4)])
    full = config(tmp_path, "full", {"max_open: 25": "max_open: 1"})

    outcomes = sim.replay(full, KEYS, leads)

    assert reps(outcomes, leads) == ["ana", "ben", "chloe", None]
    last = outcomes[leads[3].lead_key]
    assert (last.team, last.rule) == ("enterprise", "enterprise-size")


def test_two_profiles_routed_before_they_merge_end_as_one_person(tmp_path: Path) -> None:
    email, phone = "vp@big.example", "+14155550123"
    company = {"name": "Big", "domain": "big.example", "size": 1500}
    lead = {"job_title": "VP Sales", "company": company, "country": "US"}
    bodies = [
        {"event": "lead", "activity": "demo_request", "lead": lead | {"email": email}},
        {"event": "lead", "activity": "demo_request", "lead": lead | {"phone": phone}},
        {"event": "lead", "activity": "webinar", "lead": lead | {"email": email, "phone": phone}},
    ]
    path = tmp_path / "history.jsonl"
    path.write_text(
        "\n".join(
            orjson.dumps(b | {"received_at": (T0 + timedelta(minutes=i)).isoformat()}).decode()
            for i, b in enumerate(bodies)
        )
        + "\n"
    )
    leads = sim.read_history(path, KEYS)

    outcomes = sim.replay(config(tmp_path, "current", {}), KEYS, leads)

    # One person, under the email's key, with the assignment made first (the phone's,
    # made a minute later to the next rep in turn, closed as merged).
    assert list(outcomes) == [leads[0].lead_key]
    assert outcomes[leads[0].lead_key].rep == "ana"

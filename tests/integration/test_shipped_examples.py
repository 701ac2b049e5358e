"""The shipped configuration through its own sources: the four services as processes on
config/example.yaml, every file of examples/ posted through the source it represents,
signed by the sender's own library (standardwebhooks, twilio's RequestValidator, hubspot's
Signature; CallRail's documented scheme), scored into the tier and grade the README gives
and routed (or not) as it says, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from leadflow.config import load_config
from leadflow.events import Envelope, LeadScored
from leadflow.schedules import Shift
from leadflow.settings import DEV_SECRETS
from leadflow_router.availability import off_duty
from tests.fixtures import senders
from tests.fixtures.auth import AUTH
from tests.fixtures.broker import TopicReader
from tests.fixtures.keys import lead_key_for
from tests.fixtures.stack import Stack, stack_per_database
from tests.integration.test_end_to_end import drain, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CONFIG_PATH = ROOT / "config" / "example.yaml"
CONFIG = load_config(CONFIG_PATH)
ADMIN = "shipped-examples-admin-token"
TOPICS = ["leads.scored", "leads.scored.bulk", "leads.assigned"]
# The smb reps work weekdays 09:00-17:30: the tour gives them every hour of every day, as
# the README's tour does, so their leads are assigned whenever the test runs (public
# holidays still apply: on a day all three are off, the lead is queued for the team).
ALWAYS: dict[str, Any] = {"days": ["mon-sun"], "start": "00:00", "end": "00:00"}


@dataclass(frozen=True)
class Route:
    """Where the router sends a lead: by which rule, to which team, to whom (None: whoever
    of the team can take it now)."""

    rule: str
    team: str
    rep: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class Example:
    """One example file, the source its sender posts it through, and what becomes of it."""

    file: str
    source: str
    activity: str
    tier: str
    grade: str
    route: Route | None


# The README's tour, in its order: Omar's call merges into his pricing-page visit.
TOUR = [
    Example(
        "lead.json",
        "web",
        "demo_request",
        "mql",
        "A2",
        Route("enterprise-size", "enterprise", "ana"),
    ),
    Example(
        "watch.json",
        "web",
        "pricing_page",
        "watch",
        "B3",
        Route("watch-list", "inside-sales", "iris"),
    ),
    Example("nurture.json", "web", "content_download", "nurture", "D3", None),
    Example("disqualified.json", "web", "demo_request", "disqualified", "A2", None),
    Example(
        "purchased.json",
        "import",
        "list_import",
        "watch",
        "A4",
        Route("watch-list", "inside-sales", "iris"),
    ),
    Example("call.json", "ivr", "ivr_call", "mql", "B2", Route("everyone-else", "smb")),
    Example(
        "account-lead.json",
        "web",
        "demo_request",
        "mql",
        "A2",
        Route("account-owner", "enterprise", "chloe", "Globex"),
    ),
    Example("small-lead.json", "web", "demo_request", "mql", "B2", Route("everyone-else", "smb")),
    Example(
        "callrail-call.json",
        "callrail",
        "phone_call",
        "watch",
        "D2",
        Route("watch-list", "inside-sales", "iris"),
    ),
    Example(
        "hubspot-contact.json",
        "hubspot",
        "form_fill",
        "mql",
        "A4",
        Route("account-owner", "enterprise", "ben", "Initech"),
    ),
]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    yield from stack_per_database(
        request,
        tmp_path_factory,
        "shipped",
        config=CONFIG_PATH,
        env={"LEADFLOW_ADMIN_TOKEN": ADMIN},
    )


def post(stack: Stack, source: str, body: bytes, query: str = "") -> httpx.Response:
    """POST `body` (an example's bytes) to `source` as its sender does, signed by the
    sender's own library; a twilio body is the Studio request's fields as a JSON object."""
    url = f"{stack.services['intake'].url}/v1/webhooks/{source}" + (f"?{query}" if query else "")
    secret = DEV_SECRETS[source]
    kind = CONFIG.sources[source].kind
    if kind == "standard":
        signed = senders.standard(body, secret=secret)
    elif kind == "twilio":
        fields = {name: str(value) for name, value in orjson.loads(body).items()}
        signed = senders.twilio(fields, url, token=secret)
    elif kind == "hubspot":
        signed = senders.hubspot(body, url, secret=secret)
    elif kind == "callrail":
        signed = senders.callrail(body, key=secret)
    else:
        raise AssertionError(f"no example posts through a {kind} source")
    return httpx.post(url, content=signed.body, headers=signed.headers, timeout=10)


def changed(file: str, **fields: Any) -> bytes:
    """An example's body with some top-level fields changed (None removes one)."""
    body = {**orjson.loads((EXAMPLES / file).read_bytes()), **fields}
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def scored_by(lead_key: str, activity: str) -> Any:
    """lead.scored events of the person `lead_key` identifies, for a touch of `activity`."""

    def matches(e: Envelope) -> bool:
        data = e.data
        return (
            isinstance(data, LeadScored)
            and lead_key in data.identifiers
            and data.last_touch is not None
            and data.activity == activity
        )

    return matches


def routed(lead_key: str) -> Any:
    return lambda e: e.subject == lead_key and e.type in ("lead.assigned", "lead.unassigned")


def can_take_now(rep_id: str) -> bool:
    """Whether a rep given every hour (ALWAYS) is on duty now: only a holiday stops them."""
    always = CONFIG.rep(rep_id).model_copy(update={"working_hours": [Shift(**ALWAYS)]})
    return off_duty(always, datetime.now(UTC)) is None


def routing(stack: Stack, lead_key: str) -> httpx.Response:
    return httpx.get(
        f"{stack.services['router'].url}/v1/leads/{lead_key}/routing", timeout=10, headers=AUTH
    )


def give_smb_every_hour(stack: Stack) -> None:
    for rep in CONFIG.team("smb").reps:
        response = httpx.patch(
            f"{stack.services['router'].url}/v1/admin/reps/{rep}",
            json={"working_hours": [ALWAYS]},
            headers={"authorization": f"Bearer {ADMIN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


def assert_routed(stack: Stack, example: Example, lead_key: str, route: Route) -> None:
    """The router's own account of its latest decision: rule, team, account and who got
    the lead."""
    why = routing(stack, lead_key)
    assert why.status_code == 200, (example.file, why.text)
    answer = why.json()
    decision = answer["decisions"][-1]
    assert (decision["rule"], decision["team"], decision["account"]) == (
        route.rule,
        route.team,
        route.account,
    ), (example.file, answer["summary"])
    if route.rep is not None:
        assert (answer["status"], answer["current"]["rep_id"]) == ("assigned", route.rep), (
            example.file,
            answer["summary"],
        )
        return
    free = {r for r in CONFIG.team(route.team).reps if can_take_now(r)}
    if free:
        assert answer["status"] == "assigned", (example.file, answer["summary"])
        assert answer["current"]["rep_id"] in free, (example.file, answer["summary"])
    else:
        assert answer["status"] == "queued", (example.file, answer["summary"])
        assert all("public holiday" in c["why"] for c in decision["candidates"]), answer


async def test_every_example_through_its_source_is_scored_and_routed_as_the_readme_says(
    stack: Stack,
) -> None:
    assert {e.file for e in TOUR} | {"history.jsonl", "candidate.yaml"} == {
        p.name for p in EXAMPLES.iterdir()
    }
    give_smb_every_hour(stack)
    people: dict[str, str] = {}
    # Routing events expected so far per person: a watch-listed lead that becomes an MQL
    # is routed twice.
    expected: dict[str, int] = {}
    async with TopicReader(stack.bootstrap, TOPICS) as reader:
        for example in TOUR:
            response = post(stack, example.source, (EXAMPLES / example.file).read_bytes())
            assert response.status_code == 202, (example.file, response.text)
            lead_key = response.json()["lead_key"]
            [scored] = await wait_for(reader, scored_by(lead_key, example.activity))
            data = scored.data
            assert isinstance(data, LeadScored)
            assert (data.tier, data.grade) == (example.tier, example.grade), (
                example.file,
                [(r.rule, r.points) for r in data.reasons],
            )
            assert data.model_version == CONFIG.scoring.version
            people[example.file] = data.lead_key
            if example.route is not None:
                expected[data.lead_key] = expected.get(data.lead_key, 0) + 1
                await wait_for(reader, routed(data.lead_key), count=expected[data.lead_key])
                assert_routed(stack, example, data.lead_key, example.route)
        # Whatever is in no routed tier (mql, watch) is never routed: nothing arrives for
        # it, the router has no decision for it.
        await drain(reader, 2.0)
    qualified = {people[e.file] for e in TOUR if e.route is not None}
    for example in TOUR:
        key = people[example.file]
        routing_events = [e for e in reader.events if routed(key)(e)]
        if example.route is None and key not in qualified:  # Omar's call qualified him later
            assert routing_events == [], example.file
            assert routing(stack, key).status_code == 404, example.file
        elif example.route is not None:
            assert len(routing_events) == expected[key], example.file

    # Omar's call merged into his pricing-page visit: one person, qualified by the IVR,
    # routed again by the MQL rules, his watch-list assignment closed as upgraded.
    omar = people["watch.json"]
    assert people["call.json"] == omar
    history = routing(stack, omar).json()["history"]
    assert [(a["team"], a["close_reason"]) for a in history] == [
        ("inside-sales", "upgraded"),
        ("smb", None),
    ]
    profile = httpx.get(
        f"{stack.services['scoring'].url}/v1/leads/{omar}/profile", headers=AUTH
    ).json()
    assert lead_key_for("+16135550188") in profile["identifiers"]


async def test_an_ivr_caller_short_of_bant_is_scored_but_not_routed(stack: Stack) -> None:
    # The README's Studio request from a new caller: under 10k, a researcher, later.
    body = changed(
        "call.json",
        CallSid="CA" + "7" * 32,
        From="+16135550111",
        budget="1",
        authority="3",
        need="2",
        timeframe="3",
    )
    response = post(stack, "ivr", body)
    assert response.status_code == 202, response.text
    lead_key = response.json()["lead_key"]

    async with TopicReader(stack.bootstrap, TOPICS) as reader:
        [scored] = await wait_for(reader, scored_by(lead_key, "ivr_call"))
        await drain(reader, 2.0)

    data = scored.data
    assert isinstance(data, LeadScored)
    assert (data.tier, data.grade, data.qualified_by) == ("nurture", "D3", None)
    assert data.lead.answers == {
        "budget": "under_10k",
        "authority": "researcher",
        "need": "exploring",
        "timeframe": "later",
    }
    assert [e for e in reader.events if routed(lead_key)(e)] == []
    assert routing(stack, lead_key).status_code == 404


async def test_a_caller_answering_question_by_question_qualifies_with_the_last_answer(
    stack: Stack,
) -> None:
    # The README's other recipe: a request after each Gather, `?question=<name>`.
    call = {"CallSid": "CA" + "8" * 32, "From": "+16135550122", "FromCountry": "CA"}
    lead_key = lead_key_for("+16135550122")
    answers = [("budget", "3"), ("authority", "1"), ("need", "1"), ("timeframe", "1")]
    async with TopicReader(stack.bootstrap, TOPICS) as reader:
        tiers = []
        for n, (question, digits) in enumerate(answers, start=1):
            body = orjson.dumps({**call, "Digits": digits})
            response = post(stack, "ivr", body, query=f"question={question}")
            assert response.status_code == 202, response.text
            assert response.json()["lead_key"] == lead_key
            found = await wait_for(reader, scored_by(lead_key, "ivr_call"), count=n)
            latest = [e.data for e in found if isinstance(e.data, LeadScored)]
            tiers.append(max(latest, key=lambda d: d.touches).tier)
        await wait_for(reader, routed(lead_key))

    assert tiers == ["nurture", "nurture", "nurture", "mql"]
    assert routing(stack, lead_key).json()["decisions"][0]["rule"] == "everyone-else"


async def test_a_missed_callrail_call_is_scored_as_missed(stack: Stack) -> None:
    body = changed(
        "callrail-call.json",
        resource_id="CAL" + "9" * 32,
        customer_phone_number="+15125550188",
        answered=False,
        first_call=False,
        duration="0",
    )
    response = post(stack, "callrail", body)
    assert response.status_code == 202, response.text
    lead_key = response.json()["lead_key"]

    async with TopicReader(stack.bootstrap, TOPICS) as reader:
        [scored] = await wait_for(reader, scored_by(lead_key, "phone_call"))

    data = scored.data
    assert isinstance(data, LeadScored)
    assert [(r.rule, r.points) for r in data.reasons if r.group == "engagement"] == [
        ("missed-call", 5)
    ]
    assert (data.tier, data.grade) == ("nurture", "D4")

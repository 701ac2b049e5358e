"""The product configuration (YAML): sources, scoring, teams, reps, routing and SLA policies.

Validation errors name the file and line of the offending value, so that
`leadflow config check` points straight at what to fix.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from leadflow.conditions import Condition

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = r"^[a-z][a-z0-9_-]*$"
_TIME_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_duration(value: Any) -> timedelta:
    """`"5m"`, `"90s"`, `"1.5h"`, `"2d"` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is not a duration; it must not be negative.")
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 5m, 1h or 2d.")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def parse_time_range(value: Any) -> tuple[time, time | None]:
    """`"09:00-17:30"` as (start, end); an end of `24:00` is returned as None (midnight)."""
    if isinstance(value, tuple):
        return value
    match = _TIME_RANGE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a time range; write e.g. 09:00-17:30.")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{value!r} is not a time range; hours go 00-24, minutes 00-59.")
    start, end = time(h1, m1), None if h2 == 24 else time(h2, m2)
    if end is not None and end <= start:
        raise ValueError(
            f"{value!r} ends before it starts; split a shift across midnight into two days."
        )
    return start, end


TimeRange = Annotated[tuple[time, time | None], BeforeValidator(parse_time_range)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Model):
    """A webhook sender: its kind picks the payload adapter and the signature scheme."""

    kind: Literal["standard", "hubspot", "twilio", "callrail", "marketo"]
    description: str = ""


class ScoringRule(_Model):
    """Points given when all conditions hold on the lead event being scored."""

    name: str = Field(pattern=_NAME)
    group: Literal["fit", "engagement"]
    points: int
    when: list[Condition] = Field(min_length=1)


class Scoring(_Model):
    """Points per rule, and the thresholds that make a lead an MQL or watch-listed."""

    version: str = Field(min_length=1)
    mql_threshold: int
    watch_threshold: int | None = None
    hand_raise_activities: list[str] = Field(default_factory=lambda: ["demo_request"])
    rules: list[ScoringRule] = Field(default_factory=list)

    @field_validator("watch_threshold")
    @classmethod
    def _below_mql(cls, value: int | None, info: ValidationInfo) -> int | None:
        mql = info.data.get("mql_threshold")
        if value is not None and mql is not None and value >= mql:
            raise ValueError("watch_threshold must be below mql_threshold.")
        return value

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Scoring:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"scoring rule names must be unique; repeated: {duplicates}.")
        return self


class Person(_Model):
    """Someone who is told about leads: a manager, an admin."""

    name: str
    email: str


class Rep(_Model):
    """A sales rep who can be assigned leads."""

    id: str = Field(pattern=_NAME)
    name: str
    email: str
    timezone: str = "UTC"
    active: bool = True
    # The rep's calendar (SLA business time): shifts per weekday in the rep's time zone,
    # and the country whose public holidays are days off. None: Monday-Friday 09:00-17:00.
    working_hours: dict[Weekday, list[TimeRange]] | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Lisbon).") from exc
        return value

    @field_validator("working_hours")
    @classmethod
    def _some_working_time(
        cls, value: dict[str, list[tuple[time, time | None]]] | None
    ) -> dict[str, list[tuple[time, time | None]]] | None:
        if value is not None and not any(value.values()):
            raise ValueError("working_hours must give at least one shift, e.g. mon: [09:00-17:00].")
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is not None and value not in holidays.list_supported_countries():
            raise ValueError(f"{value!r} is not a country the holidays calendar knows.")
        return value


class Team(_Model):
    """Reps who share leads, the way they share them, and their manager."""

    name: str = Field(pattern=_NAME)
    manager: Person
    distribution: Literal["round_robin"] = "round_robin"
    reps: list[str] = Field(min_length=1)


class RoutingRule(_Model):
    """First matching rule wins; it sends the lead to a team or to one named rep."""

    name: str = Field(pattern=_NAME)
    when: list[Condition] = Field(default_factory=list)
    team: str | None = None
    rep: str | None = None

    @model_validator(mode="after")
    def _one_target(self) -> RoutingRule:
        if (self.team is None) == (self.rep is None):
            raise ValueError(f"routing rule {self.name!r} needs exactly one of team or rep.")
        return self


class Routing(_Model):
    """Ordered routing rules and the queue that takes what no rule matches."""

    version: str = Field(min_length=1)
    tiers: list[str] = Field(default_factory=lambda: ["mql"])
    rules: list[RoutingRule] = Field(default_factory=list)
    fallback_team: str


class SlaPolicy(_Model):
    """A follow-up window for leads of some tiers, teams, sources and rules (empty list: any).

    The ladder: a warning to the rep at `warn_at_percent` of the window, a breach alert to
    the manager when it closes, and an escalation (the router reassigns) `escalate_after`
    later, at most `max_escalations` times per lead. `clock: business` counts only the
    rep's working hours (time zone, shifts, public holidays); `wall` counts every minute.
    """

    name: str = Field(pattern=_NAME)
    window: Duration
    tiers: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    clock: Literal["wall", "business"] = "wall"
    warn_at_percent: int | None = Field(default=None, gt=0, lt=100)
    escalate_after: Duration | None = None
    max_escalations: int = Field(default=1, ge=0)

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than zero, e.g. 5m.")
        return value

    def applies(
        self, tier: str, team: str, source: str | None = None, rule: str | None = None
    ) -> bool:
        """Whether this policy covers a lead of `tier` assigned within `team`."""
        return (
            (not self.tiers or tier in self.tiers)
            and (not self.teams or team in self.teams)
            and (not self.sources or source in self.sources)
            and (not self.rules or rule in self.rules)
        )


SlaStage = Literal["warning", "breached", "escalated"]
_ALERTING_STAGES: list[SlaStage] = ["breached", "escalated"]


class SlaWebhook(_Model):
    """Where SLA alerts are posted: plain JSON (the alert) or a Slack-compatible `{"text"}`."""

    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    stages: list[SlaStage] = Field(default_factory=lambda: _ALERTING_STAGES.copy(), min_length=1)
    teams: list[str] = Field(default_factory=list)
    # Name of the environment variable holding a `whsec_` secret to sign JSON posts with.
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")

    def wants(self, stage: str, team: str) -> bool:
        """Whether this webhook subscribes to alerts of `stage` for `team`."""
        return stage in self.stages and (not self.teams or team in self.teams)


class Sla(_Model):
    """SLA policies (the first that applies sets the window) and where alerts go."""

    policies: list[SlaPolicy] = Field(min_length=1)
    email: bool = True
    webhooks: list[SlaWebhook] = Field(default_factory=list)

    def policy_for(
        self, tier: str, team: str, source: str | None = None, rule: str | None = None
    ) -> SlaPolicy | None:
        """The first policy covering this tier, team, source and rule, if any."""
        return next((p for p in self.policies if p.applies(tier, team, source, rule)), None)

    def policy(self, name: str) -> SlaPolicy | None:
        """The policy called `name`, if it is still configured."""
        return next((p for p in self.policies if p.name == name), None)


class LeadflowConfig(_Model):
    """The whole product configuration."""

    sources: dict[str, Source]
    scoring: Scoring
    reps: list[Rep] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    routing: Routing
    sla: Sla

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, Source]) -> dict[str, Source]:
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits, - or _.")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> LeadflowConfig:
        rep_ids = [rep.id for rep in self.reps]
        for i, rep in enumerate(self.reps):
            if rep_ids.index(rep.id) != i:
                raise ReferenceProblem(("reps", i, "id"), f"rep id {rep.id!r} is used twice.")
        team_names = {team.name for team in self.teams}
        for i, team in enumerate(self.teams):
            for j, rep_id in enumerate(team.reps):
                if rep_id not in rep_ids:
                    raise ReferenceProblem(
                        ("teams", i, "reps", j), f"team {team.name!r} lists unknown rep {rep_id!r}."
                    )
        for i, rule in enumerate(self.routing.rules):
            if rule.team is not None and rule.team not in team_names:
                raise ReferenceProblem(
                    ("routing", "rules", i, "team"),
                    f"routing rule {rule.name!r} names unknown team {rule.team!r}.",
                )
            if rule.rep is not None and rule.rep not in rep_ids:
                raise ReferenceProblem(
                    ("routing", "rules", i, "rep"),
                    f"routing rule {rule.name!r} names unknown rep {rule.rep!r}.",
                )
        if self.routing.fallback_team not in team_names:
            raise ReferenceProblem(
                ("routing", "fallback_team"),
                f"routing.fallback_team {self.routing.fallback_team!r} is not a team.",
            )
        self._sla_references_resolve(team_names)
        return self

    def _sla_references_resolve(self, team_names: set[str]) -> None:
        for i, policy in enumerate(self.sla.policies):
            for j, team_name in enumerate(policy.teams):
                if team_name not in team_names:
                    raise ReferenceProblem(
                        ("sla", "policies", i, "teams", j),
                        f"SLA policy {policy.name!r} names unknown team {team_name!r}.",
                    )
        for i, hook in enumerate(self.sla.webhooks):
            for j, team_name in enumerate(hook.teams):
                if team_name not in team_names:
                    raise ReferenceProblem(
                        ("sla", "webhooks", i, "teams", j),
                        f"SLA webhook names unknown team {team_name!r}.",
                    )

    def rep(self, rep_id: str) -> Rep:
        """The rep with this id."""
        return next(rep for rep in self.reps if rep.id == rep_id)

    def team(self, name: str) -> Team:
        """The team with this name."""
        return next(team for team in self.teams if team.name == name)

    def team_of(self, rep_id: str) -> Team | None:
        """The first team that lists this rep."""
        return next((team for team in self.teams if rep_id in team.reps), None)


class ReferenceProblem(ValueError):
    """A value that names something the configuration does not define, and where it is."""

    def __init__(self, loc: tuple[int | str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class ConfigFileError(ValueError):
    """A configuration file that cannot be used, with one line per problem."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def load_config(path: Path) -> LeadflowConfig:
    """Read and validate a YAML configuration; errors carry `file:line`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(path, [f"cannot read the file ({exc.strerror})"]) from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(path, [f"is not valid YAML: {exc}"]) from exc
    if not isinstance(data, dict):
        raise ConfigFileError(path, ["must be a YAML mapping with sources, scoring, teams, ..."])
    try:
        return LeadflowConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [part for part in error["loc"] if not str(part).startswith("function-")]
            cause = error.get("ctx", {}).get("error")
            if isinstance(cause, ReferenceProblem):
                loc += list(cause.loc)
            line = _line_of(node, loc)
            where = ".".join(str(p) for p in loc) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"line {line}: {where}: {message}" if line else f"{where}: {message}")
        raise ConfigFileError(path, problems) from exc


def _line_of(node: yaml.Node | None, loc: list[int | str]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its closest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
            if child is None:
                child = next((k for k, _ in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line

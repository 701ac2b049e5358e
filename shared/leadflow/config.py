"""The product configuration (YAML): sources, scoring, teams, reps, routing and SLA policies.

Validation errors name the file and line of the offending value, so that
`leadflow config check` points straight at what to fix.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Lisbon).") from exc
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
    """A follow-up window for leads of some tiers and teams (empty list: any)."""

    name: str = Field(pattern=_NAME)
    window: Duration
    tiers: list[str] = Field(default_factory=list)
    teams: list[str] = Field(default_factory=list)

    def applies(self, tier: str, team: str) -> bool:
        """Whether this policy covers a lead of `tier` assigned within `team`."""
        return (not self.tiers or tier in self.tiers) and (not self.teams or team in self.teams)


class Sla(_Model):
    """SLA policies; the first that applies to an assignment sets its window."""

    policies: list[SlaPolicy] = Field(min_length=1)

    def policy_for(self, tier: str, team: str) -> SlaPolicy | None:
        """The first policy covering this tier and team, if any."""
        return next((p for p in self.policies if p.applies(tier, team)), None)


class ReportingSegment(_Model):
    """A named group of leads for reports and ROI, defined by conditions on the lead."""

    name: str = Field(pattern=_NAME)
    when: list[Condition] = Field(default_factory=list)
    gross_margin: float | None = Field(default=None, gt=0, le=1)
    target_roi: float | None = Field(default=None, gt=-1)
    cost_per_lead: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class Reporting(_Model):
    """Closed-loop reporting: segments, margins, the target ROI and what leads cost.

    A lead belongs to the first segment whose conditions all hold (a segment without
    conditions takes every lead), else to `other_segment`.
    """

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    gross_margin: float = Field(default=1.0, gt=0, le=1)
    target_roi: float = Field(default=0.0, gt=-1)
    other_segment: str = Field(default="other", pattern=_NAME)
    segments: list[ReportingSegment] = Field(default_factory=list)
    campaign_costs: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _unique_segment_names(self) -> Reporting:
        names = [segment.name for segment in self.segments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"reporting segment names must be unique; repeated: {duplicates}.")
        if self.other_segment in names:
            raise ValueError(
                f"other_segment {self.other_segment!r} is also a segment's name; "
                "pick a name no segment uses."
            )
        return self

    def segment_names(self) -> list[str]:
        """Every segment a lead can fall in, `other_segment` last."""
        return [segment.name for segment in self.segments] + [self.other_segment]

    def segment(self, name: str) -> ReportingSegment | None:
        """The configured segment of this name (None for `other_segment` or unknown)."""
        return next((s for s in self.segments if s.name == name), None)


class LeadflowConfig(_Model):
    """The whole product configuration."""

    sources: dict[str, Source]
    scoring: Scoring
    reps: list[Rep] = Field(min_length=1)
    teams: list[Team] = Field(min_length=1)
    routing: Routing
    sla: Sla
    reporting: Reporting = Field(default_factory=Reporting)

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
        return self

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

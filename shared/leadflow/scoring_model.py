"""Parts of the scoring model (YAML `scoring:` section): grades, hand-raises, campaigns, domains.

`leadflow.config.Scoring` assembles them; the scoring service's domain module applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadflow.conditions import Condition

T = TypeVar("T")
NAME = r"^[a-z][a-z0-9_-]*$"
FIT_GRADES = ("A", "B", "C")
ENGAGEMENT_GRADES = ("1", "2", "3")
_DOMAIN = re.compile(
    r"^(?=.{3,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$"
)

# Free mailbox providers: an address there says nothing about the person's employer.
PERSONAL_DOMAINS = [
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "proton.me",
    "protonmail.com",
    "yandex.com",
    "mail.ru",
    "qq.com",
    "163.com",
    "zoho.com",
]

# Throwaway mailboxes: a strong spam signal on a B2B form.
DISPOSABLE_DOMAINS = [
    "mailinator.com",
    "guerrillamail.com",
    "10minutemail.com",
    "tempmail.com",
    "temp-mail.org",
    "yopmail.com",
    "trashmail.com",
    "sharklasers.com",
    "maildrop.cc",
    "dispostable.com",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Grades(_Model):
    """The least fit points for grades A, B, C (below C: D) and engagement points for 1, 2, 3."""

    fit: dict[str, int] = Field(default_factory=lambda: {"A": 50, "B": 30, "C": 15})
    engagement: dict[str, int] = Field(default_factory=lambda: {"1": 50, "2": 25, "3": 10})

    @field_validator("fit", "engagement", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        # YAML reads `1: 50` with an integer key; the grade is the text "1".
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("fit")
    @classmethod
    def _fit_bands(cls, value: dict[str, int]) -> dict[str, int]:
        return _bands(value, FIT_GRADES, "fit", "D")

    @field_validator("engagement")
    @classmethod
    def _engagement_bands(cls, value: dict[str, int]) -> dict[str, int]:
        return _bands(value, ENGAGEMENT_GRADES, "engagement", "4")

    def fit_grade(self, points: int) -> str:
        """A, B, C or D for a fit score."""
        return next((g for g in FIT_GRADES if points >= self.fit[g]), "D")

    def engagement_grade(self, points: int) -> str:
        """1, 2, 3 or 4 for an engagement score."""
        return next((g for g in ENGAGEMENT_GRADES if points >= self.engagement[g]), "4")


def _bands(value: dict[str, int], names: tuple[str, ...], what: str, last: str) -> dict[str, int]:
    if sorted(value) != sorted(names):
        raise ValueError(
            f"{what} grades need exactly {', '.join(names)} (the least points for each; "
            f"below {names[-1]} is {last}); got {', '.join(sorted(value)) or 'none'}."
        )
    floors = [value[n] for n in names]
    if any(a <= b for a, b in pairwise(floors)):
        raise ValueError(
            f"{what} grade floors must fall strictly from {names[0]} to {names[-1]}; "
            f"got {', '.join(f'{n}: {value[n]}' for n in names)}."
        )
    return {n: value[n] for n in names}


class HandRaise(_Model):
    """A touch that qualifies the lead by itself, e.g. an IVR caller meeting BANT."""

    name: str = Field(pattern=NAME)
    when: list[Condition] = Field(min_length=1)


class CampaignOverride(_Model):
    """Qualification settings for the leads of one campaign (the profile's latest campaign)."""

    mql_threshold: int | None = None
    watch_threshold: int | None = None
    hand_raise_activities: list[str] | None = None
    mql_grades: list[str] | None = None

    @field_validator("mql_grades")
    @classmethod
    def _grades(cls, value: list[str] | None) -> list[str] | None:
        return known_grades(value)


class Domains(_Model):
    """Email and company domain lists that scoring rules see as `facts.*`."""

    personal: list[str] = Field(default_factory=lambda: list(PERSONAL_DOMAINS))
    disposable: list[str] = Field(default_factory=lambda: list(DISPOSABLE_DOMAINS))
    competitors: list[str] = Field(default_factory=list)
    customers: list[str] = Field(default_factory=list)
    priority_accounts: list[str] = Field(default_factory=list)

    @field_validator("*")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        cleaned = [d.strip().lower() for d in value]
        bad = [d for d in cleaned if not _DOMAIN.match(d)]
        if bad:
            raise ValueError(f"not domain names: {bad}; write e.g. acme.com (no @, no scheme).")
        return cleaned


def grade_names() -> set[str]:
    """Every cell of the grade matrix, A1 to D4."""
    return {f + e for f in (*FIT_GRADES, "D") for e in (*ENGAGEMENT_GRADES, "4")}


def known_grades(value: list[str] | None) -> list[str] | None:
    """`value` when every item is a grade of the matrix (A1 ... D4)."""
    unknown = [g for g in value or [] if g not in grade_names()]
    if unknown:
        raise ValueError(f"{unknown} are not grades; use A1 ... D4 (fit A-D, engagement 1-4).")
    return value


@dataclass(frozen=True)
class Qualification:
    """What makes a lead an MQL or watch-listed, after its campaign's override (if any)."""

    campaign: str | None
    mql_threshold: int
    watch_threshold: int | None
    hand_raise_activities: list[str]
    mql_grades: list[str]


def first_given(override: T | None, default: T) -> T:
    """The override when it is set, else the default."""
    return default if override is None else override

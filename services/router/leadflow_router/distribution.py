"""Sharing leads within a team: round robin, weighted and least loaded (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from leadflow.config import Rep, Team


@dataclass(frozen=True)
class Pick:
    """The rep a distribution chose among the available ones, and the numbers behind it."""

    rep_id: str
    how: str  # a sentence with a `{rep}` placeholder for the chosen rep's name
    details: dict[str, Any] = field(default_factory=dict)


def rotation(reps: Sequence[str], last: str | None) -> list[str]:
    """The team's reps in turn order, starting right after the one who had the last turn."""
    start = reps.index(last) + 1 if last in reps else 0
    return [*reps[start:], *reps[:start]]


def conversion_weight(assigned: int, converted: int) -> float:
    """A rep's measured lead-to-SQL rate, smoothed so a rep with little history is not starved."""
    return (converted + 1) / (assigned + 2)


def pick(
    team: Team,
    available: Sequence[str],
    *,
    reps: Mapping[str, Rep],
    last: str | None,
    open_leads: Mapping[str, int],
    recent: Mapping[str, int],
    conversions: Mapping[str, tuple[int, int]],
) -> Pick:
    """Choose one of `available` (non-empty, in team order) by the team's distribution."""
    can = set(available)
    order = [r for r in rotation(team.reps, last) if r in can]
    if team.distribution == "least_loaded":
        loads = {r: open_leads.get(r, 0) for r in order}
        chosen = min(order, key=lambda r: loads[r])  # ties: the next in rotation
        return Pick(
            chosen,
            f"least loaded gives it to {{rep}}, who has the fewest open leads ({loads[chosen]})",
            {"open_leads": loads},
        )
    if team.distribution == "weighted":
        if team.weights == "conversion":
            stats = {r: conversions.get(r, (0, 0)) for r in order}
            weights = {r: round(conversion_weight(*stats[r]), 4) for r in order}
        else:
            weights = {r: reps[r].weight for r in order}
        counts = {r: recent.get(r, 0) for r in order}
        # The rep furthest below their share of the window gets the lead ("smooth" weighting).
        chosen = min(order, key=lambda r: (counts[r] + 1) / weights[r])
        basis = "measured conversion" if team.weights == "conversion" else "static weights"
        return Pick(
            chosen,
            f"weighted by {basis} gives it to {{rep}}, furthest below their share "
            f"(weight {weights[chosen]}, {counts[chosen]} leads in the balance window)",
            {"weights": weights, "recent": counts},
        )
    return Pick(order[0], "round robin gives {rep} the next turn", {"rotation": order})

"""The console's Jinja2 templates (autoescaped) and the filters they format with."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from leadflow_sla.reporting.render import duration

HERE = Path(__file__).parent


def clock(value: Any) -> str:
    """A time as `2026-11-30 09:14:05 UTC` (a dash when there is none)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: Any) -> str:
    """A time in ISO 8601 for `datetime` attributes and the countdown script."""
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def left(seconds: float) -> str:
    """Time left before a due time: `in 4 min 10 s`, or `overdue by 12 s`."""
    if seconds > 0:
        return f"in {duration(seconds)}"
    return f"overdue by {duration(-seconds)}"


def pct(value: Any) -> str:
    """A ratio as a percentage."""
    return "-" if value is None else f"{float(value) * 100:.1f} %"


def counted(n: int, noun: str) -> str:
    """`1 contact`, `2 contacts`: a count with its noun, so no page says `1 contacts`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def environment() -> Environment:
    """The console's template environment."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(clock=clock, iso=iso, duration=duration, left=left, pct=pct, counted=counted)
    return env


TEMPLATES = environment()


def page(name: str, **context: Any) -> str:
    """A template rendered with `context`."""
    return TEMPLATES.get_template(name).render(**context)

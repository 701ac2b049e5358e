"""What a sender's values may be: text on one line and of a bounded length, free-form data
of a bounded depth and size, numbers an event can carry.

Lead fields end up in email subjects, notification headers, CRM pushes and reports. A
carriage return or line feed in a company name would break the rep's email (or add a
header to it), so single-line text has its control characters (C0, DEL, C1 and the
Unicode line and paragraph separators) replaced by a space. Lengths are bounded per
field, and `custom` (free-form JSON) in depth and in the length of its keys and texts:
each consumer can decode and store what intake accepted, and a refusal names the field.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import Field
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

# The largest integer intake accepts into an event: a signed 64-bit one, as JSON libraries
# and databases read them (a bigger one is refused here rather than mangled downstream).
MAX_INT = 2**63 - 1
# Levels of containers in `custom`, itself included (`{"custom": {"a": {"b": 1}}}`: two).
CUSTOM_MAX_DEPTH = 8
CUSTOM_KEY_MAX = 128
CUSTOM_TEXT_MAX = 4000

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def single_line(value: str) -> str:
    """The text with every run of control characters replaced by one space (trimmed)."""
    if _CONTROL.search(value) is None:
        return value
    return _CONTROL.sub(" ", value).strip()


def make_single_line(model: object, names: tuple[str, ...]) -> None:
    """Make the text attributes `names` of a validated model single-line, in place.

    One call per model from its own validator, rather than a validator per field: nearly
    every value is printable, which `str.isprintable` (C) says at a fraction of the cost."""
    for name in names:
        value = getattr(model, name)
        if value is not None and not value.isprintable():
            setattr(model, name, single_line(value))


def single_line_map(values: dict[str, str]) -> dict[str, str]:
    """A map of texts (`utm`, `answers`) with single-line keys and values."""
    if all(key.isprintable() and value.isprintable() for key, value in values.items()):
        return values
    return {single_line(key): single_line(value) for key, value in values.items()}


# Text fields, by how long they may be (made single-line by their models' validators).
Key = Annotated[str, Field(max_length=64)]
Name = Annotated[str, Field(max_length=200)]
Domain = Annotated[str, Field(max_length=253)]
Text = Annotated[str, Field(max_length=500)]


def check_custom(value: dict[str, Any]) -> None:
    """Refuse free-form data an event cannot carry as given: nested deeper than
    `CUSTOM_MAX_DEPTH`, a key or a text over its length, a number that is not finite
    (`Infinity`, `1e999`) or an integer beyond 64 bits. The error is located at the value
    (`custom.a.b`), and raised as a ValidationError so that pydantic reports it there."""
    problem = _problem(value, (), 1)
    if problem is not None:
        location, message, given = problem
        path = ".".join(["custom", *(str(p) for p in location)])
        error = PydanticCustomError("value_error", "{message}", {"message": f"{path} {message}"})
        raise ValidationError.from_exception_data(
            "custom", [InitErrorDetails(type=error, loc=location, input=given)]
        )


def _problem(
    value: Any, location: tuple[str | int, ...], depth: int
) -> tuple[tuple[str | int, ...], str, Any] | None:
    """The first value that is refused: where, why, and the value (None when all is well)."""
    if isinstance(value, str):
        if len(value) > CUSTOM_TEXT_MAX:
            return location, f"is longer than {CUSTOM_TEXT_MAX} characters.", value[:80]
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (location, "is not a finite number.", value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return location, "is an integer beyond 64 bits.", value
    if isinstance(value, dict | list):
        if depth > CUSTOM_MAX_DEPTH:
            return location, f"is nested deeper than {CUSTOM_MAX_DEPTH} levels.", "…"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and len(key) > CUSTOM_KEY_MAX:
                return (
                    (*location, key[:40] + "…"),
                    f"has a name longer than {CUSTOM_KEY_MAX} characters.",
                    key[:80],
                )
            found = _problem(item, (*location, key), depth + 1)
            if found is not None:
                return found
    return None

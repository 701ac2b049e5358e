"""The console's formatting: counts read as English, one or many."""

from __future__ import annotations

import pytest

from leadflow_sla.console.rendering import TEMPLATES, counted


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, "0 contacts"), (1, "1 contact"), (2, "2 contacts"), (12, "12 contacts")],
)
def test_a_count_takes_the_plural_unless_it_is_one(n: int, expected: str) -> None:
    assert counted(n, "contact") == expected


def test_the_pages_templates_count_with_it() -> None:
    template = TEMPLATES.from_string('{{ flagged|counted("segment") }} over')
    assert template.render(flagged=1) == "1 segment over"
    assert template.render(flagged=3) == "3 segments over"

"""JSON log lines: emails and phone numbers masked, addresses, ports and dates readable."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from leadflow.logs import JsonFormatter, configure_logging, redact

CREATED = 1_764_150_000.25
CREATED_ISO = "2025-11-26T09:40:00.250000+00:00"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lead ana@example.com arrived", "lead [email] arrived"),
        ("lead Ana.Silva+leads@mail.example.co.uk", "lead [email]"),
        ("to: a_b-c@sub-domain.example.io, cc: x@y.org", "to: [email], cc: [email]"),
        ("call +14155550134 now", "call [phone] now"),
        ("call +1 (415) 555-0134", "call [phone]"),
        ("call +44 20 7946 0958.", "call [phone]."),
        ("call +351-912-345-678 today", "call [phone] today"),
        ("caller 4155550134 hung up", "caller [phone] hung up"),
        ("caller 00351912345678", "caller [phone]"),
        ("ana@example.com, +14155550134", "[email], [phone]"),
    ],
)
def test_redact_masks_emails_and_phone_numbers(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "connected to 10.0.12.7:9092",
        "bootstrap 127.0.0.1:9092,192.168.100.200:19092",
        "listening on [::1]:8080",
        "port 5432 refused",
        "received at 2026-11-26T09:40:00+00:00",
        "received at 2026-11-26T09:40:00.123456Z",
        "due 2026-11-26 09:45:00+01:00",
        "window 2026-11-26/2026-11-27",
        "partition 3 offset 123456789 lag 42",
        "version 1.10.2, build 20261126",
        "took 12.5 s for 200 records",
        "lead lk_8e43ca37701228e74983efdb scored 65",
        "assignment 344dbc91-8b02-5965-ad3c-9e0c88476a89",
        "@channel: score +15 for pricing page",
    ],
)
def test_redact_leaves_technical_values_readable(text: str) -> None:
    assert redact(text) == text


def record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    """A WARNING record from `leadflow.test`, created at a fixed time, with `extra` fields."""
    return logging.makeLogRecord(
        {
            "name": "leadflow.test",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": msg,
            "args": args,
            "created": CREATED,
            **extra,
        }
    )


def formatted(log_record: logging.LogRecord) -> dict[str, Any]:
    """The record as the intake service writes it, parsed back."""
    line = JsonFormatter("intake").format(log_record)
    assert "\n" not in line
    parsed: dict[str, Any] = orjson.loads(line)
    return parsed


def test_entry_fields() -> None:
    assert formatted(record("lead %s scored %d", "lk_1", 65)) == {
        "time": CREATED_ISO,
        "level": "warning",
        "service": "intake",
        "logger": "leadflow.test",
        "message": "lead lk_1 scored 65",
    }


def test_message_and_its_arguments_are_masked() -> None:
    entry = formatted(
        record("duplicate of %s (%s) from %s", "ana@example.com", "+14155550134", "10.0.0.1:443")
    )

    assert entry["message"] == "duplicate of [email] ([phone]) from 10.0.0.1:443"


def test_string_extras_are_masked_and_others_kept() -> None:
    entry = formatted(
        record(
            "rejected",
            contact="Ana <ana@example.com>",
            caller="+44 20 7946 0958",
            peer="10.0.0.1:443",
            received_at="2026-11-26T09:40:00+00:00",
            attempt=3,
            late_by_s=12.5,
            retry=True,
        )
    )

    assert {k: v for k, v in entry.items() if k not in ("time", "level", "logger")} == {
        "service": "intake",
        "message": "rejected",
        "contact": "Ana <[email]>",
        "caller": "[phone]",
        "peer": "10.0.0.1:443",
        "received_at": "2026-11-26T09:40:00+00:00",
        "attempt": 3,
        "late_by_s": 12.5,
        "retry": True,
    }


def test_nested_extras_are_masked() -> None:
    entry = formatted(
        record("bad lead", lead={"email": "ana@example.com", "phones": ["+14155550134"]})
    )

    assert entry["lead"] == {"email": "[email]", "phones": ["[phone]"]}


def test_private_attributes_are_left_out() -> None:
    entry = formatted(record("x", _internal="ana@example.com"))

    assert "_internal" not in entry


def test_values_json_cannot_encode_are_written_as_text() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    assert formatted(record("x", thing=Opaque()))["thing"] == "opaque"


def test_exceptions_are_masked() -> None:
    try:
        raise ValueError("no rep for ana@example.com")
    except ValueError:
        failing = record("routing failed", exc_info=sys.exc_info())

    entry = formatted(failing)

    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: no rep for [email]")
    assert "ana@example.com" not in entry["exception"]


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored after the test reconfigures it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    access_disabled = access.disabled
    aiokafka_level = logging.getLogger("aiokafka").level
    uvicorn = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error")
    }
    yield root
    for name, (uvicorn_handlers, propagate) in uvicorn.items():
        logging.getLogger(name).handlers[:] = uvicorn_handlers
        logging.getLogger(name).propagate = propagate
    root.handlers[:] = handlers
    root.setLevel(level)
    access.disabled = access_disabled
    logging.getLogger("aiokafka").setLevel(aiokafka_level)


def test_configure_logging_writes_one_json_object_per_line(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)

    configure_logging("router", level="debug")
    logging.getLogger("leadflow.router").info("assigned\nto ana@example.com", extra={"rep": "ana"})
    logging.getLogger("leadflow.router").debug("rotation %s", "ben")

    lines = stream.getvalue().splitlines()
    entries = [orjson.loads(line) for line in lines]
    assert [(e["service"], e["level"], e["logger"], e["message"]) for e in entries] == [
        ("router", "info", "leadflow.router", "assigned\nto [email]"),
        ("router", "debug", "leadflow.router", "rotation ben"),
    ]
    assert entries[0]["rep"] == "ana"
    assert root_logger.level == logging.DEBUG
    assert logging.getLogger("uvicorn.access").disabled is True
    assert logging.getLogger("aiokafka").level == logging.WARNING


def test_names_companies_and_contacts_are_masked_by_field_name() -> None:
    lead = {
        "first_name": "Zelda",
        "last_name": "Quistorff",
        "company": {"name": "Quistorff Widgets", "size": 40},
        "job_title": "Head of Pumps",
        "country": "DE",
    }
    entry = formatted(record("lead scored", lead=lead, rep_name="Ana Silva", team="emea"))
    assert entry["lead"] == {
        "first_name": "[redacted]",
        "last_name": "[redacted]",
        "company": "[redacted]",
        "job_title": "[redacted]",
        "country": "DE",
    }
    assert (entry["rep_name"], entry["team"]) == ("[redacted]", "emea")
    assert "Quistorff" not in orjson.dumps(entry).decode()

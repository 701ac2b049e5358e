"""JSON logs, one object per line, with personal data masked.

Text (the message, string fields, tracebacks) has anything shaped like an email address or
a phone number masked. Names and companies have no shape to recognize: fields that hold
them (`first_name`, `company`, `rep_name`, ... at any depth of an `extra` value) are masked
by their name, whatever they hold.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from leadflow.tracing import log_fields

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# A leading "+" (E.164 and most written forms) or a bare run of 10+ digits; IP addresses,
# ports and dates stay readable.
_PHONE = re.compile(
    r"\+\d[\d ()-]{6,}\d"  # +1 415 555 0134, +14155550134
    r"|(?<![\d.:-])\d{10,15}(?![\d.:-])"  # 4155550134
    r"|(?<![\d.])\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?![\d.])"  # (415) 555-0134, 415-555-0134
)
# Fields whose values are a person's name, company or answers, wherever they appear (emails
# and phone numbers are masked by their shape, in any field).
PERSONAL_FIELDS = frozenset(
    {
        "first_name",
        "last_name",
        "full_name",
        "name",
        "rep_name",
        "company",
        "company_name",
        "job_title",
        "answers",
    }
)
MASK = "[redacted]"
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """`text` with anything shaped like an email or a phone number masked."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_field(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redact_value(v) for v in value]
    return value


def _redact_field(name: Any, value: Any) -> Any:
    if isinstance(name, str) and name.lower() in PERSONAL_FIELDS and value is not None:
        return MASK
    return _redact_value(value)


class JsonFormatter(logging.Formatter):
    """Formats records as JSON: time, level, logger, message, the current span's trace and
    span ids (leadflow.tracing) and any `extra` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": redact(record.getMessage()),
            # The current span's trace_id and span_id, when there is one.
            **log_fields(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _redact_field(key, value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiokafka").setLevel(logging.WARNING)

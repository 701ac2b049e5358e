"""JSON logs, one object per line, with email addresses and phone numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# A leading "+" (E.164 and most written forms) or a bare run of 10+ digits; IP addresses,
# ports and dates stay readable.
_PHONE = re.compile(
    r"\+\d[\d ()-]{6,}\d"  # +1 415 555 0134, +14155550134
    r"|(?<![\d.:-])\d{10,15}(?![\d.:-])"  # 4155550134
    r"|(?<![\d.])\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?![\d.])"  # (415) 555-0134, 415-555-0134
)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """`text` with anything shaped like an email or a phone number masked."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redact_value(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats records as JSON: time, level, logger, message and any `extra` fields."""

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
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _redact_value(value)
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

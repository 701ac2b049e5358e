"""Identity normalization: emails lower-cased and checked, phones in E.164."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email


def normalize_email(value: str) -> str:
    """The canonical form of an email address; raises ValueError when it is not one."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc}).") from exc
    return result.normalized.lower()


def normalize_phone(value: str, country: str | None = None) -> str:
    """The E.164 form of a phone number; raises ValueError when it is not a valid number."""
    region = country.upper() if country and len(country) == 2 else None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            "is not a phone number; use E.164 (+14155550123) or give the lead's country."
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

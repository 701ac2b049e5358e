"""Identity normalization: emails lower-cased and checked, phones in E.164."""

from __future__ import annotations

import re

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email

# The common address, which email_validator would accept and return unchanged but for case,
# is checked here at a fraction of its cost; anything else goes to email_validator. Every
# part is a strict subset of what email_validator 2.4 accepts for an ASCII address (see
# `tests/unit/intake/test_normalize.py`): a dot-atom local part of at most 64 characters
# from a small alphabet; LDH labels of 1 to 63 characters, at least two of them, with no
# "--" anywhere (that keeps Punycode "xn--" and reserved "ab--" labels, and so the IDNA
# library, out of this path) and a top-level label that ends with a letter; at most 254
# characters in all; and no special-use domain (.test, .local, .invalid...).
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"(?:[A-Za-z0-9][A-Za-z0-9-]{0,61})?[A-Za-z]"
)
_MAX_LOCAL_PART = 64
_MAX_ADDRESS = 254
_SPECIAL_USE_DOMAINS = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple("." + domain for domain in _SPECIAL_USE_DOMAINS)


def plain_address(value: str) -> str | None:
    """The lower-cased form of a plain ASCII address, or None when it needs the full check."""
    if len(value) > _MAX_ADDRESS or _PLAIN_ADDRESS.fullmatch(value) is None:
        return None
    address = value.lower()
    local, _, domain = address.partition("@")
    if (
        len(local) > _MAX_LOCAL_PART
        or "--" in domain
        or domain in _SPECIAL_USE_DOMAINS
        or domain.endswith(_SPECIAL_USE_SUFFIXES)
    ):
        return None
    return address


def normalize_email(value: str) -> str:
    """The canonical form of an email address; raises ValueError when it is not one."""
    stripped = value.strip()
    plain = plain_address(stripped)
    if plain is not None:
        return plain
    try:
        result = validate_email(stripped, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc}).") from exc
    return result.normalized.lower()


def normalize_phone(value: str, country: str | None = None, *, require_valid: bool = True) -> str:
    """The E.164 form of a phone number; raises ValueError when it is not a phone number, or,
    with `require_valid`, when it is not a valid number (e.g. too short for its country).

    A lead that has an email as well keeps an invalid phone (`require_valid=False`): the
    lead is not lost for a mistyped number, and scoring marks the phone invalid (a negative
    fact rules can test) and never links people through it.
    """
    region = country.upper() if country and len(country) == 2 else None
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            "is not a phone number; use E.164 (+14155550123) or give the lead's country."
        ) from exc
    if require_valid and not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

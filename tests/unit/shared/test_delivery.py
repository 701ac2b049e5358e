"""Email header values built from outside text stay on one line (pure: no SMTP)."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from leadflow.delivery import EmailSender, Notification, header_text
from leadflow.settings import Settings


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Acme Corp", "Acme Corp"),
        ("Acme\r\nBcc: all@example.com", "Acme Bcc: all@example.com"),
        ("Acme\nLtd", "Acme Ltd"),
        ("Acme\rLtd", "Acme Ltd"),
        ("A\x00c\x1bme\x7f", "A c me"),
        ("Acme\u2028Ltd\u2029", "Acme Ltd"),
        ("Acme\x85GmbH", "Acme GmbH"),
        ("\tAcme  \t Ltd \r\n", "Acme Ltd"),
        ("Müller & Söhne — 東京", "Müller & Söhne — 東京"),
        ("", ""),
    ],
)
def test_header_text_turns_controls_into_single_spaces(raw: str, clean: str) -> None:
    assert header_text(raw) == clean


def test_an_email_with_a_crlf_in_its_subject_and_address_is_one_message_without_injection() -> None:
    sender = EmailSender(Settings(smtp_sender="alerts@leadflow.example\r\n"))
    note = Notification(
        channel="email",
        target="grace@example.com\r\nBcc: all@example.com",
        subject="New lead for you: Acme\r\nBcc: all@example.com",
        body="Hi Grace,\r\nA lead is for you.",
        dedupe_key="router:e1:rep:email",
        payload={},
    )
    parsed = message_from_bytes(sender.message(note).as_bytes())
    assert parsed["Subject"] == "New lead for you: Acme Bcc: all@example.com"
    assert parsed["To"] == "grace@example.com Bcc: all@example.com"
    assert parsed["From"] == "alerts@leadflow.example"
    assert parsed.get_all("Bcc") is None
    assert parsed["Message-ID"].endswith("@leadflow.example>")
    assert "A lead is for you." in parsed.get_payload()

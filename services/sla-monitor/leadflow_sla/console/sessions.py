"""Console sign-ins: an opaque session id in a cookie, the session itself in the database.

The cookie holds only a random id (256 bits). The `console_sessions` row holds who signed
in, the CSRF token every form of theirs carries, and when the session expires: `ttl_s`
after its last request, and never after an OIDC access token's `exp`. Every SLA monitor
on the database accepts the sign-in, and a restart keeps it.

The row is found by the SHA-256 of the id, never by the id: reading the table does not
give anyone a cookie. The session also keeps the credential its viewer signed in with,
because a claim or a reassignment is sent to the router with the viewer's own token (the
router judges their scopes and audits their name; the SLA monitor's service token must not
act for anyone). That credential is sealed with AES-GCM under a key derived from the
session id, which only the viewer's cookie holds: a copy of the table, a backup or a
replica opens none of them, and no SLA monitor needs a key of its own to share.

`last_seen_at` (and the idle expiry with it) is written at most once a `TOUCH_EVERY_S`:
a page, its live stream and its fragments do not each write a row. So a session ends up
to a minute before `ttl_s` after its very last request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from leadflow.auth import Principal
from leadflow_sla.console import repository
from leadflow_sla.console.repository import StoredSession

COOKIE: Final = "leadflow_console"
# The sign-in form's own CSRF cookie (double submit): there is no session yet to hold it.
SIGN_IN_COOKIE: Final = "leadflow_console_sign_in"
# A session's last request is written down at most this often.
TOUCH_EVERY_S: Final = 60.0
_NONCE_BYTES: Final = 12


def lookup_key(session_id: str) -> str:
    """What the table stores in place of a session id: its SHA-256."""
    return hashlib.sha256(b"leadflow console session\x00" + session_id.encode()).hexdigest()


def _sealing_key(session_id: str) -> bytes:
    # A second, independent derivation: the stored lookup key says nothing about it.
    return hashlib.sha256(b"leadflow console credential\x00" + session_id.encode()).digest()


def seal(credential: str, session_id: str) -> bytes:
    """`credential` encrypted (and authenticated) under the session id's key."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(_sealing_key(session_id)).encrypt(
        nonce, credential.encode(), lookup_key(session_id).encode()
    )
    return nonce + sealed


def unseal(sealed: bytes, session_id: str) -> str | None:
    """The credential `seal` encrypted, or None when the id is not the one it was sealed
    under (or the bytes were altered)."""
    nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        plain = AESGCM(_sealing_key(session_id)).decrypt(
            nonce, body, lookup_key(session_id).encode()
        )
    except InvalidTag:
        return None
    return plain.decode()


def principal_record(principal: Principal) -> dict[str, Any]:
    """What the table keeps of a principal (no token claims beyond these)."""
    return {
        "name": principal.name,
        "scopes": sorted(principal.scopes),
        "rep": principal.rep,
        "teams": None if principal.teams is None else sorted(principal.teams),
        "via": principal.via,
    }


def principal_from(record: dict[str, Any]) -> Principal:
    """The principal `principal_record` kept."""
    teams = record.get("teams")
    return Principal(
        name=str(record["name"]),
        scopes=frozenset(record["scopes"]),
        rep=record.get("rep"),
        teams=None if teams is None else frozenset(teams),
        via=record.get("via", "token"),
    )


@dataclass
class ConsoleSession:
    """One signed-in viewer."""

    id: str
    principal: Principal
    credential: str = field(repr=False)
    csrf: str = field(repr=False)
    expires_at: datetime
    # What the last action did (or why it could not), shown once on the next page.
    flash: str | None = None
    # An OIDC access token's own expiry: the session never outlives the credential.
    ends_at: datetime | None = None

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether a form carried this session's CSRF token (compared in constant time)."""
        # As bytes: compare_digest refuses a str that is not ASCII (a form may send any).
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    """The signed-in sessions on the database, forgotten `ttl_s` after their last use."""

    def __init__(
        self, ttl_s: float, database: Callable[[], async_sessionmaker[AsyncSession]]
    ) -> None:
        self.ttl = timedelta(seconds=ttl_s)
        # Called for each use: the sessionmaker exists only once the app has started.
        self._database = database

    async def open(self, principal: Principal, credential: str, now: datetime) -> ConsoleSession:
        """A new session for `principal`."""
        exp = principal.claims.get("exp")
        ends_at = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
        session = ConsoleSession(
            id=secrets.token_urlsafe(32),
            principal=principal,
            credential=credential,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._until(now, ends_at),
            ends_at=ends_at,
        )
        stored = StoredSession(
            id_hash=lookup_key(session.id),
            principal=principal_record(principal),
            credential=seal(credential, session.id),
            csrf=session.csrf,
            flash=None,
            created_at=now,
            last_seen_at=now,
            expires_at=session.expires_at,
            ends_at=ends_at,
        )
        async with self._database()() as db, db.begin():
            await repository.insert_session(db, stored)
        return session

    def sign_in_token(self) -> str:
        """A fresh token for the sign-in form's CSRF cookie."""
        return secrets.token_urlsafe(32)

    async def get(
        self, session_id: str | None, now: datetime, take_flash: bool = False
    ) -> ConsoleSession | None:
        """The live session of a cookie's id (its expiry pushed back), or None; with
        `take_flash`, its flash is forgotten as it is read (the page shows it once).

        Done in one transaction before the page reads anything: on SQLite a page's read
        transaction holds the write lock until the page is sent."""
        if not session_id:
            return None
        id_hash = lookup_key(session_id)
        async with self._database()() as db, db.begin():
            stored = await repository.find_session(db, id_hash)
            if stored is None:
                return None
            credential = unseal(stored.credential, session_id)
            if stored.expires_at <= now or credential is None:
                await repository.delete_session(db, id_hash)
                return None
            expires_at = stored.expires_at
            if now - stored.last_seen_at >= timedelta(seconds=TOUCH_EVERY_S):
                expires_at = self._until(now, stored.ends_at)
                await repository.touch_session(db, id_hash, now, expires_at)
            if take_flash and stored.flash is not None:
                await repository.set_flash(db, id_hash, None)
        return ConsoleSession(
            id=session_id,
            principal=principal_from(stored.principal),
            credential=credential,
            csrf=stored.csrf,
            expires_at=expires_at,
            flash=stored.flash,
            ends_at=stored.ends_at,
        )

    async def alive(self, session_id: str, now: datetime) -> bool:
        """Whether the session is still signed in at `now`, read without writing anything
        (a live stream asks this while it runs: signing out anywhere ends it)."""
        async with self._database()() as db:
            expires_at = await repository.session_expiry(db, lookup_key(session_id))
        return expires_at is not None and now < expires_at

    async def leave_flash(self, session: ConsoleSession, message: str) -> None:
        """Leave `message` for the session's next page to show."""
        async with self._database()() as db, db.begin():
            await repository.set_flash(db, lookup_key(session.id), message)
        session.flash = message

    def _until(self, now: datetime, ends_at: datetime | None) -> datetime:
        idle = now + self.ttl
        return idle if ends_at is None else min(idle, ends_at)

    async def close(self, session_id: str) -> None:
        """Sign a session out."""
        async with self._database()() as db, db.begin():
            await repository.delete_session(db, lookup_key(session_id))

"""Console sign-ins: opaque session ids in a cookie, the session itself kept server-side.

The cookie holds only a random id (256 bits). The session holds who signed in, the
credential they signed in with (sent on to the router when they claim or reassign, so the
router judges their own scopes), the CSRF token every form of theirs carries, and when it
expires: `ttl_s` after its last request, and never after an OIDC access token's `exp`.
Sessions live in the process's memory: a restart signs everyone out, and several SLA
monitors behind one address need sticky sessions.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from leadflow.auth import Principal

COOKIE: Final = "leadflow_console"
# The sign-in form's own CSRF cookie (double submit): there is no session yet to hold it.
SIGN_IN_COOKIE: Final = "leadflow_console_sign_in"
# Beyond this many sessions the ones that expire soonest go first.
MAX_SESSIONS: Final = 10_000


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
        return presented is not None and hmac.compare_digest(presented, self.csrf)


class SessionStore:
    """The signed-in sessions of this process, forgotten `ttl_s` after their last use."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl = timedelta(seconds=ttl_s)
        self._sessions: dict[str, ConsoleSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, principal: Principal, credential: str, now: datetime) -> ConsoleSession:
        """A new session for `principal`."""
        self._expire(now)
        if len(self._sessions) >= MAX_SESSIONS:
            soonest = min(self._sessions.values(), key=lambda s: s.expires_at)
            del self._sessions[soonest.id]
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
        self._sessions[session.id] = session
        return session

    def sign_in_token(self) -> str:
        """A fresh token for the sign-in form's CSRF cookie."""
        return secrets.token_urlsafe(32)

    def get(self, session_id: str | None, now: datetime) -> ConsoleSession | None:
        """The live session of a cookie's id (its expiry pushed back), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires_at <= now:
            del self._sessions[session_id]
            return None
        session.expires_at = self._until(now, session.ends_at)
        return session

    def _until(self, now: datetime, ends_at: datetime | None) -> datetime:
        idle = now + self.ttl
        return idle if ends_at is None else min(idle, ends_at)

    def close(self, session_id: str) -> None:
        """Sign a session out."""
        self._sessions.pop(session_id, None)

    def _expire(self, now: datetime) -> None:
        for gone in [s.id for s in self._sessions.values() if s.expires_at <= now]:
            del self._sessions[gone]

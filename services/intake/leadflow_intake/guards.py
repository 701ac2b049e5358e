"""The intake's limits on callers and on people, and the 429s they answer.

* Per client address, on failures: every refused authentication (401) and every unknown
  source (404) takes a token from the caller's bucket. Once it is empty, the caller's
  failures are answered 429 instead, and so are its requests to sources that do not exist:
  guessing a secret or listing the sources goes no faster than the bucket refills. A
  request that authenticates still passes, so honest senders behind the same address (a
  NAT, a proxy that is not trusted) are not shut out by one that is misconfigured.
* Per person (lead key), on leads: a flood of webhooks for one person is refused past its
  budget, so one spammed form cannot fill a partition that others' leads share.

Each is a dictionary look-up; the address is worked out only when a request fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import Scope

from leadflow.events import SerializedEvent
from leadflow.problems import Problem
from leadflow_intake.clients import client_address
from leadflow_intake.ratelimit import KeyedLimit, retry_after
from leadflow_intake.settings import IntakeSettings


class Guards:
    """The per-address failure limit and the per-person limit of one intake process."""

    def __init__(self, intake: IntakeSettings) -> None:
        self.proxies = intake.proxy_networks
        self.failures = (
            KeyedLimit(
                intake.auth_failures_per_minute / 60,
                intake.auth_failures_burst,
                intake.auth_addresses_max,
            )
            if intake.auth_failures_per_minute > 0
            else None
        )
        self.people = (
            KeyedLimit(
                intake.identity_per_minute / 60, intake.identity_burst, intake.identity_keys_max
            )
            if intake.identity_per_minute > 0
            else None
        )

    def failed(self, scope: Scope, now: float) -> None:
        """Count a refused authentication or an unknown source against the caller; raises
        the 429 Problem when its budget is spent (to answer instead of the 401 or 404)."""
        if self.failures is None:
            return
        address = client_address(scope, self.proxies)
        wait = retry_after(self.failures.take(address, now))
        if wait:
            raise Problem(
                429,
                "auth_rate_limited",
                "Too many requests from this address failed authentication or named no "
                f"source; check the source's URL and secret, and retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )

    def check_people(self, events: Sequence[SerializedEvent], now: float) -> None:
        """Raise a 429 Problem when a lead's person is over its budget (takes a token for
        each person of the delivery when none is)."""
        if self.people is None:
            return
        if len(events) == 1:  # nearly every delivery: one take, which refuses atomically
            [event] = events
            if event.type != "lead.received":
                return
            wait = self.people.take(event.subject, now)
            over = {event.subject: wait} if wait else {}
        else:
            keys = [e.subject for e in events if e.type == "lead.received"]
            over = self.people.take_all(keys, now)
        if over:
            wait = retry_after(max(over.values()))
            raise Problem(
                429,
                "identity_rate_limited",
                f"Too many webhooks for one person ({', '.join(sorted(over))}); retry in {wait} s.",
                headers={"Retry-After": str(wait)},
            )

    def give_back(self, events: Sequence[SerializedEvent]) -> None:
        """Return what `check_people` took for a delivery that was then not stored (503):
        a sender retrying it is not refused for the intake's own trouble."""
        if self.people is not None:
            for key in dict.fromkeys(e.subject for e in events if e.type == "lead.received"):
                self.people.give_back(key)

"""What the console asks the router and scoring over their HTTP APIs.

Reads send the SLA monitor's service token (`LEADFLOW_SLA_SERVICE_TOKEN`); a claim or a
reassignment sends the viewer's own credential, so that the router decides whether they
may. An answer is `Fetched`: the JSON, or a sentence saying why there is none, so that a
page shows what it has and says what it could not get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Fetched:
    """One upstream answer: its status and JSON, or why there is none."""

    status: int
    data: Any = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the call succeeded (2xx with a body)."""
        return self.problem is None


class Upstream:
    """The router's and scoring's APIs as the console uses them."""

    def __init__(
        self,
        router_url: str,
        scoring_url: str,
        service_token: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # A client per call: the console's calls are few, and a pooled client would be
        # bound to the event loop of its first call.
        self.transport = transport
        self.router_url = router_url.rstrip("/")
        self.scoring_url = scoring_url.rstrip("/")
        self.service_token = service_token

    async def profile(self, lead_key: str) -> Fetched:
        """Scoring's profile of a person: score, every reason, identifiers, touches."""
        return await self._get("scoring", f"/v1/leads/{quote(lead_key, safe='')}/profile")

    async def routing(self, lead_key: str) -> Fetched:
        """The router's decisions about a person, with candidates and why."""
        return await self._get("router", f"/v1/leads/{quote(lead_key, safe='')}/routing")

    async def pool(self, team: str) -> Fetched:
        """The leads waiting in a team's pool."""
        return await self._get("router", f"/v1/pools/{quote(team, safe='')}")

    async def reps(self) -> Fetched:
        """Every rep with load and availability now (the router's admin API)."""
        return await self._get("router", "/v1/admin/reps")

    async def claim(self, lead_key: str, credential: str) -> Fetched:
        """Claim a pool lead for the rep whose credential this is."""
        return await self._send(
            "POST", f"/v1/leads/{quote(lead_key, safe='')}/claim", credential, None
        )

    async def reassign(self, lead_key: str, rep_id: str, reason: str, credential: str) -> Fetched:
        """Give a lead to another rep by hand (the viewer needs `admin`)."""
        return await self._send(
            "POST",
            f"/v1/admin/leads/{quote(lead_key, safe='')}/reassign",
            credential,
            {"rep_id": rep_id, "reason": reason},
        )

    async def _get(self, service: str, path: str) -> Fetched:
        if not self.service_token:
            return Fetched(
                0,
                problem=f"The {service} cannot be asked: LEADFLOW_SLA_SERVICE_TOKEN is not set.",
            )
        base = self.router_url if service == "router" else self.scoring_url
        return await self._call("GET", base + path, self.service_token, None, service)

    async def _send(self, method: str, path: str, credential: str, body: Any) -> Fetched:
        return await self._call(method, self.router_url + path, credential, body, "router")

    async def _call(self, method: str, url: str, token: str, body: Any, service: str) -> Fetched:
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=TIMEOUT_S) as client:
                response = await client.request(
                    method, url, json=body, headers={"authorization": f"Bearer {token}"}
                )
        except httpx.HTTPError as exc:
            return Fetched(0, problem=f"The {service} did not answer ({type(exc).__name__}).")
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return Fetched(response.status_code, data)
        detail = data.get("detail") if isinstance(data, dict) else None
        if not isinstance(detail, str):
            detail = f"The {service} answered {response.status_code}."
        return Fetched(response.status_code, data, problem=detail)

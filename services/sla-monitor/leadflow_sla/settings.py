"""The SLA monitor's own settings."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlaSettings(BaseSettings):
    """`LEADFLOW_SLA_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_SLA_", extra="ignore")

    port: int = 8003
    # The router's base URL as the SLA monitor reaches it: where the managers' console asks
    # for decisions, pools and reps (e.g. http://router:8002 inside compose or a cluster).
    router_url: str = "http://127.0.0.1:8002"
    # The router's base URL as the readers of alerts reach it: the link an alert gives to
    # the routing record of the lead. Unset: `router_url` (one address serves both).
    router_public_url: str | None = None
    # Scoring's base URL: where the console asks for a person's touches and score reasons.
    scoring_url: str = "http://127.0.0.1:8001"
    # The token the console sends to the router and scoring for what it reads from them
    # (`leads:read` and, for the team page's reps, `admin`). Unset: those parts of the
    # console say they are unavailable. Claims and reassignments send the viewer's own.
    service_token: SecretStr | None = None
    # How long a console sign-in lasts without a request.
    session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    # Timers due within this many seconds are kept in memory (at most horizon_max of them).
    horizon_s: float = Field(default=10.0, gt=0)
    horizon_max: int = Field(default=10_000, ge=1)
    # How often the open-window gauges are recounted from the database.
    gauge_interval_s: float = Field(default=15.0, gt=0)

    @property
    def router_link_url(self) -> str:
        """The router's address for links that people open (alerts)."""
        return self.router_public_url or self.router_url

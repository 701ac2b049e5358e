"""The intake's own settings."""

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadflow_intake.clients import Network, parse_networks


class IntakeSettings(BaseSettings):
    """`LEADFLOW_INTAKE_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_INTAKE_", extra="ignore")

    port: int = 8000
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    signature_tolerance_s: int = Field(default=300, ge=1)
    # Where events wait when the broker is down or slow (one directory per intake process).
    spool_dir: Path = Path("var/spool")
    # How long a webhook waits for the broker's acknowledgement before its event is spooled.
    spool_after_s: float = Field(default=0.5, gt=0)
    spool_segment_bytes: int = Field(default=16 * 1024 * 1024, ge=4096)
    relay_batch_max: int = Field(default=500, ge=1)
    relay_backoff_max_s: float = Field(default=5.0, gt=0)
    # What `Retry-After` says when an event could not be stored (503).
    retry_after_s: int = Field(default=5, ge=1)
    # Webhooks for one person (one lead key) a minute, after a burst; 0 turns the limit off.
    identity_per_minute: float = Field(default=6.0, ge=0)
    identity_burst: int = Field(default=30, ge=1)
    identity_keys_max: int = Field(default=100_000, ge=1)
    # Refused authentications and unknown sources a minute from one client address, after
    # a burst; past them the address gets 429 (a request that authenticates still passes).
    auth_failures_per_minute: float = Field(default=6.0, ge=0)
    auth_failures_burst: int = Field(default=20, ge=1)
    auth_addresses_max: int = Field(default=10_000, ge=1)
    # Proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated);
    # none by default: the client is the TCP peer.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        try:
            parse_networks(value)
        except ValueError as exc:
            raise ValueError(
                f"LEADFLOW_INTAKE_TRUSTED_PROXIES must list IP addresses or networks ({exc})."
            ) from exc
        return value

    @property
    def proxy_networks(self) -> tuple[Network, ...]:
        """The trusted proxies as networks."""
        return parse_networks(self.trusted_proxies)

"""The SLA monitor's own settings."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SlaSettings(BaseSettings):
    """`LEADFLOW_SLA_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_SLA_", extra="ignore")

    port: int = 8003
    # Where alert texts send the reader: the router's record of why the lead went where.
    router_url: str = "http://127.0.0.1:8002"
    # Timers due within this many seconds are kept in memory (at most horizon_max of them).
    horizon_s: float = Field(default=10.0, gt=0)
    horizon_max: int = Field(default=10_000, ge=1)
    # How often the open-window gauges are recounted from the database.
    gauge_interval_s: float = Field(default=15.0, gt=0)

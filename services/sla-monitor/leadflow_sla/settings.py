"""The SLA monitor's own settings."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class SlaSettings(BaseSettings):
    """`LEADFLOW_SLA_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_SLA_", extra="ignore")

    port: int = 8003
    router_url: str = "http://127.0.0.1:8002"

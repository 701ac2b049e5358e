"""The router's own settings."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    """`LEADFLOW_ROUTER_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_ROUTER_", extra="ignore")

    port: int = 8002

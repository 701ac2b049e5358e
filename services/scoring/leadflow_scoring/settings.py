"""The scoring service's own settings."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ScoringSettings(BaseSettings):
    """`LEADFLOW_SCORING_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_SCORING_", extra="ignore")

    port: int = 8001

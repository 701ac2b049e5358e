"""The intake's own settings."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IntakeSettings(BaseSettings):
    """`LEADFLOW_INTAKE_*` variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_INTAKE_", extra="ignore")

    port: int = 8000
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    signature_tolerance_s: int = Field(default=300, ge=1)

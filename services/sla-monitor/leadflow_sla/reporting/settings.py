"""Reporting's settings: the token that guards the cost API."""

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_TOKEN_LENGTH = 16


class ReportingSettings(BaseSettings):
    """`LEADFLOW_ADMIN_TOKEN`: a bearer token for changes through the admin API."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    admin_token: SecretStr | None = None

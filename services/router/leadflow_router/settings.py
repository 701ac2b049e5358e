"""The router's own settings."""

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    """`LEADFLOW_ROUTER_*` variables (and `LEADFLOW_ADMIN_TOKEN`)."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_ROUTER_", extra="ignore")

    port: int = 8002
    # Base URL the routing explanation is reachable at, for links in notifications.
    public_url: str = "http://127.0.0.1:8002"
    # Admin API tokens: `token`, or `name:token` pairs separated by commas (the name is
    # what the audit log records). Unset: the admin API is disabled (refused in production).
    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("LEADFLOW_ADMIN_TOKEN", "LEADFLOW_ROUTER_ADMIN_TOKEN"),
    )
    # Standard Webhooks secrets (whsec_...) for the CRM push and reps' webhooks.
    crm_webhook_secret: SecretStr | None = None
    rep_webhook_secret: SecretStr | None = None
    # How often queued leads are tried again (someone may have come on shift).
    queue_retry_s: float = Field(default=60.0, gt=0)
    # How often the pools are checked for leads nobody claimed in time.
    pool_check_s: float = Field(default=15.0, gt=0)

    def admin_tokens(self) -> dict[str, str]:
        """Token -> the name the audit log records for it."""
        if self.admin_token is None:
            return {}
        tokens: dict[str, str] = {}
        for item in self.admin_token.get_secret_value().split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, token = item.partition(":")
            tokens[token if sep else name] = name if sep else "admin"
        return tokens

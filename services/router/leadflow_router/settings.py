"""The router's own settings."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class RouterSettings(BaseSettings):
    """`LEADFLOW_ROUTER_*` variables (API tokens: leadflow.auth)."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_ROUTER_", extra="ignore")

    port: int = 8002
    # Base URL the routing explanation is reachable at, for links in notifications.
    public_url: str = "http://127.0.0.1:8002"
    # Standard Webhooks secret (whsec_...) of the CRM push; each rep's webhook has its own,
    # LEADFLOW_REP_<ID>_WEBHOOK_SECRET (leadflow.webhook_targets).
    crm_webhook_secret: SecretStr | None = None
    # How often queued leads are tried again (someone may have come on shift).
    queue_retry_s: float = Field(default=60.0, gt=0)
    # How often the pools are checked for leads nobody claimed in time.
    pool_check_s: float = Field(default=15.0, gt=0)

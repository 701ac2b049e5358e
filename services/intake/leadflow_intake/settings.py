"""The intake's own settings."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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

"""Typed settings: infrastructure from `LEADFLOW_*` variables, the product from a YAML file.

The YAML file (``LEADFLOW_CONFIG``, default ``config/example.yaml``) describes what the
product does: sources, scoring, teams, reps, routing rules and SLA policies. Environment
variables describe where it runs: broker, database, ports. Secrets are never written in
the YAML file; each source names the environment variable that holds its secret.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadflow.config import LeadflowConfig, load_config
from leadflow.keys import DEV_KEY_SECRET, LeadKeys, secret_problem
from leadflow.production import development_host_problem, weak_secret_problem
from leadflow.webhook_targets import target_problems, webhook_targets

DEFAULT_CONFIG_PATH = Path("config/example.yaml")
DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///var/leadflow.db"

# Development secrets of the example sources, documented in the README so that the
# five-minute tour works out of the box. Refused when LEADFLOW_ENV=production.
DEV_SECRETS = {
    "web": "whsec_bGVhZGZsb3ctZGV2LXdlYi1zZWNyZXQtMDAwMDAwMDA=",
    "crm": "whsec_bGVhZGZsb3ctZGV2LWNybS1zZWNyZXQtMDAwMDAwMDAw",
    "import": "whsec_bGVhZGZsb3ctZGV2LWltcG9ydC1zZWNyZXQtMDAwMA==",
    "hubspot": "leadflow-dev-hubspot-client-secret",
    "ivr": "leadflow-dev-twilio-auth-token",
    "callrail": "leadflow-dev-callrail-signing-key",
    "marketo": "leadflow-dev-marketo-shared-secret",
}


class ConfigError(ValueError):
    """The settings or the YAML configuration cannot be used; the message says why."""


class Settings(BaseSettings):
    """Where Leadflow runs: read from `LEADFLOW_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore")

    # Production unless said otherwise: only the local stack (`leadflow run`) and the
    # client commands run in development when LEADFLOW_ENV is not set (see get_settings).
    env: Literal["development", "production"] = "production"
    config: Path = DEFAULT_CONFIG_PATH
    database_url: str = DEFAULT_SQLITE_URL
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_idempotence: bool = False
    kafka_client_id: str = "leadflow"
    # Connecting to a managed cluster (MSK, Confluent Cloud): TLS and SASL for every client.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # Durability of the topics Leadflow creates: 3 and 2 on a real cluster, so that an
    # acknowledged event survives the loss of a broker (1 and unset for one local broker).
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int | None = Field(default=None, ge=1)
    topic_prefix: str = ""
    topic_partitions: int = Field(default=3, ge=1)
    consumer_batch_max: int = Field(default=200, ge=1)
    # Bulk-lane batches are smaller: a live lead that arrives while one is being applied
    # waits for that batch to end (see leadflow.lanes).
    consumer_bulk_batch_max: int = Field(default=50, ge=1)
    consumer_poll_ms: int = Field(default=200, ge=1)
    consumer_max_attempts: int = Field(default=3, ge=1)
    # How fast a group notices a dead member and rebalances (Kafka's usual defaults;
    # the one-machine stack lowers them so that a restarted service resumes quickly).
    consumer_session_timeout_ms: int = Field(default=10_000, ge=500)
    consumer_heartbeat_ms: int = Field(default=3_000, ge=100)
    consumer_rebalance_timeout_ms: int = Field(default=30_000, ge=500)
    # How long the broker may hold a fetch open waiting for data: a floor on each hop's latency.
    consumer_fetch_max_wait_ms: int = Field(default=50, ge=0)
    publish_timeout_s: float = Field(default=5.0, gt=0)
    # Bounds on waiting for PostgreSQL, so that a server that vanished without closing its
    # connections (a network partition) is noticed and retried instead of waited on forever.
    database_connect_timeout_s: float = Field(default=10.0, gt=0)
    database_statement_timeout_s: float = Field(default=60.0, gt=0)
    # The longest pause between two attempts while the database or the broker is away.
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    stop_timeout_s: float = Field(default=10.0, gt=0)
    # The outbox relay sweeps every `outbox_poll_s` for rows left unpublished for longer than
    # `outbox_grace_s` (by a process that died between its commit and its publish). Keep
    # the two well below the consumer session timeout, so that the leftovers of a dead
    # instance are out before its partitions (and the next events of its leads) move.
    outbox_poll_s: float = Field(default=0.5, gt=0)
    outbox_grace_s: float = Field(default=1.0, gt=0)
    sla_poll_s: float = Field(default=0.25, gt=0)
    host: str = "127.0.0.1"
    # Serve `/metrics` on this port of its own, without a token (keep the port where only
    # Prometheus reaches it). Unset: `/metrics` is on the API port, for a `metrics:read` token.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: str = "INFO"
    # Tracing (leadflow.tracing): one trace per lead, exported over OTLP/HTTP to
    # OTEL_EXPORTER_OTLP_ENDPOINT, with FastAPI's native OpenTelemetry on. Needs the `otel`
    # extra. Off by default: `/metrics` is the built-in telemetry, and the check per
    # request costs the intake about 5% of its throughput.
    otel: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "leadflow@localhost"
    smtp_starttls: bool = False
    smtp_tls: bool = False
    notify_timeout_s: float = Field(default=10.0, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_backoff_s: float = Field(default=1.0, gt=0)
    notify_backoff_max_s: float = Field(default=300.0, gt=0)
    notify_poll_s: float = Field(default=0.5, gt=0)
    # Retention (leadflow.retention), in days; 0 keeps forever. The inbox of processed
    # event ids only needs to outlive redeliveries (the topics' retention, 7 days by
    # default); sent or failed notifications and old touches hold personal data.
    retention_processed_events_days: float = Field(default=30.0, ge=0)
    retention_notifications_days: float = Field(default=90.0, ge=0)
    retention_touches_days: float = Field(default=365.0, ge=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    retention_batch: int = Field(default=1000, ge=1)
    # Lead keys are an HMAC of a person's email or phone under this secret (leadflow.keys);
    # during a rotation, the secrets it replaced (separated by whitespace) still find the
    # people known before, as do the unsalted keys of releases before key secrets.
    key_secret: SecretStr | None = None
    key_secret_previous: SecretStr | None = None
    key_previous_unsalted: bool = False

    @model_validator(mode="after")
    def _kafka_options_fit_together(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"LEADFLOW_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}: set "
                "LEADFLOW_KAFKA_SASL_USERNAME and LEADFLOW_KAFKA_SASL_PASSWORD too."
            )
        if (
            self.kafka_min_insync_replicas is not None
            and self.kafka_min_insync_replicas > self.kafka_replication_factor
        ):
            raise ValueError(
                "LEADFLOW_KAFKA_MIN_INSYNC_REPLICAS is larger than "
                "LEADFLOW_KAFKA_REPLICATION_FACTOR: no write could ever be acknowledged."
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError(
                "LEADFLOW_KAFKA_SSL_CERTFILE and LEADFLOW_KAFKA_SSL_KEYFILE go together "
                "(a client certificate needs its key)."
            )
        if (self.outbox_poll_s + self.outbox_grace_s) * 1000 >= self.consumer_session_timeout_ms:
            raise ValueError(
                "LEADFLOW_OUTBOX_POLL_S + LEADFLOW_OUTBOX_GRACE_S must stay below "
                "LEADFLOW_CONSUMER_SESSION_TIMEOUT_MS: a dead instance's unpublished events "
                "must be out before its partitions move, or a person's events could reorder."
            )
        return self

    @model_validator(mode="after")
    def _production_needs_real_infrastructure(self) -> Settings:
        if self.env == "production" and self.database_url.startswith("sqlite"):
            raise ValueError(
                "LEADFLOW_DATABASE_URL points at SQLite; production needs PostgreSQL "
                "(postgresql+asyncpg://...). Services run in production unless "
                "LEADFLOW_ENV=development; `leadflow run` sets it for the local stack."
            )
        return self

    @cached_property
    def app(self) -> LeadflowConfig:
        """The product configuration read from the YAML file."""
        return load_config(self.config)

    def topic(self, name: str) -> str:
        """The full Kafka topic name for a logical topic such as `leads.received`."""
        return f"{self.topic_prefix}{name}"

    def source_secrets(self, source: str) -> list[str]:
        """The secrets that currently authenticate `source` (several during a rotation).

        `LEADFLOW_SOURCE_<NAME>_SECRET` holds one secret, or several separated by
        whitespace (spaces or newlines) while a rotation is under way. A comma is part of a
        secret: a shared secret with a comma in it stays one secret.
        """
        var = secret_env_var(source)
        raw = os.environ.get(var, "").split()
        if raw:
            return raw
        if self.env != "production" and source in DEV_SECRETS:
            return [DEV_SECRETS[source]]
        return []

    def lead_keys(self) -> LeadKeys:
        """How this deployment derives lead keys (the development secret outside production);
        raises ConfigError when production has no usable secret."""
        if problem := self._key_secret_problem():
            raise ConfigError(problem)
        secret = self.key_secret.get_secret_value() if self.key_secret else DEV_KEY_SECRET
        previous = self.key_secret_previous.get_secret_value() if self.key_secret_previous else ""
        return LeadKeys(
            secret,
            previous.split(),
            previous_unsalted=self.key_previous_unsalted,
        )

    def _key_secret_problem(self) -> str | None:
        if self.env != "production":
            return None
        return secret_problem(self.key_secret.get_secret_value() if self.key_secret else None)

    def check(self, service: str | None = None) -> list[str]:
        """Problems that stop this deployment (or one `service` of it) from running; empty
        when it can run. Production's refusals are listed in leadflow.production."""
        problems: list[str] = []
        if problem := development_host_problem(self.env, self.host):
            problems.append(problem)
        if problem := self._key_secret_problem():
            problems.append(problem)
        for name in self.app.sources:
            secrets = self.source_secrets(name)
            if not secrets:
                problems.append(
                    f"source {name!r} has no secret: set {secret_env_var(name)} "
                    "to the secret the sender signs with."
                )
            elif self.env == "production" and any(s in DEV_SECRETS.values() for s in secrets):
                problems.append(
                    f"source {name!r} uses the documented development secret; "
                    f"set {secret_env_var(name)} to a real one in production."
                )
            elif self.env == "production":
                problems += [
                    f"source {name!r}: {weak}"
                    for secret in secrets
                    if (weak := weak_secret_problem(secret_env_var(name), secret)) is not None
                ]
        problems += target_problems(webhook_targets(self.app, service), self.env)
        return problems


def secret_env_var(source: str) -> str:
    """The environment variable that holds a source's secret."""
    return f"LEADFLOW_SOURCE_{source.upper().replace('-', '_')}_SECRET"


def get_settings(*, client: bool = False) -> Settings:
    """Settings from the environment; raises ConfigError with a readable message.

    A service runs in production unless LEADFLOW_ENV says otherwise. A `client` command
    (sending webhooks, reports, migrations, watching topics) serves nothing to the network:
    without LEADFLOW_ENV it takes development's defaults, so that it works against the
    local stack as it is.
    """
    try:
        settings = Settings(env="development") if client and not _env_given() else Settings()
        _ = settings.app
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(validation_message(exc)) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return settings


def _env_given() -> bool:
    return bool(os.environ.get("LEADFLOW_ENV", "").strip())


def validation_message(exc: ValidationError) -> str:
    """The errors of Settings as sentences, each naming its variable."""
    return " ".join(
        f"LEADFLOW_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}."
        if err["loc"]
        else str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    )

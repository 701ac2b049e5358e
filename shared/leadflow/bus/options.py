"""How every Kafka client of Leadflow connects: bootstrap, TLS and SASL from the settings.

One place builds the connection options that the producer, the consumers, the admin
client and the command-line tools pass to aiokafka, so a cluster that needs TLS or SASL
(Amazon MSK, Confluent Cloud, Redpanda Cloud) is configured once, by `LEADFLOW_KAFKA_*`
variables, for all of them.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from leadflow.settings import Settings


def connection_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments that connect an aiokafka client to the configured cluster."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS context that verifies the brokers (the system's CAs unless a CA file is set)."""
    certfile = str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None
    keyfile = str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=certfile,
        keyfile=keyfile,
    )
    if settings.kafka_ssl_cafile is None:
        context.load_default_certs()
    return context


def topic_configs(settings: Settings) -> dict[str, str]:
    """Topic-level settings given to every topic Leadflow creates."""
    configs: dict[str, str] = {}
    if settings.kafka_min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
    return configs

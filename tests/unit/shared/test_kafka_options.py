"""Kafka connection options for managed clusters: TLS and SASL, from the settings."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from leadflow.bus.options import connection_options, topic_configs
from leadflow.settings import Settings


def test_plaintext_is_the_default_and_carries_no_credentials() -> None:
    options = connection_options(Settings(kafka_bootstrap="a:9092,b:9092"))
    assert options == {"bootstrap_servers": "a:9092,b:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_over_tls_with_scram_for_msk() -> None:
    settings = Settings(
        kafka_bootstrap="b-1.example:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="leadflow",
        kafka_sasl_password="s3cret",
    )
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "leadflow",
        "s3cret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


def test_sasl_without_credentials_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValidationError, match="LEADFLOW_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN")


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="no write could ever be acknowledged"):
        Settings(kafka_replication_factor=1, kafka_min_insync_replicas=2)
    assert topic_configs(Settings()) == {}
    settings = Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2)
    assert topic_configs(settings) == {"min.insync.replicas": "2"}


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_certfile="client.pem")

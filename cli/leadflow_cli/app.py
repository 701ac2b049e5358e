"""The `leadflow` command: run services or the whole stack, migrate, check config, send webhooks.

How every command fails (one sentence, exit 1 or 2) is `leadflow_cli.failures`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Protocol

import httpx
import typer
from fastapi import FastAPI
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from leadflow import __version__
from leadflow.config import ConfigFileError, LeadflowConfig, line_of, load_config
from leadflow.production import api_problem
from leadflow.reachability import unreachable_rules
from leadflow.settings import ConfigError, Settings, get_settings
from leadflow_cli.failures import (
    CONFIG_EXIT,
    console,
    fail,
    reaching_broker,
    reaching_database,
    reaching_service,
    require_listening,
    say,
    server_address,
)
from leadflow_cli.imports import import_leads
from leadflow_cli.people import people_app
from leadflow_cli.reports import demo, report_app
from leadflow_cli.tokens import tokens_app

# An unexpected error still shows its traceback, but never the frames' variables: they
# hold settings, secrets and leads' data, and made a traceback hundreds of lines long.
app = typer.Typer(
    help="Leadflow: real-time B2B lead intake, scoring, routing and SLAs.",
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database migrations.")
config_app = typer.Typer(help="Configuration.")
webhook_app = typer.Typer(help="Send signed webhooks (for trying Leadflow out).")
events_app = typer.Typer(help="Watch the event topics.")
dlq_app = typer.Typer(help="The dead-letter topic.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(webhook_app, name="webhook")
app.add_typer(events_app, name="events")
app.add_typer(dlq_app, name="dlq")
app.add_typer(report_app, name="report")
app.add_typer(tokens_app, name="tokens")
app.add_typer(people_app, name="people")
app.command("demo")(demo)
app.command("import")(import_leads)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"leadflow {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Leadflow: real-time B2B lead intake, scoring, routing and SLAs."""


def _settings(*, client: bool = False) -> Settings:
    """The settings of a service, or of a `client` command (development unless told)."""
    try:
        return get_settings(client=client)
    except (ConfigError, ConfigFileError) as exc:
        fail("Configuration error", exc)


def _serve(
    name: str,
    create_app: Callable[[Settings], FastAPI],
    service_settings: Callable[[], _ServiceSettings],
    port: int | None,
) -> None:
    from leadflow import tracing
    from leadflow.logs import configure_logging
    from leadflow.runtime import serve

    settings = _settings()
    problems = settings.check(name)
    if problems:
        # One line each, however narrow the terminal: they end up in a service's log.
        for problem in problems:
            say("error", problem)
        raise typer.Exit(CONFIG_EXIT)
    configure_logging(name, settings.log_level)
    tracing.configure(name, settings)
    try:
        port = port or service_settings().port
        app = create_app(settings)
    except ValidationError as exc:  # the service's own LEADFLOW_<SERVICE>_* settings
        prefix = getattr(service_settings, "model_config", {}).get("env_prefix", "")
        fail("Configuration error", _fields(exc, prefix))
    except ConfigError as exc:
        fail("error", exc)
    if refusal := api_problem(app, settings.env):
        fail("error", refusal)
    serve(app, settings, port)


class _ServiceSettings(Protocol):
    port: int


def _fields(exc: ValidationError, prefix: str) -> str:
    """Settings' validation errors on one line, by variable: `PREFIX_FIELD: what is wrong`."""
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in error['loc'])}".upper() + f": {error['msg']}."
        for error in exc.errors()
    )


PortOption = Annotated[int | None, typer.Option(help="Port to listen on (default: per service).")]


@app.command()
def intake(port: PortOption = None) -> None:
    """Run the intake service (HTTP webhooks -> lead events)."""
    from leadflow_intake.app import create_app
    from leadflow_intake.settings import IntakeSettings

    _serve("intake", create_app, IntakeSettings, port)


@app.command()
def scoring(port: PortOption = None) -> None:
    """Run the scoring consumer."""
    from leadflow_scoring.app import create_app
    from leadflow_scoring.settings import ScoringSettings

    _serve("scoring", create_app, ScoringSettings, port)


@app.command()
def router(port: PortOption = None) -> None:
    """Run the router consumer."""
    from leadflow_router.app import create_app
    from leadflow_router.settings import RouterSettings

    _serve("router", create_app, RouterSettings, port)


@app.command("sla-monitor")
def sla_monitor(port: PortOption = None) -> None:
    """Run the SLA monitor."""
    from leadflow_sla.app import create_app
    from leadflow_sla.settings import SlaSettings

    _serve("sla-monitor", create_app, SlaSettings, port)


@app.command()
def run(var: Annotated[Path, typer.Option(help="Folder for logs.")] = Path("var")) -> None:
    """Run everything here, in development unless LEADFLOW_ENV says otherwise, on loopback:
    a local broker (unless LEADFLOW_KAFKA_BOOTSTRAP is set) and the four services."""
    from leadflow.stack import development_unless_told, run_stack

    development_unless_told()
    settings = _settings(client=True)
    # The services wait for what is away; said here, it is one sentence, not a timeout.
    if database := server_address(settings.database_url):
        require_listening("the database", database, "LEADFLOW_DATABASE_URL")
    if "LEADFLOW_KAFKA_BOOTSTRAP" in os.environ:
        require_listening("the Kafka broker", settings.kafka_bootstrap, "LEADFLOW_KAFKA_BOOTSTRAP")
    raise typer.Exit(run_stack(settings, var, Console()))


@app.command()
def broker(port: Annotated[int, typer.Option(help="Port to listen on.")] = 9092) -> None:
    """Run only the local in-memory Kafka-protocol broker, until Ctrl-C."""
    from leadflow.broker import start_broker

    process = start_broker(port)
    console.print(f"broker listening on 127.0.0.1:{port}; Ctrl-C stops it.", markup=False)
    # SIGTERM must stop the broker too, not leave it running on its own.
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Create or migrate the database tables (LEADFLOW_DATABASE_URL)."""
    from leadflow.db.migrate import upgrade

    settings = _settings(client=True)
    with reaching_database(settings.database_url):
        upgrade(settings.database_url, revision)
    console.print(f"database is at revision {escape(revision)}.")


@config_app.command("check")
def config_check(
    path: Annotated[
        Path | None, typer.Argument(help="YAML file (default: LEADFLOW_CONFIG).")
    ] = None,
) -> None:
    """Validate a configuration file and the secrets it needs; errors point at the line.

    Development's rules unless LEADFLOW_ENV says otherwise: LEADFLOW_ENV=production checks
    what a production service would refuse."""
    if path is not None:
        os.environ["LEADFLOW_CONFIG"] = str(path)
    try:
        settings = (
            Settings()
            if os.environ.get("LEADFLOW_ENV", "").strip()
            else Settings(env="development")
        )
        config = load_config(settings.config)
    except ConfigFileError as exc:
        for problem in exc.problems:
            say(str(exc.path), problem)
        raise typer.Exit(1) from exc
    except ValueError as exc:
        fail("error", exc, 1)
    problems = settings.check()
    for problem in problems:
        say("error", problem)
    if problems:
        raise typer.Exit(1)
    console.print(
        escape(
            f"{settings.config}: OK — {len(config.sources)} sources, {len(config.teams)} teams, "
            f"{len(config.reps)} reps, {len(config.routing.rules)} routing rules, "
            f"{len(config.sla.policies)} SLA policies ({settings.env} rules)."
        )
    )
    # Rules that load but can never fire: the configuration runs, so these do not fail it.
    for warning in unreachable_rules(config):
        line = line_of(settings.config, warning.loc)
        where = ".".join(str(part) for part in warning.loc)
        at = f"line {line}: {where}" if line else where
        say("warning", f"{at}: {warning.message}", "yellow")


@config_app.command("schema")
def config_schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to a file (default: stdout).")
    ] = None,
) -> None:
    """Print the JSON Schema of the configuration file (for editors and CI): every file
    `leadflow config check` accepts validates against it."""
    import orjson

    schema = LeadflowConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Leadflow configuration"
    text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    if output is None:
        typer.echo(text.decode())
    else:
        output.write_bytes(text + b"\n")
        console.print(f"wrote {escape(str(output))}")


def _load_or_exit(path: Path) -> LeadflowConfig:
    try:
        return load_config(path)
    except ConfigFileError as exc:
        for problem in exc.problems:
            say(str(exc.path), problem)
        raise typer.Exit(1) from exc


@app.command()
def simulate(
    history: Annotated[
        Path, typer.Argument(help="JSON lines: lead.received events or webhook bodies.")
    ],
    config: Annotated[Path, typer.Option("--config", help="The candidate configuration.")],
    current: Annotated[
        Path | None,
        typer.Option(help="The configuration to compare with (default: LEADFLOW_CONFIG)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report as JSON here.")
    ] = None,
    show: Annotated[int, typer.Option(help="How many changed leads to list.")] = 20,
) -> None:
    """Replay leads through scoring and routing under a candidate config; report what changes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from leadflow_cli import simulate as sim

    candidate_config = _load_or_exit(config)
    settings = _settings(client=True)
    current_config = _load_or_exit(current or settings.config)
    try:
        keys = settings.lead_keys()
    except ConfigError as exc:
        fail("error", exc, 1)
    try:
        leads = sim.read_history(history, keys)
    except (OSError, sim.HistoryError) as exc:
        fail("error", exc, 1)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        outcomes = []
        for name, cfg in (("current", current_config), ("candidate", candidate_config)):
            task = progress.add_task(f"{name:9} {cfg.scoring.version}", total=len(leads))
            outcomes.append(sim.replay(cfg, keys, leads, functools.partial(progress.advance, task)))
    report = sim.compare(outcomes[0], outcomes[1], len(leads))
    # Values are configuration and data, not markup: tables and lines print them as written.
    out = Console(markup=False, highlight=False)
    out.print(f"{report.events} events, {report.leads} people")
    for title, counts in (("tier", report.tiers), ("grade", report.grades)):
        table = Table(title=f"by {title}")
        table.add_column(title)
        table.add_column("current", justify="right")
        table.add_column("candidate", justify="right")
        table.add_column("change", justify="right")
        for value in sorted(set(counts["current"]) | set(counts["candidate"])):
            a, b = counts["current"].get(value, 0), counts["candidate"].get(value, 0)
            table.add_row(value, str(a), str(b), f"{b - a:+d}" if a != b else "")
        out.print(table)
    if report.tier_moves:
        out.print("tier moves: " + ", ".join(f"{k}: {v}" for k, v in report.tier_moves.items()))
    table = Table(
        title=f"{len(report.changed)} leads change (first {min(show, len(report.changed))})"
    )
    for column in ("lead", "tier", "grade", "assignment"):
        table.add_column(column)
    for change in report.changed[:show]:
        a, b = change["current"], change["candidate"]
        table.add_row(
            change["lead_key"],
            _arrow(a["tier"], b["tier"]),
            _arrow(a["grade"], b["grade"]),
            _arrow(_assignee(a), _assignee(b)),
        )
    out.print(table)
    if json_out is not None:
        json_out.write_bytes(report.as_json())
        console.print(f"wrote {escape(str(json_out))}")


def _arrow(a: str, b: str) -> str:
    return a if a == b else f"{a} -> {b}"


def _assignee(outcome: dict[str, Any]) -> str:
    if outcome["team"] is None:
        return "-"
    return f"{outcome['team']}/{outcome['rep'] or 'queued'}"


@webhook_app.command("send")
def webhook_send(
    body_file: Annotated[
        Path,
        typer.Argument(
            help="Body to send ('-' for stdin): JSON, or for a twilio source its form fields "
            "as one JSON object."
        ),
    ],
    source: Annotated[
        str, typer.Option(help="Source name; its kind decides how the body is signed.")
    ] = "web",
    url: Annotated[str, typer.Option(help="Intake base URL.")] = "http://127.0.0.1:8000",
    delivery_id: Annotated[
        str | None, typer.Option(help="webhook-id of a standard source (default: new).")
    ] = None,
    query: Annotated[
        str, typer.Option(help="Query string of the URL, e.g. question=budget (twilio).")
    ] = "",
) -> None:
    """Sign a body as the source's sender does (its kind's scheme) and POST it to the intake."""
    from leadflow.senders import RequestBodyError, signed_request

    settings = _settings(client=True)
    config = settings.app.sources.get(source)
    if config is None:
        known = ", ".join(sorted(settings.app.sources))
        fail("error", f"no source named {source!r}; the sources are: {known}.")
    secrets = settings.source_secrets(source)
    if not secrets:
        fail("error", f"no secret for source {source!r}.")
    body = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()
    try:
        request = signed_request(
            source,
            config,
            secrets[0],
            url,
            body,
            now=time.time(),
            delivery_id=delivery_id,
            query=query,
        )
    except RequestBodyError as exc:
        fail("error", exc)
    with reaching_service("intake", url):
        response = httpx.post(
            request.url, content=request.body, headers=request.headers, timeout=10
        )
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 400:
        raise typer.Exit(1)


@events_app.command("tail")
def events_tail(
    topics: Annotated[list[str], typer.Argument(help="Topics, e.g. leads.assigned leads.alerts.")],
    beginning: Annotated[bool, typer.Option(help="Start from the oldest event.")] = True,
) -> None:
    """Print the events of some topics as JSON lines, until Ctrl-C."""
    from leadflow.bus.kafka import tail

    settings = _settings(client=True)
    with contextlib.suppress(KeyboardInterrupt), reaching_broker(settings.kafka_bootstrap):
        asyncio.run(tail(settings, [settings.topic(t) for t in topics], beginning, typer.echo))


@events_app.command("asyncapi")
def events_asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of the topics, generated from the event models
    (checked in as docs/asyncapi.yaml)."""
    from leadflow_cli.asyncapi import render

    sys.stdout.write(render())


@dlq_app.command("replay")
def dlq_replay(
    consumer: Annotated[
        str | None, typer.Option(help="Only records dead-lettered by this consumer group.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Replay at most this many.")] = None,
) -> None:
    """Republish dead-lettered records to their original topics (after fixing the cause)."""
    from leadflow.bus.kafka import replay_dead_letters

    settings = _settings(client=True)
    with reaching_broker(settings.kafka_bootstrap):
        count = asyncio.run(replay_dead_letters(settings, consumer=consumer, limit=limit))
    console.print(f"replayed {count} record(s) from {escape(settings.topic('leads.dlq'))}.")


def main() -> None:
    """Entry point of the `leadflow` command."""
    app()

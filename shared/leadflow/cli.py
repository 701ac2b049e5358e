"""The `leadflow` command: run services or the whole stack, migrate, check config, send webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console

from leadflow.config import ConfigFileError, load_config
from leadflow.settings import ConfigError, Settings, get_settings

app = typer.Typer(help="Leadflow: real-time B2B lead intake, scoring, routing and SLAs.")
db_app = typer.Typer(help="Database migrations.")
config_app = typer.Typer(help="Configuration.")
webhook_app = typer.Typer(help="Send signed webhooks (for trying Leadflow out).")
events_app = typer.Typer(help="Watch the event topics.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(webhook_app, name="webhook")
app.add_typer(events_app, name="events")
report_app = typer.Typer(help="Closed-loop reports: funnel, speed to lead, reasons, ROI.")
app.add_typer(report_app, name="report")

console = Console(stderr=True)

# The services are looked up by module name: the common library never imports them.
_SERVICE_APPS = {
    "intake": ("leadflow_intake.app", "leadflow_intake.settings", "IntakeSettings"),
    "scoring": ("leadflow_scoring.app", "leadflow_scoring.settings", "ScoringSettings"),
    "router": ("leadflow_router.app", "leadflow_router.settings", "RouterSettings"),
    "sla-monitor": ("leadflow_sla.app", "leadflow_sla.settings", "SlaSettings"),
}


def _settings() -> Settings:
    try:
        return get_settings()
    except (ConfigError, ConfigFileError) as exc:
        console.print(f"[red]Configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _serve(name: str, port: int | None) -> None:
    from leadflow.logs import configure_logging
    from leadflow.runtime import serve

    settings = _settings()
    problems = settings.check()
    if problems:
        for problem in problems:
            console.print(f"[red]error:[/red] {problem}")
        raise typer.Exit(2)
    configure_logging(name, settings.log_level)
    app_module, settings_module, settings_class = _SERVICE_APPS[name]
    service_settings: Any = getattr(importlib.import_module(settings_module), settings_class)()
    create_app = importlib.import_module(app_module).create_app
    serve(create_app(settings), settings, port or service_settings.port)


PortOption = Annotated[int | None, typer.Option(help="Port to listen on (default: per service).")]


@app.command()
def intake(port: PortOption = None) -> None:
    """Run the intake service (HTTP webhooks -> lead events)."""
    _serve("intake", port)


@app.command()
def scoring(port: PortOption = None) -> None:
    """Run the scoring consumer."""
    _serve("scoring", port)


@app.command()
def router(port: PortOption = None) -> None:
    """Run the router consumer."""
    _serve("router", port)


@app.command("sla-monitor")
def sla_monitor(port: PortOption = None) -> None:
    """Run the SLA monitor."""
    _serve("sla-monitor", port)


@app.command()
def run(var: Annotated[Path, typer.Option(help="Folder for logs.")] = Path("var")) -> None:
    """Run everything here: a local broker (unless LEADFLOW_KAFKA_BOOTSTRAP is set) and services."""
    from leadflow.stack import run_stack

    settings = _settings()
    raise typer.Exit(run_stack(settings, var, Console()))


@app.command()
def broker(port: Annotated[int, typer.Option(help="Port to listen on.")] = 9092) -> None:
    """Run only the local in-memory Kafka-protocol broker, until Ctrl-C."""
    from leadflow.broker import start_broker

    process = start_broker(port)
    console.print(f"broker listening on 127.0.0.1:{port}; Ctrl-C stops it.")
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

    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"database is at revision {revision}.")


@config_app.command("check")
def config_check(
    path: Annotated[
        Path | None, typer.Argument(help="YAML file (default: LEADFLOW_CONFIG).")
    ] = None,
) -> None:
    """Validate a configuration file and the secrets it needs; errors point at the line."""
    if path is not None:
        os.environ["LEADFLOW_CONFIG"] = str(path)
    try:
        settings = Settings()
        config = load_config(settings.config)
    except ConfigFileError as exc:
        for problem in exc.problems:
            console.print(f"[red]{exc.path}:[/red] {problem}")
        raise typer.Exit(1) from exc
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    problems = settings.check()
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}")
    if problems:
        raise typer.Exit(1)
    console.print(
        f"{settings.config}: OK — {len(config.sources)} sources, {len(config.teams)} teams, "
        f"{len(config.reps)} reps, {len(config.routing.rules)} routing rules, "
        f"{len(config.sla.policies)} SLA policies."
    )


@webhook_app.command("send")
def webhook_send(
    body_file: Annotated[Path, typer.Argument(help="JSON body to send ('-' for stdin).")],
    source: Annotated[str, typer.Option(help="Source name (must be of kind standard).")] = "web",
    url: Annotated[str, typer.Option(help="Intake base URL.")] = "http://127.0.0.1:8000",
    delivery_id: Annotated[str | None, typer.Option(help="webhook-id (default: new).")] = None,
) -> None:
    """Sign a body with the source's secret (Standard Webhooks) and POST it to the intake."""
    from leadflow.webhooks import sign

    settings = _settings()
    secrets = settings.source_secrets(source)
    if not secrets:
        console.print(f"[red]error:[/red] no secret for source {source!r}.")
        raise typer.Exit(2)
    body = sys.stdin.buffer.read() if str(body_file) == "-" else body_file.read_bytes()
    msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    response = httpx.post(
        f"{url}/v1/webhooks/{source}",
        content=body,
        headers={
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets[0], msg_id, timestamp, body),
        },
        timeout=10,
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

    settings = _settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail(settings, [settings.topic(t) for t in topics], beginning, typer.echo))


# Reports are computed by the SLA monitor's reporting package, looked up by module name.
_REPORTS_MODULE = "leadflow_sla.reporting.commands"

FromOption = Annotated[
    str | None,
    typer.Option("--from", help="First day (2026-11-01) or ISO time; UTC. Default: the start."),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="Last day, included (or an ISO time, excluded). Default: now."),
]
SourceOption = Annotated[str | None, typer.Option(help="Only leads from this source.")]
CampaignOption = Annotated[str | None, typer.Option(help="Only leads of this campaign.")]
SegmentOption = Annotated[str | None, typer.Option(help="Only leads of this segment.")]
TeamOption = Annotated[str | None, typer.Option(help="Only leads owned by this team.")]
RepOption = Annotated[str | None, typer.Option(help="Only leads owned by this rep.")]
TouchOption = Annotated[
    Literal["first", "last"],
    typer.Option(help="Attribute source, campaign and segment to the first or last touch."),
]
FormatOption = Annotated[
    Literal["table", "csv", "json"], typer.Option("--format", help="Output format.")
]


def _report(kind: str, fmt: str, **options: Any) -> None:
    settings = _settings()
    commands = importlib.import_module(_REPORTS_MODULE)
    try:
        output = commands.report(kind, settings, fmt, **options)
    except commands.ReportError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    typer.echo(output, nl=False)


@report_app.command("funnel")
def report_funnel(
    start: FromOption = None,
    end: ToOption = None,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    segment: SegmentOption = None,
    team: TeamOption = None,
    rep: RepOption = None,
    touch: TouchOption = "first",
    by: Annotated[
        Literal["source", "campaign", "segment", "team", "rep"],
        typer.Option(help="Break conversion and revenue down by this."),
    ] = "source",
    fmt: FormatOption = "table",
) -> None:
    """Funnel stages with conversion and leakage, MQL→SQL, conversion and revenue per group."""
    _report(
        "funnel",
        fmt,
        start=start,
        end=end,
        source=source,
        campaign=campaign,
        segment=segment,
        team=team,
        rep=rep,
        touch=touch,
        by=by,
    )


@report_app.command("speed")
def report_speed(
    start: FromOption = None,
    end: ToOption = None,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    segment: SegmentOption = None,
    team: TeamOption = None,
    rep: RepOption = None,
    touch: TouchOption = "first",
    fmt: FormatOption = "table",
) -> None:
    """Speed to lead (median, p90, <5 min … never), hand-off to first contact, per rep."""
    _report(
        "speed",
        fmt,
        start=start,
        end=end,
        source=source,
        campaign=campaign,
        segment=segment,
        team=team,
        rep=rep,
        touch=touch,
    )


@report_app.command("reasons")
def report_reasons(
    start: FromOption = None,
    end: ToOption = None,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    segment: SegmentOption = None,
    team: TeamOption = None,
    rep: RepOption = None,
    touch: TouchOption = "first",
    fmt: FormatOption = "table",
) -> None:
    """Rejection (screening) reasons ranked, and why deals were lost."""
    _report(
        "reasons",
        fmt,
        start=start,
        end=end,
        source=source,
        campaign=campaign,
        segment=segment,
        team=team,
        rep=rep,
        touch=touch,
    )


@report_app.command("roi")
def report_roi(
    start: FromOption = None,
    end: ToOption = None,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    segment: SegmentOption = None,
    team: TeamOption = None,
    rep: RepOption = None,
    touch: TouchOption = "first",
    by: Annotated[
        Literal["segment", "campaign"], typer.Option(help="One row per segment or campaign.")
    ] = "segment",
    fmt: FormatOption = "table",
) -> None:
    """Maximum cost per lead per segment or campaign, flagged where leads cost more."""
    _report(
        "roi",
        fmt,
        start=start,
        end=end,
        source=source,
        campaign=campaign,
        segment=segment,
        team=team,
        rep=rep,
        touch=touch,
        by=by,
    )


@app.command()
def demo(
    url: Annotated[str, typer.Option(help="Intake base URL.")] = "http://127.0.0.1:8000",
    reports_url: Annotated[
        str, typer.Option(help="SLA monitor base URL (to see which leads were assigned).")
    ] = "http://127.0.0.1:8003",
    rate: Annotated[float, typer.Option(min=0.1, max=100, help="New leads per second.")] = 1.0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds to send new leads for.")] = 180,
    seed: Annotated[int | None, typer.Option(help="Random seed, for a repeatable mix.")] = None,
) -> None:
    """Post a realistic mix of signed leads and CRM outcomes to a running Leadflow."""
    from leadflow.demo import DemoError, run_demo

    settings = _settings()
    web, crm = settings.source_secrets("web"), settings.source_secrets("crm")
    if not web or not crm:
        console.print("[red]error:[/red] the demo needs secrets for the web and crm sources.")
        raise typer.Exit(2)
    try:
        summary = asyncio.run(
            run_demo(
                intake_url=url,
                reports_url=reports_url,
                web_secret=web[0],
                crm_secret=crm[0],
                rate=rate,
                duration_s=duration,
                seed=seed,
                progress=lambda line: console.print(line),
            )
        )
    except DemoError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(summary)


def main() -> None:
    """Entry point of the `leadflow` command."""
    app()

"""`leadflow report …` (closed-loop reports) and `leadflow demo` (traffic to try them on)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from leadflow.auth import CLIENT_TOKEN_ENV, client_token
from leadflow.config import ConfigFileError
from leadflow.settings import ConfigError, Settings, get_settings
from leadflow_cli.failures import UNREACHABLE_EXIT, console, fail, reaching_database
from leadflow_sla.reporting import commands
from leadflow_sla.reporting.render import Format, Kind

report_app = typer.Typer(
    help="Closed-loop reports: funnel, speed to lead, reasons, ROI, tier shares."
)


def _settings() -> Settings:
    try:
        return get_settings(client=True)
    except (ConfigError, ConfigFileError) as exc:
        fail("Configuration error", exc)


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
    Literal["table", "csv", "json"],
    typer.Option("--format", help="Output format; csv prints one table (see --table)."),
]
CsvTableOption = Annotated[
    str | None,
    typer.Option(
        "--table",
        help="With --format csv: which table, `summary` or a section (default: the first "
        "section; an unknown name lists them).",
    ),
]
CsvDirOption = Annotated[
    Path | None,
    typer.Option(
        "--csv-dir",
        help="Write every table as its own CSV file, DIR/<report>-<table>.csv, instead.",
        file_okay=False,
    ),
]


def _report(
    kind: Kind, fmt: Format, table: str | None, csv_dir: Path | None, **options: Any
) -> None:
    settings = _settings()
    try:
        with reaching_database(settings.database_url):
            if csv_dir is not None:
                for path in commands.write_csv(kind, settings, csv_dir, **options):
                    typer.echo(path)
                return
            output = commands.report(kind, settings, fmt, table, **options)
    except commands.ReportError as exc:
        fail("error", exc)
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
    table: CsvTableOption = None,
    csv_dir: CsvDirOption = None,
) -> None:
    """Funnel stages with conversion and leakage, MQL→SQL, conversion and revenue per group."""
    _report(
        "funnel",
        fmt,
        table,
        csv_dir,
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
    table: CsvTableOption = None,
    csv_dir: CsvDirOption = None,
) -> None:
    """Speed to lead (median, p90, <5 min … never), hand-off to first contact, per rep."""
    _report(
        "speed",
        fmt,
        table,
        csv_dir,
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
    table: CsvTableOption = None,
    csv_dir: CsvDirOption = None,
) -> None:
    """Rejection (screening) reasons ranked, and why deals were lost."""
    _report(
        "reasons",
        fmt,
        table,
        csv_dir,
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
    table: CsvTableOption = None,
    csv_dir: CsvDirOption = None,
) -> None:
    """Maximum cost per lead per segment or campaign, flagged where leads cost more."""
    _report(
        "roi",
        fmt,
        table,
        csv_dir,
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


@report_app.command("tiers")
def report_tiers(
    start: FromOption = None,
    end: ToOption = None,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    segment: SegmentOption = None,
    team: TeamOption = None,
    rep: RepOption = None,
    touch: TouchOption = "first",
    period: Annotated[
        Literal["day", "week", "month"], typer.Option(help="One group per day, week or month.")
    ] = "week",
    by: Annotated[
        Literal["all", "source", "campaign"],
        typer.Option(help="Split each period by source or campaign."),
    ] = "all",
    fmt: FormatOption = "table",
    table: CsvTableOption = None,
    csv_dir: CsvDirOption = None,
) -> None:
    """Each tier's share of the leads per period, source or campaign, against
    reporting.tier_targets; shares off target by more than the tolerance are flagged."""
    _report(
        "tiers",
        fmt,
        table,
        csv_dir,
        start=start,
        end=end,
        source=source,
        campaign=campaign,
        segment=segment,
        team=team,
        rep=rep,
        touch=touch,
        by=by,
        period=period,
    )


def demo(
    url: Annotated[str, typer.Option(help="Intake base URL.")] = "http://127.0.0.1:8000",
    reports_url: Annotated[
        str, typer.Option(help="SLA monitor base URL (to see which leads were assigned).")
    ] = "http://127.0.0.1:8003",
    rate: Annotated[float, typer.Option(min=0.1, max=100, help="New leads per second.")] = 1.0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds to send new leads for.")] = 180,
    seed: Annotated[int | None, typer.Option(help="Random seed, for a repeatable mix.")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=CLIENT_TOKEN_ENV,
            help="API token with reports:read (default in development: the local stack's).",
        ),
    ] = None,
) -> None:
    """Post a realistic mix of signed leads and CRM outcomes to a running Leadflow: forms
    through `web`, calls through the first twilio and callrail sources configured."""
    from leadflow.demo import DemoError, DemoSource, run_demo

    settings = _settings()
    sources = settings.app.sources
    usable = {
        name: DemoSource(name, config, secrets[0])
        for name, config in sources.items()
        if (secrets := settings.source_secrets(name))
    }
    web, crm = usable.get("web"), usable.get("crm")
    if web is None or crm is None or {web.config.kind, crm.config.kind} != {"standard"}:
        fail("error", "the demo needs sources web and crm of kind standard, with secrets.")
    calls = [
        next(s for s in usable.values() if s.config.kind == kind)
        for kind in ("twilio", "callrail")
        if any(s.config.kind == kind for s in usable.values())
    ]
    try:
        summary = asyncio.run(
            run_demo(
                intake_url=url,
                reports_url=reports_url,
                token=client_token(settings.env, token),
                web=web,
                crm=crm,
                calls=calls,
                rate=rate,
                duration_s=duration,
                seed=seed,
                progress=lambda line: console.print(line, markup=False, highlight=False),
            )
        )
    except DemoError as exc:  # the intake did not answer the first lead
        fail("error", exc, UNREACHABLE_EXIT)
    typer.echo(summary)

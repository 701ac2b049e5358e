"""`leadflow import FILE`: a CSV or JSONL list of leads, posted through a bulk source."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadflow.config import ConfigFileError
from leadflow.imports import Importer, ImportFileError, ImportSummary, Row, read_rows
from leadflow.settings import ConfigError, Settings, get_settings
from leadflow_cli.failures import console, fail, reaching_service


def import_leads(
    file: Annotated[Path, typer.Argument(help="A .csv (header of lead fields) or .jsonl file.")],
    source: Annotated[
        str, typer.Option(help="The bulk source to post through (kind standard, lane bulk).")
    ] = "import",
    url: Annotated[str, typer.Option(help="Intake base URL.")] = "http://127.0.0.1:8000",
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Rows in flight.")] = 16,
) -> None:
    """Post every row of FILE to a running intake; exit 1 if any row was refused."""
    settings = _settings()
    secret = _secret_of(settings, source)
    try:
        rows = read_rows(file)
    except ImportFileError as exc:
        fail("error", exc)
    with reaching_service("intake", url):
        _answers(url)
        try:
            summary = _post(rows, url, source, secret, concurrency)
        except ImportFileError as exc:
            fail("error", exc)
    _print_summary(summary)
    if summary.refused:
        raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return get_settings(client=True)
    except (ConfigError, ConfigFileError) as exc:
        fail("Configuration error", exc)


def _secret_of(settings: Settings, source: str) -> str:
    """The secret `source` is signed with; exits when it is not a bulk standard source."""
    config = settings.app.sources.get(source)
    problem = ""
    if config is None:
        problem = f"no source named {source!r} is configured."
    elif config.kind != "standard" or config.lane != "bulk":
        problem = (
            f"source {source!r} is {config.kind} on the {config.lane} lane; imports go "
            "through a source of kind standard with lane: bulk."
        )
    secrets = settings.source_secrets(source) if not problem else []
    if not problem and not secrets:
        problem = f"source {source!r} has no secret configured."
    if problem:
        fail("error", problem)
    return secrets[0]


def _answers(url: str) -> None:
    """Raise `httpx.TransportError` unless the intake answers at all (any status will do):
    said before the progress bar, at once, rather than after a row's retries."""
    httpx.get(f"{url.rstrip('/')}/healthz", timeout=10)


def _post(rows: list[Row], url: str, source: str, secret: str, concurrency: int) -> ImportSummary:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"importing into {escape(source)}", total=len(rows))

        async def run() -> ImportSummary:
            async with httpx.AsyncClient(timeout=30) as client:
                importer = Importer(client, url, source, secret, concurrency=concurrency)
                return await importer.run(rows, lambda: progress.advance(task))

        return asyncio.run(run())


def _print_summary(summary: ImportSummary) -> None:
    out = Console(markup=False, highlight=False)
    out.print(
        f"{summary.accepted} accepted, {len(summary.refused)} refused, "
        f"{summary.redeliveries} redelivered (sent again after the intake was busy or unreachable)"
    )
    for number in sorted(summary.refused):
        out.print(f"row {number}: {summary.refused[number]}", markup=False, highlight=False)

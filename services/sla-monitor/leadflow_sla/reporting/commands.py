"""`leadflow report funnel|speed|reasons|roi|tiers`: the HTTP reports, read from the database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from leadflow.db.engine import create_engine, session_factory
from leadflow.faults import is_unreachable
from leadflow.processing import utcnow
from leadflow.settings import Settings
from leadflow_sla.reporting import render, service
from leadflow_sla.reporting.query import ReportQuery, make_query


class ReportError(Exception):
    """A report that cannot be made; the message says why and what to do."""


def report(
    kind: render.Kind,
    settings: Settings,
    fmt: render.Format,
    table: str | None = None,
    **options: Any,
) -> str:
    """The rendered report; `options` are the period, filters, `touch`, `by` and `period`.
    CSV is one table: `table` (default: the report's first section)."""
    if table is not None and fmt != "csv":
        raise ReportError("--table chooses one CSV table; add --format csv.")
    if table is not None and table not in render.table_names(kind):
        raise ReportError(
            f"the {kind} report has no table {table!r}; its tables are "
            f"{', '.join(render.table_names(kind))}."
        )
    return render.render(kind, _made(kind, settings, options), fmt, table)


def write_csv(kind: render.Kind, settings: Settings, directory: Path, **options: Any) -> list[Path]:
    """Every table of the report as its own CSV file, `<kind>-<table>.csv` in `directory`."""
    doc = _made(kind, settings, options)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in render.csv_tables(kind, doc).items():
            path = directory / f"{kind}-{name}.csv"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise ReportError(f"cannot write the CSV files into {directory} ({exc.strerror}).") from exc
    return written


def _made(kind: render.Kind, settings: Settings, options: dict[str, Any]) -> dict[str, Any]:
    by = options.pop("by", None)
    period = options.pop("period", None)
    try:
        query = make_query(settings.app.reporting, **options)
    except ValueError as exc:
        raise ReportError(str(exc)) from exc
    return asyncio.run(_document(kind, settings, query, by, period))


async def _document(
    kind: render.Kind, settings: Settings, query: ReportQuery, by: Any, period: Any = None
) -> dict[str, Any]:
    reporting = settings.app.reporting
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as session:
            result: Any
            if kind == "funnel":
                result = await service.funnel_report(session, query, by or "source")
            elif kind == "speed":
                result = await service.speed_report(session, query)
            elif kind == "reasons":
                result = await service.reasons_report(session, query)
            elif kind == "tiers":
                result = await service.tiers_report(
                    session, reporting, query, period or "week", by or "all"
                )
            else:
                result = await service.roi_report(session, reporting, query, by or "segment")
    except DBAPIError as exc:
        if is_unreachable(exc):
            raise  # the database did not answer: the caller says so (leadflow_cli.failures)
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise ReportError(
            f"cannot read the reports from {where} ({type(exc.orig).__name__}); "
            "is LEADFLOW_DATABASE_URL right, and has `leadflow db upgrade` run?"
        ) from exc
    finally:
        await engine.dispose()
    return render.document(kind, query, result, utcnow())

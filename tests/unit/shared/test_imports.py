"""Reading lead files for `leadflow import`: rows, their bodies, and the errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from leadflow.imports import Importer, ImportFileError, Row, delivery_id, encode, read_rows
from leadflow.settings import DEV_SECRETS
from tests.fixtures.broker import free_port


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_nest_dotted_columns_and_drop_empty_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "leads.csv",
        "email,first_name,company.name,company.size,utm.source,activity\n"
        "ana@acme.example,Ana,Acme,250,linkedin,webinar\n"
        "bo@beta.example,,Beta,,,\n",
    )

    rows = read_rows(path)

    assert rows == [
        Row(
            1,
            body={
                "event": "lead",
                "activity": "webinar",
                "lead": {
                    "email": "ana@acme.example",
                    "first_name": "Ana",
                    "company": {"name": "Acme", "size": "250"},
                    "utm": {"source": "linkedin"},
                },
            },
        ),
        Row(
            2,
            body={
                "event": "lead",
                "lead": {"email": "bo@beta.example", "company": {"name": "Beta"}},
            },
        ),
    ]


def test_csv_blank_rows_are_skipped_and_rows_with_extra_cells_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "leads.csv", "email\na@x.example\n\nb@x.example,surplus\n")

    rows = read_rows(path)

    assert [r.number for r in rows] == [1, 3]
    assert rows[1].body is None
    assert rows[1].error == "The row has 2 cells; the header names 1."


def test_jsonl_rows_keep_line_numbers_and_refuse_bad_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "leads.jsonl",
        '{"email": "a@x.example", "activity": "demo_request", "company": {"size": 30}}\n'
        "\n"
        "{not json\n"
        "[1, 2]\n",
    )

    rows = read_rows(path)

    assert rows == [
        Row(
            1,
            body={
                "event": "lead",
                "activity": "demo_request",
                "lead": {"email": "a@x.example", "company": {"size": 30}},
            },
        ),
        Row(3, error="The line is not valid JSON."),
        Row(4, error="The line is not a JSON object of lead fields."),
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("leads.txt", "email\n", "leads.txt is neither a .csv nor a .jsonl file."),
        ("leads.csv", "", "leads.csv has no header row naming the lead fields."),
        ("leads.csv", "email,,phone\n", "leads.csv: header column(s) 2 have no name."),
        ("leads.csv", "email\n\n", "leads.csv holds no rows to import."),
        ("leads.jsonl", "\n\n", "leads.jsonl holds no rows to import."),
    ],
)
def test_files_that_cannot_be_imported(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        read_rows(write(tmp_path, name, text))

    assert str(caught.value) == message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"^gone\.csv cannot be read: "):
        read_rows(tmp_path / "gone.csv")


def test_delivery_id_depends_on_content_and_source_only(tmp_path: Path) -> None:
    csv_row = read_rows(write(tmp_path, "a.csv", "email,company.size\na@x.example,30\n"))[0]
    again = read_rows(write(tmp_path, "b.csv", "company.size,email\n30,a@x.example\n"))[0]
    other = read_rows(write(tmp_path, "c.csv", "email,company.size\na@x.example,31\n"))[0]
    assert csv_row.body is not None
    assert again.body is not None
    assert other.body is not None

    first = delivery_id("import", encode(csv_row.body))

    assert first == delivery_id("import", encode(again.body))
    assert first != delivery_id("import", encode(other.body))
    assert first != delivery_id("resync", encode(csv_row.body))
    assert first.startswith("imp_")


async def test_an_unreachable_intake_stops_the_import(tmp_path: Path) -> None:
    rows = read_rows(write(tmp_path, "leads.csv", "email\na@x.example\nb@x.example\n"))
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done: list[None] = []

    async with httpx.AsyncClient(timeout=5) as client:
        importer = Importer(client, url, "import", DEV_SECRETS["import"], retry_s=0.001)
        with pytest.raises(httpx.ConnectError):
            await importer.run(rows, lambda: done.append(None))

    assert done == []

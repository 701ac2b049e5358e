"""`leadflow people erase EMAIL|PHONE`: a privacy request, by the address the person gave.

The command derives the person's keys as the intake does (the email or phone normalized,
then keyed with the deployment's secret: `LEADFLOW_KEY_SECRET`, and during a rotation
the secrets before it) and asks scoring to erase whoever any of them leads to, through
`DELETE /v1/admin/people/{key}` with an `admin` token: the API is the one way to erase,
so that the audit line, the erasure record and `lead.erased` are the same whoever asks.
It then asks each intake (`--intake`, repeatable) to forget the webhooks its spool still
holds under any of the person's keys (`DELETE /v1/admin/people/{key}` on the intake). It
prints the key and the erasure, never the address.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

from leadflow.config import ConfigFileError
from leadflow.settings import ConfigError, get_settings
from leadflow_cli.failures import UNREACHABLE_EXIT, fail, say
from leadflow_intake import normalize

people_app = typer.Typer(help="Privacy requests about one person.")


def identity_of(value: str, country: str | None) -> str:
    """`value` normalized as the intake normalizes a lead's email or phone; raises
    ValueError saying what is wrong with it."""
    if "@" in value:
        return normalize.normalize_email(value)
    return normalize.normalize_phone(value, country)


@people_app.command("erase")
def erase(
    identity: Annotated[str, typer.Argument(help="The person's email address or phone number.")],
    url: Annotated[str, typer.Option(help="Scoring's base URL.")] = "http://127.0.0.1:8001",
    token: Annotated[
        str,
        typer.Option(envvar="LEADFLOW_API_TOKEN", help="A token with the admin scope."),
    ] = "",
    country: Annotated[
        str | None,
        typer.Option(help="Two-letter country of a phone number written without +code."),
    ] = None,
    intake: Annotated[
        list[str] | None,
        typer.Option(help="An intake's base URL, whose spool forgets the person (repeatable)."),
    ] = None,
) -> None:
    """Erase a person everywhere (profiles, touches, assignments, windows, notifications);
    reports keep counting the lead anonymously."""
    try:
        normalized = identity_of(identity, country)
    except ValueError as exc:
        fail("error", f"the argument {exc} Give an email address or a phone.")
    try:
        keys = get_settings(client=True).lead_keys().candidates(normalized)
    except (ConfigError, ConfigFileError) as exc:
        fail("Configuration error", exc)
    if not token:
        fail(
            "error",
            "erasing needs a token with the admin scope: set LEADFLOW_API_TOKEN or pass --token.",
        )
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers, timeout=30) as client:
        body = _erase_at_scoring(client, url.rstrip("/"), keys)
        if body["status"] == "erased":
            typer.echo(f"{body['key']}: erased before, at {body['erased_at']}.")
        else:
            typer.echo(
                f"{body['key']}: erased at scoring ({body['keys']} keys); erasure "
                f"{body['erasure_id']} is on its way to the router, the SLA monitor and "
                "reporting."
            )
        person = list(dict.fromkeys([*body.get("lead_keys", []), *keys]))
        failed = False
        for base in intake or ["http://127.0.0.1:8000"]:
            failed |= not _forget_at_intake(client, base.rstrip("/"), person)
    if failed:
        fail("error", "an intake did not forget; run the command again.", 1)


def _erase_at_scoring(client: httpx.Client, url: str, keys: list[str]) -> dict[str, Any]:
    """Scoring's answer for the first of `keys` it knows (`key` added); exits when none."""
    for key in keys:
        try:
            response = client.delete(f"{url}/v1/admin/people/{key}")
        except httpx.HTTPError as exc:
            fail(
                "error",
                f"could not reach scoring at {url} (--url): {exc}. Start it, or point --url at it.",
                UNREACHABLE_EXIT,
            )
        if response.status_code == 404:
            continue
        if response.status_code != 202:
            detail = _detail(response)
            fail("error", f"scoring refused ({response.status_code}): {detail}", 1)
        return {**response.json(), "key": key}
    fail("error", "no person is known by that address.", 1)


def _forget_at_intake(client: httpx.Client, url: str, keys: list[str]) -> bool:
    """Ask an intake to forget its spooled copies under each key; whether it did."""
    forgotten = 0
    for key in keys:
        try:
            response = client.delete(f"{url}/v1/admin/people/{key}")
        except httpx.HTTPError as exc:
            say("warning", f"the intake at {url} did not answer: {exc}", "yellow")
            return False
        if response.status_code != 200:
            detail = _detail(response)
            say(
                "warning",
                f"the intake at {url} refused ({response.status_code}): {detail}",
                "yellow",
            )
            return False
        forgotten += int(response.json()["forgotten"])
    typer.echo(f"intake {url}: {forgotten} spooled webhooks forgotten.")
    return True


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text

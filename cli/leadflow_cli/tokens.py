"""`leadflow tokens new`: make an API token and the settings entry that lets it in."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from leadflow.auth import SCOPES, TokenEntry, dump_entry, new_token, token_hash
from leadflow_cli.failures import console, fail, say

tokens_app = typer.Typer(help="API tokens (bearer tokens with scopes).")

NAME_RULE = "up to 64 letters, digits and . _ @ -, starting with a letter or digit"


@tokens_app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="What audit logs call its holder.")],
    scope: Annotated[
        list[str],
        typer.Option(help=f"What it may do (repeatable): {', '.join(SCOPES)}."),
    ],
    rep: Annotated[
        str | None, typer.Option(help="The rep a rep's own token speaks for (leads:claim).")
    ] = None,
    team: Annotated[
        list[str] | None, typer.Option(help="Only these teams' leads (repeatable).")
    ] = None,
) -> None:
    """Print a new random token once, and the entry to add to LEADFLOW_TOKENS.

    Only the token's SHA-256 goes into the settings: keep the token itself where its
    caller keeps secrets; it cannot be shown again."""
    unknown = [s for s in scope if s not in SCOPES]
    if unknown:
        fail(
            "error",
            f"no scope is called {', '.join(map(repr, unknown))}; scopes are {', '.join(SCOPES)}.",
        )
    token = new_token()
    try:
        entry = TokenEntry(
            name=name,
            sha256=token_hash(token),
            scopes=tuple(dict.fromkeys(scope)),
            rep=rep,
            teams=tuple(team) if team else None,
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            message = NAME_RULE if field == "name" else error["msg"]
            say("error", f"{field}: {message}")
        raise typer.Exit(2) from exc
    console.print(f"Token of {escape(name)} (shown once; give it to its holder):")
    typer.echo(token)
    console.print("Add this entry to the LEADFLOW_TOKENS list (or LEADFLOW_TOKENS_FILE):")
    typer.echo(dump_entry(entry))

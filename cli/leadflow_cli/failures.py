"""How a command fails: one or two sentences on stderr and an exit status, never a traceback.

Exit statuses of every `leadflow` command:

* 1: the work was done and something in it failed (a refused row, a failed check);
* 2: the command cannot run as asked: a bad option, configuration or input file, or what
  it needs did not answer (the database, the Kafka broker, a service's HTTP API). For the
  latter the sentence names the address tried and the setting or option it came from, and
  the same command may succeed once that is up.

Text that comes from users, configuration files or other programs goes through
`rich.markup.escape` (`say`), so a pattern such as `^[a-z]+$` prints as written.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import NoReturn

import httpx
import typer
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from leadflow.faults import is_unreachable

CONFIG_EXIT = 2
UNREACHABLE_EXIT = 2

console = Console(stderr=True)

_DEFAULT_PORTS = {"postgresql": 5432}
_MAX_CHAIN = 10


def say(label: str, text: object, style: str = "red") -> None:
    """Print `label: text` on stderr, `text` taken literally (no Rich markup), on one line."""
    console.print(f"[{style}]{label}:[/{style}] {escape(str(text))}", soft_wrap=True)


def fail(label: str, text: object, code: int = CONFIG_EXIT) -> NoReturn:
    """Print `label: text` (as `say`) and exit with `code`."""
    say(label, text)
    raise typer.Exit(code)


def database_address(url: str) -> str:
    """Where a database URL points, without its password: host:port, or SQLite's file."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "an unreadable URL"
    if parsed.get_backend_name() == "sqlite":
        return f"the SQLite file {parsed.database or ':memory:'}"
    port = parsed.port or _DEFAULT_PORTS.get(parsed.get_backend_name())
    return f"{parsed.host or 'localhost'}:{port}" if port else str(parsed.host)


def reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, in a few words."""
    chain = [exc]
    while len(chain) < _MAX_CHAIN:
        current = chain[-1]
        inner = getattr(current, "orig", None) or current.__cause__ or current.__context__
        if not isinstance(inner, BaseException) or any(inner is seen for seen in chain):
            break
        chain.append(inner)
    for error in reversed(chain):
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return "no such host"
        if isinstance(error, TimeoutError):
            return "no answer in time"
        if isinstance(error, KafkaConnectionError):
            return "no broker answered"
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
    innermost = chain[-1]
    text = str(innermost).splitlines()[0].strip() if str(innermost).strip() else ""
    return text[:160] or type(innermost).__name__


def require_listening(what: str, addresses: str, setting: str) -> None:
    """Exit with one sentence (status 2) unless one of `addresses` (`host:port,…`) accepts
    a TCP connection: a check before starting what would otherwise wait for it silently."""
    problems = []
    for address in filter(None, (part.strip() for part in addresses.split(","))):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), 3):
                return
        except (OSError, ValueError) as exc:
            problems.append(reason(exc) if isinstance(exc, OSError) else "not host:port")
    fail(
        "error",
        f"could not reach {what} at {addresses} ({setting}): {', '.join(problems)}. "
        "Start it, or correct the setting.",
        UNREACHABLE_EXIT,
    )


def server_address(url: str) -> str | None:
    """host:port of a database server's URL; None for SQLite (a file, nothing to reach)."""
    address = database_address(url)
    return None if address.startswith(("the SQLite file", "an unreadable")) else address


@contextlib.contextmanager
def reaching_database(url: str) -> Iterator[None]:
    """Exit with one sentence (status 2) when the database at `url` cannot be reached."""
    try:
        yield
    except Exception as exc:
        if not is_unreachable(exc) or isinstance(exc, KafkaError):
            raise
        fail(
            "error",
            f"could not reach the database at {database_address(url)} "
            f"(LEADFLOW_DATABASE_URL): {reason(exc)}. Start it, or correct the setting.",
            UNREACHABLE_EXIT,
        )


@contextlib.contextmanager
def reaching_broker(bootstrap: str) -> Iterator[None]:
    """Exit with one sentence (status 2) when the Kafka broker cannot be reached."""
    # aiokafka logs every failed connection attempt; the sentence below says it once.
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        fail(
            "error",
            f"could not reach the Kafka broker at {bootstrap} (LEADFLOW_KAFKA_BOOTSTRAP): "
            f"{reason(exc)}. Start it (`leadflow broker` locally), or correct the setting.",
            UNREACHABLE_EXIT,
        )
    finally:
        kafka_log.setLevel(level)


@contextlib.contextmanager
def reaching_service(name: str, url: str, option: str = "--url") -> Iterator[None]:
    """Exit with one sentence (status 2) when a service's HTTP API does not answer."""
    try:
        yield
    except httpx.TransportError as exc:
        fail(
            "error",
            f"could not reach the {name} at {url} ({option}): {reason(exc)}. "
            "Start it, or point the option at it.",
            UNREACHABLE_EXIT,
        )

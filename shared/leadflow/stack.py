"""`leadflow run`: the broker and the four services as separate processes on this machine.

The local stack is the one place that runs in development (unless LEADFLOW_ENV says
otherwise): the example sources accept the secrets the README publishes, and the database
is SQLite. So it says so when it starts, and it listens on loopback only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.markup import escape

from leadflow.auth import DEV_ENTRY, DEV_TOKEN, dump_entry
from leadflow.broker import BrokerError, start_broker
from leadflow.production import development_host_problem
from leadflow.settings import Settings

SERVICES = {"intake": 8000, "scoring": 8001, "router": 8002, "sla-monitor": 8003}
STOP_GRACE_S = 15.0
FAST_GROUPS = {
    "LEADFLOW_CONSUMER_SESSION_TIMEOUT_MS": "3000",
    "LEADFLOW_CONSUMER_HEARTBEAT_MS": "500",
    "LEADFLOW_CONSUMER_REBALANCE_TIMEOUT_MS": "3000",
}


def service_port(name: str) -> int:
    """The port a service listens on (`LEADFLOW_<SERVICE>_PORT`, else its default)."""
    prefix = "SLA" if name == "sla-monitor" else name.upper()
    return int(os.environ.get(f"LEADFLOW_{prefix}_PORT", SERVICES[name]))


def development_unless_told() -> None:
    """Run the local stack in development, unless LEADFLOW_ENV names an environment."""
    if not os.environ.get("LEADFLOW_ENV", "").strip():
        os.environ["LEADFLOW_ENV"] = "development"


def announce(settings: Settings, console: Console) -> bool:
    """Say loudly which rules the stack runs under; False when it must not start."""
    if problem := development_host_problem(settings.env, settings.host):
        console.print(f"[red]error:[/red] {escape(problem)}")
        return False
    if settings.env == "development":
        console.print(
            "[bold black on yellow] DEVELOPMENT [/] the sources accept the development "
            "secrets the README publishes; every service listens on "
            f"[bold]{settings.host}[/bold] only. Not for real leads: production is "
            "LEADFLOW_ENV=production (the default of every service) with real secrets."
        )
    else:
        console.print(f"[bold]{settings.env.upper()}[/bold] rules (LEADFLOW_ENV={settings.env}).")
    development_token(settings, console)
    return True


# Any of these configures who may call the APIs; with none, development gets DEV_TOKEN.
TOKEN_SETTINGS = (
    "LEADFLOW_TOKENS",
    "LEADFLOW_TOKENS_FILE",
    "LEADFLOW_ADMIN_TOKEN",
    "LEADFLOW_OIDC_ISSUER",
)


def development_token(settings: Settings, console: Console) -> None:
    """In development with no API token configured, let the stack's services answer the
    development token (every scope) and print it: the APIs are not open, even locally."""
    if settings.env != "development" or any(os.environ.get(v) for v in TOKEN_SETTINGS):
        return
    os.environ["LEADFLOW_TOKENS"] = f"[{dump_entry(DEV_ENTRY)}]"
    # The managers' console on the SLA monitor asks the router and scoring with it.
    os.environ.setdefault("LEADFLOW_SLA_SERVICE_TOKEN", DEV_TOKEN)
    console.print(
        "[bold black on yellow] DEVELOPMENT TOKEN [/] no API token is configured, so every "
        f"API here answers [bold]Authorization: Bearer {DEV_TOKEN}[/bold] (every scope). "
        "Production refuses it: make real ones with `leadflow tokens new`."
    )


@dataclass
class Child:
    """A process of the stack."""

    name: str
    process: subprocess.Popen[bytes]


def run_stack(settings: Settings, var: Path, console: Console) -> int:
    """Start everything, print the URLs, and stop it all on Ctrl-C or SIGTERM."""
    var.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    stopping = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    if not announce(settings, console):
        return 2
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        if "LEADFLOW_KAFKA_BOOTSTRAP" not in os.environ:
            host, _, broker_port = settings.kafka_bootstrap.rpartition(":")
            try:
                broker = start_broker(int(broker_port), host or "127.0.0.1", var / "broker.log")
            except BrokerError as exc:
                console.print(f"[red]Cannot start the local broker:[/red] {escape(str(exc))}")
                return 1
            children.append(Child("broker", broker))
            # One machine, one broker: let a restarted service rejoin its group in seconds.
            for name, value in FAST_GROUPS.items():
                os.environ.setdefault(name, value)
            console.print(f"broker       kafka://{settings.kafka_bootstrap} (in memory)")
        # The console (on the SLA monitor) asks the router and scoring where they listen.
        local = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        for name, variable in (("router", "ROUTER"), ("scoring", "SCORING")):
            os.environ.setdefault(
                f"LEADFLOW_SLA_{variable}_URL", f"http://{local}:{service_port(name)}"
            )
        for name in SERVICES:
            log = (var / f"{name}.log").open("ab")
            process = subprocess.Popen(
                [sys.executable, "-m", "leadflow_cli", name], stdout=log, stderr=log
            )
            children.append(Child(name, process))
            url = f"http://{settings.host}:{service_port(name)}"
            console.print(f"{name:<12} {url}  (log: {var / (name + '.log')})")
        if not _wait_ready(settings.host, children, lambda: stopping):
            console.print("[red]A service did not become ready; see its log under var/.[/red]")
            return 1
        console.print(
            f"console      http://{local}:{service_port('sla-monitor')}/console  "
            "(the managers' console: sign in with an API token)"
        )
        console.print("[green]Leadflow is ready.[/green] Ctrl-C stops everything.")
        while not stopping:
            for child in children:
                if child.process.poll() is not None:
                    console.print(f"[red]{child.name} exited ({child.process.returncode}).[/red]")
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        _stop_all(children, console)


def _wait_ready(host: str, children: list[Child], stopping: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 90
    pending = {c.name for c in children if c.name in SERVICES}
    while pending and time.monotonic() < deadline:
        for child in children:
            if child.process.poll() is not None:
                return False
        for name in sorted(pending):
            port = service_port(name)
            try:
                if httpx.get(f"http://{host}:{port}/readyz", timeout=1).status_code == 200:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        if stopping():
            return False
        time.sleep(0.2)
    return not pending


def _stop_all(children: list[Child], console: Console) -> None:
    # Services first, so that they can flush to the broker; the broker last.
    services = [c for c in children if c.name != "broker"]
    brokers = [c for c in children if c.name == "broker"]
    for group in (services, brokers):
        for child in group:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in group:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                console.print(f"{child.name} did not stop in time; killing it.")
                child.process.kill()
                child.process.wait()
    console.print("Leadflow stopped.")

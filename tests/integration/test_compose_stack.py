"""`docker compose up`, without Docker: every Leadflow service of docker-compose.yml started
as a process with exactly its compose command and environment (interpolated from a `.env`
made of .env.example with fresh secrets), on a real broker, a fresh PostgreSQL database and
an SMTP sink in the place of kafka, postgres and mailpit (tests.fixtures.compose maps them).

The init service migrates first; then each service must answer its healthcheck's
`/readyz`, Prometheus's targets must answer `/metrics` without a token, and a webhook
signed by the sender's own library through a source of config/compose.yaml must be
scored, routed and mailed to its rep.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from markupsafe import escape

from leadflow.auth import new_token
from leadflow.config import load_config
from leadflow_sla.console.sessions import COOKIE, SIGN_IN_COOKIE
from tests.fixtures.broker import running_broker
from tests.fixtures.compose import (
    PROMETHEUS,
    ROOT,
    LocalNetwork,
    compose_file,
    entrypoint,
    env_file,
    fresh_values,
    healthcheck_url,
    init_services,
    leadflow_services,
    published_ports,
)
from tests.fixtures.databases import (
    create_postgres_database,
    drop_postgres_database,
    postgres_server_url,
)
from tests.fixtures.receivers import Mailbox, smtp_server
from tests.fixtures.senders import standard
from tests.fixtures.stack import READY_TIMEOUT_S, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

T = TypeVar("T")


class ComposeStack:
    """The Leadflow services of docker-compose.yml as processes on this machine."""

    def __init__(
        self, compose: dict[str, Any], network: LocalNetwork, root: Path, token: str
    ) -> None:
        self.compose, self.network, self.root = compose, network, root
        self.token = token  # an API token LEADFLOW_TOKENS lets in (leads:read)
        self.services = leadflow_services(compose)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        executable = Path(sys.executable).with_name(entrypoint()[0])
        self.entrypoint = [str(executable), *entrypoint()[1:]]
        self.path = str(executable.parent)
        for name, service in self.services.items():
            metrics = service.get("environment", {}).get("LEADFLOW_METRICS_PORT")
            network.listen(name, published_ports(service) + ([int(metrics)] if metrics else []))

    def command(self, name: str) -> list[str]:
        """The image's entrypoint followed by the service's compose command."""
        return [*self.entrypoint, *self.services[name]["command"]]

    def environment(self, name: str) -> dict[str, str]:
        """Compose's environment of the service (mapped), and a PATH to the entrypoint."""
        return {**self.network.environment(name, self.services[name]), "PATH": self.path}

    def workdir(self) -> Path:
        """The image's WORKDIR (/app) for every process: an empty directory of its own."""
        workdir = self.root / "app"
        workdir.mkdir(exist_ok=True)
        return workdir

    def run_once(self, name: str) -> None:
        """Run an init service to completion; fail with its output unless it exits 0."""
        done = subprocess.run(
            self.command(name),
            env=self.environment(name),
            cwd=self.workdir(),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()

    def start(self, name: str) -> None:
        """Start a long-running service, its output to `<name>.log`."""
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                self.command(name),
                env=self.environment(name),
                cwd=self.workdir(),
                stdout=log,
                stderr=log,
            )

    def url(self, name: str) -> str:
        """The local base URL of a service's published port."""
        [port] = published_ports(self.services[name])
        return f"http://{self.network.address(name, port)}"

    def wait_ready(self, name: str) -> None:
        """Block until the service answers its compose healthcheck (mapped to its port)."""
        port, path = healthcheck_url(self.services[name])
        assert path == "/readyz", f"{name}'s healthcheck asks {path}, not /readyz"
        url = f"http://{self.network.address(name, port)}"
        wait_ready(name, url, self.processes[name], self.root / f"{name}.log", READY_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM every process started, then wait (killing what hangs)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[int, Mailbox]]:
    """The SMTP sink in mailpit's place."""
    with smtp_server() as sink:
        yield sink


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mailbox: tuple[int, Mailbox]
) -> Iterator[ComposeStack]:
    """The init service run, then every other Leadflow service of the file ready."""
    server = postgres_server_url()
    if server is None:
        pytest.skip("the compose stack runs on PostgreSQL: set LEADFLOW_TEST_POSTGRES_URL")
    root = tmp_path_factory.mktemp("compose")
    token = new_token()
    compose = compose_file(env_file(root / ".env", fresh_values(token, new_token())))
    database_url = create_postgres_database(server)
    try:
        with running_broker() as bootstrap:
            network = LocalNetwork(bootstrap, database_url, mailbox[0], root / "volumes")
            stack = ComposeStack(compose, network, root, token)
            for name in sorted(init_services(compose)):
                stack.run_once(name)
            try:
                for name in stack.services.keys() - init_services(compose):
                    stack.start(name)
                for name in stack.processes:
                    stack.wait_ready(name)
                yield stack
            finally:
                stack.stop()
    finally:
        drop_postgres_database(database_url)


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 30.0) -> T:
    """Poll `probe` until it returns something; fail saying `what` never happened."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout_s:.0f} s")


def test_every_service_of_the_file_is_started_after_the_migration(stack: ComposeStack) -> None:
    assert init_services(stack.compose) == {"migrate"}
    assert set(stack.processes) == {"intake", "scoring", "router", "sla-monitor"}


def test_the_intake_keeps_its_spool_on_the_volume_and_nothing_in_the_container(
    stack: ComposeStack,
) -> None:
    assert any((stack.network.volumes / "intake-spool").iterdir())
    # What a service writes outside its volumes is lost when its container is replaced.
    assert not any(stack.workdir().iterdir())


def test_prometheus_targets_answer_metrics_without_a_token(stack: ComposeStack) -> None:
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    [job] = [job for job in scrape if job["job_name"] == "leadflow"]
    assert job["honor_labels"] is True
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert {target.split(":")[0] for target in targets} == set(stack.processes)
    for target in targets:
        host, port = target.split(":")
        response = httpx.get(f"http://{stack.network.address(host, int(port))}/metrics")
        assert response.status_code == 200, target
        assert "leadflow_" in response.text, target


def test_a_signed_webhook_is_scored_routed_and_mailed_to_its_rep(
    stack: ComposeStack, mailbox: tuple[int, Mailbox]
) -> None:
    intake_env = stack.environment("intake")
    body = {
        "event": "lead",
        "activity": "demo_request",
        "lead": {
            "email": f"compose.{uuid.uuid4().hex[:8]}@bigco.example",
            "job_title": "VP Operations",
            "company": {"name": "Bigco", "size": 1500, "industry": "software"},
        },
    }
    signed = standard(body, secret=intake_env["LEADFLOW_SOURCE_WEB_SECRET"])
    response = httpx.post(
        f"{stack.url('intake')}/v1/webhooks/web", content=signed.body, headers=signed.headers
    )
    assert response.status_code == 202, response.text
    lead_key = response.json()["lead_key"]
    auth = {"authorization": f"Bearer {stack.token}"}

    def answered(url: str) -> dict[str, Any] | None:
        reply = httpx.get(url, headers=auth)
        assert reply.status_code in (200, 404), reply.text
        return reply.json() if reply.status_code == 200 else None

    profile = eventually(
        lambda: answered(f"{stack.url('scoring')}/v1/leads/{lead_key}/profile"), "no score"
    )
    routing = eventually(
        lambda: answered(f"{stack.url('router')}/v1/leads/{lead_key}/routing"), "no routing"
    )

    assert profile["tier"] == "mql"
    assert profile["model_version"] == "2026-12-compose"  # config/compose.yaml's
    assert routing["current"]["team"] == "enterprise"
    assert routing["decisions"][0]["rule"] == "enterprise-size"
    config = load_config(ROOT / "config" / "compose.yaml")
    [rep] = [rep for rep in config.reps if rep.id == routing["current"]["rep_id"]]
    [mail, *_] = eventually(lambda: mailbox[1].to(rep.email) or None, f"no email to {rep.id}")
    assert mail["From"] == stack.environment("router")["LEADFLOW_SMTP_SENDER"]


def test_a_lead_sent_from_inside_the_intake_container_is_accepted(stack: ComposeStack) -> None:
    # The README's `docker compose exec -T intake leadflow webhook send -`: the intake's
    # environment holds the source's secret; its URL is the mapped port's here.
    body = (
        '{"event":"lead","activity":"demo_request","lead":{"email":"ana@bigco.example",'
        '"job_title":"VP Sales","company":{"name":"Bigco","size":1500}}}'
    )
    sent = subprocess.run(
        [*stack.entrypoint, "webhook", "send", "-", "--url", stack.url("intake")],
        input=body.encode(),
        env=stack.environment("intake"),
        cwd=stack.workdir(),
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert sent.returncode == 0, sent.stdout.decode() + sent.stderr.decode()
    assert sent.stdout.decode().startswith("202 "), sent.stdout.decode()


def test_the_console_signs_in_with_an_api_token_and_shows_a_lead_from_router_and_scoring(
    stack: ComposeStack,
) -> None:
    signed = standard(
        {
            "event": "lead",
            "activity": "demo_request",
            "lead": {
                "email": f"console.{uuid.uuid4().hex[:8]}@bigco.example",
                "job_title": "VP Operations",
                "company": {"name": "Bigco", "size": 1500, "industry": "software"},
            },
        },
        secret=stack.environment("intake")["LEADFLOW_SOURCE_WEB_SECRET"],
    )
    sent = httpx.post(
        f"{stack.url('intake')}/v1/webhooks/web", content=signed.body, headers=signed.headers
    )
    assert sent.status_code == 202, sent.text
    lead_key = sent.json()["lead_key"]
    auth = {"authorization": f"Bearer {stack.token}"}

    def known(url: str) -> dict[str, Any] | None:
        reply = httpx.get(url, headers=auth)
        return reply.json() if reply.status_code == 200 else None

    routing = eventually(
        lambda: known(f"{stack.url('router')}/v1/leads/{lead_key}/routing"), "no routing"
    )
    profile = eventually(
        lambda: known(f"{stack.url('scoring')}/v1/leads/{lead_key}/profile"), "no score"
    )
    console = f"{stack.url('sla-monitor')}/console"
    # Production's cookies are Secure (the console is served over HTTPS behind a proxy):
    # sent back by hand here, as a browser would over HTTPS.
    form = httpx.get(f"{console}/sign-in")
    sign_in_cookie = form.cookies[SIGN_IN_COOKIE]
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    signed_in = httpx.post(
        f"{console}/sign-in",
        data={"csrf": csrf[1], "token": stack.token, "next": f"/console/leads/{lead_key}"},
        headers={"cookie": f"{SIGN_IN_COOKIE}={sign_in_cookie}"},
    )
    assert signed_in.status_code == 303, signed_in.text
    assert "secure" in signed_in.headers["set-cookie"].lower()
    session = {"cookie": f"{COOKIE}={signed_in.cookies[COOKIE]}"}

    page = httpx.get(f"{console}/leads/{lead_key}", headers=session)

    assert page.status_code == 200, page.text
    assert "did not answer" not in page.text
    assert "cannot be asked" not in page.text
    assert str(escape(routing["summary"])) in page.text  # the router's, by the service token
    for reason in profile["reasons"]:  # scoring's
        assert f'data-label="Rule">{escape(reason["rule"])}</th>' in page.text

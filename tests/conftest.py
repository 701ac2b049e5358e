"""Test-wide fixtures, and the rule that CI runs every test: a skip there is a failure."""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.broker"]

# Every service defaults to production; the suite means development (the documented
# secrets, SQLite, loopback) unless a test asks for production, and the service processes
# it starts inherit this.
os.environ["LEADFLOW_ENV"] = "development"
# Lead keys are derived with the development secret, as the tests compute them
# (tests/fixtures/keys.py), whatever key secret the machine running them has set.
for _variable in (
    "LEADFLOW_KEY_SECRET",
    "LEADFLOW_KEY_SECRET_PREVIOUS",
    "LEADFLOW_KEY_PREVIOUS_UNSALTED",
):
    os.environ.pop(_variable, None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (CI=true), fail the run when any test was skipped."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        if reporter is not None:
            reporter.write_line(
                f"CI: {skipped} test(s) were skipped; every test must run in CI "
                "(is LEADFLOW_TEST_POSTGRES_URL set?).",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

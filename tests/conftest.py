"""Shared fixtures. Keep small: one Prefect harness for the whole session, started on first use."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_harness():
    """Prefect's test harness (a temporary server and database, ~15 s idle, minutes under load): entered once per session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield

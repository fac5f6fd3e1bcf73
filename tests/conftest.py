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


# The office's loop over eight periods that cross a year boundary (2020-09 .. 2021-04): the one
# generated county that the loop's truth tests share (monitoring history and the roster, township
# feedback, asset registers and the 2021 policy year, duplicate keys and empty snapshots). It is run
# through `povwatch run` in local mode, validation included, exactly as the office runs it, once
# per test session. Add assertions in your own test file; do not build another eight-period county.
LOOP_FIRST_PERIOD = "2020-09"
LOOP_PERIODS = 8
LOOP_HOUSEHOLDS = 150
LOOP_SEED = 20209


@pytest.fixture(scope="session")
def loop_county(tmp_path_factory):
    """SimpleNamespace(inbox, truth, warehouse, output, exit_code, con) of the eight-period county.

    ``con`` is a read-only DuckDB connection to the warehouse; ``truth`` the generator's truth folder.
    """
    import types

    import duckdb

    from povwatch.flows.run_command import run_inbox
    from povwatch.tasks.synth.generate import generate

    root = tmp_path_factory.mktemp("loop_county")
    inbox = root / "inbox"
    generate(inbox, period=LOOP_FIRST_PERIOD, periods=LOOP_PERIODS, households=LOOP_HOUSEHOLDS,
             seed=LOOP_SEED)
    warehouse = root / "var" / "povwatch.duckdb"
    code = run_inbox(inbox, warehouse=warehouse, mode="local", echo=lambda _line: None)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield types.SimpleNamespace(inbox=inbox, truth=inbox / "truth", warehouse=warehouse,
                                output=root / "var" / "output", exit_code=code, con=con)
    con.close()

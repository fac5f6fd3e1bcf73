"""While a run holds the warehouse, DuckDB works on POVWATCH_DUCKDB_THREADS threads (default 1:
the run's own threads keep the cores busy, and DuckDB's workers only added CPU); the database
instance gets its own setting back when the run lets go, so a process that keeps the warehouse
open (a notebook, a Prefect worker) is left as it was."""
from __future__ import annotations

import duckdb

from povwatch.tasks.core.db import held_open


def _threads(con) -> int:
    return int(con.execute("SELECT current_setting('threads')").fetchone()[0])


def test_a_run_works_on_one_duckdb_thread_and_gives_the_instance_its_setting_back(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    caller = duckdb.connect(str(warehouse))   # a connection of the caller, to the same instance
    try:
        caller.execute("SET threads = 3")
        with held_open(warehouse) as con:
            assert _threads(con) == 1 and _threads(caller) == 1   # every connection of the run
        assert _threads(caller) == 3
    finally:
        caller.close()


def test_duckdb_threads_setting_zero_leaves_duckdb_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("POVWATCH_DUCKDB_THREADS", "0")
    warehouse = tmp_path / "w.duckdb"
    caller = duckdb.connect(str(warehouse))
    try:
        caller.execute("SET threads = 3")
        with held_open(warehouse) as con:
            assert _threads(con) == 3
        assert _threads(caller) == 3
    finally:
        caller.close()

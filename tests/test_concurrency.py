"""Two runs at once, and readers during a run: no corruption, and messages a person understands.

A run is held at its validation step (tests.support.testhooks pause) while it holds the warehouse lock.
Meanwhile:

- a second ``povwatch run`` on the same warehouse stops at once (exit 1) saying who is running,
  without a stack trace, and leaves nothing behind in audit.runs;
- ``povwatch sql`` readers query the warehouse over and over, for the whole run: each one either
  answers or says the warehouse is busy (exit 2), never a stack trace; and the run is not broken by
  them (DuckDB refuses a writer while another process has the file open read-only).

The first run then completes with every extract accepted and every row accounted for.
"""
from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import duckdb
import pytest

from tests.support import robust as rs

PAUSE_SECONDS = 6
READER_QUERY = "SELECT count(*) AS n FROM audit.extracts, range(3000000)"


def _start_paused_run(inbox: Path, warehouse: Path, tmp: Path, signal: Path) -> subprocess.Popen:
    env = rs.cli_env(tmp, POVWATCH_TEST_PAUSE_AT="validate#1",
                     POVWATCH_TEST_PAUSE_SECONDS=str(PAUSE_SECONDS),
                     POVWATCH_TEST_PAUSE_SIGNAL=str(signal))
    return subprocess.Popen(
        [rs.PYTHON, "-m", "tests.support.crash_driver", "run", "--inbox", str(inbox),
         "--warehouse", str(warehouse)],
        env=env, cwd=str(rs.PROJECT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(signal: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not signal.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the first run ended before its pause: {proc.returncode}\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the first run never reached its pause")
        time.sleep(0.1)


@pytest.mark.slow
def test_second_run_and_readers_during_a_run(tmp_path: Path) -> None:
    inbox = rs.subset_inbox(tmp_path / "inbox", (rs.FIRST_PERIOD,))
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    signal = tmp_path / "paused"
    first = _start_paused_run(inbox, warehouse, tmp_path, signal)

    readings: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def reader() -> None:
        env = rs.cli_env(tmp_path)
        while not stop.is_set():
            if warehouse.exists():
                p = rs.run_cli(["sql", READER_QUERY, "--format", "csv", "--warehouse", str(warehouse)],
                               env, tmp_path, timeout=120)
                readings.append((p.returncode, p.stdout, p.stderr))
            time.sleep(0.3)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        _wait_for(signal, first)
        second = rs.run_cli(["run", "--inbox", str(inbox), "--warehouse", str(warehouse)],
                            rs.cli_env(tmp_path, POVWATCH_LOCK_TIMEOUT="0"), tmp_path, timeout=120)
        out, err = first.communicate(timeout=300)
    finally:
        stop.set()
        thread.join(timeout=120)
        if first.poll() is None:
            first.kill()

    # the second run stopped at once, saying so
    text = second.stdout + second.stderr
    assert second.returncode == 1, f"second run exited {second.returncode}: {text[-1500:]}"
    assert "Traceback" not in text, text[-3000:]
    assert "正在被" in text and "PID" in text, f"no clear busy message: {text[-1500:]}"

    # the first run completed, whatever the readers did
    assert first.returncode == 0, f"the run exited {first.returncode}:\n{out[-2000:]}\n{err[-3000:]}"

    # every reader answered or said the warehouse is busy
    assert readings, "no reader ran during the run"
    for code, stdout, stderr in readings:
        assert "Traceback" not in stderr, stderr[-3000:]
        if code == 0:
            assert stdout.strip().splitlines()[0] == "n"
        else:
            assert code == 2 and ("占用" in stderr or "正在" in stderr), (code, stderr[-1500:])

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        runs = con.execute("SELECT status FROM audit.runs").fetchall()
        statuses = con.execute("SELECT DISTINCT status FROM audit.extracts").fetchall()
        unaccounted = con.execute(
            "SELECT count(*) FROM audit.extracts "
            "WHERE rows_read <> rows_loaded + rows_quarantined").fetchone()[0]
    finally:
        con.close()
    assert runs == [("completed",)], f"audit.runs: {runs}"
    assert statuses == [("accepted",)], statuses
    assert unaccounted == 0

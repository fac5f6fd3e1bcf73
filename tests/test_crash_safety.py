"""A run killed (SIGKILL) at any stage loses nothing and leaves no half extract.

The scenario: a warehouse holding period 2020-06 (the *before* state); then an inbox with a
resubmitted 2020-06 extract (weijian, one row fewer) and the new period 2020-07. An uninterrupted
run over it gives the *reference* state. Then, starting from *before*, runs are killed one after
the other at different stages (tests/support/crash_driver.py wraps the steps with tests.support.testhooks
checkpoints; the process SIGKILLs itself there, as the OOM killer or a power cut would). After
each kill:

- the warehouse opens, and for every (period, dept) ``staging`` holds exactly the data it held
  before that run or exactly the reference data — never half;
- every audit.extracts row still accounts for its rows;

and a final plain ``povwatch run`` (as the clerk would type it, no --period) completes and leaves
marts and staging identical to the reference (content hashes, run ids and timestamps left out).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.support import robust as rs

KILLS = ("promoted#1", "stage-txn#1", "marts-txn#3")


def _resubmit_weijian(inbox: Path, period: str) -> None:
    """A changed weijian delivery for the period: the last data line removed."""
    f = next((inbox / period / "weijian").glob("*.csv"))
    lines = f.read_bytes().rstrip(b"\r\n").split(b"\n")
    f.write_bytes(b"\n".join(lines[:-1]) + b"\n")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    inbox_v1 = rs.subset_inbox(base / "inbox_v1", (rs.FIRST_PERIOD,))
    inbox_v2 = rs.subset_inbox(base / "inbox_v2", rs.PERIODS)
    _resubmit_weijian(inbox_v2, rs.FIRST_PERIOD)

    before = base / "before" / "povwatch.duckdb"
    code = rs.run_in_process(inbox_v1, before, base / "before")
    assert code in (0, 3), f"the before run exited {code}"
    reference = base / "reference" / "povwatch.duckdb"
    reference.parent.mkdir()
    shutil.copy(before, reference)
    ref_code = rs.run_in_process(inbox_v2, reference, base / "reference")
    assert ref_code in (0, 3)
    return {
        "inbox": inbox_v2, "before": before, "reference": reference, "ref_code": ref_code,
        "before_staging": rs.staging_digest(before),
        "ref_staging": rs.staging_digest(reference),
        "ref_marts": rs.mart_digest(reference),
    }


def _driver(inbox: Path, warehouse: Path, tmp: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = rs.cli_env(tmp)
    if kill_at:
        env["POVWATCH_TEST_KILL_AT"] = kill_at
    return subprocess.run(
        [rs.PYTHON, "-m", "tests.support.crash_driver", "run", "--inbox", str(inbox),
         "--warehouse", str(warehouse)],
        env=env, cwd=str(rs.PROJECT), capture_output=True, text=True, timeout=300)


def _check_accounting(warehouse: Path) -> None:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        bad = con.execute(
            "SELECT period, dept, file, rows_read, rows_loaded, rows_quarantined FROM audit.extracts "
            "WHERE status IN ('accepted', 'staged') "
            "AND rows_read <> coalesce(rows_loaded, 0) + coalesce(rows_quarantined, 0)").fetchall()
    finally:
        con.close()
    assert not bad, f"rows unaccounted for after a crash: {bad}"


def _where_not(got: dict, want: dict) -> list[str]:
    return [f"{k}: {got.get(k)} != {want.get(k)}" for k in sorted(set(got) | set(want))
            if got.get(k) != want.get(k)]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_runs_leave_previous_or_new_and_rerun_converges(scenario, tmp_path: Path) -> None:
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    warehouse.parent.mkdir()
    shutil.copy(scenario["before"], warehouse)
    ref = scenario["ref_staging"]
    not_killed = []
    for kill_at in KILLS:
        prior = rs.staging_digest(warehouse)
        proc = _driver(scenario["inbox"], warehouse, tmp_path, kill_at)
        if proc.returncode != -9:
            not_killed.append(f"{kill_at}: exit {proc.returncode}: {proc.stdout[-400:]} "
                              f"{proc.stderr[-800:]}")
        # the warehouse opens and every (period, dept) is whole: as before this run, or as after
        now = rs.staging_digest(warehouse)
        half = [f"{k}: {now.get(k)} is neither {prior.get(k)} (before) nor {ref.get(k)} (after)"
                for k in sorted(set(now) | set(prior) | set(ref))
                if now.get(k) not in (prior.get(k), ref.get(k))]
        assert not half, f"killed at {kill_at}: half-loaded extracts:\n" + "\n".join(half)
        _check_accounting(warehouse)

    final = _driver(scenario["inbox"], warehouse, tmp_path, None)
    assert final.returncode == scenario["ref_code"], (
        f"the rerun after the crashes exited {final.returncode}:\n{final.stdout[-1500:]}\n"
        f"{final.stderr[-1500:]}")
    diff = _where_not(rs.staging_digest(warehouse), ref)
    assert not diff, "after the crashes and a rerun, staging differs from an uninterrupted run:\n" \
        + "\n".join(diff)
    marts = _where_not(rs.mart_digest(warehouse), scenario["ref_marts"])
    assert not marts, "marts differ from an uninterrupted run:\n" + "\n".join(marts)
    _check_accounting(warehouse)
    assert not not_killed, "checkpoints never reached (the run had nothing left to do?):\n" + \
        "\n".join(not_killed)


# --------------------------------------------------------------------------------------------
# Runs that stop without being killed: Ctrl-C, a failure after staging. The run is recorded as
# stopped, `povwatch status` names its periods as unfinished, and the next plain run finishes
# them (tasks.core.runs.unfinished_periods).


def _run_here(inbox: Path, warehouse: Path, tmp: Path, pipeline=None, **env: str) -> int:
    """``povwatch run`` in this process (local mode) with the given business steps."""
    from povwatch.flows.run_command import run_inbox

    settings = {**rs.cli_env(tmp), **env}
    with pytest.MonkeyPatch.context() as mp:
        for key in ("POVWATCH_PREFECT", "POVWATCH_SETTLE_SECONDS", "POVWATCH_OUTPUT",
                    "POVWATCH_ALERT_URLS", "POVWATCH_LOCK_TIMEOUT"):
            mp.setenv(key, settings[key])
        return run_inbox(inbox, period=None, warehouse=warehouse, mode="local",
                         echo=lambda _msg: None, pipeline=pipeline)


def _last_run(warehouse: Path) -> tuple[str, str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT status, message FROM audit.runs ORDER BY started_at DESC LIMIT 1").fetchone()
    finally:
        con.close()


def _whole(warehouse: Path, prior: dict, ref: dict, what: str) -> None:
    now = rs.staging_digest(warehouse)
    half = [k for k in sorted(set(now) | set(prior) | set(ref)) if now.get(k) not in (prior.get(k), ref.get(k))]
    assert not half, f"after {what}: half-loaded extracts {half}"
    _check_accounting(warehouse)


def test_interrupted_and_failed_runs_are_finished_by_the_next_plain_run(scenario, tmp_path: Path) -> None:
    """Ctrl-C (a real SIGINT) once every department is staged, then a marts error, then an
    output folder that cannot be written: each run stops, leaves every extract whole and its
    periods unfinished (shown by `povwatch status`); a plain run then finishes them, equal to an
    uninterrupted run by content hash."""
    import dataclasses
    import signal

    from povwatch.flows.pipeline import real_pipeline
    from povwatch.tasks.office.status import status_text

    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    warehouse.parent.mkdir()
    shutil.copy(scenario["before"], warehouse)
    ref, inbox = scenario["ref_staging"], scenario["inbox"]
    real = real_pipeline()

    def ctrl_c_at_validation(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)   # as the terminal sends it: the main thread stops
        return real.validate_extract(*args, **kwargs)

    prior = rs.staging_digest(warehouse)
    with pytest.raises(KeyboardInterrupt):
        _run_here(inbox, warehouse, tmp_path, dataclasses.replace(real, validate_extract=ctrl_c_at_validation))
    assert _last_run(warehouse)[0] == "interrupted"
    _whole(warehouse, prior, ref, "Ctrl-C")
    assert "未完成的期次 unfinished periods: 2020-06, 2020-07" in status_text(warehouse)

    def marts_error(*args, **kwargs):
        raise RuntimeError("model 80_ledger.sql failed: injected")

    prior = rs.staging_digest(warehouse)
    assert _run_here(inbox, warehouse, tmp_path, dataclasses.replace(real, build_marts=marts_error)) == 1
    assert _last_run(warehouse) [0] == "failed" and "injected" in _last_run(warehouse)[1]
    _whole(warehouse, prior, ref, "a marts error")

    blocked = tmp_path / "output-is-a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    prior = rs.staging_digest(warehouse)
    assert _run_here(inbox, warehouse, tmp_path, POVWATCH_OUTPUT=str(blocked)) == 1
    _whole(warehouse, prior, ref, "an unwritable output folder")
    assert "2020-07" in status_text(warehouse).split("unfinished periods:")[1].splitlines()[0]

    assert _run_here(inbox, warehouse, tmp_path) == scenario["ref_code"]
    assert _last_run(warehouse)[0] in ("completed", "rejected_extracts")
    assert "unfinished" not in status_text(warehouse)
    assert not _where_not(rs.staging_digest(warehouse), ref)
    assert not _where_not(rs.mart_digest(warehouse), scenario["ref_marts"])
    reports = sorted((tmp_path / "output" / "reports").rglob("*.html"))
    assert {r.parent.name for r in reports} >= {"2020-06", "2020-07"}, "the resumed run wrote the reports"

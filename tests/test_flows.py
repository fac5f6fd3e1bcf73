"""The pipeline flow: state, exit code, audit.runs, retries, no reprocessing, artifacts, the lock.

The run is handed fake business steps (tests/support/fakes.py: a Pipeline of the same
signatures, audit.extracts written with real sha256) so that these tests hold the orchestration
alone. Prefect runs against
one session-scoped test harness.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from uuid import UUID

import duckdb
import pytest

from povwatch.flows import process
from povwatch.flows.run_command import run_inbox
from povwatch.tasks.core.locking import warehouse_lock
from tests.support.fakes import Fakes, make_inbox


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("POVWATCH_SETTLE_SECONDS", "0")
    monkeypatch.setenv("POVWATCH_OUTPUT", str(tmp_path / "output"))
    # the alerts step's declared retries, without its waits (both modes build on the declaration)
    monkeypatch.setattr(process, "ALERTS", dataclasses.replace(process.ALERTS, retry_delay_seconds=(0,)))
    return tmp_path


@pytest.fixture
def fakes():
    return Fakes()


def _runs(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT run_id, status, message, flow_run_id, periods FROM audit.runs "
                           "ORDER BY started_at").fetchall()
    finally:
        con.close()


def _flow_run(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id))


def test_run_completes_with_state_and_audit_row(env, fakes, prefect_harness, capsys):
    inbox = make_inbox(env)
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 0
    (run_id, status, message, flow_run_id, periods), = _runs(warehouse)
    assert status == "completed" and periods == "2026-01" and "全部接收" in message
    state = _flow_run(flow_run_id).state
    assert state.is_completed() and "every extract accepted" in state.message
    assert sorted(d for _, d in fakes.called("promote_extract")) == ["fupin", "minzheng", "shouru"]
    assert "接收 accepted 3" in capsys.readouterr().out


def test_rejected_extract_named_in_state_exit_3_and_artifacts(env, fakes, prefect_harness):
    """Also: the alert (notification) task is retried until the channel takes it."""
    from prefect.artifacts import Artifact

    fakes.reject.add("shouru")
    fakes.alert_failures = 2   # the channel fails twice, then works
    inbox = make_inbox(env, periods=("2026-03",))
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 3
    (_, status, message, flow_run_id, _), = _runs(warehouse)
    assert status == "rejected_extracts" and "shouru" in message
    state = _flow_run(flow_run_id).state
    assert state.is_completed() and "2026-03 shouru" in state.message
    assert [d for _, d in fakes.called("reject_extract")] == ["shouru"]
    assert len(fakes.called("alert_on_outcomes")) == 3

    markdown = Artifact.get("povwatch-2026-03")
    assert markdown is not None and markdown.type == "markdown"
    text = markdown.data
    assert "退回 rejected: 1 — shouru" in text and "接收 accepted: 2 — fupin, minzheng" in text
    assert "监测户 monitored households: 7" in text and "新开问题 opened: 3" in text
    assert "110101********1234" in text and "110101199003071234" not in text  # masked
    table = Artifact.get("povwatch-2026-03-departments")
    assert table is not None and table.type == "table"
    assert "shouru" in str(table.data) and "rejected" in str(table.data)


def test_crash_in_a_task_fails_the_run_with_exit_1(env, fakes, prefect_harness, capsys):
    inbox = make_inbox(env, extra={("2026-01", "minzheng"): "crash.csv"})
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 1
    (_, status, message, flow_run_id, _), = _runs(warehouse)
    assert status == "failed" and "disk on fire" in message
    state = _flow_run(flow_run_id).state
    assert state.is_failed() and "disk on fire" in state.message
    assert "disk on fire" in capsys.readouterr().out
    # an OSError is not a file still being copied: staging was not retried
    assert [d for _, d in fakes.called("stage_extract")].count("minzheng") == 1


def test_rerun_with_unchanged_files_does_not_reprocess(env, fakes, prefect_harness):
    inbox = make_inbox(env)
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 0
    staged = len(fakes.called("stage_extract"))
    # same files again: nothing pending, the period is not run at all
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 0
    assert len(fakes.called("stage_extract")) == staged
    assert "nothing new" in _runs(warehouse)[-1][2]
    # asked for explicitly: staged (hashes compared) but nothing validated or rebuilt again
    assert run_inbox(inbox, "2026-01", warehouse, mode="prefect", pipeline=fakes.pipeline) == 0
    assert len(fakes.called("validate_extract")) == 3 and len(fakes.called("build_marts")) == 1
    # one department resubmits: only it is validated again
    (inbox / "2026-01" / "fupin" / "fupin.csv").write_text("a,b\n9,9\n", encoding="utf-8")
    assert run_inbox(inbox, None, warehouse, mode="prefect", pipeline=fakes.pipeline) == 0
    assert [d for _, d in fakes.called("validate_extract")][3:] == ["fupin"]


def test_backfill_runs_pending_periods_in_order_local_mode(env, fakes):
    inbox = make_inbox(env, periods=("2026-02", "2026-01"))
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 0
    assert [p for (p,) in fakes.called("build_marts")] == ["2026-01", "2026-02"]
    (run_id, status, _, flow_run_id, periods), = _runs(warehouse)
    assert periods == "2026-01,2026-02" and status == "completed" and flow_run_id is None
    # a late period: delivered after 2026-02 was loaded
    make_inbox(env, periods=("2025-12",))
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 0
    assert _runs(warehouse)[-1][4] == "2025-12" and "迟到" in _runs(warehouse)[-1][2]


def test_local_mode_same_outcomes_and_retry_policy(env, fakes):
    fakes.reject.add("minzheng")
    fakes.alert_failures = 1
    inbox = make_inbox(env)
    assert run_inbox(inbox, None, env / "wh.duckdb", mode="local", pipeline=fakes.pipeline) == 3
    assert len(fakes.called("alert_on_outcomes")) == 2
    crash = make_inbox(env / "b", extra={("2026-01", "fupin"): "crash.csv"})
    assert run_inbox(crash, None, env / "b" / "wh.duckdb", mode="local", pipeline=fakes.pipeline) == 1
    assert fakes.called("notify_run_failure"), "no Prefect automation in local mode: notify directly"


@pytest.mark.parametrize("mode", ["local", "prefect"])
def test_a_department_is_decided_while_the_next_validates_and_receipted_beside_the_marts(
        env, fakes, mode, request):
    """#19: a department's promote does not wait for every department's validation (GX validates
    one at a time; the promote runs beside it): the last department's validation here waits until
    another department is promoted, which a sequence that promotes only after the last
    validation never does (the wait times out). The receipts are written once every department
    is decided, beside the marts (Python like GX, they only lengthened the validations), and
    before the report, which the period writes last."""
    if mode == "prefect":
        request.getfixturevalue("prefect_harness")
    promoted = threading.Event()
    waited: dict[str, bool] = {}
    events: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            events.append(what)

    def validate(warehouse, period, dept, run_id):
        if dept == "minzheng":   # validated last of the three (department order)
            waited[dept] = promoted.wait(timeout=15)
        return fakes.validate_extract(warehouse, period, dept, run_id)

    def promote(warehouse, period, dept, run_id):
        note(f"promote {dept}")
        promoted.set()
        return fakes.promote_extract(warehouse, period, dept, run_id)

    def receipt(warehouse, period, dept, out_dir):
        note(f"receipt {dept}")
        return fakes.write_receipt(warehouse, period, dept, out_dir)

    def report(warehouse, period):
        note("report")
        return fakes.write_report(warehouse, period)

    pipeline = dataclasses.replace(fakes.pipeline, validate_extract=validate, promote_extract=promote,
                                   write_receipt=receipt, write_report=report)
    inbox = make_inbox(env)
    assert run_inbox(inbox, None, env / "wh.duckdb", mode=mode, pipeline=pipeline) == 0
    assert waited == {"minzheng": True}, "no department was promoted before the last validation ended"
    assert sorted(d for _, d in fakes.called("promote_extract")) == ["fupin", "minzheng", "shouru"]
    assert sorted(d for _, d in fakes.called("write_receipt")) == ["fupin", "minzheng", "shouru"]
    last_promote = max(i for i, e in enumerate(events) if e.startswith("promote"))
    receipts = [i for i, e in enumerate(events) if e.startswith("receipt")]
    assert min(receipts) > last_promote and events[-1] == "report", events


def test_staging_waits_while_a_file_is_still_being_copied(env, fakes, monkeypatch):
    monkeypatch.setattr(process, "STAGE", dataclasses.replace(process.STAGE, retry_delay_seconds=(0.3,)))
    inbox = make_inbox(env)
    part = inbox / "2026-01" / "fupin" / "fupin2.csv.part"
    part.write_text("a,b\n", encoding="utf-8")
    threading.Timer(0.5, lambda: part.rename(part.with_suffix(""))).start()
    assert run_inbox(inbox, None, env / "wh.duckdb", mode="local", pipeline=fakes.pipeline) == 0
    con = duckdb.connect(str(env / "wh.duckdb"), read_only=True)
    files = {f for (f,) in con.execute("SELECT file FROM audit.extracts WHERE dept='fupin'").fetchall()}
    con.close()
    assert files == {"2026-01/fupin/fupin.csv", "2026-01/fupin/fupin2.csv"}


def test_second_run_waits_for_the_lock_or_stops_clearly(env, fakes, monkeypatch, capsys):
    inbox = make_inbox(env)
    warehouse = env / "wh.duckdb"
    monkeypatch.setenv("POVWATCH_LOCK_TIMEOUT", "0.5")
    with warehouse_lock(warehouse, what="povwatch run (test holder)"):
        assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 1
    out = capsys.readouterr().out
    assert "正在被" in out and "is being written by povwatch run (test holder)" in out
    assert not fakes.called("stage_extract")

    monkeypatch.setenv("POVWATCH_LOCK_TIMEOUT", "30")
    released = threading.Event()

    def hold():
        with warehouse_lock(warehouse, what="first run"):
            time.sleep(1.0)
        released.set()

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.2)
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 0
    assert released.is_set()
    holder.join()


def test_reader_gets_a_clear_message_while_a_run_writes(tmp_path):
    import subprocess
    import sys

    from povwatch.tasks.core.locking import WarehouseBusy, open_for_reading

    warehouse = tmp_path / "wh.duckdb"
    duckdb.connect(str(warehouse)).close()
    code = ("import duckdb, sys, time\nfrom povwatch.tasks.core.locking import warehouse_lock\n"
            f"with warehouse_lock({str(warehouse)!r}, what='povwatch run W'):\n"
            f"    con = duckdb.connect({str(warehouse)!r}); print('ready', flush=True); time.sleep(20)\n")
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
    try:
        assert writer.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusy, match="正在被povwatch run W.*写入"):
            open_for_reading(warehouse)
    finally:
        writer.kill()
        writer.wait()


def test_status_shows_runs_rejections_and_open_alerts(env, fakes):
    from povwatch.tasks.office.status import status_text

    fakes.reject.add("minzheng")
    inbox = make_inbox(env)
    warehouse = env / "wh.duckdb"
    assert run_inbox(inbox, None, warehouse, mode="local", pipeline=fakes.pipeline) == 3
    con = duckdb.connect(str(warehouse))
    con.execute("INSERT INTO audit.alerts (alert_id, run_id, severity, dept, period, summary, channel,"
                " delivered) VALUES ('a1', 'r', 'error', 'minzheng', '2026-01', '民政数据被退回', 'none', false)")
    con.close()
    text = status_text(warehouse)
    assert "rejected_extracts" in text and "2026-01" in text
    lines = text.splitlines()
    by_period = lines[lines.index("各期数据 extracts by period") + 3]
    assert by_period.split()[:3] == ["2026-01", "2", "1"] and "minzheng" in by_period
    assert "民政数据被退回" in text and "未送达 not sent" in text


def test_inbox_watch_starts_a_run_only_when_a_department_delivers(env, fakes, prefect_harness):
    from povwatch.flows.deployments import inbox_watch

    inbox = make_inbox(env)
    warehouse = env / "wh.duckdb"
    state = inbox_watch(inbox=str(inbox), warehouse=str(warehouse), pipeline=fakes.pipeline,
                        return_state=True)
    assert state.is_completed() and "every extract accepted" in state.message
    assert state.result()["periods"] == ["2026-01"]
    assert "nothing new" in inbox_watch(inbox=str(inbox), warehouse=str(warehouse),
                                        pipeline=fakes.pipeline, return_state=True).message
    with warehouse_lock(warehouse, what="a running run"):
        (inbox / "2026-01" / "shouru" / "more.csv").write_text("a,b\n1,2\n", encoding="utf-8")
        assert "busy" in inbox_watch(inbox=str(inbox), warehouse=str(warehouse),
                                     pipeline=fakes.pipeline, return_state=True).message
    assert len(_runs(warehouse)) == 1

"""The monthly pipeline as Prefect flows: one flow run per ``povwatch run``, one sub-flow per period.

A period reads like the process (docs/orchestration.md):

    every department staged concurrently (one task per department: its files are one extract)
      -> validated -> promoted, or rejected
      -> marts -> alerts -> receipts -> report -> run summary (Prefect artifacts)

The business steps live in ``tasks/`` as plain functions taking paths; the tasks below are thin
wrappers that say what Prefect should do about them (retries, names). ``process_period`` and
``execute_run`` are written once against a ``Steps`` object (flows/runners.py), so the same code
runs as Prefect flows (``PrefectSteps``) or, with no Prefect server configured, on a local thread
pool (``LocalSteps``).

Retries: staging retries only while a department's files are still being copied (size/mtime not
yet stable); alerting retries because a notification channel can be briefly down. Nothing else
retries: a bad extract stays bad however often it is read.

Scale-out (Dask set in the settings): the period flow still runs here, on the thread pool, as the
one writer of the DuckDB file; only read -> conform of each (department, county) goes to the
cluster (flows/scaleout.py), after ``check_department`` found the department complete and changed,
and ``stage_department`` then loads the Parquet partitions (``tasks.ingest.load.load_parts``).

Unchanged extracts: ``stage_extract`` (``unchanged_extract`` with scale-out, before the cluster)
compares each file's sha256 with ``audit.extracts`` and returns ``unchanged``; such departments
are not validated or promoted again, and a period whose files are all known is not run at all
(``pending_periods``). Prefect's result caching is *not*
used for this: the warehouse is the one record of what was loaded (it survives a reset of
Prefect's database, works without Prefect, and a cache hit could skip loading into a warehouse
that was rebuilt).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from prefect import flow, task
from prefect.states import Completed

from povwatch.flows.runners import (LocalSteps, PrefectSteps, local_dask_cluster, orchestration_mode,
                           prefect_settings, task_runner, uses_dask)
from povwatch.tasks.core.locking import WarehouseBusy, warehouse_lock
from povwatch.tasks.core.settings import load_settings, output_dir, warehouse_path

log = logging.getLogger("povwatch")

EXTRACT_SUFFIXES = {".csv", ".xlsx", ".xls", ".parquet"}
PARTIAL_MARKERS = (".part", ".tmp", ".crdownload", ".partial", ".filepart")
PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ID_RE = re.compile(r"(?<![0-9])(\d{6})\d{7,8}(\d{3}[0-9Xx])(?![0-9])")


def scrub(text: Any) -> str:
    """No full identity number leaves the warehouse: mask anything that looks like one."""
    return _ID_RE.sub(lambda m: f"{m.group(1)}********{m.group(2)[-4:]}", "" if text is None else str(text))


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------------------------
# The inbox: which periods and departments, which files, are they complete?


def departments() -> list[str]:
    from povwatch.tasks.ingest.contracts import department_codes

    return list(department_codes())


def inbox_periods(inbox: Path) -> list[str]:
    """Periods delivered to the inbox, oldest first (extracts.md: <inbox>/<period>/<dept>/files)."""
    try:
        from povwatch.tasks.ingest.load import discover_periods
    except ImportError:
        discover_periods = None
    if discover_periods is not None:
        return sorted(discover_periods(Path(inbox)))
    return sorted(p.name for p in Path(inbox).iterdir() if p.is_dir() and PERIOD_RE.match(p.name))


def extract_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in EXTRACT_SUFFIXES and not p.name.startswith((".", "~$")))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def inbox_fingerprint(inbox: Path, period: str) -> dict[str, list[str]]:
    """dept -> sorted sha256 of its files for one period."""
    base = Path(inbox) / period
    return {d.name: sorted(sha256_file(f) for f in extract_files(d))
            for d in sorted(base.iterdir()) if d.is_dir()} if base.is_dir() else {}


def loaded_hashes(warehouse: Path) -> set[tuple[str, str, str]]:
    """(period, dept, sha256) of every file the warehouse has already seen (accepted or rejected)."""
    if not Path(warehouse).exists():
        return set()
    from povwatch.tasks.core.db import connect

    try:
        con = connect(warehouse, read_only=False)
    except Exception:  # noqa: BLE001
        return set()
    try:
        rows = con.execute(
            "SELECT DISTINCT period, dept, sha256 FROM audit.extracts WHERE sha256 IS NOT NULL"
        ).fetchall()
    except Exception:  # noqa: BLE001 - no audit tables yet
        rows = []
    finally:
        con.close()
    return {tuple(r) for r in rows}


def loaded_periods(warehouse: Path) -> list[str]:
    if not Path(warehouse).exists():
        return []
    from povwatch.tasks.core.db import connect

    con = connect(warehouse)
    try:
        rows = con.execute(
            "SELECT DISTINCT period FROM audit.extracts WHERE status NOT IN ('rejected', 'missing')"
        ).fetchall()
    except Exception:  # noqa: BLE001
        rows = []
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def pending_periods(inbox: Path, warehouse: Path) -> list[str]:
    """Periods holding a file the warehouse has not seen (new or resubmitted), oldest first."""
    seen = loaded_hashes(warehouse)
    pending = []
    for period in inbox_periods(inbox):
        for dept, hashes in inbox_fingerprint(inbox, period).items():
            if any((period, dept, h) not in seen for h in hashes):
                pending.append(period)
                break
    return pending


class FileStillCopying(RuntimeError):
    """A department's files are still being written: worth waiting and retrying."""


def settle_seconds() -> float:
    return load_settings().settle_seconds


def check_delivery_complete(folder: Path, settle: float | None = None) -> None:
    """Raise FileStillCopying while a file is partial or changed within the last ``settle`` seconds.

    Files are normally old by the time a run starts: then this costs one ``stat`` per file. A file
    that is younger is watched for ``settle`` seconds: its size and mtime must not move.
    """
    settle = settle_seconds() if settle is None else settle
    if not folder.is_dir():
        return
    partial = [p.name for p in folder.iterdir() if p.name.lower().endswith(PARTIAL_MARKERS)]
    if partial:
        raise FileStillCopying(f"{folder.name}: 文件仍在复制 still being copied: {', '.join(partial)}")
    files = extract_files(folder)
    now = time.time()
    young = [f for f in files if now - f.stat().st_mtime < settle]
    if not young:
        return
    before = {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in young}
    time.sleep(settle)
    moved = [f.name for f, sig in before.items() if not f.exists() or (f.stat().st_size, f.stat().st_mtime_ns) != sig]
    if moved:
        raise FileStillCopying(f"{folder.name}: 文件仍在变化 still changing: {', '.join(moved)}")


def _retry_only_while_copying(task, task_run, state) -> bool:
    try:
        state.result()
    except FileStillCopying:
        return True
    except Exception:  # noqa: BLE001 - anything else will not get better by retrying
        return False
    return False


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return {k: getattr(obj, k) for k in dir(obj) if not k.startswith("_") and not callable(getattr(obj, k))}


# --------------------------------------------------------------------------------------------
# Tasks: thin wrappers over tasks/*.py. Paths in, small dicts out; never a connection.

STAGE_RETRY_DELAYS = [10, 30, 60]


@task(name="stage", task_run_name="stage-{period}-{dept}", retries=3,
      retry_delay_seconds=STAGE_RETRY_DELAYS, retry_condition_fn=_retry_only_while_copying)
def stage_department(warehouse: str, inbox: str, period: str, dept: str, run_id: str,
                     parts: list | None = None) -> dict:
    """Load one department's extract into pending.<dept> (or find it unchanged).

    Without ``parts``: read, conform and load its files here (``tasks.ingest.load.stage_extract``).
    With ``parts`` (scale-out): the files were already read and conformed per county on the
    cluster, and checked not unchanged (``check_department``); only the loading is left, by the
    one writer (``tasks.ingest.load.load_parts``), from the Parquet partitions.
    """
    from povwatch.tasks.ingest import load as ingest

    if parts is None:
        check_delivery_complete(Path(inbox) / period / dept)
        result = ingest.stage_extract(Path(warehouse), Path(inbox), period, dept, run_id)
    else:
        result = ingest.load_parts(Path(warehouse), Path(inbox), period, dept, parts, run_id)
    return _stage_summary(period, dept, result)


def _stage_summary(period: str, dept: str, result) -> dict:
    result = _as_dict(result)
    files = [f if isinstance(f, dict) else {"file": str(f), "sha256": None} for f in result.get("files") or []]
    return {"period": period, "dept": dept, "status": result.get("status"),
            "files": [{"file": f.get("file"), "sha256": f.get("sha256")} for f in files],
            "message": result.get("message") or ""}


@task(name="check", task_run_name="check-{period}-{dept}", retries=3,
      retry_delay_seconds=STAGE_RETRY_DELAYS, retry_condition_fn=_retry_only_while_copying)
def check_department(warehouse: str, inbox: str, period: str, dept: str, run_id: str) -> dict:
    """Scale-out only, before anything is sent to the cluster: is the delivery complete, and is
    there anything to read? Returns the final staging summary when not (missing, a folder outside
    the inbox, or the same files as the accepted extract: 'unchanged', so not re-read on the
    cluster), else status ``to_prepare`` with the files to read and conform per county."""
    from povwatch.tasks.ingest import load as ingest

    inbox_path = Path(inbox)
    check_delivery_complete(inbox_path / period / dept)
    # missing, a folder outside the inbox, or unchanged: decided without reading a row
    decided = ingest.unchanged_extract(Path(warehouse), inbox_path, period, dept, run_id)
    if decided is not None:
        return _stage_summary(period, dept, decided)
    files = ingest.extract_files(inbox_path, period, dept)
    return {"period": period, "dept": dept, "status": "to_prepare", "files": [],
            "message": "", "todo": [str(f) for f in files]}


@task(name="validate", task_run_name="validate-{period}-{dept}")
def validate_department(warehouse: str, period: str, dept: str, run_id: str) -> dict:
    """Great Expectations suite of the department over its pending extract."""
    from povwatch.tasks.validate import suites as validate

    outcome = _as_dict(validate.validate_extract(Path(warehouse), period, dept, run_id))
    return {"period": period, "dept": dept, **outcome}


@task(name="promote", task_run_name="promote-{period}-{dept}")
def promote_department(warehouse: str, period: str, dept: str, run_id: str) -> str:
    from povwatch.tasks.ingest import load as ingest

    ingest.promote_extract(Path(warehouse), period, dept, run_id)
    return "accepted"


@task(name="reject", task_run_name="reject-{period}-{dept}")
def reject_department(warehouse: str, period: str, dept: str, run_id: str, message: str) -> str:
    from povwatch.tasks.ingest import load as ingest

    ingest.reject_extract(Path(warehouse), period, dept, run_id, message)
    return "rejected"


@task(name="marts", task_run_name="marts-{period}")
def build_marts_step(warehouse: str, period: str, run_id: str) -> dict:
    from povwatch.tasks.marts import build as marts

    return dict(marts.build_marts(Path(warehouse), period, run_id) or {})


@task(name="alerts", retries=2, retry_delay_seconds=[5, 20])
def raise_alerts(warehouse: str, run_id: str, outcomes: list[dict]) -> list[dict]:
    """Alerts for rejected extracts and failed expectations, through the configured channel.

    Retried: a notification channel that is briefly down is worth a second try (the alerts module
    fingerprints alerts, so a retry does not send twice).
    """
    from povwatch.tasks.validate import alerts

    return list(alerts.alert_on_outcomes(Path(warehouse), run_id, outcomes) or [])


@task(name="receipt", task_run_name="receipt-{period}-{dept}", retries=1, retry_delay_seconds=2)
def write_receipt_step(warehouse: str, period: str, dept: str, out_dir: str) -> str | None:
    from povwatch.tasks.ingest import receipts

    path = receipts.write_receipt(Path(warehouse), period, dept, Path(out_dir))
    return str(path) if path else None


@task(name="report", task_run_name="report-{period}")
def write_report_step(warehouse: str, period: str) -> str:
    from povwatch.tasks.office import report

    return str(report.write_report(Path(warehouse), period))


# --------------------------------------------------------------------------------------------
# One period


def _data_docs_index_once(warehouse: Path):
    """tasks.validate.suites.data_docs_index_once: validations render their Data Docs page, the index is
    built once when the period's validations are done (a stand-in validate module may lack it)."""
    import contextlib

    from povwatch.tasks.validate import suites as validate

    once = getattr(validate, "data_docs_index_once", None)
    return once(warehouse) if once else contextlib.nullcontext()


def process_period(steps, inbox: Path, period: str, warehouse: Path, run_id: str,
                   prepare: Callable[..., list] | None = None) -> dict:
    """Stage every department concurrently, validate, promote or reject, then marts, alerts,
    receipts and the report. Returns the period's summary (what the artifacts show).

    ``prepare`` (scale-out): a callable that reads and conforms the files of the departments
    needing it per (department, county), elsewhere (a Dask cluster), and returns the PreparedParts;
    staging then only loads them. Without it each department is read and loaded here."""
    w, i = str(warehouse), str(inbox)
    started = time.monotonic()
    partitions: list[dict] = []

    with _data_docs_index_once(warehouse):  # GX's Data Docs index once, not after each department
        if prepare is None:
            staged = steps.wait([steps.submit(stage_department, warehouse=w, inbox=i, period=period,
                                              dept=d, run_id=run_id) for d in departments()])
        else:
            staged, partitions = _stage_prepared(steps, prepare, w, i, period, run_id)
        to_validate = [s for s in staged if s["status"] == "staged"]
        validated = steps.wait([steps.submit(validate_department, warehouse=w, period=period,
                                             dept=s["dept"], run_id=run_id) for s in to_validate])

    decisions, outcomes = [], []
    for s, v in zip(to_validate, validated):
        if v.get("blocking_failed"):
            message = v.get("message") or "阻断性校验未通过 blocking expectation failed"
            decisions.append(steps.submit(reject_department, warehouse=w, period=period,
                                          dept=s["dept"], run_id=run_id, message=message))
        else:
            decisions.append(steps.submit(promote_department, warehouse=w, period=period,
                                          dept=s["dept"], run_id=run_id))
        outcomes.append({**v, "status": "rejected" if v.get("blocking_failed") else "accepted",
                         "files": s["files"], "message": v.get("message") or s["message"]})
    for s in staged:
        if s["status"] == "rejected":   # unreadable, or a required column missing: rejected at staging
            decisions.append(steps.submit(reject_department, warehouse=w, period=period,
                                          dept=s["dept"], run_id=run_id, message=s["message"]))
            outcomes.append({"period": period, "dept": s["dept"], "status": "rejected",
                             "blocking_failed": True, "failures": [], "files": s["files"],
                             "message": s["message"]})
    steps.wait(decisions)

    status = {s["dept"]: s["status"] for s in staged}
    status.update({o["dept"]: o["status"] for o in outcomes})
    changed = bool(outcomes)
    accepted = sorted(d for d, st in status.items() if st == "accepted")
    rejected = sorted(d for d, st in status.items() if st == "rejected")

    marts: dict = {}
    alerts: list[dict] = []
    receipts: list[str] = []
    report = None
    if changed:
        if accepted:
            marts = steps.call(build_marts_step, warehouse=w, period=period, run_id=run_id)
        alerts = steps.call(raise_alerts, warehouse=w, run_id=run_id, outcomes=outcomes)
        out = str(output_dir(warehouse) / "receipts")
        receipts = [r for r in steps.wait([
            steps.submit(write_receipt_step, warehouse=w, period=period, dept=o["dept"], out_dir=out)
            for o in outcomes]) if r]
        report = steps.call(write_report_step, warehouse=w, period=period)

    summary = {
        "period": period, "run_id": run_id,
        "departments": _department_rows(warehouse, run_id, period, staged, outcomes),
        "accepted": accepted, "rejected": rejected,
        "unchanged": sorted(d for d, st in status.items() if st == "unchanged"),
        "missing": sorted(d for d, st in status.items() if st == "missing"),
        "rejection_messages": {o["dept"]: scrub(o["message"]) for o in outcomes if o["status"] == "rejected"},
        "marts": {**{k: v for k, v in marts.items() if isinstance(v, (int, float, str)) and k != "period"},
                  **_newly_monitored(warehouse, period, marts)},
        "periods_built": [str(p) for p in marts.get("periods_built", [])],
        "alerts": len(alerts), "receipts": receipts, "report": report,
        "seconds": round(time.monotonic() - started, 2),
    }
    if prepare is not None:
        summary["partitions"] = partitions
    markdown, tables = render_summary(summary)
    steps.publish(markdown, tables, key=f"povwatch-{period}")
    return summary


def _stage_prepared(steps, prepare, w: str, i: str, period: str, run_id: str) -> tuple[list[dict], list[dict]]:
    """Scale-out staging: check every department here (complete? unchanged?), send the files of
    the others to ``prepare`` (read -> conform per county, on the cluster), then load each
    department's parts here, the one writer. Returns the staging summaries in department order
    and the partition table."""
    from povwatch.flows.scaleout import partition_rows

    checked = steps.wait([steps.submit(check_department, warehouse=w, inbox=i, period=period,
                                       dept=d, run_id=run_id) for d in departments()])
    todo = {c["dept"]: c["todo"] for c in checked if c["status"] == "to_prepare"}
    parts = prepare(inbox=i, period=period, warehouse=w, run_id=run_id, extracts=todo) if todo else []
    by_dept: dict[str, list] = {d: [] for d in todo}
    for part in parts:
        by_dept[part.dept].append(part)
    loaded = steps.wait([steps.submit(stage_department, warehouse=w, inbox=i, period=period, dept=d,
                                      run_id=run_id, parts=by_dept[d]) for d in todo])
    done = {s["dept"]: s for s in loaded}
    return [done.get(c["dept"], c) for c in checked], partition_rows(parts)


def _newly_monitored(warehouse: Path, period: str, marts: dict) -> dict:
    if not marts:
        return {}
    try:
        from povwatch.tasks.core.db import connect

        con = connect(warehouse)
        try:
            n = con.execute("SELECT count(*) FROM mart.monitoring_history WHERE entered_period = ?",
                            [period]).fetchone()[0]
        finally:
            con.close()
        return {"newly_monitored": int(n)}
    except Exception:  # noqa: BLE001 - older marts without the history table
        return {}


MEASURE_ZH = {
    "households": "户数 households", "monitored": "监测户 monitored households",
    "newly_monitored": "新纳入监测 newly monitored", "findings": "本期发现 findings",
    "problems_open": "未整改问题 open problems", "overdue": "逾期 overdue", "opened": "新开问题 opened",
    "reopened": "重新打开 reopened", "closed": "已整改 closed", "spot_check": "抽查户 spot-check",
}


def _department_rows(warehouse: Path, run_id: str, period: str, staged: list[dict],
                     outcomes: list[dict]) -> list[dict]:
    """One row per department: status, files, rows read / loaded / quarantined, message."""
    counts: dict[str, tuple] = {}
    try:
        from povwatch.tasks.core.db import connect

        con = connect(warehouse)
        try:
            for dept, files, read, loaded, quarantined in con.execute(
                "SELECT dept, count(*), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
                "FROM audit.extracts WHERE run_id = ? AND period = ? GROUP BY dept", [run_id, period]
            ).fetchall():
                counts[dept] = (files, read, loaded, quarantined)
        finally:
            con.close()
    except Exception as exc:  # noqa: BLE001 - the summary must not fail the run
        log.warning("audit.extracts not readable for the summary: %s", exc)
    by_dept = {o["dept"]: o for o in outcomes}
    rows = []
    for s in staged:
        o = by_dept.get(s["dept"], {})
        files, read, loaded, quarantined = counts.get(s["dept"], (len(s["files"]), None, None, None))
        rows.append({
            "dept": s["dept"], "status": o.get("status", s["status"]), "files": int(files or 0),
            "rows_read": int(read or 0), "rows_loaded": int(loaded or 0),
            "rows_quarantined": int(quarantined or o.get("quarantined_rows") or 0),
            "message": scrub(o.get("message") or s["message"])[:300],
        })
    return rows


STATUS_ZH = {"accepted": "接收", "rejected": "退回", "unchanged": "未变化", "missing": "未报送",
             "staged": "待校验"}


def render_summary(summary: dict) -> tuple[str, dict[str, list[dict]]]:
    """Markdown and tables for the Prefect UI. Counts and masked messages only: no identities."""
    p = summary["period"]
    lines = [f"# {p} 月度运行摘要 / run summary", "",
             f"- run: `{summary['run_id']}`",
             f"- 接收 accepted: {len(summary['accepted'])} — {', '.join(summary['accepted']) or '—'}",
             f"- 退回 rejected: {len(summary['rejected'])} — {', '.join(summary['rejected']) or '—'}",
             f"- 未变化 unchanged: {', '.join(summary['unchanged']) or '—'}",
             f"- 未报送 missing: {', '.join(summary['missing']) or '—'}",
             f"- 告警 alerts raised: {summary['alerts']}"]
    for dept, msg in summary["rejection_messages"].items():
        lines.append(f"  - **{dept}**: {msg}")
    marts = summary["marts"]
    if marts:
        lines += ["", "## 台账与监测 ledger and monitoring", ""]
        lines += [f"- {MEASURE_ZH.get(k, k)}: {v}" for k, v in marts.items()]
    rows = summary["departments"]
    lines += ["", "## 各部门 departments", "",
              "| 部门 dept | 状态 status | 文件 files | 读入 read | 入库 loaded | 隔离 quarantined |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['dept']} | {STATUS_ZH.get(r['status'], r['status'])} | {r['files']} | {r['rows_read']} | "
              f"{r['rows_loaded']} | {r['rows_quarantined']} |" for r in rows]
    if summary.get("report"):
        lines += ["", f"报告 report: `{summary['report']}`"]
    tables = {"departments": rows,
              "marts": [{"measure": MEASURE_ZH.get(k, k), "value": v} for k, v in marts.items()]}
    return "\n".join(lines), tables


# --------------------------------------------------------------------------------------------
# A run: one period, or every pending period in order; late periods replay the marts


def execute_run(steps, inbox: Path, warehouse: Path, period: str | None, run_id: str,
                run_period: Callable[..., dict], flow_run_id: str | None = None,
                lock_timeout: float | None = None) -> dict:
    """Hold the warehouse lock, record the run in audit.runs, run its periods in order."""
    inbox, warehouse = Path(inbox), Path(warehouse)
    with warehouse_lock(warehouse, timeout=lock_timeout, what=f"povwatch run {run_id}"), \
            _held_open_for_run(warehouse):
        periods = [period] if period else pending_periods(inbox, warehouse)
        # A run killed mid-way (SIGKILL, power cut) left files recorded as seen whose extracts
        # may not be promoted, or marts not committed: its periods are redone.
        redo = take_over_interrupted_runs(warehouse, run_id)
        if not period:
            periods = sorted(set(periods) | (set(redo) & set(inbox_periods(inbox))))
        if periods:
            _warm_up_validation(warehouse)
        already = loaded_periods(warehouse)
        late = [p for p in periods if already and p < already[-1] and p not in already]
        _record_run_start(warehouse, run_id, inbox, periods, flow_run_id)
        try:
            results = [run_period(inbox=str(inbox), period=p, warehouse=str(warehouse), run_id=run_id)
                       for p in periods]
            built = {r["period"] for r in results if r.get("marts")}
            for p in sorted(set(redo) & set(loaded_periods(warehouse)) - built):
                steps.call(build_marts_step, warehouse=str(warehouse), period=p, run_id=run_id)
            # A period delivered late: build_marts rewrites the per-period marts of every later
            # built period and replays the history marts (ledger, events, ranking) in order.
            replayed = sorted({p for r in results for p in r.get("periods_built", [])} - set(periods))
        except BaseException as exc:
            _record_run_end(warehouse, run_id, "failed", scrub(f"{type(exc).__name__}: {exc}")[:1000])
            raise
        summary = summarise_run(run_id, periods, results, late, replayed)
        _record_run_end(warehouse, run_id, summary["status"], summary["message"])
    return summary


def _held_open_for_run(warehouse: Path):
    """The DuckDB file stays open in this process for the run, so that a task's connect does not
    load it again and its close does not checkpoint it (tasks.core.db.held_open). With Dask too: only
    read -> conform runs on the workers, and they never open the file."""
    from povwatch.tasks.core.db import held_open

    return held_open(warehouse)


def _warm_up_validation(warehouse: Path) -> None:
    """Import Great Expectations and open its context in the background while the departments
    are staged: 3-7 s of CPU that otherwise sits on the critical path, before the first
    validation. A failure here is ignored: validation then imports GX itself and reports."""
    import threading

    import pyarrow  # noqa: F401  - imported once here, not concurrently by GX's pandas and polars

    def warm() -> None:
        try:
            from povwatch.tasks.validate.suites import gx_context

            gx_context(Path(warehouse).resolve())
        except Exception:  # noqa: BLE001
            log.debug("GX warm-up failed", exc_info=True)

    threading.Thread(target=warm, name="povwatch-gx-warm-up", daemon=True).start()


def take_over_interrupted_runs(warehouse: Path, run_id: str) -> list[str]:
    """Periods of runs recorded as 'running' that no process runs any more; they become 'failed'.

    Called while holding the warehouse lock: a run still marked running was killed.
    """
    if not Path(warehouse).exists():
        return []
    from povwatch.tasks.core.db import open_warehouse, write_lock

    with write_lock:
        con = open_warehouse(warehouse)
        try:
            rows = con.execute("SELECT run_id, periods FROM audit.runs "
                               "WHERE status = 'running' AND run_id <> ?", [run_id]).fetchall()
            if rows:
                con.execute(
                    "UPDATE audit.runs SET status = 'failed', finished_at = current_timestamp, "
                    "message = ? WHERE status = 'running' AND run_id <> ?",
                    [f"运行中断（进程意外终止），已由 {run_id} 重做 / interrupted; redone by {run_id}",
                     run_id])
        finally:
            con.close()
    return sorted({p for _, periods in rows for p in (periods or "").split(",") if p})


def summarise_run(run_id: str, periods: list[str], results: list[dict], late: list[str],
                  replayed: list[str]) -> dict:
    rejected = [f"{r['period']} {d}" for r in results for d in r["rejected"]]
    if not periods:
        message = "收件箱中没有新的或变更的数据 / nothing new in the inbox"
    elif rejected:
        message = (f"运行完成，以下部门数据被退回：{'、'.join(rejected)} / "
                   f"completed with rejected extracts: {', '.join(rejected)}")
    else:
        message = f"运行完成，全部接收（{', '.join(periods)}） / completed, every extract accepted"
    if late:
        message += f"；迟到期次 {', '.join(late)} 已补入并重建其后台账 / late period(s) loaded, history rebuilt"
    return {"run_id": run_id, "periods": periods, "results": results, "rejected": rejected,
            "late": late, "replayed": replayed,
            "status": "rejected_extracts" if rejected else "completed", "message": message}


def _record_run_start(warehouse: Path, run_id: str, inbox: Path, periods: list[str],
                      flow_run_id: str | None) -> None:
    from povwatch.tasks.core.db import open_warehouse, write_lock

    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute(
                "INSERT INTO audit.runs (run_id, started_at, inbox, periods, status, message, flow_run_id)"
                " VALUES (?, current_timestamp, ?, ?, 'running', NULL, ?)",
                [run_id, str(inbox), ",".join(periods), flow_run_id],
            )
        finally:
            con.close()


def _record_run_end(warehouse: Path, run_id: str, status: str, message: str) -> None:
    from povwatch.tasks.core.db import open_warehouse, write_lock

    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("UPDATE audit.runs SET finished_at = current_timestamp, status = ?, message = ?"
                        " WHERE run_id = ?", [status, message, run_id])
        finally:
            con.close()


# --------------------------------------------------------------------------------------------
# The flows


@flow(name="povwatch-period", flow_run_name="{period}", log_prints=True)
def period_flow(inbox: str, period: str, warehouse: str, run_id: str, scale_out: bool = False):
    """One period of the monthly pipeline (a sub-flow of povwatch-run), the one writer of the
    warehouse, on the thread pool in this process. ``scale_out``: each (department, county)'s
    read -> conform runs first on the Dask cluster the settings name (povwatch-prepare-counties)."""
    prepare = _prepare_on_dask if scale_out else None
    summary = process_period(PrefectSteps(), Path(inbox), period, Path(warehouse), run_id, prepare=prepare)
    if summary["rejected"]:
        return Completed(message=f"{period} 退回 rejected: {', '.join(summary['rejected'])}", data=summary)
    return summary


def _prepare_on_dask(**kwargs) -> list:
    """The county sub-flow on the DaskTaskRunner the settings ask for."""
    from povwatch.flows.scaleout import prepare_counties_flow

    return prepare_counties_flow.with_options(task_runner=task_runner())(**kwargs)


@flow(name="povwatch-run", log_prints=True)
def inbox_flow(inbox: str, warehouse: str, period: str | None = None, run_id: str | None = None):
    """Run the pipeline over an inbox: one period, or every period with new files, in order."""
    from prefect.runtime import flow_run

    run_id = run_id or new_run_id()
    summary = execute_run(PrefectSteps(), Path(inbox), Path(warehouse), period, run_id,
                          run_period=period_runner(), flow_run_id=str(flow_run.id))
    return Completed(message=summary["message"], data=summary)


# --------------------------------------------------------------------------------------------
# The command line's entry point


def period_runner() -> Callable[..., dict]:
    """The period sub-flow, chosen when the run starts. It always runs on the thread pool in this
    process (it writes the DuckDB file; DuckDB allows one writing process per file). With Dask
    (settings), its departments' read -> conform per county runs on the cluster first
    (flows/scaleout.py) and staging loads the Parquet partitions."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from povwatch.flows.runners import runner_settings

    scale_out = uses_dask()
    flow_ = period_flow.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=runner_settings().max_workers))

    def run(**kwargs) -> dict:
        return flow_(**kwargs, scale_out=scale_out)

    return run


def run_inbox(inbox: Path, period: str | None = None, warehouse: Path | None = None,
              mode: str | None = None, echo: Callable[[str], None] = print) -> int:
    """``povwatch run``: 0 every extract accepted, 3 some rejected, 1 the run could not complete."""
    warehouse = Path(warehouse) if warehouse else warehouse_path()
    mode = orchestration_mode(mode)
    run_id = new_run_id()
    started = time.monotonic()
    try:
        if mode == "local":
            summary = _run_local(inbox, period, warehouse, run_id)
        else:
            with prefect_settings(mode), local_dask_cluster():
                state = inbox_flow(inbox=str(inbox), warehouse=str(warehouse), period=period,
                                   run_id=run_id, return_state=True)
                if not state.is_completed():
                    echo(f"运行失败 / run failed: {scrub(state.message)}")
                    return 1
                summary = state.result()
    except WarehouseBusy as exc:
        echo(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - the run could not complete: say why, exit 1
        message = scrub(f"{type(exc).__name__}: {exc}")
        echo(f"运行失败 / run failed: {message}")
        if mode == "local":
            _notify_failure(run_id, message)
        return 1
    echo(format_run(summary, mode, time.monotonic() - started))
    return 3 if summary["rejected"] else 0


def _run_local(inbox: Path, period: str | None, warehouse: Path, run_id: str) -> dict:
    steps = LocalSteps()
    try:
        return execute_run(steps, Path(inbox), warehouse, period, run_id,
                           run_period=lambda **kw: process_period(steps, Path(kw["inbox"]), kw["period"],
                                                                  Path(kw["warehouse"]), kw["run_id"]))
    finally:
        steps.close()


def _notify_failure(run_id: str, message: str) -> None:
    """Without a Prefect server there is no Automation: tell the channel ourselves."""
    try:
        from povwatch.tasks.validate.alerts import notify_run_failure

        notify_run_failure(run_id, message)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not send the failure notification: %s", exc)


def format_run(summary: dict, mode: str, seconds: float) -> str:
    lines = [summary["message"]]
    for r in summary["results"]:
        lines.append(f"  {r['period']}: 接收 accepted {len(r['accepted'])}, 退回 rejected {len(r['rejected'])}, "
                     f"未变化 unchanged {len(r['unchanged'])}, 未报送 missing {len(r['missing'])}")
        for dept, msg in r["rejection_messages"].items():
            lines.append(f"    {dept}: {msg}")
        if r.get("report"):
            lines.append(f"    报告 report: {r['report']}")
    lines.append(f"  ({mode} mode, {seconds:.1f} s, run {summary['run_id']})")
    return "\n".join(lines)

"""The warehouse's record of runs (audit.runs) and what it has seen (audit.extracts), for the
orchestration: what is already loaded, which runs were interrupted, which periods are unfinished.

A period is *unfinished* when a run that listed it ended without finishing it — killed (found
still 'running' by the next run, which marks it 'failed'), interrupted (Ctrl-C) or failed (an
unwritable output folder, a marts error) — and no later run finished it. The next plain
``povwatch run`` runs such periods again to the end (staging what changed, then marts, alerts,
receipts, report), and ``povwatch status`` lists them.
"""
from __future__ import annotations

from pathlib import Path

from povwatch.tasks.core.db import connect, open_warehouse, write_lock

FINISHED = ("completed", "rejected_extracts")


def loaded_hashes(warehouse: Path) -> set[tuple[str, str, str]]:
    """(period, dept, sha256) of every file the warehouse has recorded (accepted, rejected, staged)."""
    if not Path(warehouse).exists():
        return set()
    con = connect(warehouse)
    try:
        if not _has(con, "audit", "extracts"):
            return set()
        rows = con.execute("SELECT DISTINCT period, dept, sha256 FROM audit.extracts "
                           "WHERE sha256 IS NOT NULL").fetchall()
    finally:
        con.close()
    return {tuple(r) for r in rows}


def loaded_periods(warehouse: Path) -> list[str]:
    """Periods with at least one department's extract staged or accepted, oldest first."""
    if not Path(warehouse).exists():
        return []
    con = connect(warehouse)
    try:
        if not _has(con, "audit", "extracts"):
            return []
        rows = con.execute("SELECT DISTINCT period FROM audit.extracts "
                           "WHERE status NOT IN ('rejected', 'missing')").fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def take_over_interrupted_runs(warehouse: Path, run_id: str) -> None:
    """Runs recorded as 'running' that no process runs any more become 'failed' (their periods
    are then unfinished). Called while holding the warehouse lock: a run still marked running was
    killed."""
    if not Path(warehouse).exists():
        return
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute(
                "UPDATE audit.runs SET status = 'failed', finished_at = current_timestamp, "
                "message = ? WHERE status = 'running' AND run_id <> ?",
                [f"运行中断（进程意外终止），由 {run_id} 接续 / killed; taken over by {run_id}", run_id])
        finally:
            con.close()


UNFINISHED_SQL = f"""
    WITH listed AS (
        SELECT run_id, started_at, status, unnest(string_split(periods, ',')) AS period
        FROM audit.runs WHERE coalesce(periods, '') <> '')
    SELECT DISTINCT stopped.period FROM listed stopped
    WHERE stopped.status NOT IN ({", ".join(f"'{s}'" for s in FINISHED)}, 'running')
      AND NOT EXISTS (SELECT 1 FROM listed later
                      WHERE later.period = stopped.period AND later.started_at > stopped.started_at
                        AND later.status IN ({", ".join(f"'{s}'" for s in FINISHED)}))
    ORDER BY 1
"""


def unfinished_periods(warehouse: Path, con=None) -> list[str]:
    """Periods a stopped run left unfinished and no later run finished, oldest first."""
    if con is None:
        if not Path(warehouse).exists():
            return []
        con = connect(warehouse)
        try:
            return unfinished_periods(warehouse, con)
        finally:
            con.close()
    if not _has(con, "audit", "runs"):
        return []
    return [p for (p,) in con.execute(UNFINISHED_SQL).fetchall()]


def record_run_start(warehouse: Path, run_id: str, inbox: Path, periods: list[str],
                     flow_run_id: str | None) -> None:
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute(
                "INSERT INTO audit.runs (run_id, started_at, inbox, periods, status, message, flow_run_id)"
                " VALUES (?, current_timestamp, ?, ?, 'running', NULL, ?)",
                [run_id, str(inbox), ",".join(periods), flow_run_id])
        finally:
            con.close()


def record_run_end(warehouse: Path, run_id: str, status: str, message: str) -> None:
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("UPDATE audit.runs SET finished_at = current_timestamp, status = ?, message = ?"
                        " WHERE run_id = ?", [status, message, run_id])
        finally:
            con.close()


def _rows(warehouse: Path, sql: str, params: list) -> list[tuple]:
    con = connect(warehouse)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def department_counts(warehouse: Path, run_id: str, period: str) -> dict[str, tuple[int, int, int, int]]:
    """dept -> (files, rows read, loaded, quarantined) that this run recorded for the period."""
    rows = _rows(warehouse, "SELECT dept, count(sha256), sum(rows_read), sum(rows_loaded), sum(rows_quarantined) "
                 "FROM audit.extracts WHERE run_id = ? AND period = ? GROUP BY dept", [run_id, period])
    return {dept: tuple(int(v or 0) for v in counts) for dept, *counts in rows}


def skipped_files(warehouse: Path, run_id: str, period: str) -> dict[str, list[str]]:
    """dept -> the files in its folder this run recorded as not read (no sha256), with the reason."""
    rows = _rows(warehouse, "SELECT dept, file, message FROM audit.extracts WHERE run_id = ? AND period = ? "
                 "AND sha256 IS NULL ORDER BY dept, file", [run_id, period])
    out: dict[str, list[str]] = {}
    for dept, file, message in rows:
        out.setdefault(dept, []).append(f"{file}（{message}）" if message else file)
    return out


def decided_departments(warehouse: Path, period: str) -> list[str]:
    """Departments with an accepted or rejected extract of the period (their receipts can be written)."""
    return [d for (d,) in _rows(warehouse, "SELECT DISTINCT dept FROM audit.extracts WHERE period = ? "
                                "AND status IN ('accepted', 'rejected') ORDER BY dept", [period])]


def newly_monitored(warehouse: Path, period: str) -> int | None:
    """Households that entered monitoring in the period (None before the history mart exists)."""
    con = connect(warehouse)
    try:
        if not _has(con, "mart", "monitoring_history"):
            return None
        return int(con.execute("SELECT count(*) FROM mart.monitoring_history WHERE entered_period = ?",
                               [period]).fetchone()[0])
    finally:
        con.close()


def _has(con, schema: str, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables "
                            "WHERE table_schema = ? AND table_name = ?", [schema, table]).fetchone()[0])

"""``povwatch status``: recent runs, extracts accepted / rejected, open alerts — readable tables.

Read-only; while a run writes the warehouse, says so (tasks.core.locking.open_for_reading).
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

from povwatch.tasks.core.locking import holder, is_locked, open_for_reading
from povwatch.tasks.core.runs import unfinished_periods
from povwatch.tasks.core.privacy import scrub


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, limit: int) -> str:
    out, width = "", 0
    for c in text:
        w = _width(c)
        if width + w > limit - 1:
            return out + "…"
        out, width = out + c, width + w
    return out


def table(headers: list[str], rows: list[tuple], limit: int = 48) -> str:
    """A plain-text table that lines up Chinese (double-width) characters."""
    cells = [[_cut("" if v is None else str(v), limit) for v in row] for row in rows]
    widths = [max([_width(h)] + [_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    pad = lambda t, w: t + " " * (w - _width(t))  # noqa: E731
    lines = ["  ".join(pad(h, w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(pad(c, w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def status_text(warehouse: Path, runs: int = 10) -> str:
    con = open_for_reading(warehouse)
    try:
        recent = con.execute(
            "SELECT run_id, strftime(started_at, '%Y-%m-%d %H:%M'), "
            "round(epoch(finished_at - started_at), 1), periods, status, "
            "concat_ws('；', warnings, message) "
            "FROM audit.runs ORDER BY started_at DESC LIMIT ?", [runs]).fetchall()
        extracts = con.execute(
            "WITH last AS (SELECT period, dept, arg_max(status, recorded_at) AS status, "
            "  arg_max(message, recorded_at) AS message, max(recorded_at) AS at, "
            "  arg_max(run_id, recorded_at) AS run_id "
            "  FROM audit.extracts WHERE status IN ('accepted', 'rejected') GROUP BY period, dept), "
            # an accepted extract without a data row: an empty snapshot (contract may_be_empty)
            "rows AS (SELECT period, dept, run_id, sum(rows_read) AS rows_read FROM audit.extracts "
            "  WHERE status = 'accepted' GROUP BY ALL) "
            "SELECT period, count(*) FILTER (WHERE status = 'accepted'), "
            "  count(*) FILTER (WHERE status = 'rejected'), "
            "  string_agg(dept, ', ' ORDER BY dept) FILTER (WHERE status = 'rejected'), "
            "  string_agg(dept, ', ' ORDER BY dept) FILTER (WHERE status = 'accepted' AND rows_read = 0) "
            "FROM last LEFT JOIN rows USING (period, dept, run_id) "
            "GROUP BY period ORDER BY period DESC LIMIT 12").fetchall()
        alerts = con.execute(
            "SELECT strftime(created_at, '%Y-%m-%d %H:%M'), period, dept, severity, channel, "
            "CASE WHEN delivered THEN '已送达 sent' ELSE '未送达 not sent' END, summary "
            "FROM audit.alerts a WHERE NOT EXISTS ("
            "  SELECT 1 FROM audit.extracts e WHERE e.period = a.period AND e.dept = a.dept "
            "  AND e.status = 'accepted' AND e.recorded_at > a.created_at) "
            "ORDER BY created_at DESC LIMIT 20").fetchall()
        monitoring = _monitoring_rows(con)
        unfinished = unfinished_periods(warehouse, con)
    finally:
        con.close()
    out = [f"povwatch 状态 status — {warehouse}"]
    if is_locked(warehouse):
        info = holder(warehouse) or {}
        out.append(f"正在运行 running now: {info.get('what')} (PID {info.get('pid')}, since {info.get('since')})")
    if unfinished:
        out += ["", f"未完成的期次 unfinished periods: {', '.join(unfinished)} — 运行中断或失败，"
                    "下次 povwatch run 将续完 / a run stopped before finishing them; the next "
                    "povwatch run finishes them"]
    out += ["", "最近运行 recent runs",
            table(["运行 run", "开始 started", "秒 s", "期次 periods", "状态 status", "说明 message"],
                  recent) if recent else "（无 none）"]
    out += ["", "各期数据 extracts by period",
            table(["期次 period", "接收 accepted", "退回 rejected", "退回部门 rejected depts",
                   "空快照 empty snapshots"], extracts)
            if extracts else "（无 none）"]
    out += ["", "未解决告警 open alerts (no accepted resubmission since)",
            table(["时间 at", "期次 period", "部门 dept", "级别 severity", "渠道 channel", "送达 delivered",
                   "摘要 summary"], alerts) if alerts else "（无 none）"]
    if monitoring:
        out += ["", "监测对象 households under monitoring (docs/monitoring.md)",
                table(["期次 period", "监测对象 monitored", "本期预警 warned", "建议消除 proposed",
                       "人工评估 manual review", "已消除 cleared", "识别逾期 identification overdue",
                       "再标注 re-flagged"], monitoring)]
    return scrub("\n".join(out))   # messages and summaries can name a file holding a number


def _monitoring_rows(con) -> list[tuple]:
    """监测对象 per period as the office counts them (mart.township_monitoring), latest first."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'mart' "
                       "AND table_name = 'township_monitoring'").fetchone()[0]:
        return []
    return con.execute(
        "SELECT period, sum(monitored), sum(warned), sum(proposed_clear), sum(manual_review), "
        "sum(cleared), sum(identification_overdue), sum(reflagged) FROM mart.township_monitoring "
        "GROUP BY period ORDER BY period DESC LIMIT 6").fetchall()



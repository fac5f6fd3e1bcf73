"""What ``povwatch demo`` prints after its run: households monitored, open problems, quarantined
rows, rejected extracts, where the report is (the demo's own summary, read from the marts)."""
from __future__ import annotations

from pathlib import Path

from povwatch.tasks.core.locking import open_for_reading
from povwatch.tasks.core.settings import output_dir


def flagged(warehouse: Path) -> str:
    """What the demo found: monitored households, open problems, rejected extracts, the report."""
    con = open_for_reading(warehouse)
    one = lambda sql, *p: con.execute(sql, list(p)).fetchone()[0]  # noqa: E731
    try:
        period = one("SELECT max(period) FROM mart.household_status")
        # 监测对象 as the office counts them (docs/monitoring.md), not only this period's warnings
        monitoring = con.execute(
            "SELECT coalesce(sum(monitored), 0), coalesce(sum(warned), 0), coalesce(sum(proposed_clear), 0), "
            "coalesce(sum(manual_review), 0), coalesce(sum(cleared), 0), "
            "coalesce(sum(identification_overdue), 0) FROM mart.township_monitoring WHERE period = ?",
            [period]).fetchone()
        open_problems = one("SELECT count(*) FROM mart.ledger_as_of(?) WHERE status = 'open'", period)
        overdue = one("SELECT count(*) FROM mart.ledger_as_of(?) WHERE status = 'open' AND overdue", period)
        rejected = con.execute(
            "SELECT period, dept, any_value(message) FROM audit.extracts WHERE status = 'rejected' "
            "GROUP BY period, dept ORDER BY period, dept").fetchall()
        quarantined = one("SELECT coalesce(sum(rows_quarantined), 0) FROM audit.extracts")
    finally:
        con.close()
    reports = sorted((output_dir(warehouse)).rglob("latest.html"))
    lines = [
        "",
        f"== 演示结果 demo results ({period}) ==",
        "监测对象 under monitoring: {}（本期预警 warned {}；建议风险消除 proposed {}，需人工评估 manual review {}；"
        "已消除 cleared {}；识别逾期 identification overdue {}）".format(*monitoring),
        f"未整改问题 open problems: {open_problems}（逾期 overdue {overdue}）",
        f"隔离行 quarantined rows: {quarantined}",
        f"退回的数据 rejected extracts: {len(rejected)}",
    ]
    lines += [f"  {p} {d}: {str(m or '')[:120]}" for p, d, m in rejected]
    lines.append(f"数据仓库 warehouse: {warehouse}")
    if reports:
        lines.append(f"报告 report: {reports[-1]}")
    lines.append("查看状态 status: povwatch status")
    return "\n".join(lines)

"""``povwatch demo``: a demo county generated into var/demo-inbox, run end to end, summarised.

Works on a fresh install with no configuration: without ``PREFECT_API_URL`` the pipeline runs in
local mode (the same steps on a thread pool, no Prefect server; see flows/runners.py). With a
Prefect server configured, the demo is a normal flow run you can open in the UI.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from povwatch.flows.run_command import run_inbox
from povwatch.tasks.core.locking import open_for_reading

DEMO_PERIOD = "2020-06"


def demo_inbox(warehouse: Path) -> Path:
    return Path(warehouse).parent / "demo-inbox"


def run_demo(warehouse: Path, households: int = 600, periods: int = 3, echo=print) -> int:
    from povwatch.tasks.synth.generate import generate

    warehouse = Path(warehouse)
    inbox = demo_inbox(warehouse)
    if inbox.exists():
        shutil.rmtree(inbox)   # same seed: same bytes, so a second demo finds every extract unchanged
    echo(f"生成演示县数据 / generating the demo county: {inbox}")
    echo(generate(inbox, period=DEMO_PERIOD, periods=periods, households=households))
    code = run_inbox(inbox, period=None, warehouse=warehouse, echo=echo)
    if code != 1:
        echo(flagged(warehouse))
    return code


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
    from povwatch.tasks.core.settings import output_dir

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

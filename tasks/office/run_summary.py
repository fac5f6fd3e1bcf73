"""What a run tells its user: the run's message, the period summary shown in Prefect (markdown and
tables) and the text ``povwatch run`` prints. Counts and masked messages only: no identities.
"""
from __future__ import annotations

from povwatch.tasks.core.privacy import scrub

STATUS_ZH = {"accepted": "接收", "rejected": "退回", "unchanged": "未变化", "missing": "未报送",
             "staged": "待校验"}

MEASURE_ZH = {
    "households": "户数 households", "monitored": "监测户 monitored households",
    "newly_monitored": "新纳入监测 newly monitored", "findings": "本期发现 findings",
    "problems_open": "未整改问题 open problems", "overdue": "逾期 overdue", "opened": "新开问题 opened",
    "reopened": "重新打开 reopened", "closed": "已整改 closed", "spot_check": "抽查户 spot-check",
}


def run_message(periods: list[str], rejected: list[str], late: list[str], resumed: list[str]) -> str:
    """The run's one-line outcome, in Chinese and English (audit.runs, Prefect state, CLI)."""
    if not periods:
        message = "收件箱中没有新的或变更的数据 / nothing new in the inbox"
    elif rejected:
        message = (f"运行完成，以下部门数据被退回：{'、'.join(rejected)} / "
                   f"completed with rejected extracts: {', '.join(rejected)}")
    else:
        message = f"运行完成，全部接收（{', '.join(periods)}） / completed, every extract accepted"
    if resumed:
        message += f"；续完上次未完成的期次 {', '.join(resumed)} / finished what a stopped run left"
    if late:
        message += f"；迟到期次 {', '.join(late)} 已补入并重建其后台账 / late period(s) loaded, history rebuilt"
    return message


def department_rows(staged: list[dict], outcomes: list[dict],
                    counts: dict[str, tuple[int, int, int, int]]) -> list[dict]:
    """One row per department: status, files, rows read / loaded / quarantined, message."""
    by_dept = {o["dept"]: o for o in outcomes}
    rows = []
    for s in staged:
        o = by_dept.get(s["dept"], {})
        files, read, loaded, quarantined = counts.get(s["dept"], (len(s["files"]), 0, 0, 0))
        rows.append({
            "dept": s["dept"], "status": o.get("status", s["status"]), "files": files,
            "rows_read": read, "rows_loaded": loaded,
            "rows_quarantined": quarantined or int(o.get("quarantined_rows") or 0),
            "message": scrub(o.get("message") or s["message"])[:300],
        })
    return rows


def render_summary(summary: dict) -> tuple[str, dict[str, list[dict]]]:
    """Markdown and tables of a period for the Prefect UI."""
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
    for dept, names in summary.get("skipped", {}).items():
        lines.append(f"  - {dept} 未读取 not read: {scrub('、'.join(names))}")
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


def format_run(summary: dict, mode: str, seconds: float) -> str:
    """What ``povwatch run`` prints."""
    lines = [summary["message"]]
    lines += [f"  收件箱中未读取 not read in the inbox: {scrub(problem)}" for problem in summary.get("inbox_problems", [])]
    for r in summary["results"]:
        lines.append(f"  {r['period']}: 接收 accepted {len(r['accepted'])}, 退回 rejected {len(r['rejected'])}, "
                     f"未变化 unchanged {len(r['unchanged'])}, 未报送 missing {len(r['missing'])}")
        for dept, msg in r["rejection_messages"].items():
            lines.append(f"    {dept}: {msg}")
        for dept, names in r.get("skipped", {}).items():
            lines.append(f"    {dept} 未读取 not read: {scrub('、'.join(names))}")
        if r.get("report"):
            lines.append(f"    报告 report: {r['report']}")
    lines.append(f"  ({mode} mode, {seconds:.1f} s, run {summary['run_id']})")
    return "\n".join(lines)

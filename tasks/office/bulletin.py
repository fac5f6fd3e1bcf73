"""Bulletins: the weekly dispatch summary (周调度) and the dekad bulletin (旬通报).

What opened, closed and became overdue in a date range, per responsible department, per township
and per problem type, as a short HTML page and the same in markdown (for pasting into a chat group
or an official document). Counts only: no household, person or identity number appears.

Dates of events. mart.problem_events records every transition with its period, and an event is
dated at the end of its period (mart.problem_flags, warehouse/models/02_office.sql): the data are
monthly snapshots, so a problem is known to have opened or closed only by the
end of the period whose extracts showed it. A week without a month end then shows no openings or
closings, only problems that became overdue — deadlines are real dates (end of the first period +
the rule's days), so "became overdue" is exact: the day after the deadline, for a problem still
open on its deadline.

Ranges: any [since, until], both inclusive. Defaults: the last complete Monday–Sunday week, or the
last complete dekad (days 1–10, 11–20, 21–end of month).
"""
from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from povwatch.tasks.office.outputs import (PROBLEM_LABELS, WarehouseUnavailable,
                           dept_names_sql_values, frame, place_sql, reading,
                           register_divisions, table_exists, write_private)
from povwatch.tasks.core.privacy import scrub_rendered
from povwatch.tasks.core.settings import output_dir
from povwatch.tasks.office.report import _has_table_macro

TEMPLATES = Path(__file__).parent / "templates"
KIND_TITLES = {"weekly": "周调度", "dekad": "旬通报"}


# ---------------------------------------------------------------- ranges


def dekad_of(day: date) -> tuple[date, date]:
    """The dekad containing ``day``: 1–10, 11–20 or 21–end of month."""
    last = calendar.monthrange(day.year, day.month)[1]
    if day.day <= 10:
        return day.replace(day=1), day.replace(day=10)
    if day.day <= 20:
        return day.replace(day=11), day.replace(day=20)
    return day.replace(day=21), day.replace(day=last)


def week_of(day: date) -> tuple[date, date]:
    start = day - timedelta(days=day.weekday())
    return start, start + timedelta(days=6)


def last_complete(kind: str, today: date) -> tuple[date, date]:
    """The last week (Mon–Sun) or dekad that ended before ``today``."""
    of = week_of if kind == "weekly" else dekad_of
    start, end = of(today)
    return of(start - timedelta(days=1))


def beijing_today() -> date:
    """Today in China (the office's calendar), whatever the server's time zone."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


def resolve_range(kind: str, since: date | None, until: date | None,
                  today: date | None = None) -> tuple[date, date]:
    of = week_of if kind == "weekly" else dekad_of
    if since is None and until is None:
        return last_complete(kind, today or beijing_today())
    if since is None:
        return (until - timedelta(days=6), until) if kind == "weekly" else (of(until)[0], until)
    if until is None:
        return (since, since + timedelta(days=6)) if kind == "weekly" else (since, of(since)[1])
    return since, until


def range_title(kind: str, since: date, until: date) -> str:
    if kind == "dekad" and dekad_of(since) == (since, until):
        part = {1: "上旬", 11: "中旬", 21: "下旬"}[since.day]
        return f"{since.year}年{since.month}月{part}"
    return f"{since.isoformat()} 至 {until.isoformat()}"


# ---------------------------------------------------------------- data


def _problem_flags_sql(con) -> tuple[str, bool]:
    """SQL giving per problem: dept, township, code; opened / reopened / closed / became overdue
    in the range; open and overdue at its end. Parameters $since, $until (DATE). The model's
    ``mart.problem_flags`` (warehouse/models/02_office.sql); the second value says whether events
    carry their own dates (they do not: an event is dated at the end of its period)."""
    return "SELECT * FROM mart.problem_flags($since, $until)", False


def bulletin_data(con, since: date, until: date) -> dict:
    if not (table_exists(con, "mart.problem_events") and table_exists(con, "mart.problem_ledger")
            and _has_table_macro(con, "mart", "problem_flags")):
        raise WarehouseUnavailable("仓库中还没有问题台账（mart.problem_events）。",
                                   "The warehouse has no problem ledger (mart.problem_events) yet.")
    register_divisions(con)
    flags, dated = _problem_flags_sql(con)
    params = {"since": since, "until": until}
    agg = """count(*) FILTER (WHERE opened) AS opened, count(*) FILTER (WHERE reopened) AS reopened,
             count(*) FILTER (WHERE closed) AS closed,
             count(*) FILTER (WHERE became_overdue) AS became_overdue,
             count(*) FILTER (WHERE open_end) AS open_end,
             count(*) FILTER (WHERE overdue_end) AS overdue_end"""
    active = "HAVING count(*) FILTER (WHERE opened OR closed OR became_overdue OR open_end) > 0"
    problems = ", ".join(f"('{k}', '{v}')" for k, v in PROBLEM_LABELS.items())
    by_dept = frame(con, f"""
        WITH depts(code, name) AS (VALUES {dept_names_sql_values()}), f AS ({flags})
        SELECT coalesce(d.name, f.responsible_dept, '（未指定）') AS name, {agg}
        FROM f LEFT JOIN depts d ON d.code = f.responsible_dept GROUP BY 1 {active}
        ORDER BY became_overdue DESC, overdue_end DESC, open_end DESC, name
    """, params)
    by_town = frame(con, f"""
        WITH f AS ({flags})
        SELECT {place_sql('township_code')} AS name, {agg}
        FROM f GROUP BY township_code {active}
        ORDER BY became_overdue DESC, overdue_end DESC, open_end DESC, township_code
    """, params)
    rules = ("SELECT code, rule_name AS label FROM mart.rules" if table_exists(con, "mart.rules")
             else "SELECT NULL AS code, NULL AS label WHERE false")
    by_code = frame(con, f"""
        WITH problems(code, label) AS (VALUES {problems}), rules AS ({rules}), f AS ({flags})
        SELECT f.code || ' ' || coalesce(r.label, p.label, '') AS name, {agg}
        FROM f LEFT JOIN problems p USING (code) LEFT JOIN rules r USING (code)
        GROUP BY f.code, r.label, p.label {active}
        ORDER BY f.code
    """, params)
    totals = frame(con, f"WITH f AS ({flags}) SELECT {agg} FROM f", params).row(0, named=True)
    return {"by_dept": by_dept, "by_town": by_town, "by_code": by_code, "totals": totals,
            "dated": dated}


# ---------------------------------------------------------------- writing


def write_bulletin(warehouse: Path, kind: str, since: date, until: date) -> Path:
    """Write the bulletin for [since, until] as HTML (returned) and markdown beside it."""
    if kind not in KIND_TITLES:
        raise ValueError(f"kind must be one of {sorted(KIND_TITLES)}")
    if since > until:
        raise WarehouseUnavailable(f"起始日期 {since} 晚于截止日期 {until}。",
                                   f"since {since} is after until {until}.")
    warehouse = Path(warehouse)
    with reading(warehouse) as con:
        data = bulletin_data(con, since, until)
    ctx = {
        "kind": kind, "kind_title": KIND_TITLES[kind], "since": since.isoformat(),
        "until": until.isoformat(), "range_title": range_title(kind, since, until),
        "generated_at": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        "totals": data["totals"], "dated": data["dated"],
        "sections": [("按责任单位", "责任单位", data["by_dept"].rows(named=True)),
                     ("按乡镇", "乡镇", data["by_town"].rows(named=True)),
                     ("按问题类型", "问题类型", data["by_code"].rows(named=True))],
    }
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      finalize=scrub_rendered,  # problem details can hold a number
                      trim_blocks=True, lstrip_blocks=True)
    folder = output_dir(warehouse) / "bulletins"
    stem = f"{kind}-{since.isoformat()}_{until.isoformat()}"
    md_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, finalize=scrub_rendered,
                         trim_blocks=True, lstrip_blocks=True)
    md_env.filters["cell"] = lambda v: str(v).replace("|", "｜")
    write_private(folder / f"{stem}.md", md_env.get_template("bulletin.md.j2").render(**ctx))
    return write_private(folder / f"{stem}.html",
                         env.get_template("bulletin.html.j2").render(**ctx))

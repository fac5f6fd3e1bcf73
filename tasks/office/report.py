"""``povwatch report``: one self-contained HTML report per period, readable offline.

Everything is aggregated in DuckDB SQL; the page holds no household-level data at all (no names,
no identity numbers, no health detail), only counts and shares per county, township, department
and period. Charts are inline SVG (tasks.office.charts); there is no script, no web font, no CDN: the file
opens from a USB stick on a machine with no network.

Written to ``output_dir(warehouse)/reports/<period>/report-<run id or timestamp>.html`` (one per
run, kept) and copied to ``latest.html`` beside it (a stable address).
"""
from __future__ import annotations

import json

import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape

from povwatch.tasks.office import charts
from povwatch.tasks.core.privacy import scrub_rendered
from povwatch.tasks.core.settings import output_dir
from povwatch.tasks.office.outputs import (CATEGORY_LABELS, dept_names_sql_values, frame, mart_periods, period_end,
                           place_sql, previous_period, provenance, reading, register_divisions,
                           resolve_period, table_exists, write_private)

TEMPLATES = Path(__file__).parent / "templates"
INDICATORS = {"education_ok": "义务教育", "medical_ok": "基本医疗", "housing_ok": "住房安全",
              "water_ok": "饮水安全", "income_ok": "收入达标"}
QUALITY_PERIODS = 6  # data-quality history shown: this period and the five before it


def write_report(warehouse: Path, period: str | None = None, run_id: str | None = None) -> Path:
    """Write the report for ``period`` (default: the latest in the marts); return its path."""
    warehouse = Path(warehouse)
    with reading(warehouse) as con:
        period = resolve_period(con, period)
        html = render_report(con, warehouse, period, _report_dir(warehouse, period))
    folder = _report_dir(warehouse, period)
    stamp = _safe(run_id) if run_id else datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"report-{stamp}.html", 1
    while path.exists():  # two reports in one second (or a rerun of a run id): keep both
        n += 1
        path = folder / f"report-{stamp}-{n}.html"
    path = write_private(path, html)
    latest = folder / "latest.html"
    shutil.copyfile(path, latest)
    os.chmod(latest, 0o600)
    return path


def _report_dir(warehouse: Path, period: str) -> Path:
    return output_dir(warehouse) / "reports" / period


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80]


# ---------------------------------------------------------------- building the page


def render_report(con: duckdb.DuckDBPyConnection, warehouse: Path, period: str,
                  report_dir: Path) -> str:
    register_divisions(con)
    prev = previous_period(con, period)
    ctx: dict = {
        "period": period,
        "period_end": period_end(period).isoformat(),
        "previous": prev,
        "generated_at": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        "area": _area(con, period),
        "provenance": provenance(con, period),
        "datadocs": _datadocs_link(warehouse, report_dir),
        "policy_warning": _policy_warning(con, period),
    }
    ctx.update(_indicators(con, period))
    ctx.update(_monitoring(con, period, prev))
    ctx.update(_monitoring_roster(con, period))
    ctx.update(_ledger(con, period))
    ctx.update(_ranking(con, period))
    ctx.update(_verification(con, period))
    ctx.update(_quality(con, period))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      finalize=scrub_rendered,  # file names and messages can hold a number
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    env.filters["num"] = _num
    env.filters["signed"] = lambda v: "—" if v is None else (f"+{v}" if v > 0 else f"{v}")
    return env.get_template("report.html.j2").render(**ctx)


def _policy_warning(con, period: str) -> str | None:
    """The period built on an earlier year's policy file: said in the header, never silently."""
    from povwatch.tasks.marts.policy import fallback_warning
    row = con.execute("SELECT arg_max(\"values\", built_at) FROM mart.policy_used WHERE period = ?",
                      [period]).fetchone()
    return fallback_warning(json.loads(row[0])) if row and row[0] else None


def _area(con, period: str) -> str:
    """The counties the period covers, by name (for the title)."""
    if not table_exists(con, "mart.household_status"):
        return ""
    names = con.execute(f"""
        SELECT DISTINCT {place_sql('county_code')} AS name FROM mart.household_status
        WHERE period = ? AND county_code IS NOT NULL ORDER BY name""", [period]).fetchall()
    return "、".join(n for (n,) in names[:5]) + ("等" if len(names) > 5 else "")


def _num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _datadocs_link(warehouse: Path, report_dir: Path) -> dict:
    """A relative link from the report to the GX Data Docs, wherever the validation put them."""
    root = output_dir(warehouse) / "datadocs"
    index = None
    if root.exists():
        found = sorted(root.rglob("index.html"), key=lambda p: len(p.parts))
        index = found[0] if found else None
    target = index or root
    return {"href": Path(os.path.relpath(target, report_dir)).as_posix(),
            "exists": index is not None}


def _indicators(con, period: str) -> dict:
    """The 3 + 1 indicators and income per township, registry households only."""
    if not table_exists(con, "mart.household_status"):
        return {"indicators": None}
    rates = ", ".join(f"avg(CAST({c} AS INTEGER)) AS {c}" for c in INDICATORS)
    rates += (", avg(CAST(" + " AND ".join(INDICATORS) + " AS INTEGER)) AS all_ok")
    # one list of measures, per township and for the whole county
    measures = f"""count(*) AS households, {rates},
               count(*) FILTER (WHERE per_capita_income IS NULL) AS income_unknown,
               round(median(per_capita_income), 0)::DOUBLE AS income_median,
               round(avg(per_capita_income), 0)::DOUBLE AS income_mean,
               count(*) FILTER (WHERE color IN ('red', '红')) AS red,
               count(*) FILTER (WHERE color IN ('yellow', '黄')) AS yellow,
               count(*) FILTER (WHERE color IN ('green', '绿')) AS green"""
    by_town = frame(con, f"""
        SELECT township_code, {place_sql('township_code')} AS township, {measures}
        FROM mart.household_status
        WHERE period = ? AND registry_status IN ('未脱贫', '已脱贫')
        GROUP BY ALL ORDER BY township_code
    """, [period])
    total = frame(con, f"""
        SELECT {measures}
        FROM mart.household_status
        WHERE period = ? AND registry_status IN ('未脱贫', '已脱贫')
    """, [period]).row(0, named=True)
    towns = by_town["township"].to_list()
    chart_rates = charts.bar_chart(
        list(INDICATORS.values()), {"达标率": [total[c] for c in INDICATORS]},
        title=f"“3+1”指标达标率（全县建档立卡户，{period}）", percent=True)
    chart_town_rates = charts.bar_chart(
        towns, {"全部达标户占比": by_town["all_ok"].to_list()},
        title="各乡镇“3+1”及收入全部达标的建档立卡户占比（分项见下表）", percent=True)
    chart_income = charts.bar_chart(
        towns, {"人均纯收入中位数": by_town["income_median"].to_list(),
                "人均纯收入均值": by_town["income_mean"].to_list()},
        title="各乡镇建档立卡户人均纯收入（元）")
    return {"indicators": {"by_town": by_town.rows(named=True), "total": total,
                           "labels": INDICATORS, "charts": [chart_rates, chart_town_rates,
                                                            chart_income]}}


def _monitoring(con, period: str, prev: str | None) -> dict:
    if not table_exists(con, "mart.monitoring"):
        return {"monitoring": None}
    cats = ", ".join(f"('{k}', '{v}', {i})" for i, (k, v) in enumerate(CATEGORY_LABELS.items()))
    by_cat = frame(con, f"""
        WITH cats(category, label, ord) AS (VALUES {cats}),
        counts AS (
            SELECT category, count(DISTINCT household_key) FILTER (WHERE period = $cur) AS now,
                   count(DISTINCT household_key) FILTER (WHERE period = $prev) AS before
            FROM mart.monitoring WHERE period IN ($cur, $prev) GROUP BY category
        )
        SELECT coalesce(c.label, n.category) AS label, coalesce(n.now, 0) AS now,
               CASE WHEN $prev IS NULL THEN NULL ELSE coalesce(n.before, 0) END AS before,
               CASE WHEN $prev IS NULL THEN NULL ELSE coalesce(n.now, 0) - coalesce(n.before, 0)
               END AS delta
        FROM counts n FULL JOIN cats c USING (category)
        ORDER BY coalesce(c.ord, 99), label
    """, {"cur": period, "prev": prev})
    by_reason = frame(con, """
        SELECT reason, count(DISTINCT household_key) FILTER (WHERE period = $cur) AS now,
               CASE WHEN $prev IS NULL THEN NULL
                    ELSE count(DISTINCT household_key) FILTER (WHERE period = $prev) END AS before
        FROM (SELECT period, household_key, unnest(reasons) AS reason FROM mart.monitoring
              WHERE period IN ($cur, $prev))
        GROUP BY reason ORDER BY now DESC, reason
    """, {"cur": period, "prev": prev})
    flow = frame(con, """
        WITH cur AS (SELECT DISTINCT household_key FROM mart.monitoring WHERE period = $cur),
             old AS (SELECT DISTINCT household_key FROM mart.monitoring WHERE period = $prev)
        SELECT (SELECT count(*) FROM cur) AS now,
               CASE WHEN $prev IS NULL THEN NULL ELSE (SELECT count(*) FROM old) END AS before,
               CASE WHEN $prev IS NULL THEN NULL ELSE
                   (SELECT count(*) FROM cur ANTI JOIN old USING (household_key)) END AS entered,
               CASE WHEN $prev IS NULL THEN NULL ELSE
                   (SELECT count(*) FROM old ANTI JOIN cur USING (household_key)) END AS left_
    """, {"cur": period, "prev": prev}).row(0, named=True)
    by_town = None
    if table_exists(con, "mart.household_status"):
        by_town = frame(con, f"""
            SELECT {place_sql('s.township_code')} AS township,
                   count(DISTINCT m.household_key) FILTER (WHERE m.period = $cur) AS now,
                   CASE WHEN $prev IS NULL THEN NULL ELSE
                       count(DISTINCT m.household_key) FILTER (WHERE m.period = $prev) END AS before
            FROM mart.monitoring m JOIN mart.household_status s USING (period, household_key)
            WHERE m.period IN ($cur, $prev)
            GROUP BY s.township_code ORDER BY s.township_code
        """, {"cur": period, "prev": prev})
    trend = frame(con, """
        SELECT period, count(DISTINCT household_key) AS households FROM mart.monitoring
        WHERE period <= ? GROUP BY period ORDER BY period
    """, [period]).tail(12)
    series = {"本期": by_cat["now"].to_list()}
    if prev:
        series = {f"上期（{prev}）": by_cat["before"].to_list(), f"本期（{period}）": series["本期"]}
    chart_cat = charts.bar_chart(by_cat["label"].to_list(), series, title="监测对象类别（户）")
    chart_reason = charts.bar_chart(by_reason["reason"].to_list(),
                                    {"户数": by_reason["now"].to_list()},
                                    title=f"风险类型（{period}，一户可有多项）")
    chart_trend = charts.line_chart(trend["period"].to_list(),
                                    {"监测户数": trend["households"].to_list()},
                                    title="监测户数变化")
    return {"monitoring": {
        "by_cat": by_cat.rows(named=True), "by_reason": by_reason.rows(named=True),
        "flow": flow, "by_town": by_town.rows(named=True) if by_town is not None else [],
        "charts": [chart_cat, chart_reason, chart_trend]}}


def _has_table_macro(con, schema: str, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE schema_name = ? AND function_name = ? "
        "AND function_type = 'table_macro' AND database_name = current_database()",
        [schema, name]).fetchall()[0][0])


LEDGER_COLUMNS = ("problem_key, code, subject_id, household_key, township_code, village_code, "
                  "responsible_dept, first_seen_period, last_seen_period, deadline, closed_period, "
                  "reopen_count, detail")


def ledger_as_of_sql(con) -> str | None:
    """SQL of the problem ledger as it stood at the end of the period ``$p`` (a parameter): the
    model's ``mart.ledger_report($p)`` (warehouse/models/02_office.sql) — the ledger's columns
    (LEDGER_COLUMNS) plus open_now, overdue_now, opened_in and closed_in. None when the warehouse
    has no ledger yet (no build has run)."""
    if not _has_table_macro(con, "mart", "ledger_report"):
        return None
    return "SELECT * FROM mart.ledger_report($p)"


def _ledger(con, period: str) -> dict:
    state = ledger_as_of_sql(con)
    if state is None:
        return {"ledger": None}
    agg = """
        count(*) FILTER (WHERE open_now) AS open,
        count(*) FILTER (WHERE overdue_now) AS overdue,
        count(*) FILTER (WHERE opened_in) AS opened,
        count(*) FILTER (WHERE closed_in) AS closed"""
    by_dept = frame(con, f"""
        WITH depts(code, name) AS (VALUES {dept_names_sql_values()}), s AS ({state})
        SELECT coalesce(d.name, s.responsible_dept, '（未指定）') AS dept, {agg}
        FROM s LEFT JOIN depts d ON d.code = s.responsible_dept
        GROUP BY ALL HAVING count(*) FILTER (WHERE open_now OR closed_in OR opened_in) > 0
        ORDER BY open DESC, dept
    """, {"p": period})
    by_town = frame(con, f"""
        WITH s AS ({state})
        SELECT {place_sql('township_code')} AS township, {agg}
        FROM s GROUP BY township_code
        HAVING count(*) FILTER (WHERE open_now OR closed_in OR opened_in) > 0
        ORDER BY township_code
    """, {"p": period})
    totals = {c: int(by_dept[c].sum()) for c in ("open", "overdue", "opened", "closed")}
    series = lambda df: {"未整改": df["open"].to_list(), "其中逾期": df["overdue"].to_list(),  # noqa: E731
                         "本期销号": df["closed"].to_list()}
    return {"ledger": {
        "by_dept": by_dept.rows(named=True), "by_town": by_town.rows(named=True),
        "totals": totals,
        "charts": [charts.bar_chart(by_dept["dept"].to_list(), series(by_dept),
                                    title=f"问题台账：按责任单位（{period}）"),
                   charts.bar_chart(by_town["township"].to_list(), series(by_town),
                                    title=f"问题台账：按乡镇（{period}）")]}}


def _verification(con, period: str) -> dict:
    """核实反馈: this period's verifications per rule (county), the rules under the precision
    alert highlighted, and the dismissed / 整改未见数据 problems at the period's end."""
    if not table_exists(con, "mart.rule_precision"):
        return {"verification": None}
    rules = frame(con, """
        SELECT p.code, coalesce(r.rule_name, p.code) AS rule_name, p.confirmed, p.refuted,
               p.precision, p.median_days_to_verify, p.window_periods, p.window_verifications,
               p.window_precision, p.alert
        FROM mart.rule_precision p LEFT JOIN mart.rules r USING (code)
        WHERE p.period = ? AND p.township_code IS NULL ORDER BY p.alert DESC, p.code
    """, [period])
    state = frame(con, """
        SELECT count(*) FILTER (WHERE status = 'dismissed') AS dismissed,
               count(*) FILTER (WHERE status = 'open' AND rectification_unconfirmed) AS unconfirmed
        FROM mart.ledger_as_of(?)""", [period]).row(0, named=True)
    return {"verification": {"rules": rules.rows(named=True), **state}}


def _ranking(con, period: str) -> dict:
    if not table_exists(con, "mart.township_ranking"):
        return {"ranking": None}
    rows = frame(con, f"""
        SELECT coalesce(nullif(township_name, ''), {place_sql('township_code')}) AS township,
               households, open_problems, overdue_problems, closed_in_period,
               rectification_rate::DOUBLE AS rectification_rate, monitored_households,
               score::DOUBLE AS score, rank, bottom3_streak,
               bottom3_streak > 0 AS bottom3  -- in the last places (policy ranking_bottom_places)
        FROM mart.township_ranking WHERE period = ? ORDER BY rank
    """, [period])
    chart = charts.bar_chart(rows["township"].to_list(), {"得分": rows["score"].to_list()},
                             title=f"乡镇月排名得分（{period}，红色为末三位）",
                             highlight=rows["bottom3"].to_list())
    return {"ranking": {"rows": rows.rows(named=True), "chart": chart}}


def _monitoring_roster(con, period: str) -> dict:
    """监测对象 as the office counts them, per township (mart.township_monitoring: under monitoring,
    proposals awaiting the office, identification overdue, re-flagged), and the roster rows that
    match no household of the period (名单无数据), shown by file and row only."""
    if not table_exists(con, "mart.township_monitoring"):
        return {"roster": None}
    by_town = frame(con, f"""
        SELECT {place_sql('township_code')} AS township, monitored, warned, proposed_clear,
               manual_review, cleared, not_identified, identification_overdue, reflagged
        FROM mart.township_monitoring WHERE period = ? ORDER BY township_code
    """, [period])
    total = {c: int(by_town[c].sum()) for c in by_town.columns if c != "township"}
    unmatched = frame(con, f"""
        SELECT {place_sql('township_code')} AS township, village_code, source_file, source_row,
               identified_on
        FROM mart.roster_unmatched WHERE period = ? ORDER BY source_file, source_row
    """, [period]) if table_exists(con, "mart.roster_unmatched") else None
    return {"roster": {"by_town": by_town.rows(named=True), "total": total if by_town.height else None,
                       "unmatched": unmatched.rows(named=True) if unmatched is not None else []}}


def _quality(con, period: str) -> dict:
    """Rows, quarantined share and failed expectations per department over recent periods."""
    if not table_exists(con, "audit.extracts"):
        return {"quality": None}
    periods = [p for p in _audit_periods(con) if p <= period][-QUALITY_PERIODS:]
    if not periods:
        return {"quality": None}
    plist = ", ".join(f"'{p}'" for p in periods)
    df = frame(con, f"""
        WITH depts(code, name, ord) AS (
            SELECT code, name, row_number() OVER () FROM (VALUES {dept_names_sql_values()}) v(code, name)
        ),
        delivered AS (  -- the latest delivery of each department and period
            SELECT period, dept, arg_max(run_id, recorded_at) AS run_id FROM audit.extracts
            WHERE period IN ({plist}) AND status IN ('accepted', 'rejected') GROUP BY ALL
        ),
        ext AS (
            SELECT e.period, e.dept, sum(e.rows_read) AS rows_read,
                   sum(e.rows_quarantined) AS rows_quarantined,
                   bool_or(e.status = 'rejected') AS rejected
            FROM audit.extracts e JOIN delivered USING (period, dept, run_id)
            WHERE e.status IN ('accepted', 'rejected') GROUP BY ALL
        ),
        checked AS (
            SELECT period, dept, arg_max(run_id, recorded_at) AS run_id FROM audit.validations
            WHERE period IN ({plist}) GROUP BY ALL
        ),
        val AS (
            SELECT v.period, v.dept, count(DISTINCT v.expectation) FILTER (WHERE NOT v.success)
                       AS failed,
                   count(DISTINCT v.expectation) AS checks
            FROM audit.validations v JOIN checked USING (period, dept, run_id) GROUP BY ALL
        )
        SELECT coalesce(d.name, x.dept) AS dept, x.period, x.rows_read, x.rows_quarantined,
               x.rows_quarantined / nullif(x.rows_read, 0) AS quarantined_share,
               x.rejected, coalesce(v.failed, 0) AS failed, coalesce(v.checks, 0) AS checks
        FROM ext x LEFT JOIN val v USING (period, dept) LEFT JOIN depts d ON d.code = x.dept
        ORDER BY d.ord NULLS LAST, x.dept, x.period
    """)
    depts = df["dept"].unique(maintain_order=True).to_list()
    cells = {(r["dept"], r["period"]): r for r in df.rows(named=True)}
    current = df.filter(pl.col("period") == period)
    if len(periods) > 1:
        wide = df.pivot(on="dept", index="period", values="quarantined_share")
        wide = pl.DataFrame({"period": periods}).join(wide, on="period", how="left")
        chart = charts.line_chart(periods, {d: wide[d].to_list() for d in depts if d in wide.columns},
                                  title="各部门隔离行占比", percent=True)
    else:
        chart = charts.bar_chart(current["dept"].to_list(),
                                 {"隔离行占比": current["quarantined_share"].to_list()},
                                 title=f"各部门隔离行占比（{period}）", percent=True)
    return {"quality": {"periods": periods, "depts": depts, "cells": cells, "chart": chart}}


def _audit_periods(con) -> list[str]:
    rows = con.execute("SELECT DISTINCT period FROM audit.extracts WHERE period IS NOT NULL "
                       "ORDER BY period").fetchall()
    return sorted({r[0] for r in rows} | set(mart_periods(con)))

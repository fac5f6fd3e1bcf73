"""``povwatch export --kind township``: one folder per township for the verification round-trip.

Each township gets ``<out>/<period>/township/<code>-<name>/``, holding only that township's rows:

- ``核实反馈表-<code>-<period>.xlsx`` — its open problems, one row per problem (问题编号, 问题类型 (the rule's code),
  问题, 村, 姓名, masked 身份证号, 责任单位, 首次发现, 整改期限, 问题说明) and the columns
  the township fills in on site (核实结果 with a drop-down, 说明, 佐证材料, 核实人, 核实日期),
  their headers and cells yellow. It is returned as is into ``<inbox>/<period>/feedback/``: the
  ``feedback`` contract (warehouse/contracts/feedback.toml) reads it like any department's file.
- ``监测对象-<code>-<period>.xlsx`` — the township's households under monitoring.
- ``乡镇概况-<code>-<period>.html`` — one offline page: the 3 + 1 rates, rank and score, open and
  overdue problems, households under monitoring (no script, no network reference).

Every table is shaped in DuckDB SQL for all townships at once and split with polars; identity
numbers leave the warehouse masked (first 6 + last 4).
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape

from povwatch.tasks.core.settings import output_dir
from povwatch.tasks.core.privacy import mask_id_sql
from povwatch.tasks.office import charts
from povwatch.tasks.office.export import _data_sheet, _sheet_name, _workbook, guard_text
from povwatch.tasks.office.outputs import (PROBLEM_LABELS, WarehouseUnavailable, dept_names_sql_values,
                                           frame, period_end, place_sql, reading,
                                           register_divisions, resolve_period, table_exists,
                                           write_private)

TEMPLATES = Path(__file__).parent / "templates"
RESULTS = ("属实", "不属实", "已整改")
# The workbook's columns: (column, header). The headers of the key, the code and the fill-in
# columns are the feedback contract's: the returned file is read by them.
GIVEN = [("problem_key", "问题编号"), ("code", "问题类型"), ("township_code", "乡镇代码"),
         ("problem", "问题"), ("village_name", "村"), ("subject_name", "姓名"),
         ("subject_id_masked", "身份证号（脱敏）"), ("responsible", "责任单位"),
         ("first_seen_period", "首次发现期次"), ("deadline", "整改期限"), ("overdue", "是否逾期"),
         ("detail", "问题说明")]
FILL_IN = [("result", "核实结果"), ("note", "说明"), ("evidence", "佐证材料"),
           ("verifier", "核实人"), ("verified_on", "核实日期")]
MONITORED = {"village_name": "村", "household_id": "户编号", "head_name": "户主姓名",
             "head_id_masked": "户主身份证号（脱敏）", "registry_status": "建档立卡状态",
             "members": "家庭人口", "per_capita_income": "人均纯收入（元）", "color": "三色码",
             "categories": "监测类别"}
INDICATORS = {"education_ok": "义务教育", "medical_ok": "基本医疗", "housing_ok": "住房安全",
              "water_ok": "饮水安全", "income_ok": "收入达标"}


def write_township_exports(warehouse: Path, period: str | None, township: str | None = None,
                           out_dir: Path | None = None) -> list[Path]:
    """Write one folder per township (or only ``township``); return the folders."""
    warehouse = Path(warehouse)
    with reading(warehouse) as con:
        period = resolve_period(con, period)
        register_divisions(con)
        towns = _townships(con, period, township)
        problems = _open_problems(con, period)
        monitored = _monitored(con, period)
        summary = _summaries(con, period)
    root = (Path(out_dir) if out_dir else output_dir(warehouse) / "exports" / period) / "township"
    folders = []
    for code, name in towns.iter_rows():
        folder = root / f"{code}-{name}"
        _feedback_workbook(folder / f"核实反馈表-{code}-{period}.xlsx", name, period,
                           problems.filter(pl.col("township_code") == code))
        _monitored_workbook(folder / f"监测对象-{code}-{period}.xlsx", name, period,
                            monitored.filter(pl.col("township_code") == code).drop("township_code"))
        page = _render_page(name, code, period, summary.get(code, {}),
                            problems.filter(pl.col("township_code") == code))
        write_private(folder / f"乡镇概况-{code}-{period}.html", page)
        folders.append(folder)
    return folders


# ---------------------------------------------------------------- what the warehouse says

def _townships(con, period: str, only: str | None) -> pl.DataFrame:
    towns = frame(con, f"""
        SELECT township_code, {place_sql('township_code')} AS township_name
        FROM (SELECT DISTINCT township_code FROM mart.household_status
              WHERE period = $p AND township_code IS NOT NULL)
        ORDER BY township_code""", {"p": period})
    if only is not None:
        towns = towns.filter(pl.col("township_code") == only)
        if towns.is_empty():
            raise WarehouseUnavailable(f"期次 {period} 没有乡镇 {only} 的数据。",
                                       f"Period {period} holds no township {only}.")
    return towns


def _names_sql() -> str:
    """Person id -> name and household -> head (name, id), from the latest fupin delivery ≤ $p."""
    return """
        fupin AS (SELECT * FROM staging.fupin
                  WHERE period = (SELECT max(period) FROM staging.fupin WHERE period <= $p)),
        person_names AS (SELECT id_number, min(name) AS name FROM fupin GROUP BY ALL),
        heads AS (SELECT household_id, arg_min(name, person_no) AS name,
                         arg_min(id_number, person_no) AS id_number
                  FROM fupin WHERE relation = '户主' GROUP BY ALL)"""


def _open_problems(con, period: str) -> pl.DataFrame:
    """Problems open at the end of the period (dismissed ones are not open), all townships."""
    labels = ", ".join(f"('{k}', '{v}')" for k, v in PROBLEM_LABELS.items())
    return frame(con, f"""
        WITH depts(code, name) AS (VALUES {dept_names_sql_values()}),
        labels(code, label) AS (VALUES {labels}),
        {_names_sql()}
        SELECT l.problem_key, l.code, l.township_code,
               coalesce(lb.label, l.code) AS problem,
               {place_sql('l.village_code')} AS village_name,
               coalesce(pn.name, h.name) AS subject_name,
               {mask_id_sql("coalesce(CASE WHEN pn.name IS NOT NULL THEN l.subject_id END, h.id_number)")}
                   AS subject_id_masked,
               coalesce(d.name, l.responsible_dept) AS responsible,
               l.first_seen_period, strftime(l.deadline, '%Y-%m-%d') AS deadline,
               CASE WHEN l.overdue THEN '是' ELSE '否' END AS overdue,
               regexp_replace(l.detail, '([0-9]{{6}})[0-9]{{8}}([0-9]{{3}}[0-9Xx])', '\\1********\\2', 'g')
                   AS detail
        FROM mart.ledger_as_of($p) l
        LEFT JOIN labels lb USING (code)
        LEFT JOIN depts d ON d.code = l.responsible_dept
        LEFT JOIN person_names pn ON pn.id_number = l.subject_id
        LEFT JOIN heads h ON h.household_id = l.household_key
        WHERE l.status = 'open'
        ORDER BY l.township_code, l.overdue DESC, l.deadline, l.village_code, l.problem_key
    """, {"p": period})


def _monitored(con, period: str) -> pl.DataFrame:
    has_monitoring = table_exists(con, "mart.monitoring")
    categories = ("""(SELECT string_agg(DISTINCT category_name, '、') FROM mart.monitoring m
                      WHERE m.period = s.period AND m.household_key = s.household_key)"""
                  if has_monitoring else "NULL")
    return frame(con, f"""
        WITH {_names_sql()}
        SELECT s.township_code, {place_sql('s.village_code')} AS village_name, s.household_id,
               coalesce(h.name, pn.name) AS head_name,
               {mask_id_sql("coalesce(h.id_number, s.head_id_number)")} AS head_id_masked,
               s.registry_status, s.members, CAST(s.per_capita_income AS DOUBLE) AS per_capita_income,
               CASE s.color WHEN 'red' THEN '红' WHEN 'yellow' THEN '黄' WHEN 'green' THEN '绿'
                    ELSE s.color END AS color,
               {categories} AS categories
        FROM mart.household_status s
        LEFT JOIN heads h ON h.household_id = s.household_id
        LEFT JOIN person_names pn ON pn.id_number = s.head_id_number
        WHERE s.period = $p AND s.monitored
        ORDER BY s.township_code, s.village_code, s.household_key
    """, {"p": period})


def _summaries(con, period: str) -> dict[str, dict]:
    """Per township: 3 + 1 rates of its registry households, rank and score, problems, monitored."""
    rates = ", ".join(f"avg(CAST({c} AS INTEGER)) AS {c}" for c in INDICATORS)
    df = frame(con, f"""
        WITH hh AS (
            SELECT township_code, count(*) AS households, {rates},
                   avg(CAST({' AND '.join(INDICATORS)} AS INTEGER)) AS all_ok
            FROM mart.household_status
            WHERE period = $p AND registry_status IN ('未脱贫', '已脱贫') GROUP BY ALL
        ), mon AS (
            SELECT township_code, count(*) FILTER (WHERE monitored) AS monitored
            FROM mart.household_status WHERE period = $p GROUP BY ALL
        ), pr AS (
            SELECT township_code, count(*) FILTER (WHERE status = 'open') AS open,
                   count(*) FILTER (WHERE status = 'open' AND overdue) AS overdue
            FROM mart.ledger_as_of($p) GROUP BY ALL
        ), rk AS (
            SELECT township_code, rank, score::DOUBLE AS score,
                   rectification_rate::DOUBLE AS rectification_rate,
                   count(*) OVER () AS townships
            FROM mart.township_ranking WHERE period = $p
        )
        SELECT * REPLACE (coalesce(open, 0) AS open, coalesce(overdue, 0) AS overdue)
        FROM mon LEFT JOIN hh USING (township_code) LEFT JOIN pr USING (township_code)
        LEFT JOIN rk USING (township_code)
    """, {"p": period})
    return {row["township_code"]: row for row in df.rows(named=True)}


# ---------------------------------------------------------------- writing

def _feedback_workbook(path: Path, name: str, period: str, problems: pl.DataFrame) -> None:
    given = problems.select([c for c, _ in GIVEN])
    with _workbook(path) as wb:
        ws = wb.add_worksheet(_sheet_name(wb, "核实反馈表"))
        fill = wb.add_format({"bg_color": "#FFF2CC", "border": 1})
        fill_head = wb.add_format({"bold": True, "bg_color": "#FFD966", "border": 1,
                                   "align": "center", "valign": "vcenter"})
        date_fill = wb.add_format({"bg_color": "#FFF2CC", "border": 1, "num_format": "yyyy-mm-dd"})
        # names beside problem details (大病, 残疾): the one workbook meant to act on them, marked
        # sensitive in its first line and its printed header (docs/contract.md, Privacy)
        ws.write_string(0, 0, f"{name}问题核实反馈表（{period}）【敏感信息，仅供入户核实使用，不得外传、张贴】："
                              f"黄色列由乡镇核实后填写，其余列请勿修改；核实结果从下拉列表选择"
                              f"（属实 / 不属实 / 已整改），不属实须填说明，已整改须填佐证材料（文号或说明）。",
                        wb.fmt["warn"])
        headers = [h for _, h in GIVEN]
        ws.write_row(1, 0, headers, wb.fmt["header"])
        ws.write_row(1, len(GIVEN), [h for _, h in FILL_IN], fill_head)
        body = guard_text(given)
        for j, col in enumerate(body.columns):
            ws.write_column(2, j, body[col].to_list(), wb.fmt["text"])
        last = max(problems.height, 1) + 1
        first_fill = len(GIVEN)
        for k, (col, _) in enumerate(FILL_IN):
            ws.set_column(first_fill + k, first_fill + k, 14 if col != "note" else 30,
                          date_fill if col == "verified_on" else fill)
        ws.data_validation(2, first_fill, last, first_fill, {
            "validate": "list", "source": list(RESULTS), "error_type": "warning",
            "input_title": "核实结果", "input_message": "请选择：属实 / 不属实 / 已整改",
            "error_title": "核实结果", "error_message": "请从下拉列表选择：属实、不属实或已整改"})
        ws.data_validation(2, first_fill + 4, last, first_fill + 4, {
            "validate": "date", "criteria": "<=", "value": period_end(period),
            "error_type": "warning", "input_message": f"核实日期不能晚于 {period_end(period)}"})
        for j, width in enumerate([18, 8, 11, 24, 12, 8, 20, 10, 12, 11, 8, 36]):
            ws.set_column(j, j, width)
        ws.freeze_panes(2, 2)
        ws.autofilter(1, 0, last, len(GIVEN) + len(FILL_IN) - 1)
        ws.set_landscape()
        ws.set_header("&L&\"-,Bold\"敏感信息 注意保密&R&A")
        ws.set_footer("&L身份证号已脱敏&R第 &P / &N 页")
        ws.activate()


def _monitored_workbook(path: Path, name: str, period: str, monitored: pl.DataFrame) -> None:
    with _workbook(path) as wb:
        df = monitored if monitored.height else pl.DataFrame({"说明": ["本期没有监测对象"]})
        _data_sheet(wb, f"{name}监测对象", df, MONITORED)


def _render_page(name: str, code: str, period: str, summary: dict, problems: pl.DataFrame) -> str:
    rates = [summary.get(c) for c in INDICATORS]
    chart = charts.bar_chart(list(INDICATORS.values()), {"达标率": rates},
                             title=f"{name}“3+1”及收入达标率（建档立卡户，{period}）", percent=True)
    by_code = (problems.group_by("code", "problem").agg(pl.len().alias("open"),
                                                       (pl.col("overdue") == "是").sum().alias("overdue"))
               .sort("code"))
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v: "—" if v is None else f"{v * 100:.1f}%"
    env.filters["num"] = lambda v: "—" if v is None else (f"{v:,.2f}" if isinstance(v, float) else f"{v:,}")
    return env.get_template("township.html.j2").render(
        name=name, code=code, period=period, period_end=period_end(period).isoformat(),
        generated_at=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"), s=summary,
        indicators=[(label, summary.get(c)) for c, label in INDICATORS.items()], chart=chart,
        by_code=by_code.rows(named=True))

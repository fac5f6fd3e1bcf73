"""``povwatch export``: Excel workbooks for the poverty office.

Three workbooks per period, each with a 说明 (about) sheet first that names the period, the as-of
date and the extracts (department, file, rows) it was built from:

- ``monitoring-<period>.xlsx`` 监测对象名单 — households under monitoring, one row per household,
  with township and village, categories, reasons (风险类型) and the suggested measures of
  mart.household_plan with the department that acts. One sheet with a 乡镇 column and an
  autofilter (a township is one click away, and a county-wide sort or count still works), plus a
  per-township summary sheet. Marked 敏感: it is the one export whose purpose is to act on risk
  reasons such as 因病 / 因残 (docs/contract.md, Privacy).
- ``ledger-<period>.xlsx`` 问题台账 — problems open at the end of the period or closed in it, one
  sheet per responsible department, deadlines, overdue rows in red.
- ``spot-check-<period>.xlsx`` 抽查名单 — the spot-check sample, one sheet per county.

Every identity number is masked (first 6 + last 4), as a household key, a subject or inside a
free-text detail. Headers are the marts' Chinese column comments. Text that a spreadsheet would
run (starting with = + - @, tab or CR) is written as a plain string, never a formula, and prefixed
with an apostrophe so that copying it elsewhere does not arm it either. Files are created readable
by their owner only.
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import polars as pl
from xlsxwriter.utility import xl_col_to_name

from povwatch.tasks.office.outputs import (CATEGORY_LABELS, COLOR_LABELS, PROBLEM_LABELS, column_labels, dept_names_sql_values, frame,
                           period_end, place_sql, provenance, reading,
                           register_divisions, resolve_period, table_exists)
from povwatch.tasks.core.privacy import mask_key_sql, scrub_frame, scrub_sql
from povwatch.tasks.core.workbooks import private_workbook
from povwatch.tasks.core.settings import output_dir

KINDS = ("monitoring", "ledger", "spot-check")
# Columns not scrubbed as free text: the registry number (户编号) is not an identity number, and
# household keys and subjects are masked by mask_key in SQL (a person's number masked, a 户编号 kept).
REGISTRY_NUMBER_COLUMNS = ("household_id", "户编号", "household_key", "subject_id")
FORMULA_START = r"^[=+\-@\t\r]"
HISTORY_STATUS_SQL = ("CASE h.status WHEN 'monitoring' THEN '监测中' WHEN 'proposed_clear' "
                      "THEN '拟风险消除' WHEN 'manual_review' THEN '需人工评估' WHEN 'cleared' "
                      "THEN '已消除' ELSE h.status END")
STRATUM_LABELS = {"未脱贫": "未脱贫", "已脱贫": "已脱贫", "non_registry": "非建档立卡",
                  "非建档立卡": "非建档立卡", "not_exited": "未脱贫", "exited": "已脱贫"}


def write_exports(warehouse: Path, period: str | None, out_dir: Path | None = None,
                  kinds=KINDS) -> list[Path]:
    """Write the workbooks of ``kinds`` for ``period`` (default: latest); return their paths."""
    warehouse = Path(warehouse)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown export kinds: {sorted(unknown)}")
    written = []
    with reading(warehouse) as con:
        period = resolve_period(con, period)
        register_divisions(con)
        out_dir = Path(out_dir) if out_dir else output_dir(warehouse) / "exports" / period
        about = provenance(con, period)
        for kind in kinds:
            builder = {"monitoring": _monitoring, "ledger": _ledger, "spot-check": _spot_check}[kind]
            written.append(builder(con, period, out_dir, about))
    return written


# ---------------------------------------------------------------- the three workbooks


def _monitoring(con, period: str, out_dir: Path, about: pl.DataFrame) -> Path:
    labels = column_labels(con, "mart.monitoring", "mart.household_status", "mart.household_plan",
                           "mart.monitoring_history")
    cats = ", ".join(f"('{k}', '{v}', {i})" for i, (k, v) in enumerate(CATEGORY_LABELS.items()))
    colors = ", ".join(f"('{k}', '{v}')" for k, v in COLOR_LABELS.items())
    has = {t: table_exists(con, f"mart.{t}") for t in ("household_status", "household_plan",
                                                       "monitoring_history", "monitoring_states")}
    # every household under monitoring as the office counts it (docs/monitoring.md), warned this
    # period or not; without the table, the period's warnings
    under = ("SELECT period, household_key FROM mart.monitoring_states "
             "WHERE period = $p AND under_monitoring AND in_data UNION "
             if has["monitoring_states"] else "") + "SELECT period, household_key FROM m"
    plan = ("""(SELECT string_agg(DISTINCT p.measure || coalesce('（' || coalesce(d.name, p.department)
                     || '）', ''), '；' ORDER BY p.measure || coalesce('（' || coalesce(d.name,
                     p.department) || '）', ''))
               FROM mart.household_plan p LEFT JOIN depts d ON d.code = p.department
               WHERE p.period = m.period AND p.household_key = m.household_key)"""
            if has["household_plan"] else "NULL")
    status = "s." if has["household_status"] else "NULL AS "
    df = frame(con, f"""
        WITH depts(code, name) AS (VALUES {dept_names_sql_values()}),
        cats(category, label, ord) AS (VALUES {cats}),
        colors(color, label) AS (VALUES {colors}),
        m AS (
            SELECT m.period, m.household_key,
                   string_agg(coalesce(c.label, m.category), '、' ORDER BY coalesce(c.ord, 99))
                       AS categories,
                   array_to_string(list_sort(list_distinct(flatten(list(m.reasons)))), '、')
                       AS reasons
            FROM mart.monitoring m LEFT JOIN cats c USING (category)
            WHERE m.period = $p GROUP BY ALL
        ), u AS ({under})
        SELECT {place_sql('s.township_code') if has['household_status'] else 'NULL'}
                   AS township_name,
               {place_sql('s.village_code') if has['household_status'] else 'NULL'} AS village_name,
               {status}household_id, {mask_key_sql('u.household_key')} AS household_key,
               {status}registry_status, {status}members,
               {'CAST(s.per_capita_income AS DOUBLE)' if has['household_status'] else 'NULL'}
                   AS per_capita_income,
               {'coalesce(col.label, s.color)' if has['household_status'] else 'NULL'} AS color,
               m.categories, m.reasons, {plan} AS measures,
               {'h.entered_period' if has['monitoring_history'] else 'NULL'} AS entered_period,
               {HISTORY_STATUS_SQL if has['monitoring_history'] else 'NULL'} AS monitoring_status
        FROM u LEFT JOIN m USING (period, household_key)
        {'LEFT JOIN mart.household_status s USING (period, household_key) '
         'LEFT JOIN colors col ON col.color = s.color' if has['household_status'] else ''}
        {'LEFT JOIN mart.monitoring_history h USING (household_key)'
         if has['monitoring_history'] else ''}
        ORDER BY 1 NULLS LAST, 2 NULLS LAST, u.household_key
    """, {"p": period})
    summary = (df.group_by("township_name", maintain_order=True)
               .agg(pl.len().alias("households"),
                    *[pl.col("categories").str.contains(v).sum().alias(v)
                      for v in CATEGORY_LABELS.values()])
               .sort("township_name", nulls_last=True))
    path = out_dir / f"monitoring-{period}.xlsx"
    with _workbook(path) as wb:
        _about_sheet(wb, "监测对象名单", period, about, sensitive="风险类型（因病、因残等）", notes=[
            "每户一行；一户可同时属于多个监测类别、有多项风险类型。",
            "“建议措施”来自一户一策（mart.household_plan），括号内为责任单位。",
            "按乡镇筛选：点击表头“乡镇”的筛选按钮。"])
        _data_sheet(wb, "监测对象", df, labels, sensitive=True)
        _data_sheet(wb, "按乡镇汇总", summary.rename({"households": "监测户数"}), labels)
    return path


def _ledger(con, period: str, out_dir: Path, about: pl.DataFrame) -> Path:
    from povwatch.tasks.office.report import ledger_as_of_sql

    labels = column_labels(con, "mart.problem_ledger")
    state = ledger_as_of_sql(con)
    problems = ", ".join(f"('{k}', '{v}')" for k, v in PROBLEM_LABELS.items())
    end = period_end(period).isoformat()
    rules_join = ("LEFT JOIN mart.rules r ON r.code = l.code" if table_exists(con, "mart.rules")
                  else "LEFT JOIN (SELECT NULL AS code, NULL AS rule_name) r ON false")
    if state is None:
        df = pl.DataFrame()
    else:
        df = frame(con, f"""
            WITH depts(code, name, ord) AS (
                SELECT code, name, row_number() OVER ()
                FROM (VALUES {dept_names_sql_values()}) v(code, name)
            ),
            problems(code, label) AS (VALUES {problems}),
            s AS ({state})
            SELECT coalesce(d.name, l.responsible_dept, '（未指定）') AS dept,
                   l.problem_key, l.code, coalesce(r.rule_name, pr.label) AS problem,
                   {mask_key_sql('l.subject_id')} AS subject_id,
                   {mask_key_sql('l.household_key')} AS household_key,
                   {place_sql('l.township_code')} AS township_name,
                   {place_sql('l.village_code')} AS village_name,
                   CASE WHEN l.open_now THEN '未整改' ELSE '已销号' END AS status,
                   l.first_seen_period, l.last_seen_period, l.deadline,
                   CASE WHEN l.overdue_now THEN '是' ELSE '否' END AS overdue,
                   CASE WHEN l.open_now THEN NULL ELSE l.closed_period END AS closed_period,
                   l.reopen_count, {scrub_sql('l.detail')} AS detail
            FROM s AS l
            LEFT JOIN depts d ON d.code = l.responsible_dept
            LEFT JOIN problems pr ON pr.code = l.code
            {rules_join}
            WHERE l.open_now OR l.closed_in
            ORDER BY d.ord NULLS LAST, dept, overdue DESC, l.deadline, l.problem_key
        """, {"p": period})
    path = out_dir / f"ledger-{period}.xlsx"
    with _workbook(path) as wb:
        _about_sheet(wb, "问题台账", period, about, sensitive="问题说明（含大病、残疾等情况）", notes=[
            f"含截至 {end} 未整改的问题和本期销号的问题；每个责任单位一张工作表。",
            f"逾期 = 截至 {end} 未整改且已过整改期限，整行标红。"])
        if df.height:
            summary = (df.group_by("dept", maintain_order=True)
                       .agg((pl.col("status") == "未整改").sum().alias("未整改"),
                            (pl.col("overdue") == "是").sum().alias("其中逾期"),
                            (pl.col("status") == "已销号").sum().alias("本期销号"))
                       .rename({"dept": "责任单位"}))
            _data_sheet(wb, "汇总", summary, labels)
            for (dept,), part in df.partition_by("dept", as_dict=True, maintain_order=True).items():
                _data_sheet(wb, dept, part.drop("dept"), labels, flag_column="overdue",
                            sensitive=True)
        else:
            _data_sheet(wb, "问题台账", pl.DataFrame({"说明": ["本期没有未整改或销号的问题"]}), labels)
    return path


def _spot_check(con, period: str, out_dir: Path, about: pl.DataFrame) -> Path:
    labels = column_labels(con, "mart.spot_check", "mart.household_status")
    strata = ", ".join(f"('{k}', '{v}')" for k, v in STRATUM_LABELS.items())
    has_status = table_exists(con, "mart.household_status")
    df = pl.DataFrame()
    if table_exists(con, "mart.spot_check"):
        df = frame(con, f"""
            WITH strata(stratum, label) AS (VALUES {strata})
            SELECT {place_sql('c.county_code')} AS county_name,
                   {place_sql('substr(c.village_code, 1, 9)')} AS township_name,
                   {place_sql('c.village_code')} AS village_name,
                   {'s.household_id' if has_status else 'NULL'} AS household_id,
                   {mask_key_sql('c.household_key')} AS household_key,
                   coalesce(st.label, c.stratum) AS stratum,
                   CASE WHEN c.monitored THEN '是' ELSE '否' END AS monitored,   -- docs/monitoring.md
                   c.seed
            FROM mart.spot_check c LEFT JOIN strata st USING (stratum)
            {'LEFT JOIN mart.household_status s USING (period, household_key)' if has_status else ''}
            WHERE c.period = $p
            ORDER BY c.county_code, c.village_code, c.household_key
        """, {"p": period}).rename({"monitored": "是否监测对象"})
    path = out_dir / f"spot-check-{period}.xlsx"
    with _workbook(path) as wb:
        seeds = ", ".join(str(s) for s in df["seed"].unique().sort().to_list()) if df.height else "—"
        _about_sheet(wb, "抽查名单", period, about, notes=[
            "每个县一张工作表；先抽村、再在村内按未脱贫 / 已脱贫 / 非建档立卡分层抽户，监测对象优先。",
            f"随机种子：{seeds}（相同数据和种子得到相同样本）。"])
        if df.height:
            for (county,), part in df.partition_by("county_name", as_dict=True,
                                                   maintain_order=True).items():
                _data_sheet(wb, county or "未知县", part, labels)
        else:
            _data_sheet(wb, "抽查名单", pl.DataFrame({"说明": ["本期没有抽查样本"]}), labels)
    return path


# ---------------------------------------------------------------- writing sheets


class _workbook:
    """A private, text-only workbook (tasks/core/workbooks.py) with the exports' formats."""

    def __init__(self, path: Path):
        self.path = path
        self.sheet_names: set[str] = set()

    def __enter__(self):
        self._opened = private_workbook(self.path)
        self.wb = self._opened.__enter__()
        self.wb.set_properties({"title": self.path.stem, "author": "povwatch",
                                "comments": "身份证号已脱敏（保留前6位和后4位）"})
        self.wb.sheet_names_used = self.sheet_names
        self.wb.fmt = {
            "header": self.wb.add_format({"bold": True, "bg_color": "#DCE6F1", "border": 1,
                                          "text_wrap": True, "valign": "vcenter",
                                          "align": "center"}),
            "text": self.wb.add_format({"valign": "top"}),
            "money": self.wb.add_format({"num_format": "#,##0.00"}),
            "int": self.wb.add_format({"num_format": "0"}),
            "date": self.wb.add_format({"num_format": "yyyy-mm-dd"}),
            "overdue": self.wb.add_format({"bg_color": "#FFC7CE", "font_color": "#9C0006"}),
            "title": self.wb.add_format({"bold": True, "font_size": 14}),
            "bold": self.wb.add_format({"bold": True}),
            "warn": self.wb.add_format({"bold": True, "font_color": "#C00000"}),
        }
        return self.wb

    def __exit__(self, *exc):
        return self._opened.__exit__(*exc)


def _sheet_name(wb, wanted: str) -> str:
    name = re.sub(r"[\[\]:*?/\\]", "_", wanted or "Sheet")[:31].strip("'") or "Sheet"
    base, k = name, 2
    while name in wb.sheet_names_used:
        suffix = f"_{k}"
        name, k = base[:31 - len(suffix)] + suffix, k + 1
    wb.sheet_names_used.add(name)
    return name


def guard_text(df: pl.DataFrame) -> pl.DataFrame:
    """Text as written to a sheet: identity numbers masked wherever they stand (the registry
    number excepted), and text a spreadsheet would run as a formula given a leading apostrophe
    so that copying it elsewhere does not arm it (vectorised)."""
    df = scrub_frame(df, keep=REGISTRY_NUMBER_COLUMNS)
    return df.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then("'" + pl.col(c)).otherwise(pl.col(c))
        .alias(c)
        for c, t in df.schema.items() if t == pl.Utf8
    )


def _widths(df: pl.DataFrame, headers: list[str]) -> list[float]:
    """Display width per column: CJK characters count double ((bytes + chars) / 2 in UTF-8)."""
    if df.height:
        text = df.select(pl.col(c).cast(pl.Utf8).fill_null("") for c in df.columns)
        data = text.select(((pl.col(c).str.len_bytes() + pl.col(c).str.len_chars()) / 2).max()
                           for c in df.columns).row(0)
    else:
        data = [0] * len(df.columns)
    head = [(len(h.encode()) + len(h)) / 2 for h in headers]
    return [min(60.0, max(6.0, d or 0, h) + 2) for d, h in zip(data, head)]


def _data_sheet(wb, name: str, df: pl.DataFrame, labels: dict[str, str], *,
                flag_column: str | None = None, sensitive: bool = False) -> None:
    ws = wb.add_worksheet(_sheet_name(wb, name))
    df = guard_text(df.with_columns(pl.col(pl.Date).dt.to_string("%Y-%m-%d"))
                    if df.width else df)
    headers = [labels.get(c, c) for c in df.columns]
    ws.write_row(0, 0, headers, wb.fmt["header"])
    for j, (col, dtype) in enumerate(df.schema.items()):
        fmt = (wb.fmt["money"] if dtype.is_float() else wb.fmt["int"] if dtype.is_integer()
               else wb.fmt["text"])
        if dtype == pl.Decimal:
            values = df[col].cast(pl.Float64).to_list()
            fmt = wb.fmt["money"]
        elif dtype.is_nested():
            values = df[col].cast(pl.List(pl.Utf8)).list.join("、").to_list()
        elif dtype == pl.Boolean:
            values = df[col].replace_strict({True: "是", False: "否"}, default=None,
                                            return_dtype=pl.Utf8).to_list()
        else:
            values = df[col].to_list()
        ws.write_column(1, j, values, fmt)  # None -> blank cell
    for j, width in enumerate(_widths(df, headers)):
        ws.set_column(j, j, width)
    ws.set_row(0, 30)
    ws.freeze_panes(1, 0)
    last_row = max(df.height, 1)
    if df.width:
        ws.autofilter(0, 0, last_row, df.width - 1)
    if flag_column and flag_column in df.columns and df.height:
        k = df.columns.index(flag_column)
        letter = xl_col_to_name(k)
        ws.conditional_format(1, 0, df.height, df.width - 1, {
            "type": "formula", "criteria": f'=${letter}2="是"', "format": wb.fmt["overdue"]})
    ws.set_landscape()
    ws.repeat_rows(0)
    ws.fit_to_pages(1, 0)
    warning = '&"-,Bold"敏感信息 注意保密' if sensitive else ""
    ws.set_header(f"&L{warning}&R&A")
    ws.set_footer("&L身份证号已脱敏&R第 &P / &N 页")


def _about_sheet(wb, title: str, period: str, about: pl.DataFrame, *, sensitive: str | None = None,
                 notes: list[str] = ()) -> None:
    ws = wb.add_worksheet(_sheet_name(wb, "说明"))
    ws.write_string(0, 0, f"{title}（{period}）", wb.fmt["title"])
    lines = [
        ("期次", period),
        ("数据截至", period_end(period).isoformat()),
        ("生成时间", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")),
        ("身份证号", "已脱敏：仅保留前6位和后4位"),
    ]
    row = 2
    if sensitive:
        ws.write_string(row, 0, "敏感信息", wb.fmt["warn"])
        ws.write_string(row, 1, f"本表含{sensitive}，仅供帮扶和整改工作使用，不得外传、公开或张贴。",
                        wb.fmt["warn"])
        row += 1
    for key, value in lines:
        ws.write_string(row, 0, key, wb.fmt["bold"])
        ws.write_string(row, 1, value)
        row += 1
    for note in notes:
        ws.write_string(row, 1, note)
        row += 1
    row += 1
    ws.write_string(row, 0, "数据来源（本期已接收的部门报送）", wb.fmt["bold"])
    row += 1
    about = guard_text(about)
    ws.write_row(row, 0, about.columns, wb.fmt["header"])
    for j, col in enumerate(about.columns):
        ws.write_column(row + 1, j, about[col].to_list())
    widths = _widths(about, list(about.columns))
    widths[0], widths[1] = max(widths[0], 14), max(widths[1], 30)
    for j, width in enumerate(widths):
        ws.set_column(j, j, width)
    if not about.height:
        ws.write_string(row + 1, 0, "（无报送记录）")
    ws.activate()
    ws.set_first_sheet()

"""``povwatch household KEY``: one household's file (一户一档) across periods.

It answers "why is this household flagged?" from the marts alone: per period the registry status,
members, income, the 3 + 1 indicators, the warnings (预警) with their reasons and the evidence rows
that decided them (department, file, row, what the row said), the suggested plan; across periods
the monitoring events, the problems with their events and the townships' verifications, and what
the negative list excluded. ``--html`` writes the same as one offline page with an
income-over-time chart.

KEY is a household_key, a 户编号, a member's identity number, or a masked identity number
(``620523********8004``) followed by the person's name. A key that matches nothing, matches two
households, or cannot be a key gets a message saying so (exit 1), never a traceback.

Identity numbers are masked (first 6 and last 4) unless ``--unmasked`` is given — the office's own
account reading its own warehouse, as ``povwatch sql`` does. Health and disability stay where the
sensitive exports keep them: the reasons 因病 / 因残 are shown, a member's health or disability
detail behind them is not.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape

from povwatch.tasks.core.privacy import mask_id_sql, mask_key, mask_key_sql, scrub, scrub_frame
from povwatch.tasks.office import charts
from povwatch.tasks.office.outputs import (COLOR_LABELS, dept_name, frame, place_sql, register_divisions,
                                           table_columns, table_exists)
from povwatch.tasks.office.status import table

TEMPLATES = Path(__file__).parent / "templates"
ID_NUMBER = re.compile(r"^[0-9]{17}[0-9Xx]$|^[0-9]{15}$")
MASKED_ID = re.compile(r"^[0-9]{6}\*{5,8}[0-9]{3}[0-9Xx]$")
PLAIN_KEY = re.compile(r"^[0-9A-Za-z_-]{4,40}$")
# Reasons whose evidence notes are a person's health or disability: the reason is shown (as the
# sensitive export shows it), the note is not.
HEALTH_REASONS = ("因病", "因残")
HIDDEN = "（已隐去）"
INDICATORS = [("income_ok", "收入"), ("education_ok", "义务教育"), ("medical_ok", "基本医疗"),
              ("housing_ok", "住房安全"), ("water_ok", "饮水安全")]


class KeyProblem(Exception):
    """The key matches no household, several, or cannot be a key: said in Chinese and English."""

    def __init__(self, zh: str, en: str):
        super().__init__(f"{zh}\n{en}")
        self.zh, self.en = zh, en


@dataclass
class HouseholdFile:
    household_key: str
    shown_key: str
    periods: list[str]
    status: pl.DataFrame
    members: pl.DataFrame
    warnings: pl.DataFrame
    evidence: pl.DataFrame
    plan: pl.DataFrame
    sections: dict[str, pl.DataFrame] = field(default_factory=dict)   # only tables that exist
    unmasked: bool = False


# ----------------------------------------------------------------------------- finding the key


def resolve_key(con: duckdb.DuckDBPyConnection, key: str, name: str | None = None) -> str:
    """The household_key that KEY (and NAME, for a masked number) designates."""
    key = (key or "").strip()
    if MASKED_ID.match(key):
        if not name:
            raise KeyProblem("脱敏身份证号须同时给出姓名：povwatch household 620523********8004 张三",
                             "A masked identity number needs the person's name as well.")
        return _one(_by_masked_number(con, key, name.strip()), f"{key} {name}")
    if ID_NUMBER.match(key):
        return _one(_by_id_number(con, key.upper()), mask_key(key))
    if not PLAIN_KEY.match(key):
        raise KeyProblem(f"无法识别的户标识：{scrub(key)[:60]}（应为户编号、身份证号，或脱敏身份证号加姓名）",
                         "Not a key: give a household_key / 户编号, an identity number, or a masked "
                         "identity number followed by the name.")
    found = frame(con, "SELECT DISTINCT household_key FROM mart.household_status "
                       "WHERE household_key = $k OR household_id = $k", {"k": key})
    return _one(found["household_key"].to_list(), key)


def _people_sql(con) -> str:
    """(id_number, name, household_key) of every person the staged extracts link to a household:
    registry members (扶贫办) and household heads."""
    parts = ["SELECT head_id_number AS id_number, NULL AS name, household_key "
             "FROM mart.household_status WHERE head_id_number IS NOT NULL"]
    if table_exists(con, "staging.fupin"):
        parts.append("SELECT f.id_number, f.name, s.household_key FROM staging.fupin f "
                     "JOIN mart.household_status s ON s.household_id = f.household_id")
    return " UNION ".join(parts)


def _names_sql(con) -> str:
    parts = ["SELECT id_number, name FROM staging.fupin"] if table_exists(con, "staging.fupin") else []
    if table_exists(con, "staging.gongan"):
        parts.append("SELECT id_number, name FROM staging.gongan")
    return " UNION ".join(parts) or "SELECT NULL::VARCHAR AS id_number, NULL::VARCHAR AS name"


def _by_id_number(con, number: str) -> list[str]:
    return frame(con, f"SELECT DISTINCT household_key FROM ({_people_sql(con)}) "
                      "WHERE id_number = $n", {"n": number})["household_key"].to_list()


def _by_masked_number(con, masked: str, name: str) -> list[str]:
    return frame(con, f"""
        SELECT DISTINCT p.household_key
        FROM ({_people_sql(con)}) p
        LEFT JOIN ({_names_sql(con)}) n ON n.id_number = p.id_number
        WHERE {mask_id_sql('p.id_number')} = $m AND coalesce(p.name, n.name) = $name
    """, {"m": masked.upper(), "name": name})["household_key"].to_list()


def _one(keys: list[str], shown: str) -> str:
    if not keys:
        raise KeyProblem(f"没有找到户：{shown}", f"No household found for {shown}.")
    if len(keys) > 1:
        masked = "、".join(mask_key(k) for k in sorted(keys)[:10])
        raise KeyProblem(f"{shown} 对应多户：{masked}；请改用户编号（household_key）查询",
                         f"{shown} matches {len(keys)} households ({masked}); ask by household_key.")
    return keys[0]


# ----------------------------------------------------------------------------- reading the file


def household_file(con: duckdb.DuckDBPyConnection, key: str, period: str | None = None, *,
                   unmasked: bool = False) -> HouseholdFile:
    """Everything the marts hold about one household (``period``: up to and including it)."""
    register_divisions(con)
    ident = (lambda col: col) if unmasked else mask_id_sql
    key_shown = (lambda col: col) if unmasked else mask_key_sql
    p = {"k": key, "upto": period or "9999-99"}
    status = frame(con, f"""
        SELECT period, household_id, {ident('head_id_number')} AS head_id_number,
               {place_sql('township_code')} AS township, {place_sql('village_code')} AS village,
               registry_status, object_type, members, CAST(per_capita_income AS DOUBLE) AS income,
               {', '.join(c for c, _ in INDICATORS)}, color, monitored
        FROM mart.household_status WHERE household_key = $k AND period <= $upto ORDER BY period
    """, p)
    periods = status["period"].to_list()
    warnings = frame(con, """
        SELECT period, category, category_name, array_to_string(reasons, '、') AS reasons
        FROM mart.monitoring WHERE household_key = $k AND period <= $upto ORDER BY period, category
    """, p)
    evidence = frame(con, f"""
        WITH rows AS (
            SELECT DISTINCT m.period, unnest(from_json(m.evidence, '["json"]')) AS e
            FROM mart.monitoring m WHERE m.household_key = $k AND m.period <= $upto)
        SELECT period, e->>'reason' AS reason, e->>'dept' AS dept, e->>'period' AS data_period,
               e->>'source_file' AS source_file, CAST(e->>'source_row' AS INTEGER) AS source_row,
               CASE WHEN e->>'reason' IN {HEALTH_REASONS} AND e->>'note' IS NOT NULL
                    THEN '{HIDDEN}' ELSE e->>'note' END AS note
        FROM rows ORDER BY period, reason, dept, source_file, source_row
    """, p)
    plan = frame(con, """
        SELECT period, reason, measure, department FROM mart.household_plan
        WHERE household_key = $k AND period <= $upto ORDER BY period, reason, measure
    """, p) if table_exists(con, "mart.household_plan") else pl.DataFrame()
    evidence = _with_income(_with_dept_names(evidence), status)
    members = _members(con, status, ident)
    hf = HouseholdFile(key, key if unmasked else mask_key(key), periods, status, members,
                       warnings, evidence, plan, unmasked=unmasked)
    hf.sections = _other_sections(con, p, key_shown)
    if not unmasked:   # every text shown passes the free-text rule; the 户编号 is not a person's
        keep = ("household_id", "problem_key", "subject_id")   # subjects: masked by mask_key
        for name in ("status", "members", "warnings", "evidence", "plan"):
            setattr(hf, name, scrub_frame(getattr(hf, name), keep=keep))
        hf.sections = {t: scrub_frame(df, keep=keep) for t, df in hf.sections.items()}
    return hf


def _with_income(evidence: pl.DataFrame, status: pl.DataFrame) -> pl.DataFrame:
    """The value behind an income reason: the period's per-capita income (the row's own note
    stays where the model recorded one)."""
    if evidence.is_empty():
        return evidence
    income = status.select("period", pl.col("income").alias("_income"))
    return (evidence.join(income, on="period", how="left")
            .with_columns(pl.when(pl.col("note").is_null() & pl.col("reason").str.starts_with("收入"))
                          .then(pl.lit("人均纯收入 ") + pl.col("_income").round(2).cast(pl.Utf8))
                          .otherwise(pl.col("note")).alias("note"))
            .drop("_income"))


def _members(con, status: pl.DataFrame, ident) -> pl.DataFrame:
    """The registry members (扶贫办) of the household's latest period: no health, no cause."""
    if not table_exists(con, "staging.fupin") or status.is_empty() or status["household_id"][-1] is None:
        return pl.DataFrame()
    return frame(con, f"""
        SELECT name, {ident('id_number')} AS id_number, relation, sex, labor, in_school
        FROM staging.fupin
        WHERE household_id = $h AND period = (SELECT max(period) FROM staging.fupin
                                               WHERE household_id = $h AND period <= $upto)
        ORDER BY person_no
    """, {"h": status["household_id"][-1], "upto": status["period"][-1]})


def _with_dept_names(df: pl.DataFrame) -> pl.DataFrame:
    if df.is_empty():
        return df
    names = {d: dept_name(d) for d in df["dept"].drop_nulls().unique().to_list()}
    return df.with_columns(pl.col("dept").replace_strict(names, default=pl.col("dept")))


# Each further table of the file: title, mart, the columns shown (those the mart has: columns the
# models add later appear once they exist), which rows and their order. Shown only where the mart
# exists (the marts are defined in warehouse/models/00_schema.sql).
_HOUSEHOLD_ROWS = "household_key = $k"
_PROBLEMS_OF_HOUSEHOLD = "problem_key IN (SELECT problem_key FROM mart.problem_ledger WHERE household_key = $k)"
SECTIONS = [
    ("监测记录", "mart.monitoring_history",
     ["entered_period", "entered_by", "status", "last_flagged_period", "clean_periods",
      "proposed_clear_period", "cleared_period", "clear_way", "identified_on", "on_roster"],
     _HOUSEHOLD_ROWS, "entered_period"),
    ("监测事件", "mart.monitoring_events", ["period", "event", "status", "detail"],
     _HOUSEHOLD_ROWS + " AND period <= $upto", "period, event"),
    ("问题台账", "mart.problem_ledger",
     ["problem_key", "code", "rule_name", "subject_id", "status", "first_seen_period",
      "last_seen_period", "deadline", "overdue", "closed_period", "reopen_count", "verified_result",
      "verified_on", "detail"],
     _HOUSEHOLD_ROWS, "first_seen_period, code, subject_id"),
    ("问题事件", "mart.problem_events",
     ["period", "problem_key", "code", "event", "status", "deadline", "overdue", "detail"],
     _HOUSEHOLD_ROWS + " AND period <= $upto", "period, problem_key, event"),
    ("核实反馈", "mart.verifications",
     ["period", "problem_key", "code", "result", "verified_on", "verifier", "note", "source_file",
      "source_row"],
     _PROBLEMS_OF_HOUSEHOLD + " AND period <= $upto", "period, problem_key"),
    ("负面清单排除", "mart.monitoring_exclusions", ["period", "asset", "evidence"],
     _HOUSEHOLD_ROWS + " AND period <= $upto", "period, asset"),
]
PERSON_COLUMNS = ("subject_id",)      # a person's number or a 户编号: shown through mask_key


def _other_sections(con, p: dict, key_shown) -> dict[str, pl.DataFrame]:
    out = {}
    for title, table_name, wanted, where, order in SECTIONS:
        if not table_exists(con, table_name):
            continue
        present = set(table_columns(con, table_name))
        shown = [c for c in wanted if c in present]
        select = ", ".join(f"{key_shown(c)} AS {c}" if c in PERSON_COLUMNS
                           else f"CAST({c} AS VARCHAR) AS {c}" if c == "evidence" else c
                           for c in shown)
        sql = f"SELECT {select} FROM {table_name} WHERE {where} ORDER BY {order}"
        out[title] = frame(con, sql, {k: v for k, v in p.items() if f"${k}" in sql})
    return out


# ----------------------------------------------------------------------------- showing it

LABELS = {
    "period": "期次", "household_id": "户编号", "head_id_number": "户主身份证号", "township": "乡镇",
    "village": "村", "registry_status": "建档立卡状态", "object_type": "对象类型", "members": "人口",
    "income": "人均纯收入", "color": "三色", "monitored": "监测中", "category": "类别",
    "category_name": "预警类别", "reasons": "原因", "reason": "原因", "dept": "部门",
    "data_period": "数据期次", "source_file": "文件", "source_row": "行号", "note": "依据内容",
    "measure": "帮扶措施", "department": "责任单位", "name": "姓名", "id_number": "身份证号",
    "relation": "与户主关系", "sex": "性别", "labor": "劳动技能", "in_school": "在校生状况",
    "event": "事件", "status": "状态", "detail": "说明", "problem_key": "问题编号", "code": "规则",
    "rule_name": "问题", "subject_id": "对象", "first_seen_period": "首次发现", "deadline": "整改期限",
    "last_seen_period": "最近发现", "overdue": "逾期", "closed_period": "销号期次",
    "reopen_count": "重开次数", "verified_result": "核实结果", "verified_on": "核实日期",
    "result": "核实结果", "verifier": "核实人", "asset": "资产", "evidence": "依据",
    "entered_period": "纳入期次", "entered_by": "纳入方式", "last_flagged_period": "最近预警",
    "clean_periods": "连续无预警期数", "proposed_clear_period": "拟消除期次",
    "cleared_period": "消除期次", "clear_way": "消除方式", "identified_on": "识别日期",
    "on_roster": "在监测名单",
    **{c: label for c, label in INDICATORS},
}


def _shown(df: pl.DataFrame) -> pl.DataFrame:
    """Display values: booleans as 是/否 (达标/未达标 for the indicators), colours in Chinese."""
    out = df.with_columns(
        pl.col(c).replace_strict({True: "达标", False: "未达标"}, default=None, return_dtype=pl.Utf8)
        for c, _ in INDICATORS if c in df.columns
    )
    out = out.with_columns(
        pl.col(c).replace_strict({True: "是", False: "否"}, default=None, return_dtype=pl.Utf8)
        for c, t in out.schema.items() if t == pl.Boolean
    )
    if "color" in out.columns:
        out = out.with_columns(pl.col("color").replace_strict(COLOR_LABELS, default=pl.col("color")))
    return out.with_columns(pl.col(c).cast(pl.Utf8) for c in out.columns)


def _text_table(df: pl.DataFrame) -> str:
    df = _shown(df)
    return table([LABELS.get(c, c) for c in df.columns], df.rows(), limit=80)


def render_text(hf: HouseholdFile) -> str:
    out = [f"一户一档 household file — {hf.shown_key}"]
    if hf.status.is_empty():
        return "\n".join(out + ["（所选期次内无记录 no record up to this period）"])
    last = hf.status.row(-1, named=True)
    out.append(f"{last['township'] or ''}{last['village'] or ''}  户编号 {last['household_id'] or '—'}  "
               f"户主 {last['head_id_number'] or '—'}  期次 {hf.periods[0]} – {hf.periods[-1]}")
    out += ["", "各期状况 status by period (收入与 3+1)", _text_table(hf.status.drop("township", "village"))]
    if not hf.members.is_empty():
        out += ["", f"家庭成员 members ({hf.periods[-1]})", _text_table(hf.members)]
    for period in hf.periods:
        warned = hf.warnings.filter(pl.col("period") == period)
        if warned.is_empty():
            continue
        out += ["", f"== {period} 预警 warnings", _text_table(warned.drop("period", "category"))]
        rows = hf.evidence.filter(pl.col("period") == period).drop("period")
        if not rows.is_empty():
            out += ["依据 evidence rows", _text_table(rows)]
        plan = hf.plan.filter(pl.col("period") == period).drop("period") if not hf.plan.is_empty() else hf.plan
        if not plan.is_empty():
            out += ["帮扶计划 plan", _text_table(plan)]
    for title, df in hf.sections.items():
        out += ["", title, _text_table(df) if not df.is_empty() else "（无 none）"]
    return "\n".join(out)


def render_html(hf: HouseholdFile) -> str:
    # the frames are already masked (household_file): the 户编号 stays readable on the page too
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    chart = charts.line_chart(hf.periods, {"人均纯收入（元）": hf.status["income"].to_list()},
                              title="人均纯收入") if hf.periods else ""

    def tab(df: pl.DataFrame) -> dict:
        df = _shown(df)
        return {"headers": [LABELS.get(c, c) for c in df.columns], "rows": df.rows()}

    periods = []
    for period in hf.periods:
        pick = (lambda df: df.filter(pl.col("period") == period).drop("period")
                if not df.is_empty() else df)
        periods.append({"period": period, "warnings": tab(pick(hf.warnings).drop("category")),
                        "evidence": tab(pick(hf.evidence)), "plan": tab(pick(hf.plan))})
    return env.get_template("household.html.j2").render(
        key=hf.shown_key, generated_at=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        status=tab(hf.status), members=tab(hf.members), periods=periods, chart=chart,
        sections={t: tab(df) for t, df in hf.sections.items()})



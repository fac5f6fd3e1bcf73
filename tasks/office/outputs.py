"""What the office's outputs (report, exports, bulletins, ``povwatch sql``) share.

Opening the warehouse for reading with errors a person can act on, the Chinese labels of mart
columns (from the warehouse's own ``COMMENT ON``, falling back to a label dict), township names,
periods, the provenance of a period (which extracts, files and as-of dates it was built from),
and writing files readable by their owner only (masking is ``tasks/core/privacy.py``).

Nothing here loops over rows: every table is shaped in DuckDB SQL and handed over as Arrow/polars.
"""
from __future__ import annotations

import calendar
import os
import re
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from povwatch.tasks.core.rules import rule_labels
from povwatch.tasks.core.lake import use_lake
from povwatch.tasks.core.settings import load_settings


# Fallback labels when a mart column carries no COMMENT (the marts give every column one).
LABELS: dict[str, str] = {
    "period": "期次",
    "household_key": "户标识",
    "household_id": "户编号",
    "county_code": "县代码",
    "county_name": "县",
    "township_code": "乡镇代码",
    "township_name": "乡镇",
    "village_code": "村代码",
    "village_name": "村",
    "registry_status": "建档立卡状态",
    "object_type": "对象类型",
    "members": "家庭人口",
    "per_capita_income": "人均纯收入（元）",
    "education_ok": "义务教育保障",
    "medical_ok": "基本医疗保障",
    "housing_ok": "住房安全保障",
    "water_ok": "饮水安全保障",
    "income_ok": "收入达标",
    "color": "三色码",
    "category": "监测类别",
    "categories": "监测类别",
    "reasons": "风险类型",
    "evidence": "依据",
    "entered_period": "纳入监测期次",
    "last_flagged_period": "最近识别期次",
    "clean_periods": "连续无风险期数",
    "proposed_clear_period": "拟风险消除期次",
    "monitoring_status": "监测状态",
    "status": "状态",
    "problem_key": "问题编号",
    "code": "问题代码",
    "problem": "问题类型",
    "subject_id": "对象",
    "responsible_dept": "责任单位",
    "first_seen_period": "首次发现期次",
    "last_seen_period": "最近发现期次",
    "deadline": "整改期限",
    "overdue": "是否逾期",
    "closed_period": "销号期次",
    "reopen_count": "反复次数",
    "detail": "问题说明",
    "households": "建档立卡户数",
    "open_problems": "未整改问题",
    "overdue_problems": "逾期问题",
    "closed_in_period": "本期销号",
    "rectification_rate": "整改率",
    "monitored_households": "监测户数",
    "score": "得分",
    "rank": "排名",
    "bottom3_streak": "连续末三位期数",
    "stratum": "抽样层",
    "seed": "随机种子",
    "measure": "建议措施",
    "measures": "建议措施（责任单位）",
    "department": "责任单位",
    "event": "变动",
    "event_date": "日期",
}

CATEGORY_LABELS = {
    "not_exited_below_line": "未脱贫未达标",
    "unstable_exited": "脱贫不稳定户",
    "marginal": "边缘易致贫户",
    "sudden_hardship": "突发严重困难户",
}
CATEGORY_ORDER = list(CATEGORY_LABELS)

# Short Chinese labels of the rules, from the rule catalogue (warehouse/rules.toml).
PROBLEM_LABELS = rule_labels()

COLOR_LABELS = {"red": "红", "yellow": "黄", "green": "绿"}


class WarehouseUnavailable(Exception):
    """The warehouse cannot be opened for reading; ``str()`` is a message for a person."""

    def __init__(self, zh: str, en: str):
        super().__init__(f"{zh}\n{en}")
        self.zh = zh
        self.en = en


_LOCK_PATTERNS = ("could not set lock", "conflicting lock")


def open_read(warehouse: Path, *, strict: bool = False,
              config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only, or raise WarehouseUnavailable with a clear message.

    ``strict=False`` (reports, exports, bulletins called by a flow) accepts that this very process
    may already hold the file open read-write: DuckDB then refuses a second configuration, and
    the existing database is shared instead. ``povwatch sql`` passes ``strict=True``: read-only
    by construction, nothing else.
    """
    warehouse = Path(warehouse)
    if not warehouse.exists():
        raise WarehouseUnavailable(
            f"仓库文件不存在：{warehouse}。请先运行 povwatch run 或 povwatch demo，或用 --warehouse 指定。",
            f"The warehouse does not exist: {warehouse}. Run `povwatch run` or `povwatch demo` "
            "first, or pass --warehouse.",
        )
    try:
        con = duckdb.connect(str(warehouse), read_only=True, config=config or {})
        use_lake(con, warehouse)   # raw.<dept> reads the lake wherever the warehouse now is
        return con
    except duckdb.IOException as exc:
        text = str(exc).lower()
        if any(p in text for p in _LOCK_PATTERNS):
            who_zh, who_en = _lock_holder(warehouse)
            raise WarehouseUnavailable(
                f"仓库正被运行中的流水线占用（写锁{who_zh}），请待其运行结束后再试。",
                f"The warehouse is locked by a running pipeline (another process holds a write "
                f"connection to {warehouse}{who_en}); try again when it has finished.",
            ) from None
        raise WarehouseUnavailable(
            f"无法打开仓库 {warehouse}：{exc}", f"Cannot open the warehouse {warehouse}: {exc}"
        ) from None
    except duckdb.ConnectionException as exc:
        if strict or "different configuration" not in str(exc):
            raise WarehouseUnavailable(
                f"无法以只读方式打开仓库（本进程已打开该文件）：{exc}",
                f"Cannot open the warehouse read-only (this process already has it open): {exc}",
            ) from None
        from povwatch.tasks.core.db import connect

        return connect(warehouse)


def _lock_holder(warehouse: Path) -> tuple[str, str]:
    """Who holds the run lock (tasks.core.locking), when a run says so: for the lock message."""
    try:
        from povwatch.tasks.core.locking import holder, is_locked

        info = holder(warehouse) if is_locked(warehouse) else None
    except Exception:  # the lock file is a courtesy; the DuckDB error is what counts
        info = None
    if not info:
        return "", ""
    what, pid, since = info.get("what", "povwatch"), info.get("pid"), info.get("since", "?")
    return f"：{what}，PID {pid}，始于 {since}", f": {what}, PID {pid}, since {since}"


@contextmanager
def reading(warehouse: Path):
    con = open_read(warehouse)
    try:
        yield con
    finally:
        con.close()


def frame(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> pl.DataFrame:
    """A query's result as a polars DataFrame (through Arrow, no row loop)."""
    return pl.from_arrow(con.sql(sql, params=params).to_arrow_table())


# ---------------------------------------------------------------- catalogue


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
        "AND database_name = current_database()", [schema, table],
    ).fetchall()[0][0] or con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND view_name = ? "
        "AND database_name = current_database()", [schema, table],
    ).fetchall()[0][0])


def table_columns(con: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    schema, table = qualified.split(".")
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? "
        "AND database_name = current_database() ORDER BY column_index", [schema, table],
    ).fetchall()
    return [r[0] for r in rows]


def column_labels(con: duckdb.DuckDBPyConnection, *qualified: str) -> dict[str, str]:
    """Column name -> Chinese label: the tables' COMMENT ON (first table wins), else LABELS."""
    labels = dict(LABELS)
    for q in reversed(qualified):
        schema, table = q.split(".")
        for name, comment in con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? "
            "AND table_name = ? AND database_name = current_database()", [schema, table],
        ).fetchall():
            if comment:
                labels[name] = _short_label(comment)
    return labels


def _short_label(comment: str) -> str:
    """A header from a column comment: the text before any explanation in brackets or a colon."""
    head = re.split(r"[：:;；（(]", comment.strip(), maxsplit=1)[0].strip()
    return head or comment.strip()


def dept_name(code: str | None) -> str:
    if not code:
        return "（未指定）"
    try:
        from povwatch.tasks.ingest.contracts import load_contract

        return load_contract(code).name
    except Exception:
        return code


def dept_names_sql_values() -> str:
    """A VALUES list (code, name) of every department with a contract, for SQL joins."""
    from povwatch.tasks.ingest.contracts import department_codes

    rows = [(c, dept_name(c)) for c in department_codes()]
    return ", ".join(f"('{c}', '{n}')" for c, n in rows)


def register_divisions(con: duckdb.DuckDBPyConnection) -> None:
    """A temp view ``divisions(code, name)``: the table the marts were built with
    (``mart.divisions``), else the division CSV of the settings (a warehouse never built), else
    empty (codes are shown instead of names)."""
    if table_exists(con, "mart.divisions"):
        con.execute("CREATE OR REPLACE TEMP VIEW divisions AS SELECT code, name FROM mart.divisions")
        return
    frame = pl.DataFrame({"code": [], "name": []}, schema={"code": pl.Utf8, "name": pl.Utf8})
    divisions_csv = load_settings().divisions_csv
    if divisions_csv.exists():
        frame = pl.read_csv(divisions_csv, schema_overrides={"code": pl.Utf8, "parent": pl.Utf8}
                            ).select("code", "name")
    con.register("divisions_frame", frame)
    con.execute("CREATE OR REPLACE TEMP VIEW divisions AS SELECT code, name FROM divisions_frame")


def place_sql(code_col: str) -> str:
    """SQL for a division's name, falling back to its code."""
    return f"coalesce((SELECT d.name FROM divisions d WHERE d.code = {code_col} LIMIT 1), {code_col})"


# ---------------------------------------------------------------- periods


def period_end(period: str) -> date:
    year, month = (int(x) for x in period.split("-"))
    return date(year, month, calendar.monthrange(year, month)[1])


def mart_periods(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every period the marts hold, oldest first."""
    sources = [t for t in ("mart.household_status", "mart.monitoring", "mart.township_ranking")
               if table_exists(con, t)]
    if not sources:
        return []
    union = " UNION ".join(f"SELECT DISTINCT period FROM {t}" for t in sources)
    return [r[0] for r in con.execute(f"SELECT period FROM ({union}) WHERE period IS NOT NULL "
                                      f"ORDER BY period").fetchall()]


def resolve_period(con: duckdb.DuckDBPyConnection, period: str | None) -> str:
    periods = mart_periods(con)
    if period is None:
        if not periods:
            raise WarehouseUnavailable("仓库中还没有任何期次的监测数据。",
                                       "The warehouse holds no period of mart data yet.")
        return periods[-1]
    if not re.fullmatch(r"\d{4}-\d{2}", period):
        raise WarehouseUnavailable(f"期次应为 YYYY-MM：{period}", f"A period is YYYY-MM: {period}")
    if period not in periods:
        raise WarehouseUnavailable(
            f"仓库中没有期次 {period} 的数据（现有：{'、'.join(periods) or '无'}）。",
            f"The warehouse holds no data for {period} (it has: {', '.join(periods) or 'none'}).")
    return period


def previous_period(con: duckdb.DuckDBPyConnection, period: str) -> str | None:
    earlier = [p for p in mart_periods(con) if p < period]
    return earlier[-1] if earlier else None


# ---------------------------------------------------------------- provenance


PROVENANCE_COLUMNS = ("部门", "文件", "数据期次", "截至日期", "读入行数", "入库行数", "隔离行数",
                      "状态", "入库时间")


def provenance(con: duckdb.DuckDBPyConnection, period: str) -> pl.DataFrame:
    """The extracts a period's marts were built from: department, file, as-of date, rows.

    Per department, the files of its latest accepted delivery for the period; a department that
    delivered nothing accepted for the period is shown with the latest earlier delivery, which
    the marts keep using ("last good data stays in use"), marked 沿用. The as-of date is the end
    of the extract's period (extracts are snapshots as of the end of their period, docs/contract.md).
    No run ids or hashes: a reader needs the file, not the key.
    """
    if not table_exists(con, "audit.extracts"):
        return pl.DataFrame(schema={c: pl.Utf8 for c in PROVENANCE_COLUMNS})
    return frame(con, f"""
        WITH depts(code, name, ord) AS (
            SELECT code, name, row_number() OVER () FROM (VALUES {dept_names_sql_values()}) v(code, name)
        ),
        used AS (   -- per department: the latest period <= $p with an accepted delivery
            SELECT dept, max(period) AS period FROM audit.extracts
            WHERE period <= $p AND status = 'accepted' GROUP BY dept
        ),
        run AS (    -- and its latest accepted delivery (a resubmission replaces the earlier one)
            SELECT e.dept, e.period, arg_max(e.run_id, e.recorded_at) AS run_id
            FROM audit.extracts e JOIN used USING (dept, period)
            WHERE e.status = 'accepted' GROUP BY ALL
        )
        SELECT coalesce(d.name, e.dept) AS "部门", e.file AS "文件", e.period AS "数据期次",
               strftime(last_day(strptime(e.period || '-01', '%Y-%m-%d')), '%Y-%m-%d')
                   AS "截至日期",
               e.rows_read AS "读入行数", e.rows_loaded AS "入库行数",
               e.rows_quarantined AS "隔离行数",
               CASE WHEN e.rows_read = 0 AND e.period = $p THEN '已接收（空快照，本期无记录）'
                    WHEN e.rows_read = 0 THEN '本期未报送，沿用' || e.period || '（空快照）'
                    WHEN e.period = $p THEN '已接收' ELSE '本期未报送，沿用' || e.period END
                   AS "状态",
               strftime(e.recorded_at, '%Y-%m-%d %H:%M') AS "入库时间"
        FROM audit.extracts e JOIN run USING (dept, period, run_id)
        LEFT JOIN depts d ON d.code = e.dept
        WHERE e.status = 'accepted'
        ORDER BY d.ord NULLS LAST, e.dept, e.file
    """, {"p": period})


# ---------------------------------------------------------------- files


@contextmanager
def private_files():
    """Files and folders created inside are readable by their owner only (umask 077)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def write_private(path: Path, data: str | bytes) -> Path:
    with private_files():
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        kwargs = {} if isinstance(data, bytes) else {"encoding": "utf-8"}
        with open(path, mode, **kwargs) as fh:
            fh.write(data)
    os.chmod(path, 0o600)
    return path

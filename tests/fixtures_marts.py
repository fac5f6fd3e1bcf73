"""A small warehouse with the mart and audit tables of the interface (spec/interface.md).

The outputs' tests build it directly, so they do not wait for the pipeline: two townships' worth
of households over two periods, a ledger with overdue and closed problems, a ranking, a spot-check
sample and the audit trail. It plants what the outputs must handle safely: full identity numbers as
household keys and inside problem details, and cell texts that look like spreadsheet formulas.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from tasks.db import open_warehouse
from tasks.idnumber import check_char

COUNTY = "620523"
TOWNSHIPS = {"620523100": "城关镇", "620523101": "新寨镇", "620523102": "马营乡", "620523103": "红山乡"}
VILLAGES = {f"{t}{v:03d}": f"{name[:-1]}{v}村" for t, name in TOWNSHIPS.items() for v in (1, 2)}
PERIODS = ("2020-09", "2020-10")
HOUSEHOLDS = 40
INJECTION_TEXTS = ("=HYPERLINK(\"http://evil.example/\",\"点我\")", "+1+1", "-2+3", "@SUM(A1)",
                   "\t=1+1")

COMMENTS = {
    "mart.household_status": ("户状态（每户每期一行）", {
        "period": "期次", "household_key": "户标识", "household_id": "户编号",
        "county_code": "县代码", "township_code": "乡镇代码", "village_code": "村代码",
        "registry_status": "建档立卡状态", "object_type": "对象类型", "members": "家庭人口",
        "per_capita_income": "人均纯收入（元）", "education_ok": "义务教育保障",
        "medical_ok": "基本医疗保障", "housing_ok": "住房安全保障", "water_ok": "饮水安全保障",
        "income_ok": "收入达标", "color": "三色码"}),
    "mart.monitoring": ("监测对象", {
        "period": "期次", "household_key": "户标识", "category": "监测类别",
        "reasons": "风险类型", "evidence": "识别依据"}),
    "mart.problem_ledger": ("问题台账", {
        "problem_key": "问题编号", "code": "问题代码", "subject_id": "问题对象",
        "household_key": "户标识", "township_code": "乡镇代码", "village_code": "村代码",
        "responsible_dept": "责任单位", "status": "状态", "first_seen_period": "首次发现期次",
        "last_seen_period": "最近发现期次", "deadline": "整改期限", "overdue": "是否逾期",
        "closed_period": "销号期次", "reopen_count": "反复次数", "detail": "问题说明"}),
    "mart.spot_check": ("抽查名单", {
        "period": "期次", "county_code": "县代码", "village_code": "村代码",
        "household_key": "户标识", "stratum": "抽样层", "seed": "随机种子"}),
    "mart.household_plan": ("一户一策", {
        "period": "期次", "household_key": "户标识", "measure": "建议措施",
        "department": "责任单位"}),
}


def _ids(n: int, offset: int = 0) -> pl.Series:
    """n valid identity numbers (county 620523, born 1970-1989)."""
    first17 = pl.DataFrame({"i": range(offset, offset + n)}).select(
        pl.lit(COUNTY)
        + (1970 + pl.col("i") % 20).cast(pl.Utf8)
        + ((pl.col("i") % 12) + 1).cast(pl.Utf8).str.zfill(2)
        + ((pl.col("i") % 28) + 1).cast(pl.Utf8).str.zfill(2)
        + (100 + pl.col("i") % 900).cast(pl.Utf8)
    ).to_series()
    return pl.DataFrame({"f": first17}).select(pl.col("f") + check_char(pl.col("f"))).to_series()


def households() -> pl.DataFrame:
    """Household keys: the first 30 registry (户编号), the last 10 non-registry (head's id)."""
    ids = _ids(HOUSEHOLDS)
    villages = list(VILLAGES)
    return pl.DataFrame({
        "i": range(HOUSEHOLDS),
        "household_id": [f"6205231{i:05d}" if i < 30 else None for i in range(HOUSEHOLDS)],
        "head_id": ids,
        "village_code": [villages[i % len(villages)] for i in range(HOUSEHOLDS)],
    }).with_columns(
        household_key=pl.coalesce("household_id", "head_id"),
        township_code=pl.col("village_code").str.slice(0, 9),
    )


def build(path: Path, *, with_event_date: bool = False, datadocs: Path | None = None) -> Path:
    """Create the warehouse at ``path``; return it."""
    con = open_warehouse(path)
    try:
        _build(con, with_event_date)
    finally:
        con.close()
    if datadocs is not None:
        datadocs.mkdir(parents=True, exist_ok=True)
        (datadocs / "index.html").write_text("<html><body>GX Data Docs</body></html>")
    return path


def _build(con: duckdb.DuckDBPyConnection, with_event_date: bool) -> None:
    hh = households()
    con.register("hh", hh.to_arrow())
    periods = ", ".join(f"('{p}', {k})" for k, p in enumerate(PERIODS))
    con.execute(f"CREATE TEMP TABLE periods(period, k) AS VALUES {periods}")
    con.execute(f"""
        CREATE TABLE mart.household_status AS
        SELECT p.period, household_key, household_id, '{COUNTY}' AS county_code, township_code,
               village_code,
               CASE WHEN i >= 30 THEN '非建档立卡' WHEN i % 3 = 0 THEN '未脱贫' ELSE '已脱贫' END
                   AS registry_status,
               CASE WHEN i >= 30 THEN '边缘户' ELSE '建档立卡户' END AS object_type,
               1 + i % 5 AS members,
               CAST(3000 + (i * 397 + p.k * 211) % 9000 AS DECIMAL(14,2)) AS per_capita_income,
               i % 7 <> 0 AS education_ok, i % 11 <> 0 AS medical_ok, i % 5 <> 1 AS housing_ok,
               i % 6 <> 2 AS water_ok, 3000 + (i * 397 + p.k * 211) % 9000 >= 4000 AS income_ok,
               CASE WHEN 3000 + (i * 397 + p.k * 211) % 9000 < 5000 THEN 'red'
                    WHEN 3000 + (i * 397 + p.k * 211) % 9000 < 10000 THEN 'yellow'
                    ELSE 'green' END AS color
        FROM hh CROSS JOIN periods p
    """)
    # Monitoring: every fourth household, more in the second period; one with two categories.
    con.execute("""
        CREATE TABLE mart.monitoring AS
        SELECT s.period, s.household_key,
               CASE WHEN s.registry_status = '未脱贫' THEN 'not_exited_below_line'
                    WHEN s.registry_status = '已脱贫' THEN 'unstable_exited'
                    ELSE 'marginal' END AS category,
               CASE WHEN s.per_capita_income < 6000 THEN ['收入不达标'] ELSE ['因病', '缺劳力'] END
                   AS reasons,
               'fupin 第' || (2 + h.i) || '行' AS evidence
        FROM mart.household_status s JOIN hh h USING (household_key)
        WHERE h.i % 4 = 0 OR (s.period = '2020-10' AND h.i % 4 = 1)
        UNION ALL
        SELECT period, household_key, 'sudden_hardship', ['因病', '收入骤减'], 'shouru 第9行'
        FROM mart.household_status WHERE household_key = (SELECT household_key FROM hh WHERE i = 8)
    """)
    con.execute("""
        CREATE TABLE mart.monitoring_history AS
        SELECT household_key, min(period) AS entered_period, max(period) AS last_flagged_period,
               0 AS clean_periods, NULL::VARCHAR AS proposed_clear_period, '监测中' AS status
        FROM mart.monitoring GROUP BY household_key
    """)
    con.execute("""
        CREATE TABLE mart.household_plan AS
        SELECT DISTINCT m.period, m.household_key,
               CASE r WHEN '收入不达标' THEN '稳定就业或公益性岗位' WHEN '因病' THEN '家庭医生签约、大病救助'
                      WHEN '缺劳力' THEN '纳入低保或特困供养' ELSE '临时救助' END AS measure,
               CASE r WHEN '收入不达标' THEN 'renshe' WHEN '因病' THEN 'weijian'
                      WHEN '缺劳力' THEN 'minzheng' ELSE 'minzheng' END AS department
        FROM mart.monitoring m, unnest(m.reasons) AS u(r)
    """)
    inj = ", ".join("'" + t.replace("'", "''") + "'" for t in INJECTION_TEXTS)
    # Ledger: 24 problems over five rules; person subjects are full identity numbers.
    con.execute(f"""
        CREATE TABLE mart.problem_ledger AS
        WITH p AS (
            SELECT g AS n, h.household_key, h.head_id, h.township_code, h.village_code
            FROM range(24) t(g) JOIN hh h ON h.i = (g * 7) % 40
        )
        SELECT 'PK' || lpad(CAST(n AS VARCHAR), 4, '0') AS problem_key,
               (['P01', 'P02', 'P04', 'P05', 'P06'])[1 + n % 5] AS code,
               CASE WHEN n % 5 IN (0, 1) THEN head_id ELSE household_key END AS subject_id,
               household_key, township_code, village_code,
               (['jiaoyu', 'yibao', 'zhujian', 'shuili', 'fupin'])[1 + n % 5] AS responsible_dept,
               CASE WHEN n % 4 = 3 THEN 'closed' ELSE 'open' END AS status,
               CASE WHEN n < 14 THEN '2020-09' ELSE '2020-10' END AS first_seen_period,
               CASE WHEN n % 4 = 3 THEN '2020-09' ELSE '2020-10' END AS last_seen_period,
               CASE WHEN n < 14 THEN DATE '2020-10-30' ELSE DATE '2020-11-30' END AS deadline,
               n < 14 AND n % 4 <> 3 AS overdue,
               CASE WHEN n % 4 = 3 THEN '2020-10' END AS closed_period,
               CASE WHEN n = 5 THEN 1 ELSE 0 END AS reopen_count,
               CASE WHEN n < {len(INJECTION_TEXTS)} THEN ([{inj}])[1 + n]
                    ELSE '对象 ' || head_id || ' 未落实' END AS detail
        FROM p
    """)
    event_date = (", CASE e.event WHEN 'closed' THEN DATE '2020-10-15' ELSE DATE '2020-09-25' END"
                  " AS event_date" if with_event_date else "")
    con.execute(f"""
        CREATE TABLE mart.problem_events AS
        SELECT e.* {event_date} FROM (
            SELECT problem_key, code, subject_id, responsible_dept, township_code,
                   first_seen_period AS period, 'opened' AS event FROM mart.problem_ledger
            UNION ALL
            SELECT problem_key, code, subject_id, responsible_dept, township_code,
                   closed_period, 'closed' FROM mart.problem_ledger WHERE status = 'closed'
        ) e
    """)
    con.execute("""
        CREATE TABLE mart.township_ranking AS
        WITH base AS (
            SELECT s.period, s.township_code,
                   count(*) FILTER (WHERE s.registry_status <> '非建档立卡') AS households,
                   (SELECT count(*) FROM mart.problem_ledger l WHERE l.township_code = s.township_code
                        AND l.first_seen_period <= s.period
                        AND (l.closed_period IS NULL OR l.closed_period > s.period)) AS open_problems,
                   (SELECT count(*) FROM mart.problem_ledger l WHERE l.township_code = s.township_code
                        AND l.overdue AND s.period = '2020-10') AS overdue_problems,
                   (SELECT count(*) FROM mart.problem_ledger l WHERE l.township_code = s.township_code
                        AND l.closed_period = s.period) AS closed_in_period,
                   (SELECT count(DISTINCT m.household_key) FROM mart.monitoring m
                        JOIN mart.household_status x USING (period, household_key)
                        WHERE m.period = s.period AND x.township_code = s.township_code)
                        AS monitored_households
            FROM mart.household_status s GROUP BY s.period, s.township_code
        )
        SELECT period, township_code, NULL::VARCHAR AS township_name, households, open_problems,
               overdue_problems, closed_in_period,
               closed_in_period / greatest(closed_in_period + open_problems, 1) AS rectification_rate,
               monitored_households,
               round(100 - 2 * open_problems * 100.0 / households
                     - 5 * overdue_problems * 100.0 / households
                     + 20 * closed_in_period / greatest(closed_in_period + open_problems, 1), 2)
                   AS score,
               0 AS rank, 0 AS bottom3_streak
        FROM base
    """)
    con.execute("""
        UPDATE mart.township_ranking r SET rank = x.rk,
               bottom3_streak = CASE WHEN x.rk > 1 THEN (CASE WHEN x.period = '2020-10' THEN 2 ELSE 1 END)
                                     ELSE 0 END
        FROM (SELECT period, township_code, row_number() OVER (PARTITION BY period ORDER BY score DESC,
              township_code) AS rk FROM mart.township_ranking) x
        WHERE r.period = x.period AND r.township_code = x.township_code
    """)
    con.execute(f"""
        CREATE TABLE mart.spot_check AS
        SELECT period, county_code, village_code, household_key,
               CASE registry_status WHEN '非建档立卡' THEN 'non_registry' ELSE registry_status END
                   AS stratum, 20201 AS seed
        FROM mart.household_status WHERE hash(household_key) % 3 <> 0
    """)
    for table, (tcomment, cols) in COMMENTS.items():
        con.execute(f"COMMENT ON TABLE {table} IS '{tcomment}'")
        for col, comment in cols.items():
            con.execute(f"COMMENT ON COLUMN {table}.{col} IS '{comment}'")
    _audit(con)
    con.execute("CREATE SCHEMA IF NOT EXISTS reference")
    rows = [(COUNTY, "示范县", "county", "620500")]
    rows += [(c, n, "township", COUNTY) for c, n in TOWNSHIPS.items()]
    rows += [(c, n, "village", c[:9]) for c, n in VILLAGES.items()]
    con.execute("CREATE TABLE reference.divisions(code VARCHAR, name VARCHAR, level VARCHAR, "
                "parent VARCHAR)")
    con.executemany("INSERT INTO reference.divisions VALUES (?, ?, ?, ?)", rows)


def _audit(con: duckdb.DuckDBPyConnection) -> None:
    depts = ["fupin", "shouru", "jiaoyu", "zhujian", "yibao", "shuili"]
    con.execute("""
        INSERT INTO audit.runs (run_id, started_at, finished_at, inbox, periods, status)
        VALUES ('run-1', TIMESTAMP '2020-10-05 08:00', TIMESTAMP '2020-10-05 08:05', 'inbox',
                '2020-09', 'completed'),
               ('run-2', TIMESTAMP '2020-11-05 08:00', TIMESTAMP '2020-11-05 08:05', 'inbox',
                '2020-10', 'completed')
    """)
    for k, period in enumerate(PERIODS):
        run = f"run-{k + 1}"
        for j, dept in enumerate(depts):
            read = 100 + 10 * j
            quarantined = (j + k) % 4
            con.execute(
                "INSERT INTO audit.extracts (run_id, period, dept, file, sha256, rows_read, "
                "rows_loaded, rows_quarantined, status, message, recorded_at) VALUES "
                "(?, ?, ?, ?, 'ab' || ?, ?, ?, ?, 'accepted', '', ?)",
                [run, period, dept, f"{period}/{dept}/{dept}_{period}.xlsx", dept, read,
                 read - quarantined, quarantined, f"{2020}-{10 + k}-05 08:0{j}:00"])
            for e, name in enumerate(("not_null(id_number)", "in_set(status)")):
                con.execute(
                    "INSERT INTO audit.validations (run_id, period, dept, expectation, blocking, "
                    "success, unexpected_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, '{}')",
                    [run, period, dept, name, e == 0, not (dept == "shouru" and e == 1),
                     3 if dept == "shouru" and e == 1 else 0])
        # A rejected delivery that the period was not built from.
        con.execute(
            "INSERT INTO audit.extracts (run_id, period, dept, file, sha256, rows_read, rows_loaded,"
            " rows_quarantined, status, message) VALUES (?, ?, 'weijian', ?, 'cd', 5, 0, 5, "
            "'rejected', '缺少必填列')", [run, period, f"{period}/weijian/bad.csv"])
    con.execute("""
        INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, stage, row_data)
        VALUES ('run-1', '2020-09', 'fupin', '2020-09/fupin/fupin_2020-09.xlsx', 5,
                ['证件号码：校验位错误'], 'conform', '{}')
    """)

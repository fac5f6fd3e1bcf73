"""A small warehouse with the mart and audit tables of the interface (docs/marts.md).

The outputs' tests build it directly, so they do not wait for the pipeline: two townships' worth
of households over two periods, a ledger with overdue and closed problems, a ranking, a spot-check
sample and the audit trail. It plants what the outputs must handle safely: full identity numbers as
household keys and inside problem details, and cell texts that look like spreadsheet formulas.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from povwatch.tasks.ingest.contracts import all_contracts
from povwatch.tasks.core.db import open_warehouse
from povwatch.tasks.ingest.idnumber import check_char
from povwatch.tasks.core.rules import write_rules_table
from povwatch.tasks.marts.build import _set_policy, load_policy
from povwatch.tasks.core.settings import MODELS_DIR

COUNTY = "620523"
TOWNSHIPS = {"620523100": "城关镇", "620523101": "新寨镇", "620523102": "马营乡", "620523103": "红山乡"}
VILLAGES = {f"{t}{v:03d}": f"{name[:-1]}{v}村" for t, name in TOWNSHIPS.items() for v in (1, 2)}
PERIODS = ("2020-09", "2020-10", "2020-11")
HOUSEHOLDS = 40
INJECTION_TEXTS = ("=HYPERLINK(\"http://evil.example/\",\"点我\")", "+1+1", "-2+3", "@SUM(A1)",
                   "\t=1+1")

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


def build(path: Path, *, datadocs: Path | None = None) -> Path:
    """Create the warehouse at ``path``; return it.

    The mart tables, their Chinese comments and the ledger macros come from the real model files
    (warehouse/models/00_schema.sql, 01_comments.sql); the ledger's states, its events and the
    ranking are computed by the real 75_ledger_states.sql (period by period), 80_ledger.sql and
    90_township_ranking.sql from planted findings. So the
    outputs are tested against the schema the pipeline writes, not a copy of it.
    """
    con = open_warehouse(path)
    try:
        _build(con)
    finally:
        con.close()
    if datadocs is not None:
        datadocs.mkdir(parents=True, exist_ok=True)
        (datadocs / "index.html").write_text("<html><body>GX Data Docs</body></html>")
    return path


def _model(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute((MODELS_DIR / name).read_text(encoding="utf-8"))


def _build(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TABLE mart.departments (code VARCHAR, name VARCHAR)")
    con.executemany("INSERT INTO mart.departments VALUES (?, ?)",
                    [(c.code, c.name) for c in all_contracts().values()])
    write_rules_table(con)   # the rule catalogue, as build_marts writes it
    _model(con, "00_schema.sql")
    _model(con, "01_comments.sql")
    _model(con, "02_office.sql")
    hh = households()
    con.register("hh", hh.to_arrow())
    periods = ", ".join(f"('{p}', {k})" for k, p in enumerate(PERIODS))
    con.execute(f"CREATE TEMP TABLE periods(period, k) AS VALUES {periods}")
    con.execute("INSERT INTO mart.policy_used (run_id, period, policy_year, \"values\") "
                "SELECT 'run-' || (k + 1), period, 2020, '{}' FROM periods")
    income = "(3000 + (i * 397 + p.k * 211) % 9000)"
    con.execute(f"""
        INSERT INTO mart.household_status BY NAME
        SELECT p.period, household_key, household_id, '{COUNTY}' AS county_code, township_code,
               village_code,
               CASE WHEN i >= 30 THEN '非建档立卡' WHEN i % 3 = 0 THEN '未脱贫' ELSE '已脱贫' END
                   AS registry_status,
               CASE WHEN i >= 30 THEN '边缘户' ELSE '建档立卡户' END AS object_type,
               1 + i % 5 AS members, {income} AS per_capita_income,
               i % 7 <> 0 AS education_ok, i % 11 <> 0 AS medical_ok, i % 5 <> 1 AS housing_ok,
               i % 6 <> 2 AS water_ok, {income} >= 4000 AS income_ok,
               CASE WHEN {income} < 5000 THEN 'red' WHEN {income} < 10000 THEN 'yellow'
                    ELSE 'green' END AS color,
               head_id AS head_id_number, 1 + i % 5 AS declared_members, true AS income_known,
               i % 3 AS labour_able_members,
               i % 4 = 0 OR (p.k >= 1 AND i % 4 = 1) OR i = 8 AS monitored
        FROM hh CROSS JOIN periods p
    """)
    # Monitoring: every fourth household, more from the second period on; one with two categories.
    con.execute("""
        INSERT INTO mart.monitoring BY NAME
        SELECT s.period, s.household_key,
               CASE WHEN s.registry_status = '未脱贫' THEN 'not_exited_below_line'
                    WHEN s.registry_status = '已脱贫' THEN 'unstable_exited'
                    ELSE 'marginal' END AS category,
               CASE WHEN s.per_capita_income < 6000 THEN ['收入不达标'] ELSE ['因病', '缺劳力'] END
                   AS reasons,
               to_json({'dept': 'fupin', 'row': 2 + h.i}) AS evidence,
               s.registry_status, s.village_code
        FROM mart.household_status s JOIN hh h USING (household_key)
        WHERE h.i % 4 = 0 OR (s.period >= '2020-10' AND h.i % 4 = 1)
        UNION ALL BY NAME
        SELECT period, household_key, 'sudden_hardship' AS category, ['因病', '收入骤减'] AS reasons,
               to_json({'dept': 'shouru', 'row': 9}) AS evidence, registry_status, village_code
        FROM mart.household_status WHERE household_key = (SELECT household_key FROM hh WHERE i = 8)
    """)
    con.execute("""
        INSERT INTO mart.monitoring_history BY NAME
        SELECT household_key, min(period) AS entered_period, max(period) AS last_flagged_period,
               0 AS clean_periods, 'monitoring' AS status, max(period) AS as_of_period
        FROM mart.monitoring GROUP BY household_key
    """)
    con.execute("""
        INSERT INTO mart.household_plan BY NAME
        SELECT DISTINCT m.period, m.household_key,
               CASE r WHEN '收入不达标' THEN '稳定就业或公益性岗位' WHEN '因病' THEN '家庭医生签约、大病救助'
                      WHEN '缺劳力' THEN '纳入低保或特困供养' ELSE '临时救助' END AS measure,
               CASE r WHEN '收入不达标' THEN 'renshe' WHEN '因病' THEN 'weijian'
                      ELSE 'minzheng' END AS dept_code, r AS reason
        FROM mart.monitoring m, unnest(m.reasons) AS u(r)
    """)
    con.execute("UPDATE mart.household_plan p SET department = d.name FROM mart.departments d "
                "WHERE d.code = p.dept_code")
    _findings(con)
    con.execute("CREATE OR REPLACE TEMP TABLE divisions AS SELECT * FROM (VALUES "
                + ", ".join(f"('{c}', '{n}', 'township', '{COUNTY}')" for c, n in TOWNSHIPS.items())
                + ") AS t(code, name, level, parent)")
    policy = load_policy(2020)
    # the ledger's state per period, carried one step from the previous period, as build_marts
    # runs the [period] model for each period in order
    for period in PERIODS:
        _set_policy(con, period, policy, int(policy["spot_check_seed"]))
        _model(con, "75_ledger_states.sql")
    con.execute("SET VARIABLE upto = ?", [PERIODS[-1]])
    con.execute("SET VARIABLE rebuilt_from = ?", [PERIODS[0]])   # every period built here
    con.execute("SET VARIABLE run_id = 'run-fixture'")
    # the latest policy, as build_marts stages it for the history models (ranking weights …)
    _set_policy(con, PERIODS[-1], policy, int(policy["spot_check_seed"]), table="upto_policy")
    _model(con, "80_ledger.sql")
    _model(con, "90_township_ranking.sql")
    con.execute(f"""
        INSERT INTO mart.spot_check BY NAME
        SELECT period, county_code, village_code, household_key,
               registry_status AS stratum, 20201 AS seed, monitored,
               row_number() OVER (PARTITION BY period ORDER BY hash(household_key)) AS draw_order
        FROM mart.household_status WHERE hash(household_key) % 3 <> 0
    """)
    _audit(con)
    rows = [(COUNTY, "示范县", "county", "620500")]
    rows += [(c, n, "township", COUNTY) for c, n in TOWNSHIPS.items()]
    rows += [(c, n, "village", c[:9]) for c, n in VILLAGES.items()]
    con.execute("CREATE OR REPLACE TABLE mart.divisions(code VARCHAR, name VARCHAR, level VARCHAR, "
                "parent VARCHAR)")
    con.executemany("INSERT INTO mart.divisions VALUES (?, ?, ?, ?)", rows)


def _findings(con: duckdb.DuckDBPyConnection) -> None:
    """24 problems over five rules; person subjects are full identity numbers.

    n % 4 == 3: seen in its first period only, so closed in the next; n < 14 first seen in
    2020-09 (overdue from 2020-10 on), else in 2020-10; n == 5 is closed in 2020-10 and reopened
    in 2020-11 (屡改屡犯). The first details are texts that look like spreadsheet formulas.
    """
    inj = ", ".join("'" + t.replace("'", "''") + "'" for t in INJECTION_TEXTS)
    con.execute("INSERT INTO mart.period_deliveries SELECT p.period, d.dept FROM periods p, "
                "(VALUES ('fupin'), ('jiaoyu'), ('yibao'), ('zhujian'), ('shuili'), ('shouru')) "
                "AS d(dept) WHERE NOT (d.dept = 'shuili' AND p.period = ?)", [PERIODS[-1]])
    con.execute(f"""
        INSERT INTO mart.problem_findings BY NAME
        WITH p AS (
            SELECT g AS n, h.household_key, h.head_id, h.township_code, h.village_code,
                   (['P01', 'P02', 'P04', 'P05', 'P06'])[1 + g % 5] AS code,
                   CASE WHEN g < 14 THEN 0 ELSE 1 END AS first_k
            FROM range(24) t(g) JOIN hh h ON h.i = (g * 7) % 40
        )
        SELECT ps.period, p.code,
               CASE WHEN r.subject_type = 'person' THEN p.head_id ELSE p.household_key END
                   AS subject_id,
               r.subject_type, p.household_key, p.township_code, p.village_code,
               r.responsible_dept, d.name AS responsible_name,
               CASE WHEN p.code IN ('P04', 'P05') THEN 60 ELSE 30 END AS deadline_days,
               CASE WHEN p.n < {len(INJECTION_TEXTS)} THEN ([{inj}])[1 + p.n]
                    ELSE '对象 ' || p.head_id || ' 未落实' END AS detail,
               to_json({{'dept': 'fupin'}}) AS evidence
        FROM p JOIN periods ps ON ps.k >= p.first_k
        JOIN mart.rules r ON r.code = p.code
        LEFT JOIN mart.departments d ON d.code = r.responsible_dept
        WHERE NOT (p.n % 4 = 3 AND ps.k > p.first_k)
          AND NOT (p.n = 5 AND ps.k = 1)
    """)


def _audit(con: duckdb.DuckDBPyConnection) -> None:
    depts = ["fupin", "shouru", "jiaoyu", "zhujian", "yibao", "shuili"]
    con.execute("""
        INSERT INTO audit.runs (run_id, started_at, finished_at, inbox, periods, status)
        SELECT 'run-' || (k + 1), TIMESTAMP '2020-10-05 08:00' + INTERVAL (k) MONTH,
               TIMESTAMP '2020-10-05 08:05' + INTERVAL (k) MONTH, 'inbox', period, 'completed'
        FROM periods
    """)
    for k, period in enumerate(PERIODS):
        run = f"run-{k + 1}"
        for j, dept in enumerate(depts):
            if dept == "shuili" and period == PERIODS[-1]:
                continue  # 水利 did not deliver for the last period: its earlier extract is used
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


# ---------------------------------------------------------------- pytest helpers

import re as _re  # noqa: E402

import pytest  # noqa: E402

ID_RE = _re.compile(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])")


def full_ids_in(text: str) -> list[str]:
    """Every 18-character identity number inside ``text`` whose check character is right."""
    from stdnum.cn import ric

    return [m for m in ID_RE.findall(text) if ric.calc_check_digit(m) == m[-1]]


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="module")
def marts_warehouse(tmp_path_factory) -> Path:
    """A fixture warehouse in its own folder; outputs go to <folder>/output (POVWATCH_OUTPUT unset).

    Built once per test session and copied for each module (a copy is a file copy; a build runs
    the ledger models), so one module's outputs never show up in another's folder.
    """
    import os
    import shutil

    os.environ.pop("POVWATCH_OUTPUT", None)
    if "path" not in _BUILT:
        _BUILT["path"] = build(tmp_path_factory.mktemp("marts-built") / "povwatch.duckdb")
    folder = tmp_path_factory.mktemp("marts")
    shutil.copyfile(_BUILT["path"], folder / "povwatch.duckdb")
    docs = folder / "output" / "datadocs" / "local_site"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html><body>GX Data Docs</body></html>")
    return folder / "povwatch.duckdb"

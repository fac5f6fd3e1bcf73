"""Build the monitoring marts (docs/rules.md) from the staged department snapshots.

The work is SQL, one file per model under ``warehouse/models`` run in the order of
``warehouse/models/ORDER``; this module only sets the stage for it:

* the policy of the period's year (``warehouse/policy/<year>.toml``) as a one-row temp table
  ``policy`` (no threshold is written in SQL), the rule deadlines as ``deadlines``;
* each department's effective snapshot for the period as ``eff_<dept>``: its accepted snapshot of
  the latest period at or before the one built ("last good data stays in use");
* which departments delivered (accepted) in which period, as ``mart.period_deliveries``.

Per-period marts are written for the period built and for every already-built later period (whose
effective snapshots may have changed with a late delivery), in order; the ledger and the monitoring
states are carried from one built period to the next, so the states of the periods before the
earliest rebuilt one are kept as they are (they depend only on the periods up to their own). The
history marts (ledger, events, monitoring history, ranking) then write the rebuilt periods' rows
(from the SQL variable ``rebuilt_from`` on). So the order in which periods are loaded does not
change the result, and ``mart.ledger_as_of(period)`` gives the ledger as it stood after any period.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from povwatch.tasks.ingest.contracts import all_contracts, department_codes
from povwatch.tasks.core.db import insert_rows, open_warehouse, write_lock
from povwatch.tasks.core.rules import rule_codes, write_rules_table
from povwatch.tasks.core.settings import MODELS_DIR, POLICY_DIR, load_settings  # noqa: F401
from povwatch.tasks.marts import policy as policy_files
from povwatch.tasks.marts.policy import policy_columns, policy_json, policy_years  # noqa: F401



# --------------------------------------------------------------------------------------- policy

def load_policy(year: int, policy_dir: Path | None = None) -> dict:
    """The policy of ``year`` (tasks/marts/policy.py: typed, checked against the schema of keys),
    with a deadline for every rule of the catalogue (warehouse/rules.toml)."""
    values = policy_files.load_policy(year, policy_dir)
    missing = [f"deadlines.{c}" for c in rule_codes() if c not in values.get("deadlines", {})]
    if missing:
        raise policy_files.PolicyError(
            f"政策参数文件{values['policy_file_year']}.toml缺少：{', '.join(missing)}")
    return values


def _period_bounds(period: str) -> tuple[dt.date, dt.date, dt.date]:
    """(first day, last day, 1 September of the school year in progress at the period's end)."""
    start = dt.datetime.strptime(period + "-01", "%Y-%m-%d").date()
    nxt = dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    end = nxt - dt.timedelta(days=1)
    school_year = start.year if start.month >= 9 else start.year - 1
    return start, end, dt.date(school_year, 9, 1)


def _set_policy(con: duckdb.DuckDBPyConnection, period: str, values: dict, seed: int,
                table: str = "policy") -> None:
    start, end, school_ref = _period_bounds(period)
    cols = [("period", "VARCHAR", period), ("period_start", "DATE", start),
            ("period_end", "DATE", end), ("school_ref_date", "DATE", school_ref),
            ("policy_year", "INTEGER", values["policy_year"]), ("seed", "BIGINT", seed)]
    cols += policy_columns(values)   # every key of warehouse/policy/keys.toml, typed
    select = ", ".join(f"CAST(? AS {t}) AS {name}" for name, t, _ in cols)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select}", [v for *_, v in cols])
    if table == "policy":
        rows = [(code, int(days)) for code, days in values["deadlines"].items()]
        con.execute("CREATE OR REPLACE TEMP TABLE deadlines (code VARCHAR, days INTEGER)")
        insert_rows(con, "deadlines", rows)


# --------------------------------------------------------------------------------------- models

def model_order(models_dir: Path | None = None) -> dict[str, list[Path]]:
    """The sections of ``ORDER``: setup, period, history -> model files."""
    models_dir = models_dir or MODELS_DIR
    sections: dict[str, list[Path]] = {}
    current = None
    for line in (models_dir / "ORDER").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            current.append(models_dir / line)
    return sections


def _run_model(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    sql = path.read_text(encoding="utf-8")
    try:
        comments = _comment_statements(sql)
        if comments is None:
            con.execute(sql)
        else:
            _apply_comments(con, comments)
    except duckdb.Error as exc:
        raise RuntimeError(f"model {path.name} failed: {exc}") from exc


# ------------------------------------------------------------------------------------ comments
#
# The marts' Chinese comments (01_comments.sql, ~290 statements) are applied as their differences
# from the catalogue: on a built warehouse none, after a migration the dropped tables' comments.
# Every statement DuckDB runs for Python takes the GIL several times, and the marts are built
# beside the receipts and the Data Docs build, both Python: there each of the ~290 statements
# waited its turn for the GIL, 0.4-0.9 s of wall time at the start of every build for 0.1 s of
# work (0.06 s alone).

_COMMENT = re.compile(
    r"""COMMENT\s+ON\s+(TABLE|COLUMN)\s+((?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_]*)"""
    r"""(?:\.(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_]*))*)\s+IS\s+'((?:[^']|'')*)'\s*;""",
    re.IGNORECASE)
_SQL_LINE_COMMENT = re.compile(r"^[ \t]*--[^\n]*", re.MULTILINE)   # whole lines only: not in a literal
_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_]*)')


def _object_key(kind: str, name: str) -> tuple[str, str, str | None] | None:
    """(schema, table, column or None) of a commented object's name, e.g. mart.t."col"."""
    parts = [part[1].replace('""', '"') if part[1] is not None else part[2].lower()
             for part in _NAME_PART.finditer(name)]
    if kind.upper() == "TABLE" and len(parts) == 2:
        return parts[0], parts[1], None
    if kind.upper() == "COLUMN" and len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None


def _comment_statements(sql: str) -> dict[tuple[str, str, str | None], tuple[str, str]] | None:
    """The script's statements by object (key -> (comment, statement)) when it is nothing but
    ``COMMENT ON TABLE schema.table`` / ``COMMENT ON COLUMN schema.table.column`` statements;
    None for any other script (it is run as it is)."""
    body = _SQL_LINE_COMMENT.sub("", sql)
    statements: dict[tuple[str, str, str | None], tuple[str, str]] = {}
    at = 0
    for match in _COMMENT.finditer(body):
        key = _object_key(match[1], match[2])
        if body[at:match.start()].strip() or key is None:
            return None
        statements[key] = (match[3].replace("''", "'"), match[0])
        at = match.end()
    if body[at:].strip() or not statements:
        return None
    return statements


def _apply_comments(con: duckdb.DuckDBPyConnection,
                    statements: dict[tuple[str, str, str | None], tuple[str, str]]) -> int:
    """Run the statements whose comment the catalogue does not already hold; their number."""
    schemas = sorted({schema for schema, _, _ in statements})
    present = {(schema, table, column): comment for schema, table, column, comment in con.execute(
        "SELECT schema_name, table_name, NULL, comment FROM duckdb_tables() "
        "WHERE list_contains($schemas, schema_name) "
        "UNION ALL SELECT schema_name, view_name, NULL, comment FROM duckdb_views() "
        "WHERE list_contains($schemas, schema_name) "
        "UNION ALL SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
        "WHERE list_contains($schemas, schema_name)", {"schemas": schemas}).fetchall()}
    missing = [statement for key, (comment, statement) in statements.items()
               if present.get(key) != comment]
    if missing:
        con.execute("\n".join(missing))
    return len(missing)


def _staging_union(depts: tuple[str, ...], accepted: dict[str, list[str]]) -> str:
    """The staged periods of each department that audit.extracts does not already list as
    accepted. A constant list lets DuckDB skip those periods' row groups instead of reading the
    period of every staged row (~0.2 s CPU a build at twelve periods of M, growing with the
    history); the union with the accepted extracts is the same set."""
    def unlisted(periods: list[str]) -> str:
        if not periods:
            return "true"
        listed = ", ".join("'" + p.replace("'", "''") + "'" for p in sorted(periods))
        return f"period IS NULL OR period NOT IN ({listed})"
    return " UNION ".join(f"SELECT DISTINCT period, '{d}' AS dept FROM staging.{d} "
                          f"WHERE {unlisted(accepted.get(d, []))}" for d in depts)


def _refresh_deliveries(con: duckdb.DuckDBPyConnection, depts: tuple[str, ...]) -> None:
    """mart.period_deliveries: accepted extracts (audit.extracts) and staged snapshots."""
    accepted: dict[str, list[str]] = {}
    for dept, period in con.execute("SELECT DISTINCT dept, period FROM audit.extracts "
                                    "WHERE status = 'accepted' AND period IS NOT NULL").fetchall():
        accepted.setdefault(dept, []).append(period)
    con.execute("DELETE FROM mart.period_deliveries")
    con.execute(
        "INSERT INTO mart.period_deliveries SELECT DISTINCT period, dept FROM ("
        "SELECT period, dept FROM audit.extracts WHERE status = 'accepted' "
        f"UNION {_staging_union(depts, accepted)}) WHERE dept IN ({', '.join(repr(d) for d in depts)})"
    )


def _set_effective_snapshots(con: duckdb.DuckDBPyConnection, period: str,
                             depts: tuple[str, ...]) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE eff_periods AS "
        "SELECT dept, max(period) AS eff_period FROM mart.period_deliveries "
        "WHERE period <= ? GROUP BY dept", [period])
    # views, not copies: the models read a snapshot once or twice, and a constant period lets
    # DuckDB skip the other periods' row groups of staging (copying them cost ~0.6 s CPU at M)
    effective = dict(con.execute("SELECT dept, eff_period FROM eff_periods").fetchall())
    for d in depts:
        eff = effective.get(d)
        if eff is not None:
            dt.datetime.strptime(eff + "-01", "%Y-%m-%d")   # a period, safe to write into the SQL
        where = f"period = '{eff}'" if eff is not None else "false"
        con.execute(f"CREATE OR REPLACE TEMP VIEW eff_{d} AS SELECT * FROM staging.{d} WHERE {where}")


def _load_divisions(con: duckdb.DuckDBPyConnection) -> None:
    """mart.divisions: the division table (code, name, level, parent) the marts are built with —
    the outputs name townships and villages from it —, empty when the file is absent. The models
    read it as the stage view ``divisions``."""
    divisions_csv = load_settings().divisions_csv
    if divisions_csv.exists():
        con.execute("CREATE OR REPLACE TABLE mart.divisions AS "
                    "SELECT code, name, level, parent FROM read_csv(?, header = true, "
                    "all_varchar = true)", [str(divisions_csv)])
    else:
        con.execute("CREATE OR REPLACE TABLE mart.divisions "
                    "(code VARCHAR, name VARCHAR, level VARCHAR, parent VARCHAR)")
    # the table was just made: its comments are all missing, no catalogue to compare with
    con.execute("COMMENT ON TABLE mart.divisions IS '行政区划（县、乡镇、村代码与名称）'")
    for column, label in (("code", "区划代码"), ("name", "名称"), ("level", "级别"),
                          ("parent", "上级区划代码")):
        con.execute(f"COMMENT ON COLUMN mart.divisions.{column} IS '{label}'")
    con.execute("CREATE OR REPLACE TEMP VIEW divisions AS SELECT * FROM mart.divisions")


def _set_departments(con: duckdb.DuckDBPyConnection) -> None:
    """mart.departments from the contracts, mart.rules from the rule catalogue."""
    rows = [(c.code, c.name) for c in all_contracts().values()]
    con.execute("CREATE OR REPLACE TABLE mart.departments (code VARCHAR, name VARCHAR)")
    insert_rows(con, "mart.departments", rows)
    write_rules_table(con)


PERIOD_TABLES = ("household_status", "monitoring", "problem_findings", "household_plan",
                 "spot_check", "monitoring_states", "roster_unmatched", "problem_states")


def _migrate(con: duckdb.DuckDBPyConnection, schema_sql: Path) -> bool:
    """Drop mart tables whose columns differ from the schema model's (marts are derived).

    Returns True when a per-period table was dropped: every built period must then be rebuilt.
    """
    scratch = duckdb.connect()
    try:
        scratch.execute("CREATE SCHEMA mart; CREATE TABLE mart.departments (code VARCHAR, name VARCHAR)")
        write_rules_table(scratch)
        scratch.execute(schema_sql.read_text(encoding="utf-8"))
        expected = _columns(scratch)
    finally:
        scratch.close()
    present = _columns(con)
    # policy_used is the record of which periods were built: never dropped
    changed = [t for t, cols in present.items()
               if t in expected and cols != expected[t] and t != "policy_used"]
    for table in changed:
        con.execute(f"DROP TABLE mart.{table}")
    # a per-period table new to this warehouse (monitoring_states) must be filled for every period
    added = [t for t in expected if t not in present and present]
    return any(t in PERIOD_TABLES for t in changed + added)


def _rule_closing(con: duckdb.DuckDBPyConnection) -> list | None:
    """What the ledger's replay reads of the rule catalogue (None before the first build)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'mart' "
                       "AND table_name = 'rules'").fetchone()[0]:
        return None
    return con.execute("SELECT code, responsible_dept, list_sort(reads) FROM mart.rules "
                       "ORDER BY code").fetchall()


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                       "WHERE schema_name = 'mart' AND NOT internal "
                       "ORDER BY table_name, column_index").fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def _year(period: str) -> int:
    return int(period[:4])


# ---------------------------------------------------------------------------------------- build

def build_marts(warehouse: Path, period: str, run_id: str, policy_year: int | None = None,
                seed: int | None = None) -> dict:
    """Build every mart for ``period`` and replay the history marts over every built period.

    ``policy_year`` overrides the period's calendar year for this period only; ``seed`` overrides
    the spot-check seed of the policy. The policy values are recorded in ``mart.policy_used`` and,
    when the run exists, in ``audit.runs.policy``. Returns small counts for the period.
    """
    dt.datetime.strptime(period + "-01", "%Y-%m-%d")  # a bad period fails before any write
    depts = department_codes()
    models = model_order()
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("BEGIN TRANSACTION")
            schema_changed = _migrate(con, models["setup"][0])
            rules_before = _rule_closing(con)
            _set_departments(con)
            # the ledger's states are carried period to period: a rule whose closing condition
            # (what it reads, who answers for it) changed must be replayed from the first period
            schema_changed = schema_changed or rules_before not in (None, _rule_closing(con))
            for path in models.get("setup", []):
                _run_model(con, path)
            _load_divisions(con)
            _refresh_deliveries(con, depts)

            # the policy the stored as-of-latest rule precision was written with (the latest
            # built period's): 80_ledger.sql rewrites only the rebuilt periods' rows while its
            # thresholds stay the same
            con.execute("SET VARIABLE stored_policy = (SELECT arg_max(\"values\", built_at) "
                        "FROM mart.policy_used WHERE period = (SELECT max(period) FROM mart.policy_used))")
            # later periods already built are rebuilt with the policy year and seed they had
            later = con.execute(
                "SELECT period, arg_max(policy_year, built_at), "
                "arg_max(json_extract(\"values\", '$.spot_check_seed')::BIGINT, built_at) "
                "FROM mart.policy_used WHERE period > ? OR (? AND period <> ?) "
                "GROUP BY period ORDER BY period",
                [period, schema_changed, period]).fetchall()   # all of them after a schema change
            plan = [(period, policy_year or _year(period), seed)]
            plan += [(p, y, s) for p, y, s in later]
            plan.sort(key=lambda item: item[0])
            used = {}
            for p, year, p_seed in plan:
                policy = load_policy(year)
                the_seed = p_seed if p_seed is not None else int(policy["spot_check_seed"])
                policy = {**policy, "spot_check_seed": the_seed}
                _set_policy(con, p, policy, the_seed)
                _set_effective_snapshots(con, p, depts)
                for path in models.get("period", []):
                    _run_model(con, path)
                con.execute("INSERT INTO mart.policy_used (run_id, period, policy_year, \"values\") "
                            "VALUES (?, ?, ?, ?)", [run_id, p, year, policy_json(policy)])
                used[p] = policy

            upto = con.execute("SELECT max(period) FROM mart.policy_used").fetchone()[0]
            latest_year = con.execute(
                "SELECT arg_max(policy_year, built_at) FROM mart.policy_used WHERE period = ?",
                [upto]).fetchone()[0]
            latest_policy = used.get(upto) or load_policy(latest_year)
            _set_policy(con, upto, latest_policy, int(latest_policy["spot_check_seed"]),
                        table="upto_policy")
            con.execute("SET VARIABLE upto = ?", [upto])
            # the history models write the rows of the periods rebuilt here, from the earliest on
            con.execute("SET VARIABLE rebuilt_from = ?", [plan[0][0]])
            con.execute("SET VARIABLE run_id = ?", [run_id])   # the run that withdraws (撤销) events
            for path in models.get("history", []):
                _run_model(con, path)

            warning = policy_files.fallback_warning(used[period])
            if con.execute("SELECT count(*) FROM audit.runs WHERE run_id = ?",
                           [run_id]).fetchone()[0]:
                con.execute("UPDATE audit.runs SET policy = ?, warnings = CASE WHEN ? IS NULL "
                            "OR contains(coalesce(warnings, ''), ?) THEN warnings "
                            "ELSE concat_ws('；', warnings, ?) END WHERE run_id = ?",
                            [policy_json(used[period]), warning, warning, warning, run_id])
            counts = _counts(con, period)
            if warning:
                counts["policy_warning"] = warning
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        finally:
            con.close()
    counts["periods_built"] = [p for p, *_ in plan]
    return counts


def _counts(con: duckdb.DuckDBPyConnection, period: str) -> dict:
    one = lambda sql: con.execute(sql, [period]).fetchone()[0]  # noqa: E731
    # the latest built period's ledger is mart.problem_ledger, just written; an earlier period's
    # is a replay of every period up to it (a cost that grows with the history)
    latest = con.execute("SELECT max(as_of_period) FROM mart.problem_ledger").fetchone()[0]
    ledger = ("(SELECT * FROM mart.problem_ledger WHERE as_of_period = ?)" if period == latest
              else "mart.ledger_as_of(?)")
    return {
        "period": period,
        "households": one("SELECT count(*) FROM mart.household_status WHERE period = ?"),
        "warned": one("SELECT count(DISTINCT household_key) FROM mart.monitoring WHERE period = ?"),
        # under monitoring as the office counts it (36_monitoring_states.sql), not only warned
        "monitored": one("SELECT count(*) FROM mart.monitoring_states WHERE period = ? AND under_monitoring"),
        "findings": one("SELECT count(*) FROM mart.problem_findings WHERE period = ?"),
        "problems_open": one(f"SELECT count(*) FROM {ledger} WHERE status = 'open'"),
        "overdue": one(f"SELECT count(*) FROM {ledger} WHERE status = 'open' AND overdue"),
        "opened": one("SELECT count(*) FROM mart.problem_events WHERE period = ? "
                      "AND event IN ('opened', 'reopened')"),
        "reopened": one("SELECT count(*) FROM mart.problem_events WHERE period = ? AND event = 'reopened'"),
        "closed": one("SELECT count(*) FROM mart.problem_events WHERE period = ? AND event = 'closed'"),
        "spot_check": one("SELECT count(*) FROM mart.spot_check WHERE period = ?"),
    }


def ledger_as_of(warehouse: Path, period: str) -> list[dict]:
    """The problem ledger as it stood after ``period`` (a replay of the findings up to it)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        cur = con.execute("SELECT * FROM mart.ledger_as_of(?) ORDER BY code, subject_id", [period])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]
    finally:
        con.close()

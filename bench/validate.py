"""Benchmark: a department's suite run by Great Expectations inside DuckDB, against the same checks
written by hand as DuckDB SQL, side by side in one process. Not a test (takes a minute or two).

    .venv/bin/python bench/validate.py [--rows 1000000] [--dept fupin] [--keep DIR]

It builds a size-M-like registry (``pending.fupin``: ~1M people, valid identity numbers with a
correct MOD 11-2 check character, a few defects of every kind the suite looks for) plus the
previous period in ``staging`` for the volume check, then times

* GX: ``batch.validate(suite)`` through tasks/validate/gx_duckdb.py, the way ``validate_extract`` runs it
  (and, separately, the whole ``validate_extract`` with audit rows and Data Docs);
* hand SQL: one aggregate pass for every row-level condition, plus one query per custom-SQL and
  uniqueness expectation, plus the table-level checks;

prints both, the ratio (target: GX <= 2.5x hand SQL), checks that both found the same counts, and
shows that GX pulled no data into Python: pandas DataFrame constructions and read_sql calls are
counted during the GX run, and the DuckDB engine counts the rows GX fetched.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from povwatch.tasks.core import db  # noqa: E402
from povwatch.tasks.ingest.idnumber import CHECK_CHARS, WEIGHTS  # noqa: E402

PERIOD, PREVIOUS = "2020-06", "2020-05"


def _check_char_sql(first17: str) -> str:
    digits = " + ".join(f"{w}*CAST(substr({first17}, {i + 1}, 1) AS INTEGER)" for i, w in enumerate(WEIGHTS))
    return f"substr('{CHECK_CHARS}', CAST(({digits}) % 11 AS INTEGER) + 1, 1)"


def generate_fupin(con, rows: int, period: str, schema: str) -> None:
    """~rows registry members in DuckDB SQL (no Python loop); ~0.1 % defects of several kinds."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _people AS
        SELECT i,
               '620523' || strftime(DATE '1940-01-01' + CAST(i % 25000 AS INTEGER), '%Y%m%d')
                        || lpad(CAST(i % 997 AS VARCHAR), 3, '0') AS first17,
               -- a household's members live in one village (household_id_one_village holds)
               '620523' || lpad(CAST(100 + (i // 4) % 12 AS VARCHAR), 3, '0')
                        || lpad(CAST(201 + (i // 4) % 40 AS VARCHAR), 3, '0') AS village
        FROM range({rows}) t(i)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _fupin_rows AS
        SELECT 'H' || lpad(CAST(i // 4 AS VARCHAR), 8, '0') AS household_id,
               CAST(i % 4 + 1 AS VARCHAR) AS person_no,
               CASE WHEN i % 50021 = 7 THEN NULL ELSE '姓名' || i END AS name,
               CASE WHEN i % 9973 = 11 THEN first17 || CASE WHEN {_check_char_sql('first17')} = '1' THEN '2' ELSE '1' END
                    ELSE first17 || {_check_char_sql('first17')} END AS id_number,
               CASE WHEN i % 4 = 0 THEN '户主' WHEN i % 4 = 1 THEN '配偶' WHEN i % 30011 = 2 THEN '儿子'
                    ELSE '之子' END AS relation,
               CASE WHEN i % 2 = 0 THEN '男' ELSE '女' END AS sex,
               DATE '1940-01-01' + CAST(i % 25000 AS INTEGER) AS birth_date,
               CASE WHEN i % 20011 = 5 THEN '620999100201' ELSE village END AS village_code,
               (['一般贫困户', '低保贫困户', '特困供养贫困户'])[1 + i % 3] AS household_type,
               CASE WHEN i % 3 = 0 THEN '未脱贫' ELSE '已脱贫' END AS poverty_status,
               CASE WHEN i % 3 = 0 OR i % 40009 = 1 THEN NULL ELSE 2016 + i % 4 END AS exit_year,
               (['健康', '长期慢性病', '患有大病', '残疾'])[1 + i % 4] AS health,
               (['普通劳动力', '技能劳动力', '弱劳动力或半劳动力', '丧失劳动力', '无劳动力'])[1 + i % 5] AS labor,
               (['非在校生', '小学', '七年级', '高中'])[1 + i % 4] AS in_school,
               (['因病', '因残', '因学', '缺技术', '缺资金'])[1 + i % 5] AS cause,
               CAST(3000 + i % 9000 AS DECIMAL(14,2)) AS per_capita_income,
               '{period}' AS period, 'bench' AS run_id, '{period}/fupin/registry.xlsx' AS source_file,
               CAST(i + 2 AS INTEGER) AS source_row, NULL AS repairs
        FROM _people""")
    con.execute("DROP TABLE _people")
    if schema == "pending":   # a view over Parquet files in the warehouse's lake
        from povwatch.tasks.ingest.load import land_pending

        path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchone()[0]
        land_pending(con, Path(path), "fupin", period, "_fupin_rows", "bench")
    else:
        con.execute(f"INSERT INTO {schema}.fupin BY NAME SELECT * FROM _fupin_rows")
    con.execute("DROP TABLE _fupin_rows")


def hand_sql(con, dept: str, period: str, suite: dict, parameters: dict) -> dict[str, int | bool]:
    """The suite's checks as direct DuckDB SQL: one aggregate pass + custom SQL + uniqueness."""
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from povwatch.tasks.validate.suites import failing_condition, failing_rows_sql

    batch = f"SELECT * FROM pending.{dept} WHERE period = '{period}'"
    out: dict[str, int | bool] = {}
    aggregates, separate = [], []
    for exp in suite["expectations"]:
        cfg = ExpectationConfiguration(type=exp["type"], kwargs=exp["kwargs"], meta=exp["meta"])
        name = exp["meta"]["name"]
        cond = failing_condition(cfg, parameters)
        if cond is not None:
            aggregates.append((name, cond))
        elif (rows_sql := failing_rows_sql(cfg, parameters, batch)) is not None:
            separate.append((name, rows_sql))
    select = ", ".join(f"count(*) FILTER (WHERE {cond}) AS \"{name}\"" for name, cond in aggregates)
    row = con.execute(f"SELECT count(*) AS n, {select} FROM ({batch})").fetchall()[0]
    n = row[0]
    out.update({name: v for (name, _), v in zip(aggregates, row[1:])})
    for name, rows_sql in separate:
        out[name] = con.execute(f"SELECT count(*) FROM ({rows_sql})").fetchall()[0][0]
    columns = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'pending' AND table_name = ?",
        [dept]).fetchall()}
    expected = next(e for e in suite["expectations"] if e["meta"]["name"] == "columns_match_contract")
    out["columns_match_contract"] = columns == set(expected["kwargs"]["column_set"])
    out["not_empty"] = n >= 1
    hi = parameters["volume_max"]
    out["volume_vs_previous_period"] = n >= parameters["volume_min"] and (hi is None or n <= hi)
    return out


class PandasCounter:
    """Counts pandas DataFrame constructions (and their rows) and read_sql* calls."""

    def __init__(self):
        import pandas as pd

        self.pd, self.frames, self.frame_rows, self.read_sql = pd, 0, 0, 0
        self._init = pd.DataFrame.__init__
        self._readers = {n: getattr(pd, n) for n in ("read_sql", "read_sql_query", "read_sql_table")}

    def __enter__(self):
        counter, original = self, self._init

        def init(frame, *args, **kwargs):
            original(frame, *args, **kwargs)
            counter.frames += 1
            counter.frame_rows += len(frame)

        def reader(fn):
            def wrapped(*args, **kwargs):
                counter.read_sql += 1
                return fn(*args, **kwargs)
            return wrapped

        self.pd.DataFrame.__init__ = init
        for name, fn in self._readers.items():
            setattr(self.pd, name, reader(fn))
        return self

    def __exit__(self, *exc):
        self.pd.DataFrame.__init__ = self._init
        for name, fn in self._readers.items():
            setattr(self.pd, name, fn)
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GX-in-DuckDB vs hand-written DuckDB SQL")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side (best is kept)")
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp dir)")
    args = parser.parse_args(argv)
    dept = "fupin"

    work = args.keep or Path(tempfile.mkdtemp(prefix="povwatch-bench-"))
    warehouse = work / "bench.duckdb"
    os.environ["POVWATCH_OUTPUT"] = str(work / "output")
    if warehouse.exists():
        warehouse.unlink()
    t0 = time.perf_counter()
    con = db.open_warehouse(warehouse)
    generate_fupin(con, args.rows, PREVIOUS, "staging")
    generate_fupin(con, args.rows, PERIOD, "pending")
    print(f"generated pending.{dept} {PERIOD}: {args.rows:,} rows (+ {PREVIOUS} in staging) "
          f"in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401

    from povwatch.tasks.validate import suites as validate
    from povwatch.tasks.validate.gx_duckdb import DuckDBExecutionEngine
    print(f"GX import: {time.perf_counter() - t0:.1f} s (once per process)")

    suite = validate.suite_definition(dept)
    params, _ = validate.suite_parameters(con, dept, PERIOD, suite["meta"])
    n_exp = len(suite["expectations"])

    # warm-up: context, datasource, catalog caches
    validate.run_suite(warehouse, dept, PERIOD, "bench-warmup", params)
    hand_sql(con, dept, PERIOD, suite, params)

    gx_times, hand_times, gx_results = [], [], None
    with PandasCounter() as pandas_counter:
        q0, r0 = DuckDBExecutionEngine.queries_executed, DuckDBExecutionEngine.rows_fetched
        for i in range(args.repeat):
            t0 = time.perf_counter()
            gx_results, _ = validate.run_suite(warehouse, dept, PERIOD, f"bench-{i}", params, keep=False)
            gx_times.append(time.perf_counter() - t0)
        gx_queries = (DuckDBExecutionEngine.queries_executed - q0) // args.repeat
        gx_rows = (DuckDBExecutionEngine.rows_fetched - r0) // args.repeat
    frames, frame_rows, read_sql = pandas_counter.frames, pandas_counter.frame_rows, pandas_counter.read_sql
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        hand = hand_sql(con, dept, PERIOD, suite, params)
        hand_times.append(time.perf_counter() - t0)

    # both sides must have found the same things
    gx_counts = {}
    for r in gx_results.results:
        name = r.expectation_config.meta["name"]
        if name in ("columns_match_contract", "not_empty", "volume_vs_previous_period"):
            gx_counts[name] = bool(r.success)
        elif r.expectation_config.type == "unexpected_rows_expectation":
            gx_counts[name] = r.result.get("observed_value")
        else:
            gx_counts[name] = r.result.get("unexpected_count")
    mismatches = {k: (gx_counts.get(k), v) for k, v in hand.items() if gx_counts.get(k) != v}

    con.close()
    t0 = time.perf_counter()
    outcome = validate.validate_extract(warehouse, PERIOD, dept, "bench-full")
    full = time.perf_counter() - t0

    gx_best, hand_best = min(gx_times), min(hand_times)
    print()
    print(f"{dept}: {args.rows:,} rows, {n_exp} expectations")
    print(f"  GX in DuckDB (batch.validate of the suite):              best {gx_best:6.2f} s   "
          f"runs {', '.join(f'{t:.2f}' for t in gx_times)}")
    print(f"  hand-written DuckDB SQL (same checks):                   best {hand_best:6.2f} s   "
          f"runs {', '.join(f'{t:.2f}' for t in hand_times)}")
    print(f"  ratio GX / hand SQL: {gx_best / hand_best:.2f}x   (target <= 2.5x)")
    print(f"  whole validate_extract (GX + audit rows + quarantine of {outcome.quarantined_rows:,} rows"
          f" + stored results + Data Docs): "
          f"{full:.2f} s")
    print(f"  pushdown: per GX run {gx_queries} SQL queries returned {gx_rows} rows in total; "
          f"pandas DataFrames built: {frames} ({frame_rows} rows); pandas.read_sql* calls: {read_sql}")
    print(f"  same counts on both sides: {'yes' if not mismatches else 'NO ' + json.dumps(mismatches, default=str)}")
    failing = {k: v for k, v in hand.items() if v not in (0, True)}
    print(f"  planted defects found: {json.dumps(failing, ensure_ascii=False)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if not mismatches else 1


if __name__ == "__main__":
    sys.exit(main())

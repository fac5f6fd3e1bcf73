"""Row-for-row comparison of two warehouses' mart, audit and quarantine tables.

    python bench/compare_warehouses.py BEFORE.duckdb AFTER.duckdb

For refactors that must not change behaviour: run the same inbox through the code before and after
into two warehouses, then compare. Columns that differ by nature between two runs (run ids, times,
paths, free-text messages and validation details that embed them) are left out; every other column
of every table in mart, audit and quarantine is compared as a multiset (EXCEPT ALL both ways).
Prints one line per table and IDENTICAL, or how many tables differ (exit code 1).
"""
import sys, duckdb
a, b = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"ATTACH '{a}' AS a (READ_ONLY)"); con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
tables = con.execute("""SELECT table_schema, table_name FROM information_schema.tables
  WHERE table_catalog='a' AND table_schema IN ('mart','audit','quarantine') ORDER BY 1,2""").fetchall()
volatile = {"run_id", "run", "created_at", "started_at", "finished_at", "loaded_at", "at", "staged_at", "duration_s",
            "flow_run_id", "path", "delivered", "channel", "policy", "message", "seconds", "updated_at", "recorded_at", "built_at", "details"}
bad = 0
for schema, t in tables:
    cols_a = [r[0] for r in con.execute(f"SELECT column_name FROM information_schema.columns WHERE table_catalog='a' AND table_schema='{schema}' AND table_name='{t}' ORDER BY ordinal_position").fetchall()]
    cols_b = {r[0] for r in con.execute(f"SELECT column_name FROM information_schema.columns WHERE table_catalog='b' AND table_schema='{schema}' AND table_name='{t}'").fetchall()}
    if not cols_b:
        print(f"{schema}.{t}: missing in b"); bad += 1; continue
    cols = [c for c in cols_a if c in cols_b and c not in volatile and "time" not in c and not c.endswith("_at")]
    if not cols:   # nothing but run-dependent columns (ids, times, paths): only the row count compares
        n_a, n_b = (con.execute(f"SELECT count(*) FROM {w}.{schema}.{t}").fetchone()[0] for w in ("a", "b"))
        bad += n_a != n_b
        print(f"{schema}.{t}: {n_a} vs {n_b} rows (no comparable columns)" + ("" if n_a == n_b else "  <-- DIFFERS"))
        continue
    sel = ", ".join(f'"{c}"' for c in cols)
    n = con.execute(f"SELECT count(*) FROM a.{schema}.{t}").fetchone()[0]
    d1 = con.execute(f"SELECT count(*) FROM (SELECT {sel} FROM a.{schema}.{t} EXCEPT ALL SELECT {sel} FROM b.{schema}.{t})").fetchone()[0]
    d2 = con.execute(f"SELECT count(*) FROM (SELECT {sel} FROM b.{schema}.{t} EXCEPT ALL SELECT {sel} FROM a.{schema}.{t})").fetchone()[0]
    flag = "" if d1 == d2 == 0 else "  <-- DIFFERS"
    bad += bool(flag)
    print(f"{schema}.{t}: {n} rows, {len(cols)} cols compared, only-before {d1}, only-after {d2}{flag}")
print("IDENTICAL" if not bad else f"{bad} tables differ")
sys.exit(1 if bad else 0)

"""Benchmark: building all marts for the twelfth period of a year against building them for the
first, on size M (30,000 registry households, one county), printed side by side in one run.

    .venv/bin/python bench/marts_history.py [--work DIR] [--households 30000] [--periods 12]

The monitoring states and the ledger (docs/monitoring.md, docs/marts.md) carry one step from the
previous built period, and the history tables get only the rebuilt periods' rows: does a month
cost more once the warehouse holds a year? Target: the twelfth period's build <= 1.25x the first's
(wall and CPU). Every period of the year is staged before the first build, so what grows with the
staged history alone (the build's scan of staging for mart.period_deliveries) is in both figures.

How the year is made (not timed): the demo county of size M is generated for two periods (the
official roster arrives from the second) and run through ``povwatch run`` once; the second period's
accepted snapshots are then copied as periods 3..12 (same rows, new period labels, an accepted
delivery recorded for each), so every month has a full set of departments and a roster. The marts
are then dropped and built period by period, as the monthly run builds them: period 1 (timed), 2..11,
period 12 (timed), each a call of ``build_marts`` in this process, with the process CPU time beside
the wall time.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
FIRST = "2020-01"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def labels(n: int) -> list[str]:
    return [f"2020-{m:02d}" for m in range(1, n + 1)]


def prepare(work: Path, households: int) -> Path:
    """Two generated periods of size M run through the pipeline once (cached under work/)."""
    from povwatch.flows.run_command import run_inbox
    from povwatch.tasks.synth.generate import generate

    marker, inbox = work / "prepared.json", work / "inbox"
    warehouse = work / "base" / "povwatch.duckdb"
    params = {"households": households, "first": FIRST}
    if marker.exists() and json.loads(marker.read_text()) == params and warehouse.exists():
        return warehouse
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t = time.perf_counter()
    generate(inbox, period=FIRST, periods=2, households=households)
    print(f"[prepare] generated 2 periods of {households} households in {time.perf_counter() - t:.0f} s",
          flush=True)
    t = time.perf_counter()
    code = run_inbox(inbox, warehouse=warehouse, mode="local", echo=lambda _line: None)
    print(f"[prepare] povwatch run (exit {code}) in {time.perf_counter() - t:.0f} s", flush=True)
    marker.write_text(json.dumps(params))
    return warehouse


def make_year(base: Path, work: Path, periods: list[str]) -> Path:
    """A copy of the warehouse with the second period's snapshots repeated as periods 3..n and no
    marts: the year as staging would hold it, before the monthly builds."""
    from povwatch.tasks.ingest.contracts import department_codes

    year = work / "year"
    shutil.rmtree(year, ignore_errors=True)
    shutil.copytree(base.parent, year)
    warehouse = year / base.name
    con = duckdb.connect(str(warehouse))
    try:
        for dept in department_codes():
            for period in periods[2:]:
                con.execute(f"INSERT INTO staging.{dept} SELECT * REPLACE ('{period}' AS period) "
                            f"FROM staging.{dept} WHERE period = '{periods[1]}'")
        con.execute("INSERT INTO audit.extracts BY NAME SELECT e.* REPLACE (p.period AS period) "
                    "FROM audit.extracts e, (SELECT unnest(?) AS period) p "
                    "WHERE e.period = ? AND e.status = 'accepted'", [periods[2:], periods[1]])
        con.execute("DROP SCHEMA IF EXISTS mart CASCADE; CREATE SCHEMA mart")
    finally:
        con.close()
    return warehouse


def timed_build(warehouse: Path, period: str) -> dict:
    from povwatch.tasks.marts.build import build_marts

    c, t = cpu(), time.perf_counter()
    counts = build_marts(warehouse, period, f"bench-{period}")
    return {"period": period, "wall": time.perf_counter() - t, "cpu": cpu() - c,
            "households": counts["households"], "monitored": counts.get("monitored"),
            "problems_open": counts["problems_open"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/povwatch-bench-marts-history"))
    ap.add_argument("--households", type=int, default=30000)
    ap.add_argument("--periods", type=int, default=12)
    args = ap.parse_args(argv)
    periods = labels(args.periods)
    base = prepare(args.work, args.households)
    warehouse = make_year(base, args.work, periods)
    first = timed_build(warehouse, periods[0])
    for period in periods[1:-1]:
        build = timed_build(warehouse, period)
        print(f"  {period}: wall {build['wall']:.1f} s, CPU {build['cpu']:.1f} s", flush=True)
    last = timed_build(warehouse, periods[-1])
    size = "size M" if args.households == 30000 else "custom size"
    print(f"\nall marts, {size} ({args.households} registry households), one build each:")
    print(f"{'':24}{'period 1 (' + first['period'] + ')':>22}{'period ' + str(args.periods) + ' (' + last['period'] + ')':>22}{'ratio':>8}")
    for key, label in (("wall", "wall s"), ("cpu", "CPU s")):
        ratio = last[key] / first[key] if first[key] else float("nan")
        print(f"{label:24}{first[key]:>22.1f}{last[key]:>22.1f}{ratio:>7.2f}x")
    print(f"{'households':24}{first['households']:>22}{last['households']:>22}")
    print(f"{'under monitoring':24}{first['monitored']:>22}{last['monitored']:>22}")
    print(f"{'open problems':24}{first['problems_open']:>22}{last['problems_open']:>22}")
    ratio = last["cpu"] / first["cpu"]
    print(f"target: period {args.periods} <= 1.25x period 1 (CPU): "
          f"{'met' if ratio <= 1.25 else 'MISSED'} ({ratio:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``povwatch rebuild [--from PERIOD]``: the marts and reports again, from what the warehouse holds.

For when the marts must change without a new delivery: a policy file or a rule was edited, a
model was fixed after a marts step failed. Every period with accepted data (from ``--from`` on)
is built again with the current policy files and models — the marts of a period are derived from
the staged snapshots, so nothing is read from the inbox — and its report is written again. The
rebuild is a run of its own in ``audit.runs`` (inbox ``(rebuild)``, its periods, its status):
when it stops half-way its periods are unfinished, and the next ``povwatch run`` finishes them
(tasks/core/runs.py), exactly as after a run whose marts step failed.

Each period keeps the policy year and spot-check seed it was built with (``mart.policy_used``),
so that a sample already sent to the townships stays the same; the values of that year are read
from the current policy file.
"""
from __future__ import annotations

import time
from pathlib import Path

from povwatch.flows.process import new_run_id
from povwatch.tasks.core import runs
from povwatch.tasks.core.db import held_open
from povwatch.tasks.core.locking import WarehouseBusy, warehouse_lock
from povwatch.tasks.core.privacy import scrub
from povwatch.tasks.ingest.inbox import check_period
from povwatch.tasks.marts.build import build_marts
from povwatch.tasks.office.report import write_report

REBUILD_INBOX = "(rebuild)"


def rebuild(warehouse: Path, from_period: str | None = None, run_id: str | None = None) -> dict:
    """Rebuild the marts and reports of every loaded period from ``from_period`` on."""
    warehouse = Path(warehouse)
    if from_period is not None:
        check_period(from_period)
    run_id = run_id or "rebuild-" + new_run_id()
    with warehouse_lock(warehouse, what=f"povwatch rebuild {run_id}"), held_open(warehouse):
        periods = [p for p in runs.loaded_periods(warehouse) if from_period is None or p >= from_period]
        if not periods:
            return {"run_id": run_id, "periods": [], "reports": [],
                    "message": "没有可重建的期次 / no loaded period to rebuild"}
        runs.record_run_start(warehouse, run_id, REBUILD_INBOX, periods, None)
        try:
            built = _build_every(warehouse, periods, run_id)
            reports = [str(write_report(warehouse, p)) for p in built]
        except BaseException as exc:   # the periods stay unfinished: the next run finishes them
            runs.record_run_end(warehouse, run_id, "failed", scrub(f"{type(exc).__name__}: {exc}")[:1000])
            raise
        message = f"重建 rebuilt {len(built)} 期 periods: {built[0]} – {built[-1]}"
        runs.record_run_end(warehouse, run_id, "completed", message)
    return {"run_id": run_id, "periods": built, "reports": reports, "message": message}


def _build_every(warehouse: Path, periods: list[str], run_id: str) -> list[str]:
    """build_marts of the first period rebuilds every later period already built and replays the
    history; a period whose marts were never built (its marts step failed) is built after."""
    built = set(build_marts(warehouse, periods[0], run_id)["periods_built"])
    for period in periods:
        if period not in built:
            built |= set(build_marts(warehouse, period, run_id)["periods_built"])
    return sorted(p for p in built if p >= periods[0])


def rebuild_cli(warehouse: Path, from_period: str | None) -> int:
    started = time.monotonic()
    try:
        result = rebuild(warehouse, from_period)
    except WarehouseBusy as exc:
        print(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - said, recorded in audit.runs; the next run finishes
        print(f"重建失败 / rebuild failed: {scrub(f'{type(exc).__name__}: {exc}')}\n"
              f"这些期次留待下次 povwatch run 完成 / the next povwatch run finishes these periods")
        return 1
    print(f"{result['message']} ({time.monotonic() - started:.1f} s, run {result['run_id']})")
    for report in result["reports"]:
        print(f"  报告 report: {report}")
    return 0

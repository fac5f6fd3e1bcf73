"""``povwatch run``: the command's handler — pick the mode, run, print the outcome, exit code.

0 every extract accepted, 3 some rejected, 1 the run could not complete (said why). The same
function is what ``povwatch demo``, the benchmarks and the tests call.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from povwatch.flows.process import (Pipeline, check_run_request, execute_run, new_run_id, process_period,
                                    real_pipeline)
from povwatch.flows.runners import LocalSteps, local_dask_cluster, orchestration_mode, prefect_settings
from povwatch.tasks.core.integrity import DamagedWarehouse
from povwatch.tasks.core.locking import WarehouseBusy
from povwatch.tasks.core.privacy import scrub
from povwatch.tasks.core.settings import warehouse_path
from povwatch.tasks.ingest.inbox import BadName
from povwatch.tasks.office.run_summary import format_run


def run_inbox(inbox: Path, period: str | None = None, warehouse: Path | None = None,
              mode: str | None = None, echo: Callable[[str], None] = print,
              pipeline: Pipeline | None = None) -> int:
    """Run the pipeline over an inbox; ``pipeline``: the business functions (default: tasks/)."""
    warehouse = Path(warehouse) if warehouse else warehouse_path()
    pipeline = pipeline or real_pipeline()
    mode = orchestration_mode(mode)
    run_id = new_run_id()
    started = time.monotonic()
    try:
        check_run_request(Path(inbox), period)
        if mode == "local":
            summary = _run_local(pipeline, inbox, period, warehouse, run_id)
        else:
            # Prefect only here: a local run never imports it (~1.2 s of CPU per process)
            from povwatch.flows.pipeline import inbox_flow

            with prefect_settings(mode), local_dask_cluster():
                state = inbox_flow(inbox=str(inbox), warehouse=str(warehouse), period=period,
                                   run_id=run_id, pipeline=pipeline, return_state=True)
                if not state.is_completed():
                    echo(f"运行失败 / run failed: {scrub(state.message)}")
                    return 1
                summary = state.result()
    except (WarehouseBusy, BadName, DamagedWarehouse) as exc:   # said clearly, nothing written
        echo(str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - the run could not complete: say why, exit 1
        message = scrub(f"{type(exc).__name__}: {exc}")
        echo(f"运行失败 / run failed: {message}")
        if mode == "local":
            _notify_failure(pipeline, run_id, message)
        return 1
    echo(format_run(summary, mode, time.monotonic() - started))
    return 3 if summary["rejected"] else 0


def _run_local(pipeline: Pipeline, inbox: Path, period: str | None, warehouse: Path, run_id: str) -> dict:
    steps = LocalSteps()

    def run_period(inbox: str, period: str, warehouse: str, run_id: str, finish: bool) -> dict:
        return process_period(steps, pipeline, Path(inbox), period, Path(warehouse), run_id, finish=finish)

    try:
        return execute_run(steps, pipeline, Path(inbox), warehouse, period, run_id, run_period=run_period)
    finally:
        steps.close()


def _notify_failure(pipeline: Pipeline, run_id: str, message: str) -> None:
    """Without a Prefect server there is no Automation: tell the channel ourselves."""
    try:
        pipeline.notify_run_failure(run_id, message)
    except Exception as exc:  # noqa: BLE001 - the failure itself is already reported
        print(f"无法发送失败通知 / could not send the failure notification: {scrub(str(exc))}")

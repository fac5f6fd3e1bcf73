"""The monthly pipeline as Prefect flows: one flow run per ``povwatch run``, one sub-flow per period.

The process itself — the step sequence, the step functions and their retries — is written once,
without Prefect, in flows/process.py; local mode runs it on a thread pool and never imports this
module. Here each declared step becomes the Prefect task of the same name (``stage``,
``validate``, ``promote``, ``reject``, ``marts``, ``alerts``, ``receipt``, ``report``; ``check``
with scale-out), with its run name and retries, and ``PrefectSteps`` runs the sequence through
them inside the flows ``povwatch-run`` and ``povwatch-period``: the same steps, as task runs the
Prefect UI shows.

Prefect's result caching is *not* used: the warehouse is the one record of what was loaded
(docs/orchestration.md). Tasks are declared ``cache_policy=NO_CACHE``: their inputs include the
``Pipeline`` of functions, and nothing would use the key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from povwatch.flows import prefect_signals
from povwatch.flows.process import (Pipeline, Step, check_run_request, execute_run,  # noqa: F401
                                    new_run_id, process_period, real_pipeline)
from povwatch.flows.runners import runner_settings, task_runner, uses_dask
from povwatch.flows.scaleout import prepare_counties_flow

# --------------------------------------------------------------------------------------------
# Each step of flows/process.py as a Prefect task


def _retry_condition(step: Step) -> Callable | None:
    """Prefect asks with the failed state; the step's declaration decides on the exception."""
    if step.retry_if is None:
        return None

    def condition(task, task_run, state) -> bool:
        try:
            state.result()
        except Exception as exc:  # noqa: BLE001 - the step's own predicate decides
            return bool(step.retry_if(exc))
        return False

    return condition


_TASKS: dict[Step, Any] = {}


def prefect_task(step: Step):
    """The Prefect task of a step (made once per declaration, when first run): its name, run name
    and retries. Any Step, not only those declared in flows/process.py: tests run variants (no retry delay)."""
    if step not in _TASKS:
        retrying = dict(retries=step.retries, retry_delay_seconds=list(step.retry_delay_seconds),
                        retry_condition_fn=_retry_condition(step)) if step.retries else {}
        _TASKS[step] = task(step.fn, name=step.name, task_run_name=step.run_name,
                            cache_policy=NO_CACHE, **retrying)
    return _TASKS[step]


class PrefectSteps:
    """Steps as Prefect task runs on the flow's task runner (inside a flow run)."""

    prefect = True

    def __init__(self):
        # the period flow's ThreadPoolTaskRunner has this many threads (period_runner)
        self.slots = runner_settings().max_workers

    def submit(self, step: Step, **kwargs):
        return prefect_task(step).submit(**kwargs)

    def call(self, step: Step, **kwargs):
        return prefect_task(step)(**kwargs)

    def wait(self, futures: list) -> list:
        from prefect.futures import wait

        wait(futures)
        return [f.result() for f in futures]

    def as_completed(self, futures: list):
        from prefect.futures import as_completed

        return as_completed(futures)

    def publish(self, markdown: str, tables: dict[str, list[dict]], key: str) -> None:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        create_markdown_artifact(markdown=markdown, key=key, description="povwatch 运行摘要 run summary")
        for name, rows in tables.items():
            if rows:
                create_table_artifact(table=rows, key=f"{key}-{name}", description=name)


# --------------------------------------------------------------------------------------------
# The flows


@flow(name="povwatch-period", flow_run_name="{period}", log_prints=True)
def period_flow(inbox: str, period: str, warehouse: str, run_id: str, scale_out: bool = False,
                finish: bool = False, pipeline: Any = None):
    """One period of the monthly pipeline (a sub-flow of povwatch-run), the one writer of the
    warehouse, on the thread pool in this process. ``scale_out``: each (department, county)'s
    read -> conform runs first on the Dask cluster the settings name (povwatch-prepare-counties).
    ``finish``: run to the end a period a stopped run left unfinished. ``pipeline``: the business
    functions (None: those of tasks/)."""
    prepare = _prepare_on_dask if scale_out else None
    summary = process_period(PrefectSteps(), pipeline or real_pipeline(), Path(inbox), period,
                             Path(warehouse), run_id, prepare=prepare, finish=finish)
    return prefect_signals.finish_period(summary)   # named state, events, log lines


def _prepare_on_dask(**kwargs) -> list:
    """The county sub-flow on the DaskTaskRunner the settings ask for."""
    return prepare_counties_flow.with_options(task_runner=task_runner())(**kwargs)


@flow(name="povwatch-run", log_prints=True)
def inbox_flow(inbox: str, warehouse: str, period: str | None = None, run_id: str | None = None,
               pipeline: Any = None):
    """Run the pipeline over an inbox: one period, or every period with new files or left
    unfinished, in order. ``pipeline``: the business functions (None: those of tasks/)."""
    pipeline = pipeline or real_pipeline()
    run_id = run_id or new_run_id()
    summary = execute_run(PrefectSteps(), pipeline, Path(inbox), Path(warehouse), period, run_id,
                          run_period=period_runner(pipeline), flow_run_id=str(flow_run.id))
    return prefect_signals.run_state(summary)


def period_runner(pipeline: Pipeline) -> Callable[..., dict]:
    """The period sub-flow, chosen when the run starts. It always runs on the thread pool in this
    process (it writes the DuckDB file; DuckDB allows one writing process per file). With Dask
    (settings), its departments' read -> conform per county runs on the cluster first
    (flows/scaleout.py) and staging loads the Parquet partitions."""
    scale_out = uses_dask()
    flow_ = period_flow.with_options(
        task_runner=ThreadPoolTaskRunner(max_workers=runner_settings().max_workers))

    def run(**kwargs) -> dict:
        return flow_(**kwargs, scale_out=scale_out, pipeline=pipeline)

    return run

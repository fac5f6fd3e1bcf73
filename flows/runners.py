"""How a run executes its steps: which Prefect task runner, or no Prefect at all.

Two things are chosen here, in one place:

* **Task runner** (inside a Prefect flow): a ``ThreadPoolTaskRunner`` by default; prefect-dask's
  ``DaskTaskRunner(address=...)`` when ``POVWATCH_DASK_ADDRESS`` is set; a local Dask cluster of
  processes when ``POVWATCH_TASK_RUNNER=dask``. Dask needs a real Prefect server
  (``PREFECT_API_URL``): in ephemeral mode every worker would start its own temporary server.
* **Orchestration mode** of ``povwatch run`` / ``povwatch demo``: ``prefect`` runs the flows
  against a Prefect API; ``local`` runs the very same step sequence (``flows.pipeline``) on a
  thread pool without Prefect, honouring each task's retries. Default: ``prefect`` when
  ``PREFECT_API_URL`` is set, else ``local`` — because with no server configured Prefect starts a
  temporary one, which costs 15–20 s per process here (and on a fresh install its first start,
  which migrates a new database, overruns Prefect's 20 s start-up timeout). ``POVWATCH_PREFECT``
  = ``ephemeral`` | ``local`` | ``prefect`` overrides the choice.

The step sequence talks to a ``Steps`` object (``PrefectSteps`` or ``LocalSteps``) with three
verbs: ``submit`` (a task, concurrently), ``call`` (a task, now, in this process) and ``publish``
(artifacts for the UI). That is the whole difference between the two modes.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import time
from typing import Any

from povwatch.tasks.core.settings import RunnerSettings, load_settings

log = logging.getLogger("povwatch")

MODES = ("prefect", "ephemeral", "local")


def runner_settings() -> RunnerSettings:
    """RunnerSettings as the settings say now (not at import time)."""
    return RunnerSettings.current()


def uses_dask(settings: RunnerSettings | None = None) -> bool:
    s = settings or runner_settings()
    return bool(s.dask_address) or s.task_runner == "dask"


def task_runner(settings: RunnerSettings | None = None):
    """The Prefect task runner for a flow run, from settings."""
    s = settings or runner_settings()
    if uses_dask(s):
        from prefect_dask import DaskTaskRunner

        if s.dask_address:
            return DaskTaskRunner(address=s.dask_address)
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": load_settings().dask_workers,
            "threads_per_worker": 1, "processes": True, "dashboard_address": None,
        })
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=s.max_workers)


@contextlib.contextmanager
def local_dask_cluster(settings: RunnerSettings | None = None):
    """POVWATCH_TASK_RUNNER=dask without an address: one local cluster of worker processes for the
    whole run (not one per period sub-flow), its address published as POVWATCH_DASK_ADDRESS."""
    s = settings or runner_settings()
    if s.task_runner != "dask" or s.dask_address:
        yield None
        return
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=load_settings().dask_workers,
                           threads_per_worker=1, processes=True, dashboard_address=None)
    os.environ["POVWATCH_DASK_ADDRESS"] = cluster.scheduler_address
    client = Client(cluster, set_as_default=False)
    # Each fresh worker process imports Prefect, polars, DuckDB and the contracts before its first
    # task (~3 s of CPU): started now, it overlaps the flow's own start instead of following it.
    warming = [client.submit(warm_up_worker, pure=False, workers=[w], allow_other_workers=False)
               for w in client.scheduler_info()["workers"]]
    try:
        yield cluster
    finally:
        os.environ.pop("POVWATCH_DASK_ADDRESS", None)
        del warming
        client.close()
        cluster.close()


def warm_up_worker() -> None:
    """Imports a Dask worker needs for flows.scaleout's tasks (run once per worker, in its thread)."""
    import prefect.task_engine  # noqa: F401

    import povwatch.flows.scaleout  # noqa: F401
    import povwatch.tasks.ingest.load  # noqa: F401


def orchestration_mode(explicit: str | None = None) -> str:
    """``prefect`` (a configured server), ``ephemeral`` (Prefect's temporary server) or ``local``."""
    settings = load_settings(prefect=explicit)
    chosen = settings.prefect.strip().lower()
    if chosen in ("0", "no", "off", "false", "none"):
        chosen = "local"
    if chosen in ("1", "yes", "on", "true"):
        chosen = "prefect"
    if chosen and chosen not in MODES:
        raise ValueError(f"POVWATCH_PREFECT={chosen!r}: expected one of {MODES}")
    if chosen in ("local", "ephemeral"):
        return chosen
    has_api = bool(settings.prefect_api_url) or _profile_has_api_url()
    if chosen == "prefect":
        return "prefect" if has_api else "ephemeral"
    return "prefect" if has_api else "local"


def _profile_has_api_url() -> bool:
    try:
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())
    except Exception:  # noqa: BLE001 - a broken profile means "no server"
        return False


@contextlib.contextmanager
def prefect_settings(mode: str):
    """Settings for running flows: no analytics; a generous start-up time for a temporary server.

    Prefect reads its settings when it is imported, so they are applied as temporary settings
    (and exported to the environment, which a temporary server's subprocess inherits).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import (PREFECT_SERVER_ANALYTICS_ENABLED,
                                  PREFECT_SERVER_EPHEMERAL_ENABLED,
                                  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
                                  temporary_settings)

    updates = {PREFECT_SERVER_ANALYTICS_ENABLED: False}
    if mode == "ephemeral":
        # the first start on a fresh install migrates a new database: more than the default 20 s
        updates[PREFECT_SERVER_EPHEMERAL_ENABLED] = True
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = \
            load_settings().prefect_startup_timeout
    with temporary_settings(updates=updates):
        yield


def prepare_prefect(mode: str) -> None:
    """For long-running processes (serve): analytics off in the environment."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


# --------------------------------------------------------------------------------------------
# The two ways of executing steps


class PrefectSteps:
    """Steps as Prefect task runs on the flow's task runner (inside a flow run)."""

    prefect = True

    def submit(self, task, **kwargs):
        return task.submit(**kwargs)

    def call(self, task, **kwargs):
        return task(**kwargs)

    def wait(self, futures: list) -> list:
        from prefect.futures import wait

        wait(futures)
        return [f.result() for f in futures]

    def publish(self, markdown: str, tables: dict[str, list[dict]], key: str) -> None:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        create_markdown_artifact(markdown=markdown, key=key, description="povwatch 运行摘要 run summary")
        for name, rows in tables.items():
            if rows:
                create_table_artifact(table=rows, key=f"{key}-{name}", description=name)


class _LocalFuture:
    def __init__(self, future: cf.Future):
        self._future = future

    def result(self):
        return self._future.result()


class LocalSteps:
    """The same steps without Prefect: a thread pool; a task's ``retries``, ``retry_delay_seconds``
    and ``retry_condition_fn`` are honoured so that behaviour matches the flow."""

    prefect = False

    def __init__(self, max_workers: int | None = None):
        self.pool = cf.ThreadPoolExecutor(max_workers=max_workers or runner_settings().max_workers,
                                          thread_name_prefix="povwatch")
        self.published: list[tuple[str, str, dict]] = []

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def submit(self, task, **kwargs):
        return _LocalFuture(self.pool.submit(run_with_retries, task, kwargs))

    def call(self, task, **kwargs):
        return run_with_retries(task, kwargs)

    def wait(self, futures: list) -> list:
        cf.wait([f._future for f in futures])
        return [f.result() for f in futures]

    def publish(self, markdown: str, tables: dict[str, list[dict]], key: str) -> None:
        self.published.append((key, markdown, tables))


def _delays(task) -> list[float]:
    delay = getattr(task, "retry_delay_seconds", 0) or 0
    if isinstance(delay, (list, tuple)):
        return [float(d) for d in delay]
    return [float(delay)]


def run_with_retries(task, kwargs: dict[str, Any]):
    """Call a Prefect task's function directly, retrying as the task declares."""
    fn = getattr(task, "fn", task)
    retries = int(getattr(task, "retries", 0) or 0)
    condition = getattr(task, "retry_condition_fn", None)
    delays = _delays(task)
    attempt = 0
    while True:
        try:
            return fn(**kwargs)
        except Exception as exc:
            if attempt >= retries or (condition is not None and not _should_retry(condition, task, exc)):
                raise
            delay = delays[min(attempt, len(delays) - 1)]
            log.warning("%s failed (%s); retry %d/%d in %.0f s", getattr(task, "name", fn.__name__),
                        exc, attempt + 1, retries, delay)
            attempt += 1
            time.sleep(delay)


def _should_retry(condition, task, exc: Exception) -> bool:
    from prefect.states import Failed

    return bool(condition(task, None, Failed(data=exc, message=repr(exc))))

"""How a run executes its steps: which Prefect task runner, or no Prefect at all.

Two things are chosen here, in one place:

* **Task runner** (inside a Prefect flow): a ``ThreadPoolTaskRunner`` by default; prefect-dask's
  ``DaskTaskRunner(address=...)`` when ``POVWATCH_DASK_ADDRESS`` is set; a local Dask cluster of
  processes when ``POVWATCH_TASK_RUNNER=dask``. Dask needs a real Prefect server
  (``PREFECT_API_URL``): in ephemeral mode every worker would start its own temporary server.
* **Orchestration mode** of ``povwatch run`` / ``povwatch demo``: ``prefect`` runs the flows
  against a Prefect API; ``local`` runs the very same step sequence (``flows.pipeline``) on a
  thread pool without Prefect, honouring each step's retries. Default: ``prefect`` when
  ``PREFECT_API_URL`` is set, else ``local`` — because with no server configured Prefect starts a
  temporary one, which costs 15–20 s per process here (and on a fresh install its first start,
  which migrates a new database, overruns Prefect's 20 s start-up timeout). ``POVWATCH_PREFECT``
  = ``ephemeral`` | ``local`` | ``prefect`` overrides the choice.

The step sequence (flows/process.py) talks to a ``Steps`` object (``PrefectSteps`` of
flows/pipeline.py, or ``LocalSteps`` here) with five verbs: ``submit`` (a step, concurrently),
``call`` (a step, now, in this process), ``wait``, ``as_completed`` (futures as they end) and
``publish`` (artifacts for the UI), and ``slots``, how many submitted steps run at once. That is
the whole difference between the two modes. This module imports Prefect only inside the functions
of the Prefect modes: a local run never imports it.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from povwatch.tasks.core.runtime import on_roomy_frame_stack
from povwatch.tasks.core.settings import RunnerSettings, load_settings, prefect_config_environment

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
    """Does Prefect's own configuration name a server? Asking Prefect means importing it (~1.1 s
    of CPU, what a local run otherwise never pays), so it is asked only when one of the places
    Prefect reads could name one (:func:`_prefect_config_may_name_server`)."""
    if not _prefect_config_may_name_server():
        return False
    try:
        from prefect.settings import PREFECT_API_URL

        return bool(PREFECT_API_URL.value())
    except Exception:  # noqa: BLE001 - a broken profile means "no server"
        return False


def _prefect_config_may_name_server() -> bool:
    """False only when none of the places Prefect reads its settings from can set an API URL.

    Prefect reads (besides ``PREFECT_API_URL`` itself, in the settings): the active profile of its
    profiles file (``PREFECT_PROFILES_PATH``, else ``$PREFECT_HOME/profiles.toml``, else
    ``~/.prefect/profiles.toml``; without one, its bundled profiles, whose active one is
    ``ephemeral``, unless ``PREFECT_PROFILE`` picks another), and ``.env``, ``prefect.toml`` and
    ``pyproject.toml``'s ``[tool.prefect]`` in the working directory. Any doubt answers True, and
    Prefect itself then decides: the two answers can only differ in cost."""
    variables = prefect_config_environment()
    if "PREFECT_PROFILES_PATH" in variables or "PREFECT_PROFILE" in variables:
        return True
    if Path("prefect.toml").exists():   # relative: the working directory, as Prefect reads it
        return True
    for name, marker in ((".env", "PREFECT_"), ("pyproject.toml", "tool.prefect")):
        if marker in _text(Path(name)):
            return True
    home = variables.get("PREFECT_HOME")
    profiles = Path(home) / "profiles.toml" if home else Path.home() / ".prefect" / "profiles.toml"
    return "API_URL" in _text(profiles).upper()


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:   # absent (the usual case) or unreadable: says nothing
        return ""


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


class _LocalFuture:
    def __init__(self, future: cf.Future):
        self._future = future

    def result(self):
        return self._future.result()


class LocalSteps:
    """The steps of flows/process.py without Prefect: a thread pool; each step's declared
    ``retries``, ``retry_delay_seconds`` and ``retry_if`` are honoured, as its Prefect task does."""

    prefect = False

    def __init__(self, max_workers: int | None = None):
        self.slots = max_workers or runner_settings().max_workers   # steps that can run at once
        self.pool = cf.ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix="povwatch")
        self.published: list[tuple[str, str, dict]] = []

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def submit(self, step, **kwargs):
        # each step on its own large frame-stack chunk (tasks/core/runtime.py)
        return _LocalFuture(self.pool.submit(on_roomy_frame_stack, run_with_retries, step, kwargs))

    def call(self, step, **kwargs):
        return run_with_retries(step, kwargs)

    def wait(self, futures: list) -> list:
        cf.wait([f._future for f in futures])
        return [f.result() for f in futures]

    def as_completed(self, futures: list):
        """The futures, each as soon as it is done (finished or failed)."""
        by_inner = {f._future: f for f in futures}
        for done in cf.as_completed(by_inner):
            yield by_inner[done]

    def publish(self, markdown: str, tables: dict[str, list[dict]], key: str) -> None:
        self.published.append((key, markdown, tables))


def run_with_retries(step, kwargs: dict[str, Any]):
    """Call a step's function (flows.process.Step), retrying as the step declares."""
    delays = [float(d) for d in step.retry_delay_seconds] or [0.0]
    attempt = 0
    while True:
        try:
            return step.fn(**kwargs)
        except Exception as exc:
            if attempt >= step.retries or (step.retry_if is not None and not step.retry_if(exc)):
                raise
            delay = delays[min(attempt, len(delays) - 1)]
            log.warning("%s failed (%s); retry %d/%d in %.0f s", step.name, exc, attempt + 1,
                        step.retries, delay)
            attempt += 1
            time.sleep(delay)

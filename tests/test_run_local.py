"""A local run pays only for what it uses (issue 19): with no Prefect server configured,
``povwatch run`` runs the steps on its own thread pool and never imports Prefect (~1.2 s of CPU per
process) nor Dask; a Prefect profile naming a server still makes it a Prefect run."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support import robust as rs

PERIOD = rs.FIRST_PERIOD
NOT_FOR_A_LOCAL_RUN = ("prefect", "prefect_dask", "distributed", "dask")


def _default_env(tmp: Path) -> dict[str, str]:
    """The environment of a user who configured nothing: no POVWATCH_PREFECT, no PREFECT_API_URL,
    a Prefect home of its own (no profile)."""
    env = rs.cli_env(tmp)
    del env["POVWATCH_PREFECT"]
    return env


def _imported(importtime_stderr: str) -> set[str]:
    """Every module the process imported, in any thread (``python -X importtime`` on stderr)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_a_local_run_imports_neither_prefect_nor_dask(tmp_path):
    inbox = tmp_path / "inbox"
    shutil.copytree(rs.inbox_root(rs.generated_inbox()) / PERIOD / "fupin", inbox / PERIOD / "fupin")
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    proc = subprocess.run([rs.PYTHON, "-X", "importtime", "-m", "povwatch.flows.cli", "run",
                           "--inbox", str(inbox), "--warehouse", str(warehouse)],
                          env=_default_env(tmp_path), cwd=str(rs.PROJECT), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "local mode" in proc.stdout and "接收 accepted 1," in proc.stdout   # the registry loaded
    imported = _imported(proc.stderr)
    # the run did its work (GX validated the registry, imported in its warm-up thread) ...
    assert "great_expectations" in imported and "duckdb" in imported
    # ... and nothing of the Prefect modes was imported, in any thread, at any point of the run
    assert not sorted(m for m in imported if m.split(".")[0] in NOT_FOR_A_LOCAL_RUN)


def _mode_in(env: dict[str, str]) -> list[str]:
    code = ("import sys\nfrom povwatch.flows.runners import orchestration_mode\n"
            "print(orchestration_mode(), 'prefect' in sys.modules)")
    proc = subprocess.run([rs.PYTHON, "-c", code], env=env, cwd=str(rs.PROJECT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_a_prefect_profile_naming_a_server_still_chooses_prefect_mode(tmp_path):
    env = _default_env(tmp_path)
    assert _mode_in(env) == ["local", "False"]   # nothing configured: decided without Prefect
    home = Path(env["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "profiles.toml").write_text(
        'active = "office"\n\n[profiles.office]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n',
        encoding="utf-8")
    assert _mode_in(env)[0] == "prefect"
    (home / "profiles.toml").write_text(   # a profile that names no server: still local
        'active = "office"\n\n[profiles.office]\nPREFECT_LOGGING_LEVEL = "INFO"\n', encoding="utf-8")
    assert _mode_in(env)[0] == "local"


def test_a_run_collects_garbage_in_larger_batches_and_gives_the_process_its_settings_back(tmp_path):
    """The run raises Python's GC threshold while it works (~1 s of CPU at size M) and restores
    the caller's afterwards: a Prefect worker or a notebook running povwatch keeps its own."""
    import dataclasses
    import gc

    from povwatch.flows.process import real_pipeline
    from povwatch.flows.run_command import run_inbox
    from povwatch.tasks.core.runtime import RUN_GC_THRESHOLDS

    inbox = tmp_path / "inbox"
    shutil.copytree(rs.inbox_root(rs.generated_inbox()) / PERIOD / "fupin", inbox / PERIOD / "fupin")
    pipeline = real_pipeline()
    seen_during_run = []

    def build_marts_noting_gc(*args, **kwargs):
        seen_during_run.append(gc.get_threshold())
        return pipeline.build_marts(*args, **kwargs)

    caller_thresholds = (900, 11, 12)
    before = gc.get_threshold()
    gc.set_threshold(*caller_thresholds)
    try:
        code = run_inbox(inbox, warehouse=tmp_path / "wh" / "povwatch.duckdb", mode="local",
                         echo=lambda _: None,
                         pipeline=dataclasses.replace(pipeline, build_marts=build_marts_noting_gc))
        after = gc.get_threshold()
    finally:
        gc.set_threshold(*before)
    assert code == 0
    assert seen_during_run and set(seen_during_run) == {RUN_GC_THRESHOLDS}
    assert after == caller_thresholds


def test_a_command_exits_without_the_collector_walking_every_loaded_module(tmp_path):
    """Python's shutdown ran full collections over GX, pandas and DuckDB's objects: 0.85 s of CPU
    after a run had finished. The command freezes what survives at exit (its last exit handler),
    so the shutdown walks nothing; handlers registered before the command still run after it."""
    script = ("import atexit, gc, sys\n"
              "atexit.register(lambda: print('frozen objects at exit:', gc.get_freeze_count()))\n"
              "from povwatch.flows.cli import main\n"
              "main(sys.argv[1:])\n")
    proc = subprocess.run([rs.PYTHON, "-c", script, "sql", "--warehouse", str(tmp_path / "none.duckdb"),
                           "select 1"], env=_default_env(tmp_path), cwd=str(rs.PROJECT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "仓库文件不存在" in proc.stderr   # the command ran and said why
    frozen = int(proc.stdout.rsplit("frozen objects at exit:", 1)[1].split()[0])
    assert frozen > 10_000


def test_polars_works_on_the_run_threads_unless_the_user_sized_its_pool(tmp_path):
    """A run stages four departments at once on its own threads; polars' pool on top of them only
    oversubscribed the two cores (~1 s of CPU at size M). A POLARS_MAX_THREADS the user set wins."""
    code = "import povwatch.tasks.ingest.load, polars\nprint(polars.thread_pool_size())"

    def pool_size(**env) -> int:
        environment = {k: v for k, v in _default_env(tmp_path).items() if k != "POLARS_MAX_THREADS"}
        proc = subprocess.run([rs.PYTHON, "-c", code], env={**environment, **env}, cwd=str(rs.PROJECT),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return int(proc.stdout.split()[-1])

    assert pool_size() == 1
    assert pool_size(POLARS_MAX_THREADS="2") == 2

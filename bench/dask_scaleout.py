"""Scale-out benchmark (not a test): a four-county inbox through the whole period run, on Prefect's
thread pool and with the read -> conform of every (department, county) on a local Dask cluster of
2 worker processes, side by side in one run; with the pieces that the arithmetic for a province
needs (docs/orchestration.md, "Scale-out over counties"):

* per partition: read + conform + write Parquet of one (department, county), plain Python;
* the one writer: ``tasks.ingest.load.load_parts`` of every department's partitions into DuckDB;
* Prefect's per-task overhead: no-op tasks on the thread pool and on the Dask cluster;
* both whole runs (``povwatch run``, prefect mode), with the time spent in each step.

    .venv/bin/python bench/dask_scaleout.py [--households 1000] [--counties 4] [--m-inbox DIR]

``--households`` is per county. Uses PREFECT_API_URL if set, else starts its own ``prefect server
start`` (random port, temporary PREFECT_HOME) and stops it at the end. Prints figures; writes
nothing outside a temp folder.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("POVWATCH_SETTLE_SECONDS", "0")
PERIOD = "2020-06"


@contextmanager
def prefect_server():
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"], 0.0
        return
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host",
                             "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    started = time.monotonic() - t0
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url, started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def api_url(url: str):
    """Prefect reads its settings when imported: the server's URL as a temporary setting (and in
    the environment, which the Dask worker processes inherit)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["PREFECT_API_URL"] = url
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


class Spans:
    """Wall spans of the step functions the flows call, per step (called from several threads)."""

    STEPS = {"povwatch.tasks.ingest.load": ("stage_extract", "unchanged_extract", "load_parts", "promote_extract",
                              "reject_extract"),
             "povwatch.tasks.validate.suites": ("validate_extract",), "povwatch.tasks.marts.build": ("build_marts",),
             "povwatch.flows.pipeline": ("_prepare_on_dask",)}

    def __init__(self):
        self.spans: dict[str, list[tuple[float, float]]] = {}
        self.lock = threading.Lock()
        self.originals = []

    def install(self) -> None:
        import importlib

        for module_name, names in self.STEPS.items():
            module = importlib.import_module(module_name)
            for name in names:
                original = getattr(module, name)
                self.originals.append((module, name, original))
                setattr(module, name, self._timed(name, original))

    def uninstall(self) -> None:
        for module, name, original in self.originals:
            setattr(module, name, original)
        self.originals.clear()

    def _timed(self, name, fn):
        def timed(*args, **kwargs):
            t0 = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.spans.setdefault(name, []).append((t0, time.monotonic()))
        return timed

    def union(self, name: str) -> float:
        """Wall time covered by the step's calls (concurrent calls counted once)."""
        total, end = 0.0, float("-inf")
        for a, b in sorted(self.spans.get(name, [])):
            if b > end:
                total += b - max(a, end)
                end = b
        return total


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def plain_pieces(inbox: Path, work: Path) -> dict:
    """Per-partition prepare (serial, this process) and the one writer's load, no Prefect."""
    from povwatch.flows.scaleout import county_parts
    from povwatch.tasks.ingest.contracts import department_codes
    from povwatch.tasks.ingest.load import extract_files, lake_root, load_parts, prepare_part

    warehouse = work / "plain" / "wh.duckdb"
    warehouse.parent.mkdir(parents=True)
    lake = lake_root(warehouse)
    parts, per_part = {}, []
    t0, c0 = time.monotonic(), cpu_seconds()
    for dept in department_codes():
        for part, files in county_parts(extract_files(inbox, PERIOD, dept)).items():
            t = time.monotonic()
            p = prepare_part(inbox, PERIOD, dept, [Path(f) for f in files], lake, part, "bench")
            per_part.append((time.monotonic() - t, p.rows_read))
            parts.setdefault(dept, []).append(p)
    prepare_s, prepare_cpu = time.monotonic() - t0, cpu_seconds() - c0
    from povwatch.tasks.core.db import connect, ensure_schema

    con = connect(warehouse)   # the tables are created before, not timed
    ensure_schema(con)
    con.close()
    t0, c0 = time.monotonic(), cpu_seconds()
    for dept, dept_parts in parts.items():
        load_parts(warehouse, inbox, PERIOD, dept, dept_parts, "bench")
    load_s, load_cpu = time.monotonic() - t0, cpu_seconds() - c0
    rows = sum(r for _, r in per_part)
    return {"partitions": len(per_part), "rows": rows, "prepare_s": prepare_s, "prepare_cpu": prepare_cpu,
            "slowest_part_s": max(s for s, _ in per_part), "load_s": load_s, "load_cpu": load_cpu}


def county_m(inbox: Path) -> dict:
    """One county of size M (bench/run.py's inbox): its 12 department partitions prepared one after
    another in a fresh process (as a Dask worker would), then loaded by the one writer. Peak RSS
    of the process after preparing = what a worker needs for the largest partition."""
    import json

    out = subprocess.run([sys.executable, __file__, "--measure-m", str(inbox)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure_m(inbox: Path) -> None:
    import json

    from povwatch.tasks.ingest.contracts import department_codes
    from povwatch.tasks.core.db import connect, ensure_schema
    from povwatch.tasks.ingest.load import extract_files, lake_root, load_parts, prepare_part

    period = sorted(p.name for p in inbox.iterdir() if p.name[:2] == "20")[-1]
    work = Path(tempfile.mkdtemp(prefix="bench-m-"))
    warehouse = work / "wh.duckdb"
    parts, per_dept = [], {}
    c0, t0 = cpu_seconds(), time.monotonic()
    for dept in department_codes():
        c, t = cpu_seconds(), time.monotonic()
        part = prepare_part(inbox, period, dept, extract_files(inbox, period, dept), lake_root(warehouse),
                            "all", "bench")
        per_dept[dept] = (time.monotonic() - t, cpu_seconds() - c, part.rows_read)
        parts.append(part)
    prepare_wall, prepare_cpu = time.monotonic() - t0, cpu_seconds() - c0
    prepare_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    con = connect(warehouse)
    ensure_schema(con)
    con.close()
    c0, t0 = cpu_seconds(), time.monotonic()
    for part in parts:
        load_parts(warehouse, inbox, period, part.dept, [part], "bench")
    load_wall, load_cpu = time.monotonic() - t0, cpu_seconds() - c0
    slowest = max(per_dept, key=lambda d: per_dept[d][1])
    print(json.dumps({"rows": sum(r for _, _, r in per_dept.values()), "prepare_wall": prepare_wall,
                      "prepare_cpu": prepare_cpu, "prepare_peak_gb": prepare_rss,
                      "slowest_dept": slowest, "slowest_cpu": per_dept[slowest][1],
                      "load_wall": load_wall, "load_cpu": load_cpu,
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}))
    shutil.rmtree(work, ignore_errors=True)


def whole_run(inbox: Path, warehouse: Path, dask: bool) -> dict:
    """``povwatch run`` in prefect mode, thread pool or Dask (POVWATCH_TASK_RUNNER=dask: a local
    cluster of POVWATCH_DASK_WORKERS processes started by the run itself)."""
    from povwatch.flows.run_command import run_inbox

    os.environ["POVWATCH_TASK_RUNNER"] = "dask" if dask else "thread"
    os.environ["POVWATCH_OUTPUT"] = str(warehouse.parent / "output")
    spans = Spans()
    spans.install()
    t0, c0 = time.monotonic(), cpu_seconds()
    try:
        code = run_inbox(inbox, None, warehouse, mode="prefect", echo=lambda _: None)
    finally:
        spans.uninstall()
        os.environ.pop("POVWATCH_TASK_RUNNER", None)
    out = {"exit": code, "wall": time.monotonic() - t0, "cpu_flow_process": cpu_seconds() - c0}
    if dask:
        out["cluster_read_conform"] = spans.union("_prepare_on_dask")
        out["check_unchanged"] = spans.union("unchanged_extract")
        out["load_parts"] = spans.union("load_parts")
    else:
        out["stage_extract"] = spans.union("stage_extract")
    out["validate"] = spans.union("validate_extract")
    out["promote"] = spans.union("promote_extract") + spans.union("reject_extract")
    out["marts"] = spans.union("build_marts")
    return out


def noop_overhead(n: int, address: str | None) -> float:
    """Seconds per no-op task in a flow of n of them (after a warm-up flow)."""
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def noop(i: int) -> int:
        return i

    @flow
    def noops(n: int) -> int:
        futures = [noop.submit(i) for i in range(n)]
        return sum(f.result() for f in futures)

    if address:
        from prefect_dask import DaskTaskRunner

        runner = lambda: DaskTaskRunner(address=address)  # noqa: E731
    else:
        runner = lambda: ThreadPoolTaskRunner(max_workers=4)  # noqa: E731
    noops.with_options(task_runner=runner())(2)   # warm-up: imports, worker-side clients
    t0 = time.monotonic()
    noops.with_options(task_runner=runner())(n)
    return (time.monotonic() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=1000, help="registry households per county")
    ap.add_argument("--counties", type=int, default=4)
    ap.add_argument("--noop-tasks", type=int, default=48)
    ap.add_argument("--m-inbox", type=Path, default=None,
                    help="an inbox of one county of size M (bench/run.py's, e.g. "
                         "$TMPDIR/povwatch-bench/M/inbox): measure its prepare and load too")
    ap.add_argument("--measure-m", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure_m:
        _measure_m(args.measure_m)
        return

    from povwatch.tasks.synth.generate import generate

    work = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    inbox = work / "inbox"
    t0 = time.monotonic()
    generate(inbox, period=PERIOD, periods=1, households=args.households, counties=args.counties)
    print(f"generated {args.counties} counties × {args.households} households, one period, "
          f"in {time.monotonic() - t0:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    plain = plain_pieces(inbox, work)
    n = plain["partitions"]
    print(f"\nplain Python, no Prefect, this process ({plain['rows']:,} extract rows, {n} partitions "
          f"= departments × counties):")
    print(f"  read+conform+write Parquet, serial   {plain['prepare_s']:7.2f} s wall {plain['prepare_cpu']:7.2f} s CPU"
          f"  = {plain['prepare_s'] / n * 1000:.0f} ms per partition (slowest {plain['slowest_part_s']:.2f} s),"
          f" {plain['rows'] / plain['prepare_cpu']:,.0f} rows per CPU s")
    print(f"  the one writer: load_parts → DuckDB  {plain['load_s']:7.2f} s wall {plain['load_cpu']:7.2f} s CPU"
          f"  = {plain['rows'] / plain['load_s']:,.0f} rows/s")

    if args.m_inbox:
        m = county_m(args.m_inbox)
        print(f"\none county of size M ({m['rows']:,} extract rows), 12 department partitions, "
              f"fresh process:")
        print(f"  read+conform+write Parquet, serial   {m['prepare_wall']:7.2f} s wall {m['prepare_cpu']:7.2f} s CPU"
              f"  (largest: {m['slowest_dept']} {m['slowest_cpu']:.1f} s CPU); peak RSS {m['prepare_peak_gb']:.2f} GB")
        print(f"  the one writer: load_parts → DuckDB  {m['load_wall']:7.2f} s wall {m['load_cpu']:7.2f} s CPU"
              f"  = {m['rows'] / m['load_wall']:,.0f} rows/s; peak RSS {m['peak_gb']:.2f} GB")

    with prefect_server() as (url, started), api_url(url):
        if started:
            print(f"\nprefect server start: healthy after {started:.1f} s")
        from distributed import LocalCluster

        thread = whole_run(inbox, work / "thread" / "wh.duckdb", dask=False)
        os.environ["POVWATCH_DASK_WORKERS"] = "2"
        dask = whole_run(inbox, work / "dask" / "wh.duckdb", dask=True)

        t0 = time.monotonic()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        cluster_start = time.monotonic() - t0
        try:
            noop_thread = noop_overhead(args.noop_tasks, None)
            noop_dask = noop_overhead(args.noop_tasks, cluster.scheduler_address)
        finally:
            cluster.close()

        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send the last logs before the server stops

    print(f"\nwhole period run (povwatch run, prefect mode), side by side:")
    print(f"  {'':34s} {'thread pool':>12s} {'Dask 2 procs':>13s}")
    rows = [("wall s", thread["wall"], dask["wall"]),
            ("  CPU s of the flow's process", thread["cpu_flow_process"], dask["cpu_flow_process"]),
            ("  stage: read+conform+load", thread["stage_extract"], None),
            ("  check unchanged (sha256)", None, dask["check_unchanged"]),
            ("  read+conform on the cluster", None, dask["cluster_read_conform"]),
            ("  load_parts (the one writer)", None, dask["load_parts"]),
            ("  validate", thread["validate"], dask["validate"]),
            ("  promote", thread["promote"], dask["promote"]),
            ("  marts", thread["marts"], dask["marts"]),
            ("  exit code", thread["exit"], dask["exit"])]
    for label, a, b in rows:
        fa = "—" if a is None else (f"{a:.0f}" if label.endswith("code") else f"{a:.2f}")
        fb = "—" if b is None else (f"{b:.0f}" if label.endswith("code") else f"{b:.2f}")
        print(f"  {label:34s} {fa:>12s} {fb:>13s}")
    print(f"\nlocal Dask cluster start (2 processes): {cluster_start:.2f} s")
    print(f"Prefect per-task overhead, no-op tasks ({args.noop_tasks} in a flow): "
          f"thread pool {noop_thread * 1000:.0f} ms, Dask 2 workers {noop_dask * 1000:.0f} ms per task")
    print(f"(load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

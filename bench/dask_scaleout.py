"""Scale-out benchmark (not a test): a four-county inbox's read -> conform partitions on a local
Dask cluster of 2 worker processes vs Prefect's thread pool vs plain Python; and Prefect's
per-task overhead.

    .venv/bin/python bench/dask_scaleout.py [--households 300] [--counties 4]

Uses PREFECT_API_URL if set, else starts its own ``prefect server start`` (random port, temporary
PREFECT_HOME) and stops it at the end. Prints figures; writes nothing outside a temp folder.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=300)
    ap.add_argument("--counties", type=int, default=4)
    ap.add_argument("--noop-tasks", type=int, default=60)
    args = ap.parse_args()

    from tasks.generate import generate

    tmp = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    inbox = tmp / "inbox"
    t0 = time.monotonic()
    generate(inbox, period="2020-06", periods=1, households=args.households, counties=args.counties)
    print(f"generated {args.counties} counties × {args.households} households in {time.monotonic() - t0:.1f} s")

    with prefect_server() as (url, started):
        if started:
            print(f"prefect server start: healthy after {started:.1f} s")
        from distributed import LocalCluster
        from prefect import flow, task
        from prefect.task_runners import ThreadPoolTaskRunner
        from prefect_dask import DaskTaskRunner

        from flows.scaleout import conform_counties_flow, conform_county, county_groups

        groups = county_groups(inbox, "2020-06")
        print(f"partitions (dept × county): {len(groups)}")

        t0 = time.monotonic()
        for (dept, county), files in groups.items():
            conform_county.fn(inbox=str(inbox), period="2020-06", dept=dept, county=county, files=files,
                              out_root=str(tmp / "plain"))
        plain = time.monotonic() - t0
        print(f"plain Python, serial:                 {plain:6.1f} s")

        t0 = time.monotonic()
        conform_counties_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
            inbox=str(inbox), period="2020-06", warehouse=str(tmp / "thread" / "wh.duckdb"))
        thread = time.monotonic() - t0
        print(f"Prefect flow, thread pool (2):        {thread:6.1f} s")

        t0 = time.monotonic()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        cluster_start = time.monotonic() - t0
        try:
            t0 = time.monotonic()
            results = conform_counties_flow.with_options(
                task_runner=DaskTaskRunner(address=cluster.scheduler_address))(
                inbox=str(inbox), period="2020-06", warehouse=str(tmp / "dask" / "wh.duckdb"))
            dask = time.monotonic() - t0
        finally:
            cluster.close()
        workers = sorted({r["worker"] for r in results})
        print(f"local Dask cluster start (2 procs):   {cluster_start:6.1f} s")
        print(f"Prefect flow, Dask 2 worker procs:    {dask:6.1f} s  (workers used: {len(workers)})")

        @task
        def noop(i: int) -> int:
            return i

        @flow
        def noops(n: int) -> int:
            futures = [noop.submit(i) for i in range(n)]
            return sum(f.result() for f in futures)

        noops(2)  # warm up
        t0 = time.monotonic()
        noops(args.noop_tasks)
        per_task = (time.monotonic() - t0) / args.noop_tasks
        print(f"Prefect per-task overhead (no-op, thread pool): {per_task * 1000:.0f} ms "
              f"over {args.noop_tasks} tasks")
        print(f"Prefect overhead on the thread-pool conform pass: "
              f"{(thread - plain / 2) / max(len(groups), 1) * 1000:.0f} ms per partition (vs plain/2)")
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send the last logs before the server stops
    print(f"(load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

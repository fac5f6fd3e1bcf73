"""Deployments on a real ``prefect server start``: registered by the serve code path, triggered,
and a failing run reaching a webhook through the Automation. One server for the whole session.

The served process is the product's ``serve`` with flows of the product's names that run the
product's flow functions over fake business steps (tests/support/served.py, fakes.py).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.support.fakes import make_inbox

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on 127.0.0.1, a random port, its own PREFECT_HOME (~16 s)."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_UI_ENABLED="false", PREFECT_SERVER_API_HOST="127.0.0.1")
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start",
                             "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("prefect server did not become healthy in 180 s")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture(scope="session")
def webhook():
    """A webhook receiver on 127.0.0.1: every POST body lands in ``received``."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(body.decode("utf-8", "replace"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.fixture(scope="session")
def served(prefect_server, webhook, tmp_path_factory):
    """``serve`` in a subprocess, over the fakes, against the server."""
    tmp = tmp_path_factory.mktemp("served")
    inbox = make_inbox(tmp)
    warehouse = tmp / "wh.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "POVWATCH_"))}
    env.update(PREFECT_API_URL=prefect_server, PREFECT_HOME=str(tmp / "home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", POVWATCH_ALERT_URLS=webhook[0],
               POVWATCH_SETTLE_SECONDS="0", POVWATCH_WATCH_MINUTES="600",
               PYTHONPATH=str(ROOT))
    log = open(tmp / "serve.log", "w")
    # served from a folder holding a tasks.py and a flows/ of its own: the deployments'
    # entrypoints must not depend on the serving process's working folder
    hostile = tmp / "cwd"
    (hostile / "flows").mkdir(parents=True)
    (hostile / "tasks.py").write_text("raise RuntimeError('the wrong tasks module')\n")
    (hostile / "flows" / "pipeline.py").write_text("raise RuntimeError('the wrong flows')\n")
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.served", "--warehouse", str(warehouse),
                             "--inbox", str(inbox)], cwd=hostile, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + 120
        with get_client(sync_client=True) as client:
            while True:
                try:
                    client.read_deployment_by_name("povwatch-bulletin/dekad-bulletin")
                    client.read_deployment_by_name("povwatch-run/monthly")
                    break
                except Exception:  # noqa: BLE001 - not registered yet
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"serve did not register: {(tmp / 'serve.log').read_text()[-3000:]}")
                    time.sleep(0.5)
        yield {"tmp": tmp, "inbox": inbox, "warehouse": warehouse, "log": tmp / "serve.log"}
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def api(prefect_server):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
        yield


def test_serve_registers_scheduled_deployments(served, api):
    from prefect.client.orchestration import get_client

    expected = {
        "povwatch-run/monthly": "0 6 5 * *",
        "povwatch-bulletin/weekly-dispatch": "0 8 * * 1",
        "povwatch-bulletin/dekad-bulletin": "0 8 1,11,21 * *",
    }
    with get_client(sync_client=True) as client:
        for name, cron in expected.items():
            schedule = client.read_deployment_by_name(name).schedules[0].schedule
            assert schedule.cron == cron and schedule.timezone == "Asia/Shanghai", name
        watch = client.read_deployment_by_name("povwatch-inbox-watch/inbox-watch").schedules[0].schedule
        assert watch.interval.total_seconds() == 600 * 60


def test_monthly_deployment_runs_to_completion(served, api):
    from prefect.deployments import run_deployment

    flow_run = run_deployment("povwatch-run/monthly", timeout=240)
    assert flow_run.state.is_completed(), (flow_run.state, served["log"].read_text()[-3000:])
    assert "every extract accepted" in flow_run.state.message
    con = duckdb.connect(str(served["warehouse"]), read_only=True)
    rows = con.execute("SELECT status, flow_run_id FROM audit.runs").fetchall()
    con.close()
    assert rows == [("completed", str(flow_run.id))]


def test_failing_run_reaches_webhook_through_automation(served, api, webhook):
    from prefect.deployments import run_deployment

    _, received = webhook
    crash = make_inbox(served["tmp"] / "crash", extra={("2026-01", "fupin"): "crash.csv"})
    flow_run = run_deployment("povwatch-run/monthly", timeout=240, parameters={
        "inbox": str(crash), "warehouse": str(served["tmp"] / "crash" / "wh.duckdb")})
    assert flow_run.state.is_failed()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(str(flow_run.name) in r for r in received):
        time.sleep(0.25)
    hits = [json.loads(r) for r in received if str(flow_run.name) in r]
    assert hits, f"no webhook call for {flow_run.name}: {received}"
    assert "运行失败" in hits[0]["title"] and "disk on fire" in hits[0]["text"]


MART_TABLES = ("household_status", "monitoring", "problem_ledger", "township_ranking")


def _marts(warehouse: Path) -> dict[str, list]:
    con = duckdb.connect(str(warehouse), read_only=True)
    out = {}
    try:
        for table in MART_TABLES:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name='mart' AND table_name=? "
                "AND column_name NOT IN ('run_id', 'built_at', 'created_at', 'recorded_at')",
                [table]).fetchall()]
            select = ", ".join(f'"{c}"' for c in cols)
            out[table] = con.execute(f"SELECT {select} FROM mart.{table} ORDER BY ALL").fetchall()
    finally:
        con.close()
    return out


@pytest.fixture(scope="session")
def two_counties(tmp_path_factory):
    from povwatch.tasks.synth.generate import generate

    inbox = tmp_path_factory.mktemp("counties") / "inbox"
    generate(inbox, period="2020-06", periods=1, households=40, counties=2)
    return inbox


def _audit(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT dept, file, sha256, status, rows_read, rows_loaded, rows_quarantined "
                           "FROM audit.extracts ORDER BY dept, file").fetchall()
    finally:
        con.close()


def _hive(path: Path) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.parts if "=" in part)


def test_two_counties_on_dask_workers_match_thread_pool(prefect_server, api, two_counties,
                                                          tmp_path, monkeypatch):
    """``POVWATCH_TASK_RUNNER=dask`` against the real server, the real pipeline: every
    (department, county) partition read and conformed on a local cluster of 2 worker processes and
    landed as Parquet; the period flow, the one writer, loads them; the audit counts and the marts
    equal a thread-pool (local mode) run of the same inbox."""
    from prefect.artifacts import Artifact

    from povwatch.flows.run_command import run_inbox
    from povwatch.tasks.ingest.load import lake_root

    monkeypatch.setenv("POVWATCH_SETTLE_SECONDS", "0")
    monkeypatch.setenv("POVWATCH_OUTPUT", str(tmp_path / "output"))
    thread_wh, dask_wh = tmp_path / "thread" / "wh.duckdb", tmp_path / "dask" / "wh.duckdb"
    t0 = time.monotonic()
    assert run_inbox(two_counties, None, thread_wh, mode="local") == 0
    t1 = time.monotonic()

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)   # for the worker processes
    monkeypatch.setenv("POVWATCH_TASK_RUNNER", "dask")
    monkeypatch.setenv("POVWATCH_DASK_WORKERS", "2")
    assert run_inbox(two_counties, None, dask_wh, mode="prefect") == 0
    print(f"thread pool (local mode) {t1 - t0:.1f} s, Dask (prefect mode) {time.monotonic() - t1:.1f} s")

    table = Artifact.get("povwatch-2020-06-partitions")
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    delivered = [d for d in (two_counties / "2020-06").iterdir() if d.is_dir()]   # 15 sources in a first month
    assert len(rows) == 2 * len(delivered) and {r["county"] for r in rows} == {"620521", "620523"}
    assert all(r["worker"].startswith("tcp://") for r in rows), "read and conformed on Dask workers"
    assert len({r["worker"] for r in rows}) == 2, "tasks ran in both Dask workers"

    # Landed as Parquet per (period, department, county): the rows as delivered stay (raw.<dept> is
    # a view over them); the conformed ones were read in place by pending.<dept>, written into
    # staging once when promoted (or quarantined when rejected), then removed.
    lake = lake_root(dask_wh)
    landed = {(h["period"], h["dept"], h["part"]) for h in map(_hive, (lake / "raw").rglob("*.parquet"))}
    assert landed == {("2020-06", r["dept"], r["county"]) for r in rows}
    assert not list((lake / "pending").rglob("*.parquet"))
    assert not list((lake / "quarantine").rglob("*.parquet"))

    assert _audit(dask_wh) == _audit(thread_wh)
    assert sum(r["rows_read"] for r in rows) == sum(a[4] for a in _audit(thread_wh)) > 0
    assert _marts(dask_wh) == _marts(thread_wh)

    # A resubmission: only the changed department is sent to the cluster; the unchanged ones are
    # recognised (sha256) before it, in the flow's process, and not read again.
    from povwatch.flows.process import _stage_prepared, real_pipeline
    from povwatch.flows.runners import LocalSteps

    resubmitted = tmp_path / "resubmitted"
    shutil.copytree(two_counties, resubmitted)
    changed = sorted((resubmitted / "2020-06" / "jiaoyu").glob("*.csv"))[0]
    head = changed.read_bytes().rstrip(b"\r\n").rsplit(b"\n", 1)[0]   # one row fewer
    changed.write_bytes(head + b"\n")
    sent = []

    def prepare_here(inbox, period, warehouse, run_id, extracts):
        from povwatch.flows.scaleout import county_parts
        from povwatch.tasks.ingest.load import lake_root, prepare_part

        sent.append(extracts)
        return [prepare_part(Path(inbox), period, dept, [Path(f) for f in files],
                             lake_root(Path(warehouse)), part, run_id)
                for dept, dept_files in extracts.items() for part, files in county_parts(dept_files).items()]

    steps = LocalSteps()
    try:
        staged, partitions = _stage_prepared(steps, real_pipeline(), prepare_here, str(dask_wh),
                                             str(resubmitted), "2020-06", "resubmission")
    finally:
        steps.close()
    assert [list(e) for e in sent] == [["jiaoyu"]]
    assert {s["dept"]: s["status"] for s in staged} == {   # the roster and feedback: not delivered in a first month
        **{r["dept"]: "unchanged" for r in rows}, "jiaoyu": "staged", "jiance": "missing", "feedback": "missing"}
    assert {p["county"] for p in partitions} == {"620521", "620523"}


# ------------------------------------------------------------------ what a run tells Prefect (#14)

def _events(prefect_server: str, name: str) -> list[dict]:
    response = httpx.post(f"{prefect_server}/events/filter", timeout=10,
                          json={"filter": {"event": {"name": [name]}}, "limit": 50})
    response.raise_for_status()
    return response.json()["events"]


def test_a_month_with_a_rejected_extract_is_named_has_events_and_logs_the_reasons(
        served, api, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.deployments import run_deployment

    root = served["tmp"] / "partly"
    inbox = make_inbox(root, extra={("2026-01", "shouru"): "bad.csv"})
    flow_run = run_deployment("povwatch-run/monthly", timeout=240, parameters={
        "inbox": str(inbox), "warehouse": str(root / "wh.duckdb"), "run_id": "run-partly"})
    assert flow_run.state.is_completed() and flow_run.state.name == "部分退回", flow_run.state

    with get_client(sync_client=True) as client:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        periods = [r for r in client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["povwatch-period"])), limit=50)
            if r.parameters.get("run_id") == "run-partly"]
        assert [r.state.name for r in periods] == ["部分退回"]
        # The served process ships its logs in batches from a background worker: the run's last
        # lines may reach the API a moment after its final state does.
        deadline = time.monotonic() + 30
        while True:
            logs = [entry.message for entry in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[periods[0].id])))]
            run_logs = [entry.message for entry in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id])))]
            if any("退回 rejected 1（shouru）" in m for m in run_logs) and any(
                    "2026-01 shouru 退回 rejected" in m for m in logs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert any(m.startswith("2026-01: 接收 accepted 2") and "退回 rejected 1（shouru）" in m for m in run_logs), run_logs
    assert any(m.startswith("2026-01 fupin: accepted") and "读入 read 2" in m for m in logs), logs
    assert any("2026-01 shouru 退回 rejected" in m and "身份证号校验位错误过多" in m for m in logs), logs
    assert not any("110101199003071234" in m for m in logs)          # masked, as everything outside

    deadline = time.monotonic() + 30
    while True:
        rejected = [e for e in _events(prefect_server, "povwatch.extract.rejected")
                    if e["payload"].get("run_id") == "run-partly"]
        failed = [e for e in _events(prefect_server, "povwatch.expectation.failed")
                  if e["payload"].get("run_id") == "run-partly"]
        if (rejected and failed) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [e["resource"]["prefect.resource.id"] for e in rejected] == ["povwatch.extract.2026-01.shouru"]
    assert "110101199003071234" not in json.dumps(rejected, ensure_ascii=False)
    assert [e["resource"]["prefect.resource.id"] for e in failed] == ["povwatch.expectation.shouru.id_number_valid"]
    assert any(r["prefect.resource.id"] == f"prefect.flow-run.{periods[0].id}" for r in rejected[0]["related"])


def test_a_failure_in_a_period_sends_one_alert(served, api, webhook):
    from prefect.deployments import run_deployment

    _, received = webhook
    before = len(received)
    crash = make_inbox(served["tmp"] / "crash-once", extra={("2026-01", "minzheng"): "crash.csv"})
    flow_run = run_deployment("povwatch-run/monthly", timeout=240, parameters={
        "inbox": str(crash), "warehouse": str(served["tmp"] / "crash-once" / "wh.duckdb")})
    assert flow_run.state.is_failed()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(str(flow_run.name) in r for r in received[before:]):
        time.sleep(0.25)
    time.sleep(8)   # the period sub-flow failed too: its alert, if any, would have come by now
    about_this = [r for r in received[before:] if "2026-01" in r or str(flow_run.name) in r]
    assert len(about_this) == 1 and str(flow_run.name) in about_this[0], about_this


def test_a_deployment_whose_inbox_does_not_exist_fails_saying_so(served, api):
    from prefect.deployments import run_deployment

    missing = served["tmp"] / "no-such-inbox"
    flow_run = run_deployment("povwatch-run/monthly", timeout=240, parameters={
        "inbox": str(missing), "warehouse": str(served["tmp"] / "missing" / "wh.duckdb")})
    assert flow_run.state.is_failed()
    assert "收件箱不存在" in flow_run.state.message and str(missing) in flow_run.state.message


def test_deployment_entrypoints_do_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    """A folder holding its own tasks.py and flows/ changes nothing: the product's entrypoints are
    module paths, loaded from there as from anywhere."""
    from prefect.flows import load_flow_from_entrypoint

    from povwatch.flows.deployments import build_deployments

    (tmp_path / "tasks.py").write_text("raise RuntimeError('the wrong tasks module')\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "pipeline.py").write_text("raise RuntimeError('the wrong flows')\n")
    monkeypatch.chdir(tmp_path)
    deployments = build_deployments(tmp_path / "wh.duckdb", tmp_path / "inbox")
    entrypoints = {d.flow_name: d.entrypoint for d in deployments}
    assert entrypoints["povwatch-run"] == "povwatch.flows.pipeline.inbox_flow"
    for name, entrypoint in entrypoints.items():
        assert load_flow_from_entrypoint(entrypoint).name == name

"""No full identity number, and no channel secret, leaves the warehouse.

The whole pipeline runs (``povwatch run`` as a Prefect flow, in a subprocess) over a small
generated inbox with a planted rejection, alerts going to a local receiver on 127.0.0.1; then the
report, the exports, the weekly bulletin and the status are produced. Everything written outside
the warehouse file — every file under the working folder, the output folder, TMPDIR and Prefect's
home (its database holds the flow logs and artifacts), every member of every .xlsx — plus the
captured stdout/stderr and every alert body the receiver got, is scanned for any *valid* 18-digit
identity number (digits, birth date and MOD 11-2 check character). The test fails listing where.
(``povwatch sql`` is not run here: the office querying its own warehouse sees real numbers by
design, docs/privacy.md.)
"""
from __future__ import annotations

import http.server
import json
import os
import stat
import threading
from pathlib import Path

import duckdb
import pytest

from tests import robust_support as rs

TOKEN = "FAKEtok3n-9f8e7d6c5b4a-SECRET"
PASSWORD = "hunter2-Pa55word-SECRET"


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.bodies: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        self.server.bodies.append(f"{self.path}\n{self.headers}\n{body}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def receiver():
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _plant_rejection(inbox: Path) -> None:
    """A caizheng delivery that is not a table: the extract is rejected and an alert raised."""
    d = inbox / rs.FIRST_PERIOD / "caizheng"
    d.mkdir(parents=True, exist_ok=True)
    (d / "财政供养_损坏.csv").write_bytes(b"\x00\x01\x02 not a table \xff\xfe" * 50)


@pytest.mark.slow
def test_no_identity_number_or_secret_leaves_the_warehouse(tmp_path: Path, receiver) -> None:
    inbox = rs.subset_inbox(tmp_path / "inbox", (rs.FIRST_PERIOD,),
                            depts=(*rs.SMALL_DEPTS, "minzheng", "canlian"))
    _plant_rejection(inbox)
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    work = tmp_path / "work"
    work.mkdir()
    port = receiver.server_address[1]
    alert_url = f"json://povwatch:{PASSWORD}@127.0.0.1:{port}/hooks/{TOKEN}"
    env = rs.cli_env(tmp_path, POVWATCH_ALERT_URLS=alert_url, POVWATCH_PREFECT="ephemeral",
                      PREFECT_LOGGING_LEVEL="DEBUG")

    captured: dict[str, str] = {}

    def cli(name: str, args: list[str], ok=(0,)) -> None:
        proc = rs.run_cli(args, env, work, timeout=900)
        captured[f"{name}.stdout"] = proc.stdout
        captured[f"{name}.stderr"] = proc.stderr
        assert proc.returncode in ok, f"{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"

    wh = ["--warehouse", str(warehouse)]
    cli("run", ["run", "--inbox", str(inbox), *wh], ok=(3,))
    local_env = dict(env, POVWATCH_PREFECT="local")
    env = local_env
    cli("report", ["report", *wh])
    cli("export", ["export", "--kind", "all", "--out", str(tmp_path / "output" / "exports"), *wh])
    cli("bulletin", ["bulletin", "--kind", "weekly", "--since", "2000-01-01", *wh])
    cli("status", ["status", *wh])

    # the planted rejection reached the receiver
    assert receiver.bodies, "no alert reached the local receiver"
    assert any("caizheng" in b or "财政" in b for b in receiver.bodies), receiver.bodies[:1]

    # the scanner has teeth: the inbox is full of valid numbers
    teeth, _ = rs.scan_tree(inbox)
    assert len(teeth) > 50

    # everything outside the warehouse (its DuckDB file(s) and the Parquet lake beside it) and the inbox
    from povwatch.tasks.ingest.load import lake_root

    skip = (inbox, *warehouse.parent.glob(warehouse.name + "*"), lake_root(warehouse))
    findings, scanned = rs.scan_tree(tmp_path, skip=skip)
    assert scanned >= 5, "the run wrote almost nothing outside the warehouse: nothing was scanned"
    for name, text in captured.items():
        findings += rs.find_identity_numbers(text.encode("utf-8"), f"<{name}>")
    for i, body in enumerate(receiver.bodies):
        findings += rs.find_identity_numbers(body.encode("utf-8"), f"<alert body {i}>")
    assert not findings, "full identity numbers outside the warehouse:\n" + "\n".join(findings[:50])

    # the channel's secrets stay in the environment
    leaks = []
    for name, text in captured.items():
        for secret in (TOKEN, PASSWORD):
            if secret in text:
                leaks.append(f"<{name}>")
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if TOKEN.encode() in data or PASSWORD.encode() in data:
                leaks.append(str(path.relative_to(tmp_path)))
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        alerts = con.execute("SELECT * FROM audit.alerts").fetchall()
        runs = con.execute("SELECT * FROM audit.runs").fetchall()
    finally:
        con.close()
    assert alerts, "no alert recorded in audit.alerts"
    for row in alerts + runs:
        text = json.dumps([str(v) for v in row], ensure_ascii=False)
        if TOKEN in text or PASSWORD in text:
            leaks.append(f"audit row {text[:120]}")
    assert not leaks, f"the alert channel's secret was written to: {leaks}"

    # owner-only: the warehouse and everything written to the output folder
    loose = []
    for path in [warehouse, *(tmp_path / "output").rglob("*")]:
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) & 0o077:
            loose.append(f"{path.relative_to(tmp_path)} {oct(stat.S_IMODE(path.stat().st_mode))}")
    assert not loose, f"readable by others: {loose}"
    exports = list((tmp_path / "output").rglob("*.xlsx"))
    assert exports, "no export was written"

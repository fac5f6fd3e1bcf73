"""Alerts through Apprise: a real HTTP receiver on 127.0.0.1 gets exactly the expected alerts, in
Chinese, with no full identity number; a channel that is down is recorded as undelivered without
breaking anything; a rerun with the same failure does not alert twice; secrets stay out of
audit.alerts, the returned records and the logs.
"""
from __future__ import annotations

import http.server
import json
import logging
import re
import socket
import threading
from pathlib import Path

import pytest

from povwatch.tasks.validate import alerts
from povwatch.tasks.core import db

FULL_ID = "11010519491231002X"
PASSWORD = "s3cret-Pa55"
TOKEN = "t0ken-abc123-SECRET"


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.posts: list[dict] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        self.server.posts.append({"path": self.path, "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = _Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "povwatch.duckdb"
    db.open_warehouse(path).close()
    return path


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(alerts, "RETRY_PAUSE", 0.01)
    monkeypatch.delenv("POVWATCH_ALERT_URLS", raising=False)
    monkeypatch.setenv("POVWATCH_SECRETS_FILE", "/nonexistent/.povwatch-secrets.toml")


def rejected(**extra) -> dict:
    outcome = {
        "period": "2020-03", "dept": "zhujian", "status": "rejected", "blocking_failed": True,
        "files": [{"file": "2020-03/zhujian/住建_东乡.xlsx", "sha256": "ab" * 32}],
        "failures": [{
            "expectation": "unique_head_id_number", "description": "唯一性：户主身份证号不应重复",
            "blocking": True, "unexpected_count": 2,
            "sample": [{"file": "2020-03/zhujian/住建_东乡.xlsx", "row": 8, "户主身份证号": FULL_ID}],
        }, {
            "expectation": "grade_in_list", "description": "鉴定等级：不在取值范围内", "blocking": False,
            "unexpected_count": 1, "sample": [],
        }],
        # a careless upstream message with a full number: masked on the way out
        "message": f"住建局数据有重复的户主 {FULL_ID}",
        "data_docs": "/srv/povwatch/output/datadocs/index.html",
    }
    outcome.update(extra)
    return outcome


def alert_rows(warehouse: Path) -> list[tuple]:
    con = db.connect(warehouse)
    try:
        return con.execute(
            "SELECT severity, dept, period, summary, channel, delivered, fingerprint, attempts, error "
            "FROM audit.alerts ORDER BY created_at").fetchall()
    finally:
        con.close()


def test_receiver_gets_one_masked_chinese_alert_and_a_rerun_does_not_resend(
        warehouse, receiver, monkeypatch, caplog):
    port = receiver.server_address[1]
    monkeypatch.setenv("POVWATCH_ALERT_URLS", f"json://povwatch:{PASSWORD}@127.0.0.1:{port}/hook/{TOKEN}")
    caplog.set_level(logging.DEBUG)
    accepted = {"period": "2020-03", "dept": "minzheng", "status": "accepted", "blocking_failed": False,
                "failures": [], "files": ["2020-03/minzheng/a.csv"]}

    sent = alerts.alert_on_outcomes(warehouse, "run-1", [rejected(), accepted])

    assert len(receiver.posts) == 1
    payload = json.loads(receiver.posts[0]["body"])
    assert payload["type"] == "failure"
    text = payload["title"] + "\n" + payload["message"]
    for expected in ("住建局", "zhujian", "2020-03", "住建_东乡.xlsx", "unique_head_id_number", "2 行",
                     "110105********002X", "第8行", "继续使用上期数据", "datadocs/index.html"):
        assert expected in text, expected
    assert FULL_ID not in text and not re.search(r"[0-9]{17}[0-9X]", text)
    assert [s["delivered"] for s in sent] == [True] and sent[0]["channel"] == f"json://127.0.0.1:{port}"

    rows = alert_rows(warehouse)
    assert len(rows) == 1
    severity, dept, period, summary, channel, delivered, fp, attempts, error = rows[0]
    assert (severity, dept, period, channel, delivered, attempts, error) == (
        "error", "zhujian", "2020-03", f"json://127.0.0.1:{port}", True, 1, None)

    # the same failure on a rerun: recorded once, sent once
    again = alerts.alert_on_outcomes(warehouse, "run-2", [rejected()])
    assert len(receiver.posts) == 1 and again[0]["skipped"] and len(alert_rows(warehouse)) == 1
    # a different file content is a new failure
    changed = rejected(files=[{"file": "2020-03/zhujian/住建_东乡.xlsx", "sha256": "cd" * 32}])
    alerts.alert_on_outcomes(warehouse, "run-3", [changed])
    assert len(receiver.posts) == 2

    everything = json.dumps([sent, again, alert_rows(warehouse)], ensure_ascii=False, default=str)
    everything += caplog.text
    assert PASSWORD not in everything and TOKEN not in everything and FULL_ID not in everything


def test_channel_down_is_recorded_undelivered_and_the_run_goes_on(warehouse, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]          # nothing listens once closed
    monkeypatch.setenv("POVWATCH_ALERT_URLS", f"json://127.0.0.1:{closed_port}/hook")

    sent = alerts.alert_on_outcomes(warehouse, "run-down", [rejected()])

    assert [(s["delivered"], s["attempts"]) for s in sent] == [(False, alerts.ATTEMPTS)]
    rows = alert_rows(warehouse)
    assert len(rows) == 1 and rows[0][5] is False and rows[0][7] == alerts.ATTEMPTS and rows[0][8]
    # an undelivered alert is tried again on the next run (it was never received)
    sent = alerts.alert_on_outcomes(warehouse, "run-down-2", [rejected()])
    assert sent[0]["skipped"] is False and len(alert_rows(warehouse)) == 2


def test_channels_from_secrets_file_and_labels_hide_tokens(tmp_path, monkeypatch, receiver, warehouse):
    port = receiver.server_address[1]
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[alerts]\nurls = ["json://127.0.0.1:{port}/a", "dingtalk://{TOKEN}/"]\n',
                       encoding="utf-8")
    monkeypatch.setenv("POVWATCH_SECRETS_FILE", str(secrets))
    assert alerts.channel_urls() == [f"json://127.0.0.1:{port}/a", f"dingtalk://{TOKEN}/"]
    assert alerts.channel_label(f"dingtalk://{TOKEN}/") == "dingtalk://"
    assert alerts.channel_label(f"wecombot://{TOKEN}") == "wecombot://"
    assert alerts.channel_label(f"mailto://user:{PASSWORD}@mail.example.com") == "mailto://mail.example.com"
    monkeypatch.setenv("POVWATCH_ALERT_URLS", f"json://127.0.0.1:{port}/x, json://127.0.0.1:{port}/y")
    assert alerts.channel_urls() == [f"json://127.0.0.1:{port}/x", f"json://127.0.0.1:{port}/y"]


def test_no_channel_configured_still_records_the_alert(warehouse):
    sent = alerts.alert_on_outcomes(warehouse, "run-none", [rejected()])
    assert [(s["channel"], s["delivered"]) for s in sent] == [("none", False)]
    assert alerts.alert_on_outcomes(warehouse, "run-none-2", [rejected()])[0]["skipped"]
    assert len(alert_rows(warehouse)) == 1


def test_run_failure_notice_reaches_the_receiver(receiver, monkeypatch):
    monkeypatch.setenv("POVWATCH_ALERT_URLS", f"json://127.0.0.1:{receiver.server_address[1]}/run")
    alerts.notify_run_failure("run-x", f"数据仓库被另一个进程占用 {FULL_ID}")
    assert len(receiver.posts) == 1
    body = receiver.posts[0]["body"]
    assert "run-x" in body and FULL_ID not in body

"""Alerts when an extract is rejected or a blocking expectation fails, through Apprise.

Channels are configuration, not code. They are looked up in this order (as dlt does):

1. ``POVWATCH_ALERT_URLS``: Apprise URLs separated by whitespace or commas, e.g.
   ``json://127.0.0.1:8080/hook dingtalk://TOKEN/ wecombot://KEY mailto://user:pass@example.com``;
2. the secrets file ``POVWATCH_SECRETS_FILE``, else ``.povwatch-secrets.toml`` in the working
   folder (git-ignored), then the county folder's ``povwatch.toml`` (tasks/core/settings.py)::

       [alerts]
       urls = ["dingtalk://TOKEN/", "mailto://user:pass@example.com"]

With no channel configured an alert is still recorded in ``audit.alerts`` (channel ``none``,
undelivered): ``povwatch status`` shows it.

Each alert is fingerprinted (period, department, the files' sha256, the failed expectations): the
same failure on a rerun is not sent again to a channel that already received it. A channel that is
down is tried a few times, quickly, then recorded as undelivered with the error; it never breaks the
run. URLs carry secrets (tokens, passwords): a channel is recorded and logged by its scheme and
host only, and tokens that Apprise keeps in the host part (dingtalk://TOKEN) by their scheme.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import asdict, is_dataclass
from pathlib import Path
from urllib.parse import urlsplit

from povwatch.tasks.core import db
from povwatch.tasks.core.privacy import scrub
from povwatch.tasks.ingest.contracts import load_contract
from povwatch.tasks.core.settings import load_settings, output_dir

log = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_PAUSE = 0.3          # seconds before the 2nd attempt; doubled for the 3rd
CONNECT_TIMEOUT = 3.0      # Apprise's cto / rto when the URL does not set them
READ_TIMEOUT = 5.0
SAMPLE_ROWS = 3
MAX_TEXT = 3500            # webhook bots cap message size (DingTalk ~ 4 kB of text)

_HOSTLIKE = re.compile(r"^(localhost|[0-9.]+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)$")
# Apprise schemes whose "host" is really a token or key.
_TOKEN_HOST_SCHEMES = {"dingtalk", "wecombot", "feishu", "lark", "tgram", "discord", "slack",
                       "msteams", "pbul", "pushover", "gotify", "gotifys", "ntfy", "ntfys",
                       "workflows", "wxpusher", "serverchan", "pushplus", "bark", "barks",
                       "dapnet", "signal", "signals", "line", "qq", "wecom"}


# --------------------------------------------------------------------------- configuration

def channel_urls() -> list[str]:
    """The configured Apprise URLs (secrets): environment, secrets file, county folder."""
    return list(load_settings().alert_urls)


def channel_label(url: str) -> str:
    """What may be recorded of a channel: scheme and host (and port), never users, passwords,
    paths, query strings or tokens."""
    try:
        parts = urlsplit(url)
        scheme = (parts.scheme or "unknown").lower()
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "invalid"
    if scheme in _TOKEN_HOST_SCHEMES or not _HOSTLIKE.match(host or ""):
        return f"{scheme}://"
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _with_timeouts(url: str) -> str:
    if "cto=" in url or "rto=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"cto={CONNECT_TIMEOUT}&rto={READ_TIMEOUT}"


# --------------------------------------------------------------------------- messages


def _files(outcome: dict) -> list[dict]:
    files = outcome.get("files") or ([outcome["file"]] if outcome.get("file") else [])
    out = []
    for f in files:
        if isinstance(f, dict):
            out.append({"file": str(f.get("file") or f.get("path") or ""), "sha256": f.get("sha256")})
        else:
            out.append({"file": str(f), "sha256": None})
    return out


def _failures(outcome: dict) -> list[dict]:
    failures = outcome.get("failures")
    if failures:
        return [f for f in failures if f.get("blocking", True)] or list(failures)
    names = outcome.get("expectations") or ([outcome["expectation"]] if outcome.get("expectation") else [])
    counts = outcome.get("counts") or {}
    return [{"expectation": n, "description": None, "blocking": True,
             "unexpected_count": counts.get(n) if isinstance(counts, dict) else None,
             "sample": outcome.get("sample") or []} for n in names]


def fingerprint(outcome: dict) -> str:
    """Same period, department, files (by content) and failed expectations -> same fingerprint."""
    files = sorted((f["sha256"] or f["file"]) for f in _files(outcome))
    names = sorted({str(f.get("expectation")) for f in _failures(outcome)})
    if not names and outcome.get("message"):
        names = [hashlib.sha256(str(outcome["message"]).encode()).hexdigest()[:16]]
    key = json.dumps([outcome.get("period"), outcome.get("dept"), files, names], ensure_ascii=False)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _sample_line(row) -> str:
    if isinstance(row, dict):
        where = ""
        if "file" in row or "row" in row:
            where = f"{row.get('file', '')} 第{row.get('row', '?')}行"
        rest = "，".join(f"{k}={v}" for k, v in row.items() if k not in ("file", "row"))
        return "；".join(p for p in (where, rest) if p)
    return str(row)


def alert_text(outcome: dict) -> tuple[str, str]:
    """(title, body) in Chinese; identity numbers masked."""
    if outcome.get("notice"):   # a run-level notice (a period on an earlier year's policy)
        return scrub(f"povwatch：{outcome.get('period') or ''} 运行提示"), scrub(str(outcome["notice"]))
    dept = outcome.get("dept") or ""
    try:
        dept_name = load_contract(dept).name
    except Exception:
        dept_name = dept
    period = outcome.get("period") or ""
    severity = outcome.get("severity", "error")
    rejected = severity == "error"
    title = f"povwatch：{dept_name} {period} " + ("数据未采用" if rejected else "数据校验提示")
    lines = [f"部门：{dept_name}（{dept}）", f"期别：{period}"]
    files = _files(outcome)
    if files:
        lines.append("文件：" + "；".join(
            f["file"] + (f"（sha256 {f['sha256'][:12]}…）" if f.get("sha256") else "") for f in files))
    failures = _failures(outcome)
    if failures:
        lines.append("未通过的校验：")
        for f in failures:
            count = f.get("unexpected_count")
            observed = f.get("observed")
            what = (f"{count} 行" if isinstance(count, int) else
                    f"实际 {observed} 行" if isinstance(observed, int) else "未通过")
            label = f.get("description") or f.get("expectation")
            kind = "阻断" if f.get("blocking", True) else "提示"
            lines.append(f"  - [{kind}] {label}（{f.get('expectation')}）：{what}")
            sample = f.get("sample")
            if isinstance(sample, list) and sample:
                lines.append("    样例（身份证号已脱敏）：")
                lines.extend(f"      · {_sample_line(row)}" for row in sample[:SAMPLE_ROWS])
    if rejected:
        lines.append("处理：本期该部门数据未采用，继续使用上期数据；其他部门不受影响。请部门核对后重新报送。")
    if outcome.get("message") and not failures:
        # (a validation outcome's message repeats its failures; a staging rejection's explains it)
        lines.append("说明：" + str(outcome["message"]))
    where = []
    if outcome.get("receipt") or outcome.get("receipts_dir"):
        where.append(f"回执 {outcome.get('receipt') or outcome.get('receipts_dir')}")
    if outcome.get("data_docs"):
        where.append(f"校验报告 {outcome['data_docs']}")
    if where:
        lines.append("查看：" + "；".join(where))
    body = scrub("\n".join(lines))
    if len(body) > MAX_TEXT:
        body = body[:MAX_TEXT - 20] + "\n……（内容过长已截断）"
    return scrub(title), body


# --------------------------------------------------------------------------- delivery

_NOISY_LOGGERS = ("apprise", "urllib3", "urllib3.connectionpool", "requests", "httpx", "httpcore")


class _quiet_transport:
    """Apprise and urllib3 log request lines (paths hold webhook tokens) at DEBUG/INFO: hold them
    at WARNING while sending, whatever the application's log level."""

    def __enter__(self):
        self._levels = {}
        for name in _NOISY_LOGGERS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
        return self

    def __exit__(self, *exc):
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        return False


def _send(url: str, title: str, body: str, severity: str = "error") -> tuple[bool, int, str | None]:
    """Send to one channel with a few quick attempts. Never raises; errors carry no secrets."""
    with _quiet_transport():
        return _send_quietly(url, title, body, severity)


def _send_quietly(url: str, title: str, body: str, severity: str) -> tuple[bool, int, str | None]:
    import apprise

    notify_type = {"error": apprise.NotifyType.FAILURE,
                   "warning": apprise.NotifyType.WARNING}.get(severity, apprise.NotifyType.INFO)
    label = channel_label(url)
    ap = apprise.Apprise()
    if not ap.add(_with_timeouts(url)):
        return False, 0, f"无法识别的告警地址（{label}）"
    error = None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            if ap.notify(body=body, title=title, notify_type=notify_type):
                return True, attempt, None
            error = f"{label} 投递失败"
        except Exception as exc:  # a plugin bug must not break the run
            error = f"{label} 投递异常：{type(exc).__name__}"
        if attempt < ATTEMPTS:
            time.sleep(RETRY_PAUSE * 2 ** (attempt - 1))
    log.warning("alert to %s not delivered after %d attempts", label, ATTEMPTS)
    return False, ATTEMPTS, error


def _as_dict(outcome) -> dict:
    if is_dataclass(outcome):
        if hasattr(outcome, "alert"):
            return outcome.alert()
        return asdict(outcome)
    return dict(outcome)


def needs_alert(outcome: dict) -> bool:
    """Rejected extracts and blocking failures alert; accepted extracts (warnings, quarantined
    rows) are in audit.validations, the receipts and Data Docs, and do not. A run-level notice
    (``notice``: a period run on an earlier year's policy file) alerts."""
    if outcome.get("notice"):
        return True
    if outcome.get("status") in ("accepted", "unchanged") and not outcome.get("blocking_failed"):
        return False
    if outcome.get("status") == "rejected" or outcome.get("blocking_failed"):
        return True
    return outcome.get("severity", "error") == "error" and "status" not in outcome \
        and "blocking_failed" not in outcome


def _add_sha256(con, outcome: dict) -> dict:
    """Files named without their sha256 get it from audit.extracts (the latest record)."""
    files = _files(outcome)
    missing = [f["file"] for f in files if not f.get("sha256")]
    if not missing:
        return outcome
    rows = con.execute(
        "SELECT file, arg_max(sha256, recorded_at) FROM audit.extracts WHERE period = ? AND dept = ? "
        "AND list_contains(?, file) GROUP BY file",
        [outcome.get("period"), outcome.get("dept"), missing]).fetchall()
    known = dict(rows)
    return {**outcome, "files": [{"file": f["file"], "sha256": f.get("sha256") or known.get(f["file"])}
                                 for f in files]}


def alert_on_outcomes(warehouse: Path, run_id: str, outcomes: list[dict]) -> list[dict]:
    """Record and send one alert per rejected extract / blocking failure.

    ``outcomes``: dicts with period, dept, files ([{file, sha256}] or relative paths, whose sha256
    is then looked up in audit.extracts), failures (as in ValidationOutcome.failures) or
    expectations + counts + sample, message, severity ("error" default), status
    ("accepted" outcomes without blocking failures are skipped), data_docs / receipt paths.
    ValidationOutcome objects are accepted too. Returns one dict per (alert, channel): what was
    sent, or skipped because that channel already received the same failure.
    """
    urls = channel_urls()
    sent: list[dict] = []
    if not outcomes:
        return sent
    con = db.connect(Path(warehouse))
    try:
        for raw in outcomes:
            outcome = _as_dict(raw)
            if not needs_alert(outcome):
                continue
            outcome = dict(_add_sha256(con, outcome))
            outcome.setdefault("receipts_dir", str(output_dir(Path(warehouse)) / "receipts"))
            fp = fingerprint(outcome)
            title, body = alert_text(outcome)
            severity = outcome.get("severity", "error")
            summary = scrub(f"{title}｜" + "；".join(
                str(f.get("expectation")) for f in _failures(outcome)))
            targets = [(u, channel_label(u)) for u in urls] or [(None, "none")]
            for url, label in targets:
                done = con.execute(
                    "SELECT count(*) FROM audit.alerts WHERE fingerprint = ? AND channel = ? "
                    "AND (delivered OR ? = 'none')", [fp, label, label]).fetchall()[0][0]
                if done:
                    sent.append({"dept": outcome.get("dept"), "period": outcome.get("period"),
                                 "channel": label, "fingerprint": fp, "skipped": True,
                                 "delivered": None, "title": title, "text": body})
                    continue
                if url is None:
                    delivered, attempts, error = False, 0, "未配置告警渠道（POVWATCH_ALERT_URLS）"
                else:
                    delivered, attempts, error = _send(url, title, body, severity)
                alert_id = uuid.uuid4().hex
                with db.write_lock:
                    con.execute(
                        "INSERT INTO audit.alerts (alert_id, run_id, severity, dept, period, summary, "
                        "channel, delivered, fingerprint, attempts, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        [alert_id, run_id, severity, outcome.get("dept"), outcome.get("period"), summary,
                         label, delivered, fp, attempts, error])
                sent.append({"alert_id": alert_id, "dept": outcome.get("dept"),
                             "period": outcome.get("period"), "channel": label, "fingerprint": fp,
                             "skipped": False, "delivered": delivered, "attempts": attempts,
                             "error": error, "title": title, "text": body})
    finally:
        con.close()
    return sent


def notify_run_failure(run_id: str, message: str) -> None:
    """Tell the channels that a run itself failed (no warehouse needed). Never raises."""
    title = f"povwatch：运行失败 {run_id}"
    body = scrub(f"运行 {run_id} 未能完成：\n{message}")[:MAX_TEXT]
    for url in channel_urls():
        try:
            _send(url, title, body, "error")
        except Exception:  # pragma: no cover - _send does not raise
            log.warning("run-failure alert to %s failed", channel_label(url))

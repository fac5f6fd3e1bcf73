"""Stand-ins for the business steps, to test orchestration alone (fast, deterministic).

They keep the contracts of tasks/ingest/load.py, validate.py, marts.py, alerts.py, receipts.py and
report.py: paths in, small results out, audit.extracts written with each file's sha256 so that
"unchanged" works as it does for real. A department folder holding a file whose name contains
``bad`` fails a blocking expectation; ``crash`` raises inside staging.
"""
from __future__ import annotations

import hashlib
import threading
import types
from dataclasses import dataclass, field
from pathlib import Path

from povwatch.tasks.core.db import open_warehouse, write_lock

CALLS: dict[str, list] = {}
_lock = threading.Lock()


def _called(name: str, *args) -> None:
    with _lock:
        CALLS.setdefault(name, []).append(args)


@dataclass
class ExtractResult:
    status: str
    files: list = field(default_factory=list)
    message: str = ""


@dataclass
class ValidationOutcome:
    blocking_failed: bool
    failures: list
    quarantined_rows: int
    data_docs: str | None
    message: str


def _files(inbox: Path, period: str, dept: str) -> list[Path]:
    folder = Path(inbox) / period / dept
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def stage_extract(warehouse, inbox, period, dept, run_id):
    _called("stage_extract", period, dept)
    files = _files(inbox, period, dept)
    if not files:
        return ExtractResult("missing", [], "未报送")
    if any("crash" in f.name for f in files):
        raise OSError(f"disk on fire while reading {files[0].name}")
    hashes = [(f, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files]
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            known = {r[0] for r in con.execute(
                "SELECT sha256 FROM audit.extracts WHERE period=? AND dept=? AND status<>'staged'",
                [period, dept]).fetchall()}
            if all(h in known for _, h in hashes):
                return ExtractResult("unchanged", [str(f) for f in files], "与上次相同")
            for f, h in hashes:
                rows = len(f.read_text(encoding="utf-8").splitlines()) - 1
                con.execute("INSERT INTO audit.extracts (run_id, period, dept, file, sha256, rows_read,"
                            " rows_loaded, rows_quarantined, status) VALUES (?,?,?,?,?,?,?,?, 'staged')",
                            [run_id, period, dept, f"{period}/{dept}/{f.name}", h, rows, rows, 0])
        finally:
            con.close()
    return ExtractResult("staged", [str(f) for f in files], "")


def _set_status(warehouse, period, dept, run_id, status, message=""):
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("UPDATE audit.extracts SET status=?, message=? WHERE run_id=? AND period=? AND dept=?",
                        [status, message, run_id, period, dept])
        finally:
            con.close()


def promote_extract(warehouse, period, dept, run_id):
    _called("promote_extract", period, dept)
    _set_status(warehouse, period, dept, run_id, "accepted")


def reject_extract(warehouse, period, dept, run_id, message):
    _called("reject_extract", period, dept)
    _set_status(warehouse, period, dept, run_id, "rejected", message)


def discover_periods(inbox):
    return sorted(p.name for p in Path(inbox).iterdir() if p.is_dir())


def validate_extract(warehouse, period, dept, run_id):
    _called("validate_extract", period, dept)
    bad = [f for f in _files(Path(warehouse).parent / "inbox", period, dept) if "bad" in f.name]
    if bad or dept in REJECT:
        return ValidationOutcome(True, ["id_number_valid"], 3, None,
                                 "身份证号校验位错误过多（如 110101199003071234）")
    return ValidationOutcome(False, [], 0, None, "")


REJECT: set[str] = set()


def build_marts(warehouse, period, run_id):
    _called("build_marts", period)
    return {"period": period, "monitored": 7, "opened": 3, "closed": 1, "problems_open": 5}


ALERT_FAILURES = {"remaining": 0}


def alert_on_outcomes(warehouse, run_id, outcomes):
    _called("alert_on_outcomes", run_id, len(outcomes))
    if ALERT_FAILURES["remaining"] > 0:
        ALERT_FAILURES["remaining"] -= 1
        raise ConnectionError("webhook unreachable")
    return [{"dept": o["dept"]} for o in outcomes if o["status"] == "rejected"]


def notify_run_failure(run_id, message):
    _called("notify_run_failure", run_id, message)


def write_receipt(warehouse, period, dept, out_dir):
    _called("write_receipt", period, dept)
    return None


def write_report(warehouse, period):
    _called("write_report", period)
    out = Path(warehouse).parent / "output" / f"report-{period}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("<html></html>", encoding="utf-8")
    return out


MODULES = {  # (wing, module) -> the functions faked
    ("ingest", "load"): ["stage_extract", "promote_extract", "reject_extract", "discover_periods"],
    ("validate", "suites"): ["validate_extract"],
    ("marts", "build"): ["build_marts"],
    ("validate", "alerts"): ["alert_on_outcomes", "notify_run_failure"],
    ("ingest", "receipts"): ["write_receipt"],
    ("office", "report"): ["write_report"],
}


def install(monkeypatch) -> None:
    """Put the fakes where the pipeline's lazy ``from tasks import x`` finds them."""
    import sys

    import importlib

    CALLS.clear()
    REJECT.clear()
    ALERT_FAILURES["remaining"] = 0
    for (wing, module), names in MODULES.items():
        dotted = f"povwatch.tasks.{wing}.{module}"
        fake = types.ModuleType(dotted)
        for name in names:
            setattr(fake, name, globals()[name])
        monkeypatch.setitem(sys.modules, dotted, fake)
        monkeypatch.setattr(importlib.import_module(f"povwatch.tasks.{wing}"), module, fake, raising=False)


def make_inbox(root: Path, periods=("2026-01",), depts=("fupin", "shouru", "minzheng"),
               extra: dict | None = None) -> Path:
    """<root>/inbox/<period>/<dept>/<dept>.csv, tiny files; ``extra`` maps (period, dept) -> file name."""
    inbox = root / "inbox"
    for period in periods:
        for dept in depts:
            folder = inbox / period / dept
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{dept}.csv").write_text(f"a,b\n1,{period}\n2,{dept}\n", encoding="utf-8")
    for (period, dept), name in (extra or {}).items():
        folder = inbox / period / dept
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("a,b\n1,2\n", encoding="utf-8")
    return inbox


def install_plain() -> None:
    """``install`` without pytest, for subprocesses (a sitecustomize.py calls it)."""
    import sys

    import importlib

    for (wing, module), names in MODULES.items():
        dotted = f"povwatch.tasks.{wing}.{module}"
        fake = types.ModuleType(dotted)
        for name in names:
            setattr(fake, name, globals()[name])
        sys.modules[dotted] = fake
        setattr(importlib.import_module(f"povwatch.tasks.{wing}"), module, fake)

"""Stand-ins for the business steps, to test orchestration alone (fast, deterministic).

``Fakes().pipeline`` is a ``povwatch.flows.pipeline.Pipeline`` handed to the run
(``run_inbox(..., pipeline=fakes.pipeline)``): nothing is swapped in ``sys.modules``. The fakes
keep the contracts of the real steps — paths in, small results out, audit.extracts written with
each file's sha256 so that "unchanged" works as it does for real. A department folder holding a
file whose name contains ``bad`` fails a blocking expectation; ``crash`` raises inside staging.
"""
from __future__ import annotations

import contextlib
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from povwatch.flows.pipeline import Pipeline
from povwatch.tasks.core.db import open_warehouse, write_lock


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


def _set_status(warehouse, period, dept, run_id, status, message=""):
    with write_lock:
        con = open_warehouse(warehouse)
        try:
            con.execute("UPDATE audit.extracts SET status=?, message=? WHERE run_id=? AND period=? AND dept=?",
                        [status, message, run_id, period, dept])
        finally:
            con.close()


class Fakes:
    """One test's fake steps: what they were called with, and the failures to play."""

    def __init__(self) -> None:
        self.calls: dict[str, list] = {}
        self.reject: set[str] = set()          # departments whose validation fails
        self.alert_failures = 0                # times the alert channel fails before it works
        self._lock = threading.Lock()

    @property
    def pipeline(self) -> Pipeline:
        return Pipeline(
            stage_extract=self.stage_extract, unchanged_extract=self.unchanged_extract,
            load_parts=self.load_parts, validate_extract=self.validate_extract,
            data_docs_index_once=lambda warehouse, background=False: contextlib.nullcontext(),
            wait_for_data_docs=lambda warehouse: None,
            warm_up_validation=lambda warehouse: None,
            promote_extract=self.promote_extract, reject_extract=self.reject_extract,
            build_marts=self.build_marts, alert_on_outcomes=self.alert_on_outcomes,
            notify_run_failure=self.notify_run_failure, write_receipt=self.write_receipt,
            write_report=self.write_report)

    def called(self, name: str) -> list:
        return self.calls.get(name, [])

    def _called(self, name: str, *args) -> None:
        with self._lock:
            self.calls.setdefault(name, []).append(args)

    def stage_extract(self, warehouse, inbox, period, dept, run_id):
        self._called("stage_extract", period, dept)
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

    def unchanged_extract(self, warehouse, inbox, period, dept, run_id):
        raise AssertionError("scale-out is not faked")

    def load_parts(self, warehouse, inbox, period, dept, parts, run_id):
        raise AssertionError("scale-out is not faked")

    def promote_extract(self, warehouse, period, dept, run_id):
        self._called("promote_extract", period, dept)
        _set_status(warehouse, period, dept, run_id, "accepted")

    def reject_extract(self, warehouse, period, dept, run_id, message):
        self._called("reject_extract", period, dept)
        _set_status(warehouse, period, dept, run_id, "rejected", message)

    def validate_extract(self, warehouse, period, dept, run_id):
        self._called("validate_extract", period, dept)
        bad = [f for f in _files(Path(warehouse).parent / "inbox", period, dept) if "bad" in f.name]
        if bad or dept in self.reject:
            return ValidationOutcome(True, ["id_number_valid"], 3, None,
                                     "身份证号校验位错误过多（如 110101199003071234）")
        return ValidationOutcome(False, [], 0, None, "")

    def build_marts(self, warehouse, period, run_id):
        self._called("build_marts", period)
        return {"period": period, "monitored": 7, "opened": 3, "closed": 1, "problems_open": 5}

    def alert_on_outcomes(self, warehouse, run_id, outcomes):
        self._called("alert_on_outcomes", run_id, len(outcomes))
        if self.alert_failures > 0:
            self.alert_failures -= 1
            raise ConnectionError("webhook unreachable")
        return [{"dept": o["dept"]} for o in outcomes if o["status"] == "rejected"]

    def notify_run_failure(self, run_id, message):
        self._called("notify_run_failure", run_id, message)

    def write_receipt(self, warehouse, period, dept, out_dir):
        self._called("write_receipt", period, dept)
        return None

    def write_report(self, warehouse, period):
        self._called("write_report", period)
        out = Path(warehouse).parent / "output" / f"report-{period}.html"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("<html></html>", encoding="utf-8")
        return out


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

"""The monthly process, step by step, with no Prefect in it: what ``povwatch run`` does in local mode.

A period reads like the process (docs/orchestration.md):

    every department staged concurrently (one step per department: its files are one extract)
      -> validated, one after another; each promoted or rejected as soon as its own validation
         is done (beside the next department's validation)
      -> marts, with the receipts and the Data Docs written beside them -> alerts -> report
      -> run summary

This module orchestrates and nothing else: no SQL, no reading of the inbox, no rendering. The
business steps are plain functions of ``tasks/`` taking paths; a run receives them as one
``Pipeline`` value (the real ones by default, :func:`real_pipeline`). The orchestration steps
below are plain functions too, each declared once as a :class:`Step` — its Prefect name, its run
name, its retries as data. ``process_period`` and ``execute_run`` are written once against a
``Steps`` object: ``LocalSteps`` (flows/runners.py) calls the step functions on a thread pool,
honouring the declared retries; ``PrefectSteps`` (flows/pipeline.py) runs each step as the Prefect
task of that name. So a local run never imports Prefect (~1.2 s of CPU per process), and the
Prefect modes run the very same sequence as task runs and flows (flows/pipeline.py).

Retries: staging retries only while a department's files are still being copied (size/mtime not
yet stable); alerting retries because a notification channel can be briefly down; a receipt once
(a file system hiccup). Nothing else retries: a bad extract stays bad however often it is read.

Scale-out (Dask set in the settings, Prefect modes only): the period still runs in the flow's
process, the one writer of the DuckDB file; only read -> conform of each (department, county) goes
to the cluster (flows/scaleout.py), after ``check_department`` found the department complete and
changed, and ``stage_department`` then loads the Parquet partitions (``tasks.ingest.load.load_parts``).

Unchanged extracts: staging compares each file's sha256 with ``audit.extracts`` and returns
``unchanged``; such departments are not validated or promoted again, and a period whose files are
all known is not run at all (``tasks.ingest.inbox.pending_periods``) — unless a stopped run left
it unfinished (``tasks.core.runs.unfinished_periods``): then it is run to the end again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from povwatch.flows import prefect_signals
from povwatch.tasks.core import runs
from povwatch.tasks.core.db import held_open
from povwatch.tasks.core.integrity import check_warehouse
from povwatch.tasks.core.locking import warehouse_lock
from povwatch.tasks.core.privacy import scrub
from povwatch.tasks.core.runtime import on_roomy_frame_stack, run_gc_thresholds
from povwatch.tasks.core.settings import load_settings, output_dir
from povwatch.tasks.ingest import inbox as inbox_files
from povwatch.tasks.ingest import load as ingest
from povwatch.tasks.ingest import receipts
from povwatch.tasks.ingest.contracts import department_codes
from povwatch.tasks.marts import build as marts_build
from povwatch.tasks.office import report as office_report
from povwatch.tasks.office.run_summary import department_rows, render_summary, run_message
from povwatch.tasks.validate import alerts as validate_alerts
from povwatch.tasks.validate import suites as validate_suites

log = logging.getLogger("povwatch")


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------------------------
# The business steps a run calls, passed in


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """The business functions of a run (each from tasks/, paths in, small results out)."""

    stage_extract: Callable        # read, conform, load one department's files into pending
    unchanged_extract: Callable    # decide missing / refused / unchanged without reading a row
    load_parts: Callable           # scale-out: load the Parquet parts prepared on the cluster
    validate_extract: Callable     # the department's GX suite over its pending extract
    data_docs_index_once: Callable  # context: GX's Data Docs index built once per period
    wait_for_data_docs: Callable   # the period's Data Docs build, started on the way out, done
    warm_up_validation: Callable   # start GX in the background while departments are staged
    promote_extract: Callable
    reject_extract: Callable
    build_marts: Callable
    alert_on_outcomes: Callable
    notify_run_failure: Callable   # local mode has no Prefect Automation: tell the channel
    write_receipt: Callable
    write_report: Callable


def real_pipeline() -> Pipeline:
    """The functions of tasks/, looked up now (so a wrapper put on a module attribute applies)."""
    return Pipeline(
        stage_extract=ingest.stage_extract, unchanged_extract=ingest.unchanged_extract,
        load_parts=ingest.load_parts, validate_extract=validate_suites.validate_extract,
        data_docs_index_once=validate_suites.data_docs_index_once,
        wait_for_data_docs=validate_suites.wait_for_data_docs,
        warm_up_validation=warm_up_validation,
        promote_extract=ingest.promote_extract, reject_extract=ingest.reject_extract,
        build_marts=marts_build.build_marts, alert_on_outcomes=validate_alerts.alert_on_outcomes,
        notify_run_failure=validate_alerts.notify_run_failure,
        write_receipt=receipts.write_receipt, write_report=office_report.write_report)


def warm_up_validation(warehouse: Path) -> None:
    """Import Great Expectations and open its context in the background while the departments
    are staged: 3-7 s of CPU that otherwise sits on the critical path, before the first
    validation. A failure here is ignored: validation then imports GX itself and reports."""
    import pyarrow  # noqa: F401  - imported once here, not concurrently by GX's pandas and polars

    def warm() -> None:
        try:
            validate_suites.gx_context(Path(warehouse).resolve())
        except Exception:  # noqa: BLE001
            log.debug("GX warm-up failed", exc_info=True)

    threading.Thread(target=on_roomy_frame_stack, args=(warm,), name="povwatch-gx-warm-up",
                     daemon=True).start()


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    return dataclasses.asdict(obj)


# --------------------------------------------------------------------------------------------
# The steps: plain functions, paths in, small dicts out, never a connection; each declared once


@dataclasses.dataclass(frozen=True)
class Step:
    """One orchestration step and what a runner should do about it.

    ``name`` and ``run_name`` (a template over the step's arguments) are what the Prefect UI shows
    for its task runs. ``retries`` more attempts, waiting ``retry_delay_seconds`` (one per retry,
    the last repeated), and only while ``retry_if(exception)`` says so (None: whatever failed)."""

    name: str
    fn: Callable[..., Any]
    run_name: str | None = None
    retries: int = 0
    retry_delay_seconds: tuple[float, ...] = (0,)
    retry_if: Callable[[BaseException], bool] | None = None


def still_copying(exc: BaseException) -> bool:
    """Retry staging only while the delivery is still being copied; anything else (an OSError, a
    bug) will not get better by reading again."""
    return isinstance(exc, inbox_files.FileStillCopying)


def _wait_until_delivered(inbox: str, period: str, dept: str) -> None:
    found = inbox_files.delivery(Path(inbox), period, dept)
    inbox_files.check_delivery_complete(found, load_settings().settle_seconds)


STAGE_RETRY_DELAYS = (10, 30, 60)


def stage_department(pipeline: Pipeline, warehouse: str, inbox: str, period: str, dept: str,
                     run_id: str, parts: list | None = None) -> dict:
    """Load one department's extract into pending.<dept> (or find it unchanged).

    Without ``parts``: read, conform and load its files here. With ``parts`` (scale-out): the
    files were already read and conformed per county on the cluster, and checked not unchanged
    (``check_department``); only the loading is left, by the one writer, from the Parquet parts.
    """
    if parts is None:
        _wait_until_delivered(inbox, period, dept)
        result = pipeline.stage_extract(Path(warehouse), Path(inbox), period, dept, run_id)
    else:
        result = pipeline.load_parts(Path(warehouse), Path(inbox), period, dept, parts, run_id)
    return _stage_summary(period, dept, result)


def _stage_summary(period: str, dept: str, result) -> dict:
    result = _as_dict(result)
    files = [f if isinstance(f, dict) else {"file": str(f), "sha256": None} for f in result.get("files") or []]
    return {"period": period, "dept": dept, "status": result.get("status"),
            "files": [{"file": f.get("file"), "sha256": f.get("sha256")} for f in files],
            "message": result.get("message") or ""}


def check_department(pipeline: Pipeline, warehouse: str, inbox: str, period: str, dept: str,
                     run_id: str) -> dict:
    """Scale-out only, before anything is sent to the cluster: is the delivery complete, and is
    there anything to read? Returns the final staging summary when not (missing, refused, or the
    same files as the accepted extract: 'unchanged', so not re-read on the cluster), else status
    ``to_prepare`` with the files to read and conform per county."""
    _wait_until_delivered(inbox, period, dept)
    decided = pipeline.unchanged_extract(Path(warehouse), Path(inbox), period, dept, run_id)
    if decided is not None:
        return _stage_summary(period, dept, decided)
    files = inbox_files.delivery(Path(inbox), period, dept).files
    return {"period": period, "dept": dept, "status": "to_prepare", "files": [],
            "message": "", "todo": [str(f) for f in files]}


def validate_department(pipeline: Pipeline, warehouse: str, period: str, dept: str, run_id: str) -> dict:
    """Great Expectations suite of the department over its pending extract."""
    outcome = _as_dict(pipeline.validate_extract(Path(warehouse), period, dept, run_id))
    return {"period": period, "dept": dept, **outcome}


def promote_department(pipeline: Pipeline, warehouse: str, period: str, dept: str, run_id: str) -> str:
    pipeline.promote_extract(Path(warehouse), period, dept, run_id)
    return "accepted"


def reject_department(pipeline: Pipeline, warehouse: str, period: str, dept: str, run_id: str,
                      message: str) -> str:
    pipeline.reject_extract(Path(warehouse), period, dept, run_id, message)
    return "rejected"


def build_marts_step(pipeline: Pipeline, warehouse: str, period: str, run_id: str) -> dict:
    return dict(pipeline.build_marts(Path(warehouse), period, run_id) or {})


def raise_alerts(pipeline: Pipeline, warehouse: str, run_id: str, outcomes: list[dict]) -> list[dict]:
    """Alerts for rejected extracts and failed expectations, through the configured channel.

    Retried: a notification channel that is briefly down is worth a second try (the alerts module
    fingerprints alerts, so a retry does not send twice).
    """
    return list(pipeline.alert_on_outcomes(Path(warehouse), run_id, outcomes) or [])


def write_receipt_step(pipeline: Pipeline, warehouse: str, period: str, dept: str, out_dir: str) -> str | None:
    path = pipeline.write_receipt(Path(warehouse), period, dept, Path(out_dir))
    return str(path) if path else None


def write_report_step(pipeline: Pipeline, warehouse: str, period: str) -> str:
    return str(pipeline.write_report(Path(warehouse), period))


STAGE = Step("stage", stage_department, "stage-{period}-{dept}", retries=3,
             retry_delay_seconds=STAGE_RETRY_DELAYS, retry_if=still_copying)
CHECK = Step("check", check_department, "check-{period}-{dept}", retries=3,
             retry_delay_seconds=STAGE_RETRY_DELAYS, retry_if=still_copying)
VALIDATE = Step("validate", validate_department, "validate-{period}-{dept}")
PROMOTE = Step("promote", promote_department, "promote-{period}-{dept}")
REJECT = Step("reject", reject_department, "reject-{period}-{dept}")
MARTS = Step("marts", build_marts_step, "marts-{period}")
ALERTS = Step("alerts", raise_alerts, retries=2, retry_delay_seconds=(5, 20))
RECEIPT = Step("receipt", write_receipt_step, "receipt-{period}-{dept}", retries=1,
               retry_delay_seconds=(2,))
REPORT = Step("report", write_report_step, "report-{period}")
STEPS = (STAGE, CHECK, VALIDATE, PROMOTE, REJECT, MARTS, ALERTS, RECEIPT, REPORT)


# --------------------------------------------------------------------------------------------
# One period


def process_period(steps, pipeline: Pipeline, inbox: Path, period: str, warehouse: Path, run_id: str,
                   prepare: Callable[..., list] | None = None, finish: bool = False) -> dict:
    """Stage every department concurrently; validate them, each department promoted or rejected
    as soon as its own validation is done (:func:`_validate_and_decide`); then the marts, with
    the receipts and the Data Docs written beside them, alerts, the receipts of departments a
    stopped run decided (``finish``) and the report. Returns the period's summary (what the
    artifacts show).

    ``prepare`` (scale-out): a callable that reads and conforms the files of the departments
    needing it per (department, county), elsewhere (a Dask cluster), and returns the PreparedParts;
    staging then only loads them. Without it each department is read and loaded here.
    ``finish``: a stopped run left the period unfinished: marts, receipts and the report are made
    even when no department changed since."""
    w, i = str(warehouse), str(inbox)
    started = time.monotonic()
    partitions: list[dict] = []
    call = dict(pipeline=pipeline, warehouse=w, period=period, run_id=run_id)

    out = str(output_dir(warehouse) / "receipts")
    # GX's Data Docs pages and index built once, not per department; the build runs beside the
    # marts and is waited for before the report, which links to it.
    with pipeline.data_docs_index_once(warehouse, background=True):
        if prepare is None:
            # Submitted the costliest first (the thread pool starts them in that order); the
            # summaries come back in department order, which everything after staging keeps.
            order = inbox_files.staging_order(inbox, period, department_codes())
            done = steps.wait([steps.submit(STAGE, **call, inbox=i, dept=d) for d in order])
            by_dept = {s["dept"]: s for s in done}
            staged = [by_dept[d] for d in department_codes()]
        else:
            staged, partitions = _stage_prepared(steps, pipeline, prepare, w, i, period, run_id)
        outcomes, receipts = _validate_and_decide(steps, call, staged, out)
    status = {s["dept"]: s["status"] for s in staged}
    status.update({o["dept"]: o["status"] for o in outcomes})
    accepted = sorted(d for d, st in status.items() if st == "accepted")
    rejected = sorted(d for d, st in status.items() if st == "rejected")

    try:
        marts, alerts, receipt_paths, report = _finish_period(
            steps, pipeline, call, outcomes, receipts, accepted, finish, out)
    finally:
        pipeline.wait_for_data_docs(warehouse)   # never left running once the period is over

    newly = runs.newly_monitored(warehouse, period) if marts else None
    summary = {
        "period": period, "run_id": run_id, "finished_for_a_stopped_run": finish,
        "departments": department_rows(staged, outcomes, runs.department_counts(warehouse, run_id, period)),
        "skipped": runs.skipped_files(warehouse, run_id, period),
        "accepted": accepted, "rejected": rejected,
        "unchanged": sorted(d for d, st in status.items() if st == "unchanged"),
        "missing": sorted(d for d, st in status.items() if st == "missing"),
        "rejection_messages": {o["dept"]: scrub(o["message"]) for o in outcomes if o["status"] == "rejected"},
        "blocking_failures": prefect_signals.blocking_failures(outcomes),
        "marts": {**{k: v for k, v in marts.items() if isinstance(v, (int, float, str)) and k != "period"},
                  **({"newly_monitored": newly} if newly is not None else {})},
        "periods_built": [str(p) for p in marts.get("periods_built", [])],
        "alerts": len(alerts), "receipts": receipt_paths, "report": report,
        "seconds": round(time.monotonic() - started, 2),
    }
    if prepare is not None:
        summary["partitions"] = partitions
    markdown, tables = render_summary(summary)
    steps.publish(markdown, tables, key=f"povwatch-{period}")
    return summary


def _finish_period(steps, pipeline: Pipeline, call: dict, outcomes: list[dict], receipts: dict,
                   accepted: list[str], finish: bool, out: str) -> tuple[dict, list, list, Any]:
    """Marts, alerts, the receipts left to write and the report, once the departments are
    decided (nothing when no department was decided and no stopped run is being finished)."""
    w, period, run_id, warehouse = call["warehouse"], call["period"], call["run_id"], Path(call["warehouse"])
    marts: dict = {}
    alerts: list[dict] = []
    receipt_paths: list[str] = []
    report = None
    if not (outcomes or finish):
        return marts, alerts, receipt_paths, report
    try:
        if accepted or (finish and period in runs.loaded_periods(warehouse)):
            marts = steps.call(MARTS, **call)
        notices = ([{"period": period, "notice": marts["policy_warning"],
                     "message": marts["policy_warning"], "severity": "warning"}]
                   if marts.get("policy_warning") else [])
        alerts = steps.call(ALERTS, pipeline=pipeline, warehouse=w, run_id=run_id,
                            outcomes=outcomes + notices)
    except Exception:
        _settle(steps, list(receipts.values()))   # the receipts under way end before it is raised
        raise
    # The departments decided in this run have their receipt under way; finishing a stopped
    # run, those it decided before it stopped get theirs now.
    earlier = (set(runs.decided_departments(warehouse, period)) - set(receipts)) if finish else set()
    receipts.update({d: steps.submit(RECEIPT, pipeline=pipeline, warehouse=w, period=period, dept=d,
                                     out_dir=out) for d in sorted(earlier)})
    to_receipt = sorted(receipts)
    receipt_paths = [r for r in steps.wait([receipts[d] for d in to_receipt]) if r]
    pipeline.wait_for_data_docs(warehouse)   # the report links to the Data Docs index
    report = steps.call(REPORT, pipeline=pipeline, warehouse=w, period=period)
    return marts, alerts, receipt_paths, report


def _validate_and_decide(steps, call: dict, staged: list[dict], out: str) -> tuple[list[dict], dict]:
    """Validate the staged departments; promote or reject each as soon as ITS validation is done,
    while the next departments validate; then start every decided department's receipt. GX
    validates one department at a time (its context is not thread-safe: suites._GX_LOCK), so
    the promotes of the departments done run beside it instead of all after the last
    validation. Departments rejected at staging (unreadable, a required column missing) are
    decided first.

    The receipts are written after the last decision, beside the marts, not beside the
    validations: a receipt is Python (xlsxwriter) and so is GX, which validation is bound to, so
    a receipt beside a validation only lengthened it; the marts run inside DuckDB, which leaves
    the GIL (and DuckDB runs on one thread during a run, so the other core is free). A receipt
    reads only its department's quarantine.rows and audit.extracts, which its decision completed
    and nothing later in the period writes (marts, alerts, the report).

    At most ``steps.slots`` steps run at once (the task runner's threads), and a free one goes to
    a decision, else the next validation: nothing waits in the runner's queue behind
    validations (it runs work first in, first out), and no thread sits waiting for another.

    Returns the outcomes, in the order of the sequential process (validated departments in
    department order, then those rejected at staging), and the receipt futures by department,
    running: the caller waits for them (:func:`_finish_period`). A step that fails stops the
    starting of others; those running are waited for (none left half-done), then the failure is
    raised: the period stays unfinished and the departments decided so far are as a run killed
    after them leaves them (whole, decided, their receipts written when the next run finishes
    the period)."""
    period = call["period"]
    refused = [s for s in staged if s["status"] == "rejected"]   # rejected at staging
    to_validate = [s for s in staged if s["status"] == "staged"]
    by_dept: dict[str, dict] = {}
    decided: list[str] = []
    to_decide: list[tuple[str, Step, dict]] = []
    waiting = list(to_validate)
    running: dict[Any, tuple[str, Any]] = {}
    for s in refused:
        by_dept[s["dept"]] = {"period": period, "dept": s["dept"], "status": "rejected",
                              "blocking_failed": True, "failures": [], "files": s["files"],
                              "message": s["message"]}
        to_decide.append((s["dept"], REJECT, {"message": s["message"]}))

    def start() -> None:
        while len(running) < steps.slots:
            if to_decide:
                dept, step, extra = to_decide.pop(0)
                running[steps.submit(step, **call, dept=dept, **extra)] = ("decision", dept)
            elif waiting:
                s = waiting.pop(0)
                running[steps.submit(VALIDATE, **call, dept=s["dept"])] = ("validation", s)
            else:
                return

    try:
        start()
        while running:
            done = next(iter(steps.as_completed(list(running))))
            kind, item = running.pop(done)
            result = done.result()   # a failed step raises here
            if kind == "validation":
                rejected = bool(result.get("blocking_failed"))
                by_dept[item["dept"]] = {**result, "status": "rejected" if rejected else "accepted",
                                         "files": item["files"],
                                         "message": result.get("message") or item["message"]}
                if rejected:
                    message = result.get("message") or "阻断性校验未通过 blocking expectation failed"
                    to_decide.append((item["dept"], REJECT, {"message": message}))
                else:
                    to_decide.append((item["dept"], PROMOTE, {}))
            else:
                decided.append(item)
            start()
    except Exception:
        _settle(steps, list(running))
        raise
    receipts = {dept: steps.submit(RECEIPT, pipeline=call["pipeline"], warehouse=call["warehouse"],
                                   period=period, dept=dept, out_dir=out) for dept in decided}
    order = [s["dept"] for s in to_validate] + [s["dept"] for s in refused]
    return [by_dept[d] for d in order], receipts


def _settle(steps, futures: list) -> None:
    """Wait for every future to end; the failure that stopped the caller is the one reported."""
    with contextlib.suppress(Exception):
        steps.wait(futures)


def _stage_prepared(steps, pipeline: Pipeline, prepare, w: str, i: str, period: str,
                    run_id: str) -> tuple[list[dict], list[dict]]:
    """Scale-out staging: check every department here (complete? unchanged?), send the files of
    the others to ``prepare`` (read -> conform per county, on the cluster), then load each
    department's parts here, the one writer. Returns the staging summaries in department order
    and the partition table."""
    # Scale-out runs only in the Prefect modes, where flows/scaleout.py (Prefect's county flow) is
    # already imported; imported here, not at the top, so that a local run does not import Prefect.
    from povwatch.flows.scaleout import partition_rows

    call = dict(pipeline=pipeline, warehouse=w, inbox=i, period=period, run_id=run_id)
    checked = steps.wait([steps.submit(CHECK, **call, dept=d) for d in department_codes()])
    todo = {c["dept"]: c["todo"] for c in checked if c["status"] == "to_prepare"}
    parts = prepare(inbox=i, period=period, warehouse=w, run_id=run_id, extracts=todo) if todo else []
    by_dept: dict[str, list] = {d: [] for d in todo}
    for part in parts:
        by_dept[part.dept].append(part)
    loaded = steps.wait([steps.submit(STAGE, **call, dept=d, parts=by_dept[d]) for d in todo])
    done = {s["dept"]: s for s in loaded}
    return [done.get(c["dept"], c) for c in checked], partition_rows(parts)


# --------------------------------------------------------------------------------------------
# A run: one period, or every pending or unfinished period in order; late periods replay the marts


def check_run_request(inbox: Path, period: str | None) -> None:
    """Refuse, before anything is written, an inbox that is a period or department folder and a
    period that is not YYYY-MM (tasks.ingest.inbox.BadName, a message for the user)."""
    if not Path(inbox).is_dir():   # a deployment's inbox parameter pointing nowhere: not "nothing new"
        raise FileNotFoundError(f"收件箱不存在：{inbox}（检查 --inbox、部署的 inbox 参数或 POVWATCH_INBOX）"
                                f" / inbox not found: {inbox}")
    inside = inbox_files.looks_like_inside(inbox)
    if inside:
        raise inbox_files.BadName(inside)
    if period is not None:
        inbox_files.check_period(period)


def execute_run(steps, pipeline: Pipeline, inbox: Path, warehouse: Path, period: str | None,
                run_id: str, run_period: Callable[..., dict], flow_run_id: str | None = None,
                lock_timeout: float | None = None) -> dict:
    """Hold the warehouse lock, record the run in audit.runs, run its periods in order."""
    inbox, warehouse = Path(inbox), Path(warehouse)
    check_run_request(inbox, period)
    with warehouse_lock(warehouse, timeout=lock_timeout, what=f"povwatch run {run_id}"):
        check_warehouse(warehouse)   # a damaged file is refused before anything writes to it
        with held_open(warehouse), run_gc_thresholds():
            return on_roomy_frame_stack(_run_periods, steps, pipeline, inbox, warehouse, period,
                                        run_id, run_period, flow_run_id)


def _run_periods(steps, pipeline: Pipeline, inbox: Path, warehouse: Path, period: str | None,
                 run_id: str, run_period: Callable[..., dict], flow_run_id: str | None) -> dict:
    """execute_run under the lock, the warehouse open."""
    periods, resumed = _periods_to_run(inbox, warehouse, period, run_id)
    if periods:
        pipeline.warm_up_validation(warehouse)
    already = runs.loaded_periods(warehouse)
    late = [p for p in periods if already and p < already[-1] and p not in already]
    runs.record_run_start(warehouse, run_id, inbox, periods, flow_run_id)
    try:
        results = [run_period(inbox=str(inbox), period=p, warehouse=str(warehouse), run_id=run_id,
                              finish=p in resumed) for p in periods]
    except BaseException as exc:   # Ctrl-C too: the run is recorded as stopped, its periods unfinished
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        runs.record_run_end(warehouse, run_id, reason, scrub(f"{type(exc).__name__}: {exc}")[:1000])
        raise
    # A period delivered late: build_marts rewrote the per-period marts of every later built
    # period and replayed the history marts (ledger, events, ranking) in order.
    replayed = sorted({p for r in results for p in r.get("periods_built", [])} - set(periods))
    rejected = [f"{r['period']} {d}" for r in results for d in r["rejected"]]
    summary = {"run_id": run_id, "periods": periods, "results": results, "rejected": rejected,
               "late": late, "replayed": replayed, "resumed": resumed,
               "inbox_problems": inbox_files.inbox_problems(inbox),
               "status": "rejected_extracts" if rejected else "completed",
               "message": run_message(periods, rejected, late, resumed)}
    runs.record_run_end(warehouse, run_id, summary["status"], summary["message"])
    return summary


def _periods_to_run(inbox: Path, warehouse: Path, period: str | None, run_id: str) -> tuple[list, list]:
    """The periods asked for (one), or every period with a new or changed file and every period a
    stopped run left unfinished; and which of them are unfinished (run to the end again).

    A run killed mid-way (SIGKILL, power cut) is still marked running: it becomes failed first,
    and like every run that stopped (Ctrl-C, a failure after staging) leaves its periods unfinished
    until a run finishes them."""
    runs.take_over_interrupted_runs(warehouse, run_id)
    unfinished = [p for p in runs.unfinished_periods(warehouse) if inbox_files.PERIOD_RE.match(p)]
    if period:
        periods = [period]
    else:
        periods = sorted(set(inbox_files.pending_periods(inbox, runs.loaded_hashes(warehouse),
                                                         inbox_files.hash_cache_path(warehouse)))
                         | set(unfinished))
    return periods, [p for p in periods if p in unfinished]

"""What a run tells Prefect beyond its lifecycle: the state's name, events, log lines.

* A period or run with a rejected extract ends in a Completed state named ``部分退回`` (partly
  returned), not a plain Completed: the UI, the API and automations see the difference.
* One Prefect event per rejected extract (``povwatch.extract.rejected``, resource
  ``povwatch.extract.<period>.<dept>``) and per failed blocking expectation
  (``povwatch.expectation.failed``, resource ``povwatch.expectation.<dept>.<name>``), related
  to the flow run: an automation can trigger on either.
* The period's counts per department and the rejection reasons, as log lines of the flow run.

Everything here goes through the privacy rule (``scrub``): Prefect is outside the warehouse.
Only called inside a Prefect flow run (local mode has no Prefect to tell), except
``blocking_failures``, which the run summary of both modes uses: so Prefect is imported inside
the functions that talk to it, and importing this module costs a local run nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from povwatch.tasks.core.privacy import scrub

if TYPE_CHECKING:
    from prefect.states import State

PARTLY_RETURNED = "部分退回"
EXTRACT_REJECTED = "povwatch.extract.rejected"
EXPECTATION_FAILED = "povwatch.expectation.failed"


def finish_period(summary: dict) -> Any:
    """Log and emit what the period did; its final state (named when an extract was rejected)."""
    from prefect.states import Completed

    log_period(summary)
    emit_period_events(summary)
    if summary["rejected"]:
        return Completed(name=PARTLY_RETURNED, data=summary,
                         message=scrub(f"{summary['period']} 退回 rejected: {', '.join(summary['rejected'])}"))
    return summary


def run_state(summary: dict) -> State:
    """The run's final state: ``部分退回`` when any period rejected an extract. Its log says, per
    period, what was accepted and what was returned (the period sub-flows' logs have the rows)."""
    from prefect import get_run_logger
    from prefect.states import Completed

    logger = get_run_logger()
    for result in summary["results"]:
        logger.info(scrub(f"{result['period']}: 接收 accepted {len(result['accepted'])}"
                          f"（{', '.join(result['accepted']) or '—'}），退回 rejected {len(result['rejected'])}"
                          f"（{', '.join(result['rejected']) or '—'}），未变化 unchanged {len(result['unchanged'])}，"
                          f"未报送 missing {len(result['missing'])}"))
    if summary["rejected"]:
        return Completed(name=PARTLY_RETURNED, message=scrub(summary["message"]), data=summary)
    return Completed(message=scrub(summary["message"]), data=summary)


def log_period(summary: dict) -> None:
    from prefect import get_run_logger

    logger = get_run_logger()
    for row in summary["departments"]:
        logger.info(scrub(f"{summary['period']} {row['dept']}: {row['status']}, 文件 files {row['files']}, "
                          f"读入 read {row['rows_read']}, 入库 loaded {row['rows_loaded']}, "
                          f"隔离 quarantined {row['rows_quarantined']}"))
    for dept, message in summary["rejection_messages"].items():
        logger.warning(scrub(f"{summary['period']} {dept} 退回 rejected: {message}"))


def emit_period_events(summary: dict) -> None:
    from prefect.events import emit_event

    related = _flow_run_related()
    period = summary["period"]
    for dept in summary["rejected"]:
        emit_event(event=EXTRACT_REJECTED,
                   resource={"prefect.resource.id": f"povwatch.extract.{period}.{dept}",
                             "prefect.resource.name": f"{period} {dept}", "povwatch.period": period,
                             "povwatch.dept": dept},
                   related=related,
                   payload={"reason": scrub(summary["rejection_messages"].get(dept, ""))[:1000],
                            "run_id": summary["run_id"]})
    for dept, failures in summary.get("blocking_failures", {}).items():
        for failure in failures:
            emit_event(event=EXPECTATION_FAILED,
                       resource={"prefect.resource.id": f"povwatch.expectation.{dept}.{failure['expectation']}",
                                 "prefect.resource.name": f"{dept} {failure['expectation']}",
                                 "povwatch.period": period, "povwatch.dept": dept},
                       related=related,
                       payload={"description": scrub(str(failure.get("description") or "")),
                                "unexpected_count": failure.get("unexpected_count"),
                                "run_id": summary["run_id"]})


def blocking_failures(outcomes: list[dict]) -> dict[str, list[dict]]:
    """The failed blocking expectations of each department (what the events name)."""
    found = {}
    for outcome in outcomes:
        failed = [_failure(f) for f in outcome.get("failures") or []
                  if (f.get("blocking") if isinstance(f, dict) else outcome.get("blocking_failed"))]
        if failed:
            found[outcome["dept"]] = failed
    return found


def _failure(failure: dict | str) -> dict:
    """A failed expectation as the event names it (a bare name when that is all there is)."""
    if not isinstance(failure, dict):
        return {"expectation": str(failure), "description": None, "unexpected_count": None}
    return {k: failure.get(k) for k in ("expectation", "description", "unexpected_count")}


def _flow_run_related() -> list[dict[str, str]]:
    from prefect.runtime import flow_run

    if not flow_run.id:
        return []
    return [{"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.role": "flow-run",
             "prefect.resource.name": str(flow_run.name), "povwatch.flow": str(flow_run.flow_name)}]

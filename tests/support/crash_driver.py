"""``povwatch`` with crash checkpoints around the pipeline's steps, for tests/test_crash_safety.py.

Usage: ``python -m tests.support.crash_driver run --inbox DIR --warehouse FILE`` with
``POVWATCH_TEST_KILL_AT=<stage>[#n]`` (see tests/support/testhooks.py). The steps of tasks/ are wrapped
here, in the test's own process, so that the modules under test stay untouched:

==================  =====================================================================
stage               where the process dies
==================  =====================================================================
``stage-txn``       inside a department's staging transaction, before its COMMIT
``staged``          after a department's extract was staged (pending + audit 'staged')
``validate``        before a department's validation
``promote-txn``     inside a promote/reject transaction, before its COMMIT
``promoted``        after a department was promoted to staging
``marts-txn``       inside the marts transaction, before the n-th model runs
``marts-built``     after the marts committed, before alerts, receipts and the report
``report``          before the report is written
==================  =====================================================================
"""
from __future__ import annotations

import functools

from tests.support.testhooks import checkpoint


def _wrap(module, name: str, before: str | None = None, after: str | None = None) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if before:
            checkpoint(before)
        result = original(*args, **kwargs)
        if after:
            checkpoint(after)
        return result

    setattr(module, name, wrapper)


def install() -> None:
    from povwatch.tasks.ingest import load as ingest
    from povwatch.tasks.marts import build as marts
    from povwatch.tasks.office import report
    from povwatch.tasks.validate import suites as validate

    _wrap(ingest, "_write_audit", before="stage-txn")
    _wrap(ingest, "stage_extract", after="staged")
    _wrap(validate, "validate_extract", before="validate")
    _wrap(ingest, "_recount", before="promote-txn")
    _wrap(ingest, "promote_extract", after="promoted")
    _wrap(marts, "_run_model", before="marts-txn")
    _wrap(marts, "build_marts", after="marts-built")
    _wrap(report, "write_report", before="report")


if __name__ == "__main__":
    install()
    from povwatch.flows.cli import main

    main()

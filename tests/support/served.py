"""``povwatch serve`` over fake business steps, for tests/test_deployments.py.

Usage: ``python -m tests.support.served --warehouse FILE --inbox DIR``. Serves flows of the
product's names (``povwatch-run``, ``povwatch-inbox-watch``) that run the product's own flow
functions with a Pipeline of tests/support/fakes.py, through the product's ``serve`` (the same
deployments, schedules and failure Automation). A served flow run is a subprocess that loads its
flow from this file: nothing in the product names a fakes module, and nothing is swapped in
``sys.modules``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow

from povwatch.flows.deployments import ServedFlows, inbox_watch, serve
from povwatch.flows.pipeline import inbox_flow
from tests.support.fakes import Fakes

FAKES = Fakes()


@flow(name="povwatch-run", log_prints=True)
def fake_run_flow(inbox: str, warehouse: str, period: str | None = None, run_id: str | None = None):
    return inbox_flow.fn(inbox=inbox, warehouse=warehouse, period=period, run_id=run_id,
                         pipeline=FAKES.pipeline)


@flow(name="povwatch-inbox-watch", log_prints=True)
def fake_watch_flow(inbox: str, warehouse: str):
    return inbox_watch.fn(inbox=inbox, warehouse=warehouse, pipeline=FAKES.pipeline)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--inbox", required=True)
    args = parser.parse_args()
    serve(Path(args.warehouse), args.inbox,
          flows=ServedFlows(run=fake_run_flow, watch=fake_watch_flow))

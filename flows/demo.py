"""``povwatch demo``: a demo county generated into var/demo-inbox, run end to end, summarised.

Works on a fresh install with no configuration: without ``PREFECT_API_URL`` the pipeline runs in
local mode (the same steps on a thread pool, no Prefect server; see flows/runners.py). With a
Prefect server configured, the demo is a normal flow run you can open in the UI.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from povwatch.flows.run_command import run_inbox
from povwatch.tasks.office.demo_summary import flagged

DEMO_PERIOD = "2020-06"


def demo_inbox(warehouse: Path) -> Path:
    return Path(warehouse).parent / "demo-inbox"


def run_demo(warehouse: Path, households: int = 600, periods: int = 3, echo=print) -> int:
    from povwatch.tasks.synth.generate import generate

    warehouse = Path(warehouse)
    inbox = demo_inbox(warehouse)
    if inbox.exists():
        shutil.rmtree(inbox)   # same seed: same bytes, so a second demo finds every extract unchanged
    echo(f"生成演示县数据 / generating the demo county: {inbox}")
    echo(generate(inbox, period=DEMO_PERIOD, periods=periods, households=households))
    code = run_inbox(inbox, period=None, warehouse=warehouse, echo=echo)
    if code != 1:
        echo(flagged(warehouse))
    return code

"""Crash-test hooks: named checkpoints at the pipeline's stage boundaries.

``checkpoint(stage)`` does nothing unless a test asks for it through the environment, so it costs
one dictionary lookup in production. tests/test_crash_safety.py uses it to kill the pipeline
process at each stage of a run and then checks that the warehouse holds either the previous or the
new data, never half.

- ``POVWATCH_TEST_KILL_AT=<stage>``: the process SIGKILLs itself on reaching the stage (as a power
  cut or the OOM killer would: no cleanup, no ``finally``, no atexit).
- ``POVWATCH_TEST_PAUSE_AT=<stage>``: the process writes ``<stage>`` to the file named by
  ``POVWATCH_TEST_PAUSE_SIGNAL`` (if set) and blocks, so that a test can kill it from outside, or
  act while it waits (another run, a reader); with ``POVWATCH_TEST_PAUSE_SECONDS=<s>`` it goes on
  after that many seconds.

Several stages may be named, comma-separated. A stage may also be named ``<stage>#<n>`` to act
only the n-th time (1-based) the checkpoint is reached in the process.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

KILL_ENV = "POVWATCH_TEST_KILL_AT"
PAUSE_ENV = "POVWATCH_TEST_PAUSE_AT"
SIGNAL_ENV = "POVWATCH_TEST_PAUSE_SIGNAL"
SECONDS_ENV = "POVWATCH_TEST_PAUSE_SECONDS"

_seen: Counter[str] = Counter()
_lock = threading.Lock()


def _named(env: str, stage: str, count: int) -> bool:
    wanted = os.environ.get(env)
    if not wanted:
        return False
    for item in wanted.split(","):
        name, _, nth = item.strip().partition("#")
        if name == stage and (not nth or int(nth) == count):
            return True
    return False


def checkpoint(stage: str) -> None:
    """Mark a stage boundary; a test may kill or pause the process here."""
    if KILL_ENV not in os.environ and PAUSE_ENV not in os.environ:
        return
    with _lock:
        _seen[stage] += 1
        count = _seen[stage]
    if _named(KILL_ENV, stage, count):
        os.kill(os.getpid(), signal.SIGKILL)
    if _named(PAUSE_ENV, stage, count):
        signal_file = os.environ.get(SIGNAL_ENV)
        if signal_file:
            with open(signal_file, "a", encoding="utf-8") as f:
                f.write(stage + "\n")
        seconds = os.environ.get(SECONDS_ENV)
        if seconds:
            time.sleep(float(seconds))
            return
        while True:            # until killed
            time.sleep(3600)

"""Process-level settings for the span of a monthly run.

Python's cyclic garbage collector runs a young-generation pass every 700 net allocations by
default. A run allocates tens of millions of short-lived objects (GX builds and serialises
configuration dicts for every expectation, polars and DuckDB hand back Python rows), almost none
of them in reference cycles, so the collector spent ~4.5 % of a size-M run's CPU (perf:
``gc_collect_main``, ``visit_decref``, ``visit_reachable``) finding nothing to free. Raising the
young-generation threshold for the run cut 1.0–1.4 s of CPU and ~1 s of wall time at M
(docs/performance.md); memory in cycles is still freed, only in larger batches.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

RUN_GC_THRESHOLDS = (50_000, 20, 20)


@contextmanager
def run_gc_thresholds() -> Iterator[None]:
    """Collect less often while a run is going on; the caller's thresholds come back after it."""
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)

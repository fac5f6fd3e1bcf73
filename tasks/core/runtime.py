"""Process-level settings for the span of a monthly run, and for the exit of a command.

Python's cyclic garbage collector runs a young-generation pass every 700 net allocations by
default. A run allocates tens of millions of short-lived objects (GX builds and serialises
configuration dicts for every expectation, polars and DuckDB hand back Python rows), almost none
of them in reference cycles, so the collector spent ~4.5 % of a size-M run's CPU (perf:
``gc_collect_main``, ``visit_decref``, ``visit_reachable``) finding nothing to free. Raising the
young-generation threshold for the run cut 1.0–1.4 s of CPU and ~1 s of wall time at M
(docs/performance.md); memory in cycles is still freed, only in larger batches.
"""
from __future__ import annotations

import atexit
import gc
import os
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


_FREEZE_AT_EXIT_REGISTERED = False


def no_cycle_collection_at_exit() -> None:
    """Spare the interpreter's shutdown its full collections over every loaded module.

    When a command ends, Python's finalisation runs full garbage collections while it clears the
    modules; with GX, pandas, SQLAlchemy and DuckDB loaded that walk cost 0.85 s of CPU after the
    run had already finished (7 % of a size-S month; perf: ``gc_collect_main`` in the last second
    of the process). ``gc.freeze()`` at exit moves the surviving objects out of the collector's
    reach: their memory goes back to the system with the process, as it would anyway, and the
    exit costs ~0.07 s. Registered first, an ``atexit`` handler runs last, after every library's
    own exit handler (Prefect's, logging's) has flushed what it holds.
    """
    global _FREEZE_AT_EXIT_REGISTERED
    if not _FREEZE_AT_EXIT_REGISTERED:
        atexit.register(gc.freeze)
        _FREEZE_AT_EXIT_REGISTERED = True


# polars' own thread pool, sized when polars is first imported: a run stages four departments at
# once on their own threads (POVWATCH_MAX_WORKERS), each handing polars its work, so polars'
# pool on top of them only oversubscribed the cores. Size M, whole runs alternating in separate
# processes: CPU 21.5 / 24.0 / 25.2 (median of 3) -> 20.4 / 20.6 / 24.7 s, ingest ~1 s less,
# wall not longer (docs/performance.md). A POLARS_MAX_THREADS the user set is left as it is.
POLARS_THREADS_FOR_RUNS = "1"


def size_library_thread_pools() -> None:
    """Called before polars is imported (povwatch.tasks' package import)."""
    os.environ.setdefault("POLARS_MAX_THREADS", POLARS_THREADS_FOR_RUNS)

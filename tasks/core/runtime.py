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
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

T = TypeVar("T")

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


# --------------------------------------------------------------------------------------------
# Python's frame stack, in chunks that are not handed back and forth to the kernel

# CPython (3.11 on) keeps a thread's frames in 16 kB chunks of memory mapped from the kernel one by
# one: a call that does not fit in the current chunk maps a new one, and returning from the first
# frame of a chunk unmaps it. Code whose call depth goes up and down across a chunk's end maps and
# unmaps a chunk at every crossing — GX's import on the warm-up thread did so 23,000 times at
# size M (strace: mmap/munmap of 16,384 bytes), each crossing a system call, page faults on the
# fresh pages and, with other threads running, a TLB shootdown across the cores. A frame that
# declares a large value stack makes the chunk it lands in large, and every frame called below it
# then fits in that one chunk: GX's import on a thread 1.89 / 1.89 / 1.92 -> 1.86 / 1.62 / 1.62 s
# of CPU, minor page faults 65,600 -> 30,500 (docs/performance.md). The value stack's space is
# never written, so its pages are never faulted in; the chunk is mapped once per call
# (~15 microseconds). On a Python that keeps frames elsewhere it is only a call.
_ROOMY_FRAME_WORDS = (512 * 1024) // 8   # a 1 MB chunk: ~512 kB below the frame for the calls


def _trampoline(fn, args, kwargs):
    return fn(*args, **kwargs)


_roomy_trampoline = types.FunctionType(
    _trampoline.__code__.replace(co_stacksize=_ROOMY_FRAME_WORDS), _trampoline.__globals__,
    "roomy_frame_stack")


def on_roomy_frame_stack(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with the calls below it on one large frame-stack chunk (above).
    For the entry point of a thread's work: a step on the run's thread pool, the GX warm-up."""
    return _roomy_trampoline(fn, args, kwargs)

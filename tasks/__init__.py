"""The business functions of a run (ingest, validate, marts, office outputs), paths in, small
results out; flows/ orchestrates them."""
from povwatch.tasks.core.runtime import size_library_thread_pools

size_library_thread_pools()   # before any task module imports polars (tasks/core/runtime.py)

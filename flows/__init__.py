"""The Prefect flows, the local runner and the command line (docs/orchestration.md)."""
from povwatch.tasks.core.runtime import size_library_thread_pools

size_library_thread_pools()   # before anything below imports polars

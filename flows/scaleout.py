"""Scale-out over counties: read -> conform of every (department, county) partition on Dask,
landed as Parquet under ``tasks.ingest.load.lake_root(warehouse)/period=P/dept=D/county=C/``.

Only this runs on the cluster (prefect-dask's DaskTaskRunner, set by POVWATCH_DASK_ADDRESS or
POVWATCH_TASK_RUNNER=dask). Each task is ``tasks.ingest.load.prepare_part`` on one department's files
of one county: paths in, a small picklable ``PreparedPart`` out (per-file counts, the Parquet
paths it wrote, the worker it ran on); it opens no DuckDB file (DuckDB allows one writing process
per file, and Dask workers are processes). The period flow, the one writer, runs on the thread pool
in the flow's process: it loads those partitions into DuckDB (``tasks.ingest.load.load_parts``, no
re-reading of the delivered files), validates, promotes and builds the marts (flows/pipeline.py).

A county is the file's county: the 6-digit code in the generator's multi-county file names
(``<dept>_<county>_<period>...``); files without one form the part ``all``.

Known difference from the thread-pool path: conform checks duplicates within what it is given, so
the identical row delivered in two counties' files is no longer caught at conform when the
counties are conformed apart; the validation suites' uniqueness checks still run over the whole
loaded extract (docs/orchestration.md).
"""
from __future__ import annotations

import re
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_table_artifact
from prefect.futures import wait

from povwatch.tasks.ingest.load import lake_root, prepare_part

_COUNTY_IN_NAME = re.compile(r"_(\d{6})(?:_|$)")
PARTITION_COLUMNS = ("dept", "county", "files", "rows_read", "rows_loaded", "rows_quarantined", "worker")


def county_of(path: Path | str) -> str | None:
    m = _COUNTY_IN_NAME.search(Path(path).stem)
    return m.group(1) if m else None


def county_parts(files: list[Path | str]) -> dict[str, list[str]]:
    """county -> that county's files (in the given order); ``all`` for files naming no county."""
    parts: dict[str, list[str]] = {}
    for f in files:
        parts.setdefault(county_of(f) or "all", []).append(str(f))
    return parts


@task(name="prepare-county", task_run_name="prepare-{period}-{dept}-{part}")
def prepare_county(inbox: str, period: str, dept: str, part: str, files: list[str], lake: str,
                   token: str):
    """Read and conform one department's files of one county; write its Parquet partition."""
    return prepare_part(Path(inbox), period, dept, [Path(f) for f in files], Path(lake), part, token)


def partition_rows(parts: list) -> list[dict]:
    """The ``povwatch-<period>-partitions`` table: one row per (department, county) partition."""
    return [{"dept": p.dept, "county": p.part, "files": len(p.files),
             "rows_read": sum(f.rows_read for f in p.files),
             "rows_loaded": sum(f.rows_loaded for f in p.files),
             "rows_quarantined": sum(f.rows_quarantined for f in p.files),
             "worker": p.worker} for p in parts]


@flow(name="povwatch-prepare-counties", flow_run_name="{period}", log_prints=True)
def prepare_counties_flow(inbox: str, period: str, warehouse: str, run_id: str,
                          extracts: dict[str, list[str]]) -> list:
    """Every (department, county) partition of the departments in ``extracts`` (dept -> files)
    through read -> conform in parallel on the flow's task runner; returns the PreparedParts."""
    lake = str(lake_root(Path(warehouse)))
    futures = [prepare_county.submit(inbox=inbox, period=period, dept=dept, part=part, files=files,
                                     lake=lake, token=run_id)
               for dept, dept_files in extracts.items()
               for part, files in county_parts(dept_files).items()]
    wait(futures)
    parts = [f.result() for f in futures]
    if parts:
        create_table_artifact(table=partition_rows(parts), key=f"povwatch-{period}-partitions",
                              description="按县分区 per-county partitions (read → conform, Parquet)")
    return parts

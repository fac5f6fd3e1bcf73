"""Scale-out over counties: read -> conform of every (department, county) partition in parallel,
landed as Parquet under ``<warehouse folder>/parquet/period=P/dept=D/county=C/``.

This is what runs on Dask (prefect-dask's DaskTaskRunner, set by POVWATCH_DASK_ADDRESS or
POVWATCH_TASK_RUNNER=dask): the tasks take paths and return small dicts, touch no DuckDB file
(DuckDB allows one writing process per file, and Dask workers are processes), and each writes its
own partition. The one writer, the period flow in the flow's process, then loads, validates and
builds the marts.

What is real and what is not yet (docs/orchestration.md): the partitions are real conformed
frames (typed, repaired identifiers, lineage columns), written by the same ``tasks.read`` and
``tasks.conform`` code the loader uses, and DuckDB can query them directly
(``read_parquet('.../parquet/**/*.parquet', hive_partitioning=true)``). The loader
(``tasks.ingest.stage_extract``) still reads the delivered files itself rather than these
partitions, so on one machine the Dask pass is extra work; loading from the partitions is the
next step when a province's volume needs it.

A county is the file's county: the 6-digit code in the generator's multi-county file names
(``<dept>_<county>_<period>...``), else the first 6 digits of the rows' ``village_code``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from prefect import flow, task

from flows.pipeline import extract_files

_COUNTY_IN_NAME = re.compile(r"_(\d{6})(?:_|$)")


def parquet_root(warehouse: Path | str) -> Path:
    return Path(warehouse).parent / "parquet"


def county_of(path: Path) -> str | None:
    m = _COUNTY_IN_NAME.search(Path(path).stem)
    return m.group(1) if m else None


def county_groups(inbox: Path, period: str) -> dict[tuple[str, str], list[str]]:
    """(dept, county) -> files of that department and county; ``county="all"`` when unnamed."""
    groups: dict[tuple[str, str], list[str]] = {}
    base = Path(inbox) / period
    if not base.is_dir():
        return groups
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in extract_files(folder):
            groups.setdefault((folder.name, county_of(f) or "all"), []).append(str(f))
    return groups


def _where() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # noqa: BLE001 - not on a Dask worker
        return f"pid-{os.getpid()}"


@task(name="conform-county", task_run_name="conform-{period}-{dept}-{county}")
def conform_county(inbox: str, period: str, dept: str, county: str, files: list[str],
                   out_root: str) -> dict:
    """Read and conform one department's files of one county; write them as one Parquet partition."""
    import polars as pl

    from tasks.conform import conform
    from tasks.contracts import load_contract
    from tasks.read import ReadError, read_file

    contract = load_contract(dept)
    frames, read, quarantined, errors = [], 0, 0, []
    for f in files:
        path = Path(f)
        try:
            got = read_file(path, contract)
        except ReadError as exc:
            errors.append(f"{path.name}: {exc}")
            continue
        raw = got.frame.with_columns(pl.lit(str(path.relative_to(inbox))).alias("source_file"))
        result = conform(raw, contract)
        read += got.rows_read
        quarantined += result.quarantined.height
        frames.append(result.staged)
    out = Path(out_root) / f"period={period}" / f"dept={dept}" / f"county={county}"
    out.mkdir(parents=True, exist_ok=True)
    conformed = 0
    if frames:
        frame = pl.concat(frames, how="diagonal_relaxed")
        village = "village_code" in frame.columns
        if village and county == "all":
            frame = frame.with_columns(pl.col("village_code").str.slice(0, 6).alias("county_code"))
        frame.write_parquet(out / "part-0.parquet")
        conformed = frame.height
    return {"period": period, "dept": dept, "county": county, "files": len(files), "rows_read": read,
            "rows_conformed": conformed, "rows_quarantined": quarantined, "errors": errors,
            "partition": str(out), "worker": _where()}


@flow(name="povwatch-conform-counties", flow_run_name="{period}", log_prints=True)
def conform_counties_flow(inbox: str, period: str, warehouse: str) -> list[dict]:
    """Every (department, county) partition of a period through read -> conform, in parallel."""
    from prefect.artifacts import create_table_artifact
    from prefect.futures import wait

    out_root = str(parquet_root(warehouse))
    futures = [conform_county.submit(inbox=inbox, period=period, dept=dept, county=county,
                                     files=files, out_root=out_root)
               for (dept, county), files in county_groups(Path(inbox), period).items()]
    wait(futures)
    results = [f.result() for f in futures]
    if results:
        create_table_artifact(
            table=[{k: r[k] for k in ("dept", "county", "files", "rows_read", "rows_conformed",
                                      "rows_quarantined", "worker")} for r in results],
            key=f"povwatch-{period}-partitions", description="按县分区 per-county partitions")
    return results

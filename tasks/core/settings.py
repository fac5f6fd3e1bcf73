"""Where things live, in one place.

Configuration is looked up in a fixed order (as dlt does): an explicit argument, then the
environment, then a default. The default needs no configuration and no server: an embedded
DuckDB file under ``./var`` of the working folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The package's own folders: <povwatch>/warehouse and <povwatch>/expectations, wherever it is
# installed (the repository root in an editable install, site-packages/povwatch in a wheel).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
WAREHOUSE_DIR = PACKAGE_ROOT / "warehouse"
CONTRACTS_DIR = WAREHOUSE_DIR / "contracts"
MODELS_DIR = WAREHOUSE_DIR / "models"
POLICY_DIR = WAREHOUSE_DIR / "policy"
EXPECTATIONS_DIR = PACKAGE_ROOT / "expectations"

DEFAULT_WAREHOUSE = Path("var") / "povwatch.duckdb"


def warehouse_path(explicit: str | os.PathLike | None = None) -> Path:
    """--warehouse, else POVWATCH_WAREHOUSE, else ./var/povwatch.duckdb."""
    chosen = explicit or os.environ.get("POVWATCH_WAREHOUSE") or DEFAULT_WAREHOUSE
    return Path(chosen).expanduser().resolve()


def output_dir(warehouse: Path) -> Path:
    """Reports, receipts, exports and GX Data Docs go beside the warehouse file.

    POVWATCH_OUTPUT overrides it. Everything written here leaves the warehouse, so it must
    never hold a full identity number.
    """
    chosen = os.environ.get("POVWATCH_OUTPUT")
    return Path(chosen).resolve() if chosen else warehouse.parent / "output"


@dataclass(frozen=True)
class RunnerSettings:
    """How flows run their tasks: a thread pool by default, Dask when an address is set."""

    task_runner: str = os.environ.get("POVWATCH_TASK_RUNNER", "thread")
    dask_address: str | None = os.environ.get("POVWATCH_DASK_ADDRESS") or None
    max_workers: int = int(os.environ.get("POVWATCH_MAX_WORKERS", "4"))

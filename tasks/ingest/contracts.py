"""The departments' data contract, loaded from ``warehouse/contracts/<dept>.toml``.

A department is data, not code: its headers, synonyms, types, required columns and code lists
live in one TOML file each (docs/contract.md). Adding a department is a new TOML file, a new
expectation suite and the SQL that reads it, no Python (docs/new-department.md).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from povwatch.tasks.core.settings import load_settings

# Column types of the contract and the DuckDB type each is staged as.
STAGED_TYPES = {
    "text": "VARCHAR",
    "id": "VARCHAR",        # repaired 18-character identity number
    "village": "VARCHAR",   # 12-digit village code
    "code": "VARCHAR",
    "int": "INTEGER",
    "money": "DECIMAL(14,2)",
    "percent": "DOUBLE",
    "number": "DOUBLE",     # a plain measure (area in m²)
    "date": "DATE",
    "month": "DATE",        # first day of the month
    "bool": "BOOLEAN",
}

# Lineage columns every staged table carries, after the contract's columns.
LINEAGE_COLUMNS = {
    "period": "VARCHAR",        # YYYY-MM the extract describes
    "run_id": "VARCHAR",
    "source_file": "VARCHAR",   # path relative to the inbox
    "source_row": "INTEGER",    # the row as the clerk sees it (Excel row / editor line)
    "repairs": "VARCHAR",       # repairs applied, e.g. "id_number:15位升18位"; NULL when none
}


@dataclass(frozen=True)
class Column:
    name: str
    header: str
    type: str
    required: bool = False
    synonyms: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    required_when: str | None = None
    mask: bool = False        # personal text (a plate): only its ends leave the warehouse
    sensitive: bool = False   # health / disability detail: never shown next to a name outside

    @property
    def headers(self) -> tuple[str, ...]:
        """Every header accepted for this column: the name, then its synonyms."""
        return (self.header, *self.synonyms)

    @property
    def staged_type(self) -> str:
        return STAGED_TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    code: str
    name: str
    grain: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()
    certificate: dict | None = None
    # "monthly": expected every period; "when_available": comes when it comes (the asset
    # registers, quarterly in practice) and its last accepted snapshot stands until the next
    delivery: str = "monthly"
    # A header row and no data rows is a genuine snapshot (no cancellations yet this year, no
    # vehicles registered): accepted and recorded as empty. Otherwise an empty file is a mistake
    # and rejected.
    may_be_empty: bool = False

    @property
    def monthly(self) -> bool:
        return self.delivery == "monthly"

    @property
    def required(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def staged_ddl_columns(self) -> list[tuple[str, str]]:
        """(name, DuckDB type) of the staged table: contract columns, then lineage."""
        return [(c.name, c.staged_type) for c in self.columns] + list(LINEAGE_COLUMNS.items())


def _column(raw: dict) -> Column:
    return Column(
        name=raw["name"],
        header=raw["header"],
        type=raw["type"],
        required=raw.get("required", False),
        synonyms=tuple(raw.get("synonyms", ())),
        codes=tuple(raw.get("codes", ())),
        min=raw.get("min"),
        max=raw.get("max"),
        aliases=dict(raw.get("aliases", {})),
        required_when=raw.get("required_when"),
        mask=raw.get("mask", False),
        sensitive=raw.get("sensitive", False),
    )


def load_contract(dept: str) -> Contract:
    """The department's contract: the county folder's copy, else the package's."""
    return _load_contract(_contract_file(load_settings().contracts_dir, dept))


def _contract_file(contracts_dir: Path, dept: str) -> Path:
    return contracts_dir / f"{dept}.toml"


@lru_cache(maxsize=None)
def _load_contract(path: Path) -> Contract:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return Contract(
        code=raw["code"],
        name=raw["name"],
        grain=raw["grain"],
        columns=tuple(_column(c) for c in raw["columns"]),
        unique=tuple(tuple(u) for u in raw.get("unique", ())),
        certificate=raw.get("certificate"),
        delivery=raw.get("delivery", "monthly"),
        may_be_empty=bool(raw.get("may_be_empty", False)),
    )


def department_codes() -> tuple[str, ...]:
    """Every department with a contract, in a stable order: the contracts' ``position`` (the
    spec's order for the founding twelve), then any contract without one by code. A new
    department is its TOML file: nothing here lists departments."""
    return _department_codes(load_settings().contracts_dir)


@lru_cache(maxsize=None)
def _department_codes(contracts_dir: Path) -> tuple[str, ...]:
    def position(path) -> tuple[int, str]:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return (raw.get("position", 1_000), path.stem)
    return tuple(p.stem for p in sorted(contracts_dir.glob("*.toml"), key=position))


def all_contracts() -> dict[str, Contract]:
    # The settings read once, not once per department: every open_warehouse asks for all the
    # contracts (its schema check), and each load_settings costs ~0.08 ms (17 of them a call).
    contracts_dir = load_settings().contracts_dir
    return {d: _load_contract(_contract_file(contracts_dir, d)) for d in _department_codes(contracts_dir)}

"""Hand-written warehouse fixtures for the mart tests: rows go straight into staging.<dept>, with
audit.extracts 'accepted' rows saying who delivered for which period."""
from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import polars as pl

from povwatch.tasks.core.db import open_warehouse
from povwatch.tasks.marts.build import build_marts

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"
VILLAGE = "620523101001"
ALL_DEPTS = ("fupin", "shouru", "jiaoyu", "zhujian", "minzheng", "yibao", "weijian", "shuili",
             "canlian", "renshe", "gongan", "caizheng")

_seq = itertools.count(1)


def idn(birth: str, seq: int | None = None, area: str = "620523") -> str:
    """A valid identity number born on ``birth`` (YYYY-MM-DD)."""
    seq = next(_seq) % 1000 if seq is None else seq
    first17 = area + birth.replace("-", "") + f"{seq:03d}"
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS))
    return first17 + CHECK[total % 11]


class Fixture:
    def __init__(self, path: Path):
        self.path = Path(path)
        open_warehouse(self.path).close()
        self._row = itertools.count(2)
        # one connection for the test's reads and inserts; build_marts opens its own to the same
        # database instance (same process, same configuration)
        self.con = duckdb.connect(str(self.path))

    def add(self, dept: str, period: str, rows: list[dict], con=None) -> None:
        if not rows:
            return
        rows = [{"period": period, "run_id": "fixture", "source_file": f"{period}/{dept}/{dept}.csv",
                 "source_row": next(self._row), **row} for row in rows]
        cols = list(dict.fromkeys(c for row in rows for c in row))
        frame = pl.DataFrame([[row.get(c) for c in cols] for row in rows], schema=cols,
                             orient="row", infer_schema_length=None)
        con = con or self.con
        con.register("fixture_rows", frame.to_arrow())
        select = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"INSERT INTO staging.{dept} ({select}) SELECT {select} FROM fixture_rows")
        con.unregister("fixture_rows")

    def accept(self, period: str, depts=ALL_DEPTS) -> None:
        self.con.executemany("INSERT INTO audit.extracts (run_id, period, dept, file, status) "
                             "VALUES ('fixture', ?, ?, ?, 'accepted')",
                             [[period, d, f"{d}.csv"] for d in depts])

    def build(self, period: str, run_id: str | None = None, **kw) -> dict:
        return build_marts(self.path, period, run_id or f"run-{period}", **kw)

    def query(self, sql: str, params=None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()


def person(hh: str, id_number: str, relation: str = "户主", *, status: str = "未脱贫",
           village: str = VILLAGE, labor: str = "普通劳动力", health: str = "健康",
           pci: float | None = 8000, name: str = "张三", **extra) -> dict:
    """A registry (fupin) row."""
    return {"household_id": hh, "name": name, "id_number": id_number, "relation": relation,
            "village_code": village, "household_type": "一般贫困户", "poverty_status": status,
            "exit_year": 2019 if status == "已脱贫" else None, "health": health, "labor": labor,
            "per_capita_income": pci, **extra}


def income(head: str, members: int, total: float, *, hh: str | None = None,
           object_type: str = "建档立卡户", village: str = VILLAGE, prev=None, oop=None) -> dict:
    """A shouru row whose net income is ``total`` (all wages)."""
    return {"household_id": hh, "head_id_number": head, "object_type": object_type,
            "members": members, "wage_income": total, "business_income": 0, "business_cost": 0,
            "property_income": 0, "transfer_income": 0, "prev_per_capita_income": prev,
            "medical_out_of_pocket": oop, "assessed_on": "2020-05-01", "village_code": village}


def good_household(hh: str, head: str, others: list[str] = (), *, period_year: int = 2020,
                   status: str = "未脱贫", pci_total: float | None = None, village: str = VILLAGE):
    """Rows of every department for a household with no problem at all (members: adults)."""
    ids = [head, *others]
    n = len(ids)
    total = pci_total if pci_total is not None else 12000 * n
    rows = {
        "fupin": [person(hh, i, "户主" if i == head else "配偶", status=status, village=village,
                         pci=total / n) for i in ids],
        "shouru": [income(head, n, total, hh=hh, village=village)],
        "zhujian": [{"head_name": "张三", "head_id_number": head, "village_code": village,
                     "grade": "A", "assessed_on": "2019-05-01", "renovation": "无需改造"}],
        "shuili": [{"head_id_number": head, "village_code": village, "supply": "集中供水",
                    "quantity_ok": True, "quality_ok": True, "convenience_ok": True,
                    "guarantee_rate": 95}],
        "yibao": [{"name": "张三", "id_number": i, "year": period_year, "status": "已参保"}
                  for i in ids],
        "renshe": [{"id_number": i, "work_place": "县内", "months": 10, "public_job": False}
                   for i in ids],
    }
    return rows


def add_all(fx: Fixture, period: str, *row_sets: dict) -> None:
    merged: dict[str, list] = {}
    for rs in row_sets:
        for dept, rows in rs.items():
            merged.setdefault(dept, []).extend(rows)
    for dept, rows in merged.items():
        fx.add(dept, period, rows)

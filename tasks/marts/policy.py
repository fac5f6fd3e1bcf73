"""The policy of a year as typed values, checked against the declared schema of keys.

``warehouse/policy/keys.toml`` declares every key the SQL models may read (type, meaning); a
policy file ``<year>.toml`` (the county folder's, else the package's) must give each of them and
nothing else. Every declared key reaches the SQL as a column of the one-row ``policy`` table, in
its declared type: a new threshold is a line in the schema and a line in each policy file, no
Python. The schema stays with the package because the models that read the keys do.
"""
from __future__ import annotations

import datetime as dt
import difflib
import json
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from povwatch.tasks.core.settings import POLICY_DIR, load_settings

KEYS_FILE = POLICY_DIR / "keys.toml"
# The schema's types and the SQL type each becomes. Money, ratios and lines are DECIMAL so that a
# comparison at a line is exact (4000 is not below 4000).
SQL_TYPES = {"decimal": "DECIMAL(18,4)", "integer": "INTEGER", "date": "DATE",
             "text": "VARCHAR", "boolean": "BOOLEAN"}
META_KEYS = ("year", "extends")   # written in a file for the reader, not a threshold


class PolicyError(ValueError):
    """A policy file that does not match the schema of keys (Chinese, then English)."""


@dataclass(frozen=True)
class PolicyKey:
    name: str
    type: str       # a key of SQL_TYPES
    meaning: str

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class PolicySchema:
    keys: tuple[PolicyKey, ...]     # scalar keys: columns of the policy table
    tables: tuple[PolicyKey, ...]   # tables of one type (deadlines: rule code -> days)


def policy_schema(path: Path | None = None) -> PolicySchema:
    path = Path(path or KEYS_FILE)
    return _schema(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _schema(path: Path, _mtime_ns: int) -> PolicySchema:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    parts = []
    for section in ("keys", "tables"):
        entries = []
        for name, spec in (raw.get(section) or {}).items():
            if not isinstance(spec, dict) or spec.get("type") not in SQL_TYPES or not spec.get("meaning"):
                raise PolicyError(f"{path.name}: {section}.{name} 需要 type（{'/'.join(SQL_TYPES)}）"
                                  f"和 meaning / needs a type and a meaning")
            entries.append(PolicyKey(name, spec["type"], spec["meaning"]))
        parts.append(tuple(entries))
    return PolicySchema(*parts)


def policy_years(policy_dir: Path | None = None) -> list[int]:
    policy_dir = policy_dir or load_settings().policy_dir
    return sorted(int(p.stem) for p in policy_dir.glob("*.toml") if p.stem.isdigit())


def load_policy(year: int, policy_dir: Path | None = None) -> dict:
    """The policy of ``year``: its own file, else the latest file of an earlier year, its values
    typed as the schema declares, plus ``policy_year`` (the year asked for) and
    ``policy_file_year`` (the file used). Raises PolicyError when no file is old enough or the file
    misses a key, has an undeclared one or a value of the wrong type."""
    policy_dir = policy_dir or load_settings().policy_dir
    usable = [y for y in policy_years(policy_dir) if y <= year]
    if not usable:
        raise PolicyError(f"没有{year}年或更早年度的政策参数文件（{policy_dir}）"
                          f" / no policy file for {year} or earlier")
    file_year = usable[-1]
    path = policy_dir / f"{file_year}.toml"
    values = typed_values(_raw_policy(policy_dir, file_year), path.name)
    return {**values, "policy_year": year, "policy_file_year": file_year}


def _raw_policy(policy_dir: Path, year: int, seen: tuple[int, ...] = ()) -> dict:
    """A year's file as written, on top of the year it ``extends`` (its keys and [deadlines]):
    a year file need only say what changed (2021.toml: extends = 2020)."""
    path = policy_dir / f"{year}.toml"
    if not path.exists():
        raise PolicyError(f"{seen[-1] if seen else year}.toml: 没有{year}.toml / extends a missing year {year}")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    base_year = raw.get("extends")
    if base_year is None:
        return raw
    if base_year in (*seen, year):
        raise PolicyError(f"{year}.toml: extends 循环 / extends loops back to {base_year}")
    base = _raw_policy(policy_dir, int(base_year), (*seen, year))
    merged = {**base, **raw}
    for name, value in raw.items():   # tables ([deadlines]) merge key by key
        if isinstance(value, dict) and isinstance(base.get(name), dict):
            merged[name] = {**base[name], **value}
    return merged


def fallback_warning(values: dict) -> str | None:
    """The warning a period gets when its year has no policy file and an earlier year's is used
    (never silent: audit.runs.warnings, povwatch status, the report's header and an alert)."""
    year, file_year = values.get("policy_year"), values.get("policy_file_year")
    if year is None or file_year is None or int(year) == int(file_year):
        return None
    return (f"{year}年没有政策参数文件，沿用{file_year}年参数（{file_year}.toml）；"
            f"请在政策参数目录添加{year}.toml / no policy file for {year}: the {file_year} file is used")


def typed_values(raw: dict, source: str, schema: PolicySchema | None = None) -> dict:
    """The file's values checked against the schema: every problem reported at once."""
    schema = schema or policy_schema()
    declared = {k.name: k for k in schema.keys}
    tables = {k.name: k for k in schema.tables}
    problems, values = [], {}
    for name, value in raw.items():
        if name in META_KEYS:
            continue
        if name in declared:
            typed = _typed(value, declared[name].type)
            if typed is None:
                problems.append(f"{name} = {value!r} 不是 {declared[name].type} / is not a {declared[name].type}")
            values[name] = typed
        elif name in tables and isinstance(value, dict):
            typed_table = {k: _typed(v, tables[name].type) for k, v in value.items()}
            problems += [f"{name}.{k} = {value[k]!r} 不是 {tables[name].type} / is not a {tables[name].type}"
                         for k, v in typed_table.items() if v is None]
            values[name] = typed_table
        else:
            problems.append(_unknown(name, [*declared, *tables]))
    problems += [f"缺少 {name} / missing {name}" for name in [*declared, *tables] if name not in raw]
    if problems:
        raise PolicyError(f"政策参数文件{source}：" + "；".join(problems)
                          + f"（参数表 keys schema: {KEYS_FILE.name}）")
    return values


def _unknown(name: str, known: list[str]) -> str:
    guess = difflib.get_close_matches(name, known, n=1)
    hint = f"（是否应为 {guess[0]}？/ did you mean {guess[0]}?）" if guess else ""
    return (f"未声明的参数 {name} / undeclared key {name!r}{hint}; "
            f"a new key is declared in {KEYS_FILE.name} first")


def _typed(value, kind: str):
    """The value as the declared type, or None when it is not one (bool is not a number)."""
    if kind == "decimal" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    return None


def policy_columns(policy: dict) -> list[tuple[str, str, object]]:
    """(column, SQL type, value) for every declared scalar key, in the schema's order."""
    return [(k.name, k.sql_type, policy[k.name]) for k in policy_schema().keys]


def policy_json(policy: dict) -> str:
    """The values as recorded with a run (audit.runs.policy, mart.policy_used)."""
    return json.dumps(policy, ensure_ascii=False, sort_keys=True, default=_json_value)


def _json_value(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)

"""The rule catalogue (warehouse/rules.toml): code, name, label, subject, responsible department
and the departments each cross-department rule reads. Written once there and read from here by
the marts (``mart.rules``), the office's outputs and the demo generator's oracle.

Deadlines are not in the catalogue: they are numbers of a policy year
(``warehouse/policy/<year>.toml``, ``[deadlines]``), checked against the catalogue's codes when a
policy is loaded.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from povwatch.tasks.core.db import insert_rows
from povwatch.tasks.core.settings import WAREHOUSE_DIR

RULES_TOML = WAREHOUSE_DIR / "rules.toml"
SUBJECTS = ("person", "household")


@dataclass(frozen=True)
class Rule:
    code: str
    name: str          # the rule's name: mart.rules.rule_name, the ledger's 问题类型
    label: str         # short Chinese label for tables and charts
    subject: str       # person | household
    responsible: str   # department code that must act (整改责任单位)
    reads: tuple[str, ...]   # departments whose data decides it (all must deliver to close)


@lru_cache(maxsize=4)
def rule_catalogue(path: Path = RULES_TOML) -> tuple[Rule, ...]:
    """Every rule, in the catalogue's order. Raises ValueError on a malformed catalogue."""
    entries = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("rule", [])
    rules = []
    for entry in entries:
        missing = [f for f in ("code", "name", "label", "subject", "responsible", "reads")
                   if f not in entry]
        if missing:
            raise ValueError(f"规则目录{path.name}中{entry.get('code', '?')}缺少：{', '.join(missing)}")
        if entry["subject"] not in SUBJECTS:
            raise ValueError(f"规则{entry['code']}的subject应为{'/'.join(SUBJECTS)}：{entry['subject']}")
        rules.append(Rule(entry["code"], entry["name"], entry["label"], entry["subject"],
                          entry["responsible"], tuple(entry["reads"])))
    codes = [r.code for r in rules]
    if len(set(codes)) != len(codes):
        raise ValueError(f"规则目录{path.name}中规则代码重复")
    return tuple(rules)


def rule_codes() -> tuple[str, ...]:
    return tuple(r.code for r in rule_catalogue())


def rule_names() -> dict[str, str]:
    return {r.code: r.name for r in rule_catalogue()}


def rule_labels() -> dict[str, str]:
    return {r.code: r.label for r in rule_catalogue()}


def write_rules_table(con, table: str = "mart.rules") -> None:
    """(Re)create ``table`` from the catalogue: code, rule_name, subject_type, responsible_dept,
    reads, label — the SQL's one source for who answers for a rule and what closes it."""
    rows = [(r.code, r.name, r.subject, r.responsible, list(r.reads), r.label)
            for r in rule_catalogue()]
    con.execute(f"CREATE OR REPLACE TABLE {table} (code VARCHAR, rule_name VARCHAR, "
                "subject_type VARCHAR, responsible_dept VARCHAR, reads VARCHAR[], label VARCHAR)")
    insert_rows(con, table, rows)

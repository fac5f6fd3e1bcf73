"""What each model file reads and writes, and the check that the order of ``models/ORDER`` respects it.

Every model file starts with two header lines stating its inputs and outputs::

    -- reads:  work.households, work.categories, policy
    -- writes: mart.household_status

Names are warehouse tables (``staging.<dept>``, ``audit.*``, ``mart.*``), the intermediate
results models hand to later models (``work.*``: real tables, rebuilt for every period built), and
the build's stage (``STAGE_TABLES``: temp tables set by tasks/marts/build.py before the models
run). A file's own temp tables are private to it and not listed. ``model_io`` finds the same sets
in the SQL itself, so a header that drifts from its SQL is caught by the tests, as is a model
that reads what a later model writes.
"""
from __future__ import annotations

import re
from pathlib import Path

# Set by tasks/marts/build.py before the models run (temp tables of the build's connection):
# the period's policy row and rule deadlines, the latest policy (history), the effective
# department snapshots eff_<dept> and which period each is (eff_periods), the divisions table.
STAGE_TABLES = ("policy", "deadlines", "upto_policy", "eff_periods", "divisions")
STAGE_PATTERN = r"eff_[a-z]+"
# Written by build.py itself, not by a model.
BUILD_WRITES = ("mart.departments", "mart.rules", "mart.period_deliveries", "mart.policy_used")

_SCHEMAS = ("work", "mart", "staging", "audit")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_WRITE_BEFORE = re.compile(
    r"(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(?:TABLE|VIEW|MACRO)"
    r"(?:\s+IF\s+NOT\s+EXISTS)?|INSERT\s+INTO|DELETE\s+FROM|UPDATE|COMMENT\s+ON\s+(?:TABLE|COLUMN))"
    r"\s+$", re.IGNORECASE)
_HEADER = re.compile(r"^--\s*(reads|writes):\s*(.*)$", re.MULTILINE)


def strip_comments(sql: str) -> str:
    """The SQL without -- comments and without string literals' contents."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def model_io(sql: str) -> tuple[set[str], set[str]]:
    """(reads, writes) found in the SQL: schema-qualified names and stage tables."""
    body = strip_comments(sql)
    reads: set[str] = set()
    writes: set[str] = set()
    pattern = (rf"\b((?:{'|'.join(_SCHEMAS)})\.{_NAME})\b|"
               rf"\b({'|'.join(STAGE_TABLES)}|{STAGE_PATTERN})\b(?!\s*[.(])")
    local = set(re.findall(rf"CREATE\s+(?:OR\s+REPLACE\s+)?TEMP\s+(?:TABLE|MACRO)\s+({_NAME})",
                           body, re.IGNORECASE))
    for m in re.finditer(pattern, body):
        name = m.group(1) or m.group(2)
        if name in local or body[max(0, m.start() - 1)] == ".":
            continue   # a file-private temp table, or a column such as p.policy
        before = body[max(0, m.start() - 80):m.start()]
        (writes if _WRITE_BEFORE.search(before) else reads).add(name)
    # a model's own work tables are its outputs, even where it reads them back
    return reads - {n for n in writes if n.startswith("work.")}, writes


def declared_io(sql: str) -> tuple[set[str], set[str]] | None:
    """(reads, writes) of the header lines, or None when the file has no header."""
    found = {kind: {n.strip() for n in names.split(",") if n.strip() and n.strip() != "-"}
             for kind, names in _HEADER.findall(sql[:2000])}
    if set(found) != {"reads", "writes"}:
        return None
    return found["reads"], found["writes"]


def order_problems(sections: dict[str, list[Path]]) -> list[str]:
    """Every way the models of ORDER break their declared lineage (empty when none)."""
    problems: list[str] = []
    sequence = [p for s in ("setup", "period", "history") for p in sections.get(s, [])]
    declared = []
    for i, path in enumerate(sequence):
        sql = path.read_text(encoding="utf-8")
        io = declared_io(sql)
        if io is None:
            problems.append(f"{path.name}: no '-- reads:' / '-- writes:' header")
            continue
        found = model_io(sql)
        if io != found:
            problems.append(f"{path.name}: header says reads {sorted(io[0])} writes {sorted(io[1])}, "
                            f"the SQL reads {sorted(found[0])} writes {sorted(found[1])}")
        # the order is checked on what the SQL does, whatever the header says
        declared.append((i, path, (found[0] | io[0], found[1] | io[1])))
    written = {name for _, _, (_, writes) in declared for name in writes}
    setup = set(sections.get("setup", []))
    for i, path, (reads, _) in declared:
        if path in setup:
            continue   # schema and macro definitions: what a macro reads is read when it is called
        for name in sorted(reads):
            if name.startswith("work.") and name not in written:
                problems.append(f"{path.name} reads {name}, which no model writes")
            later = [p.name for j, p, (_, w) in declared if j > i and name in w]
            if later:
                problems.append(f"{path.name} reads {name}, written later by {', '.join(later)}")
    return problems

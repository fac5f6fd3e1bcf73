"""Models declare what they read and write, and models/ORDER respects it.

A model that reads a table a later model writes would read the previous build's rows; a header
that says something else than the SQL misleads the next person adding a model. Both fail here.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from povwatch.tasks.marts.build import model_order
from povwatch.tasks.marts.lineage import declared_io, model_io, order_problems
from tests.support.marts import Fixture, add_all, good_household, idn

MODELS = model_order()


def test_every_model_declares_what_it_reads_and_writes_and_the_order_respects_it():
    assert order_problems(MODELS) == []


def test_models_hand_results_on_in_work_tables_not_temp_tables():
    """A temp table is private to its file: no model reads one another model made."""
    made = {}
    for path in [p for s in MODELS.values() for p in s]:
        sql = path.read_text(encoding="utf-8")
        for name in _temp_tables(sql):
            made[name] = path.name
    for path in [p for s in MODELS.values() for p in s]:
        body = path.read_text(encoding="utf-8")
        borrowed = {n for n, maker in made.items() if maker != path.name and _reads_bare(body, n)}
        assert not borrowed, f"{path.name} reads temp tables of other models: {borrowed}"


def test_a_header_that_hides_a_read_or_a_later_write_is_caught(tmp_path: Path):
    (tmp_path / "10_a.sql").write_text(
        "-- reads:  policy\n-- writes: work.a\n"
        "CREATE OR REPLACE TABLE work.a AS SELECT * FROM work.b, policy;\n", encoding="utf-8")
    (tmp_path / "20_b.sql").write_text(
        "-- reads:  policy\n-- writes: work.b\n"
        "CREATE OR REPLACE TABLE work.b AS SELECT period FROM policy;\n", encoding="utf-8")
    problems = order_problems({"period": [tmp_path / "10_a.sql", tmp_path / "20_b.sql"]})
    assert any("10_a.sql: header says" in p and "work.b" in p for p in problems)
    assert any("10_a.sql reads work.b, written later by 20_b.sql" in p for p in problems)
    assert model_io("DELETE FROM mart.x WHERE period = (SELECT period FROM policy); "
                    "INSERT INTO mart.x SELECT * FROM work.y -- staging.z\n") == (
        {"policy", "work.y"}, {"mart.x"})
    assert declared_io("-- no header\nSELECT 1") is None


@pytest.fixture(scope="module")
def built_marts_warehouse(tmp_path_factory) -> Path:
    fx = Fixture(tmp_path_factory.mktemp("lineage") / "w.duckdb")
    try:
        add_all(fx, "2020-06", good_household("H1", idn("19800101", 1), pci_total=3000))
        fx.accept("2020-06")
    finally:
        fx.con.close()
    fx.build("2020-06")
    return fx.path


def test_no_core_schema_and_a_work_schema_in_a_built_warehouse(built_marts_warehouse):
    con = duckdb.connect(str(built_marts_warehouse), read_only=True)
    try:
        schemas = {r[0] for r in con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()"
        ).fetchall()}
        work = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'work'").fetchall()}
    finally:
        con.close()
    assert "core" not in schemas
    assert {"members", "households", "categories", "states"} <= work


def _temp_tables(sql: str) -> set[str]:
    import re
    return set(re.findall(r"CREATE\s+OR\s+REPLACE\s+TEMP\s+TABLE\s+(\w+)", sql, re.IGNORECASE))


def _reads_bare(sql: str, name: str) -> bool:
    import re
    from povwatch.tasks.marts.lineage import strip_comments
    return re.search(rf"(?<![.\w])(?:FROM|JOIN)\s+{name}\b", strip_comments(sql),
                     re.IGNORECASE) is not None

"""GX validates a copy of the period's rows made for the validation (suites.BATCH_CATALOG, an
in-memory database: GX's ~20 queries a suite read it instead of pending's Parquet files): an output
folder whose GX datasource still reads pending.<dept> is moved over, and no copy outlives its
validation. A custom SQL check runs once per suite: GX's count of its rows is their number
(gx_duckdb.DuckDBExecutionEngine)."""
from __future__ import annotations

import warnings

from povwatch.tasks.core import db
from tests.test_validate import bad_check, insert, minzheng_rows


def test_an_output_folder_reading_pending_is_moved_to_the_batch_copy_and_validates(tmp_path):
    """...and the suite's custom SQL check ran once, its count right."""
    from povwatch.tasks.ingest.contracts import department_codes
    from povwatch.tasks.validate import suites
    from povwatch.tasks.validate.gx_duckdb import DuckDBExecutionEngine, warehouse_url

    path = tmp_path / "povwatch.duckdb"
    con = db.open_warehouse(path)
    try:
        rows = minzheng_rows(40)
        rows[2]["id_number"] = bad_check(rows[2]["id_number"])   # a wrong check character: quarantined
        insert(con, "minzheng", "2020-08", rows)

        # the datasource as povwatch wrote it before: every asset a table of schema pending
        context = suites.gx_context(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.data_sources.add_duckdb(
                name=suites.DATASOURCE, connection_string=warehouse_url(path),
                assets=[{"type": "table", "name": d, "table_name": d, "schema_name": "pending",
                         "batch_definitions": [{"name": suites.BATCH_DEFINITION,
                                                "partitioner": {"column_name": "period"}}]}
                        for d in department_codes()])

        reused = DuckDBExecutionEngine.counts_reused
        outcome = suites.validate_extract(path, "2020-08", "minzheng", "run-moved")
        assert not outcome.blocking_failed and outcome.row_count == 40
        assert [f["expectation"] for f in outcome.failures] == ["id_number_check_char"]
        assert outcome.failures[0]["unexpected_count"] == 1
        # minzheng's one custom SQL check (the check character) ran once: its count was reused
        custom = [e for e in suites.suite_definition("minzheng")["expectations"]
                  if e["type"] == "unexpected_rows_expectation"]
        assert DuckDBExecutionEngine.counts_reused - reused == len(custom) == 1
        assert outcome.quarantined_rows == 1
        assert con.execute("SELECT count(*) FROM pending.minzheng WHERE period = '2020-08'").fetchone()[0] == 39

        assets = context.data_sources.get(suites.DATASOURCE).assets
        assert {a.schema_name for a in assets} == {suites.BATCH_CATALOG}
        assert {a.name for a in assets} == set(department_codes())
        # the copy was dropped with the validation (GX's connections share this DuckDB instance)
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ?",
                           [suites.BATCH_CATALOG]).fetchone()[0] == 0
    finally:
        con.close()

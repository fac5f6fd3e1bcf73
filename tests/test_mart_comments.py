"""The marts' Chinese comments (warehouse/models/01_comments.sql) are what the catalogue holds
after every build, and a build applies only the ones the catalogue lacks: on a built warehouse
none of the ~290 statements runs again (each waited for the GIL beside the receipts and the Data
Docs build, docs/performance.md)."""
from __future__ import annotations

import pytest

from povwatch.tasks.core.settings import MODELS_DIR
from povwatch.tasks.marts import build
from tests.support.marts import Fixture, add_all, good_household, idn

P6 = "2020-06"
COMMENTS = MODELS_DIR / "01_comments.sql"


@pytest.fixture()
def applied(monkeypatch):
    """How many comment statements each build ran, call by call."""
    counts: list[int] = []
    real = build._apply_comments

    def counting(con, statements):
        counts.append(real(con, statements))
        return counts[-1]

    monkeypatch.setattr(build, "_apply_comments", counting)
    return counts


def _catalogue(fx) -> dict:
    rows = fx.query("SELECT schema_name, table_name, NULL, comment FROM duckdb_tables() "
                    "WHERE schema_name = 'mart' UNION ALL SELECT schema_name, table_name, "
                    "column_name, comment FROM duckdb_columns() WHERE schema_name = 'mart'")
    return {(s, t, c): comment for s, t, c, comment in rows}


def test_the_comments_file_is_read_statement_by_statement():
    sql = COMMENTS.read_text(encoding="utf-8")
    statements = build._comment_statements(sql)
    assert statements is not None and len(statements) == sql.count("COMMENT ON")
    assert statements[("mart", "household_status", "period")][0] == "期次（年月）"


def test_quotes_and_dashes_inside_names_and_texts_are_read_as_sql_reads_them():
    statements = build._comment_statements(
        "-- a header line\n"
        "COMMENT ON TABLE mart.t IS 'it''s -- not a comment';\n"
        'COMMENT ON COLUMN mart.t."a ""b""" IS \'x\';\n')
    assert statements == {
        ("mart", "t", None): ("it's -- not a comment",
                              "COMMENT ON TABLE mart.t IS 'it''s -- not a comment';"),
        ("mart", "t", 'a "b"'): ("x", 'COMMENT ON COLUMN mart.t."a ""b""" IS \'x\';'),
    }
    # any other statement in the script: it is run as it stands
    assert build._comment_statements("COMMENT ON TABLE mart.t IS 'x'; DROP TABLE mart.t;") is None
    assert build._comment_statements((MODELS_DIR / "00_schema.sql").read_text()) is None


def test_a_build_applies_only_the_comments_the_catalogue_lacks(tmp_path, applied):
    fx = Fixture(tmp_path / "w.duckdb")
    add_all(fx, P6, good_household("H1", idn("1980-01-01")))
    fx.accept(P6)
    expected = {key: text for key, (text, _) in
                build._comment_statements(COMMENTS.read_text(encoding="utf-8")).items()}

    fx.build(P6)
    first = applied[0]
    assert first == len(expected)                      # a new warehouse: every comment
    assert {k: v for k, v in _catalogue(fx).items() if k in expected} == expected

    applied.clear()
    fx.build(P6)
    # mart.departments and mart.rules are recreated by every build: only theirs again
    recreated = {k for k in expected if k[1] in ("departments", "rules")}
    assert applied[0] == len(recreated) < first

    fx.query("COMMENT ON TABLE mart.spot_check IS NULL")
    fx.query("COMMENT ON COLUMN mart.problem_ledger.status IS 'changed by hand'")
    applied.clear()
    fx.build(P6)
    assert applied[0] == len(recreated) + 2
    assert {k: v for k, v in _catalogue(fx).items() if k in expected} == expected

"""Great Expectations suites run inside DuckDB: what each kind of expectation catches, how blocking
and warning expectations act, what lands in audit.validations and quarantine.rows, and that the
Data Docs keep no identity number.

Pending tables are filled directly (no ingestion needed). One warehouse and one GX context serve the
whole module: every test uses its own (department, period).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from stdnum.iso7064 import mod_11_2

from povwatch.tasks.core import db
from povwatch.tasks.ingest.contracts import load_contract
from povwatch.tasks.ingest.load import land_pending

BIRTHS = ["19490101", "19651231", "19800229", "19991010", "20080808", "20150505"]


def make_id(i: int, prefix: str = "620523") -> str:
    """A valid identity number (stdnum's ISO 7064 MOD 11-2 is the oracle for the check character)."""
    first17 = f"{prefix}{BIRTHS[i % len(BIRTHS)]}{i % 1000:03d}"
    return first17 + mod_11_2.calc_check_digit(first17)


def id_ok(number: str) -> bool:
    """Oracle: 17 digits and a check character that MOD 11-2 accepts, and a real birth date."""
    try:
        dt.datetime.strptime(number[6:14], "%Y%m%d")
    except ValueError:
        return False
    return bool(re.fullmatch(r"[0-9]{17}[0-9X]", number)) and mod_11_2.is_valid(number)


def bad_check(id_number: str) -> str:
    wrong = "0" if id_number[-1] != "0" else "1"
    return id_number[:-1] + wrong


def village(i: int) -> str:
    return f"620523100{201 + i % 20:03d}"


def insert(con, dept: str, period: str, rows: list[dict], table: str = "pending") -> None:
    """Insert rows (dicts of contract columns) with lineage; source_row = 2, 3, ..."""
    contract = load_contract(dept)
    full = []
    for n, row in enumerate(rows):
        item = {c.name: None for c in contract.columns}
        item.update(row)
        item.update(period=period, run_id="test", source_file=f"{period}/{dept}/a.xlsx",
                    source_row=str(n + 2), repairs=None)
        full.append(item)
    names = [c.name for c in contract.columns] + ["period", "run_id", "source_file", "source_row", "repairs"]
    arrow = pa.Table.from_pylist(full, schema=pa.schema([(n, pa.string()) for n in names]))
    con.register("_rows", arrow)
    casts = ", ".join(f'CAST("{n}" AS {t}) AS "{n}"' for n, t in contract.staged_ddl_columns())
    if table == "pending":   # a view over Parquet files in the warehouse's lake
        path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                           ).fetchone()[0]
        land_pending(con, Path(path), dept, period, f"(SELECT {casts} FROM _rows)", "test")
    else:
        con.execute(f"INSERT INTO {table}.{dept} BY NAME SELECT {casts} FROM _rows")
    con.unregister("_rows")


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    """A warehouse with a tasks.core.db connection held open for the whole module: GX's connections
    must coexist with it (duckdb_engine's custom_user_agent would otherwise clash)."""
    path = tmp_path_factory.mktemp("validate") / "povwatch.duckdb"
    con = db.open_warehouse(path)
    yield path, con
    con.close()


def validations(con, period: str, dept: str) -> dict[str, tuple]:
    rows = con.execute(
        "SELECT expectation, blocking, success, unexpected_count, details FROM audit.validations "
        "WHERE period = ? AND dept = ?", [period, dept]).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_every_contract_has_a_suite_that_covers_it():
    """A contract edited without its suite would reject every extract in production: catch it here."""
    from povwatch.tasks.ingest.contracts import LINEAGE_COLUMNS, all_contracts
    from povwatch.tasks.validate.suites import suite_definition

    for dept, contract in all_contracts().items():
        suite = suite_definition(dept)
        by_name = {e["meta"]["name"]: e for e in suite["expectations"]}
        columns = by_name["columns_match_contract"]["kwargs"]["column_set"]
        assert set(columns) == {c.name for c in contract.columns} | set(LINEAGE_COLUMNS), dept
        for col in contract.columns:
            if col.required:
                assert f"{col.name}_not_null" in by_name, (dept, col.name)
            if col.codes:
                assert by_name[f"{col.name}_in_list"]["kwargs"]["value_set"] == list(col.codes), (dept, col.name)
            if col.type == "id":
                assert f"{col.name}_check_char" in by_name, (dept, col.name)
        for key in contract.unique:
            assert "unique_" + "_".join(key) in by_name, (dept, key)
        for exp in suite["expectations"]:
            meta = exp["meta"]
            assert meta["severity"] in ("blocking", "warning")
            assert exp["severity"] == ("critical" if meta["severity"] == "blocking" else "warning")
            assert exp.get("description"), meta["name"]


def minzheng_rows(n: int) -> list[dict]:
    return [{"name": f"人{i}", "id_number": make_id(i), "assistance": "低保", "monthly_amount": "300.00",
             "start_month": "2020-01-01", "end_month": None, "village_code": village(i)} for i in range(n)]


def test_clean_extract_passes_every_expectation(wh):
    from povwatch.tasks.validate.suites import suite_definition, validate_extract

    path, con = wh
    insert(con, "minzheng", "2020-01", minzheng_rows(40))
    outcome = validate_extract(path, "2020-01", "minzheng", "run-clean")

    assert not outcome.blocking_failed and outcome.failures == [] and outcome.message is None
    assert outcome.quarantined_rows == 0
    recorded = validations(con, "2020-01", "minzheng")
    suite = suite_definition("minzheng")
    assert set(recorded) == {e["meta"]["name"] for e in suite["expectations"]}
    assert all(success for _, success, _, _ in recorded.values())
    assert con.execute("SELECT count(*) FROM pending.minzheng WHERE period = '2020-01'").fetchall()[0][0] == 40


def test_row_level_checks_count_like_hand_sql_and_quarantine_by_name(wh):
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    period = "2020-02"
    rows = minzheng_rows(60)
    rows[3]["id_number"] = bad_check(rows[3]["id_number"])           # MOD 11-2
    rows[4]["id_number"] = rows[4]["id_number"][:6] + "19491332" + rows[4]["id_number"][14:]  # no 13th month
    rows[5]["assistance"] = "低 保"                                     # not in the list
    rows[6]["village_code"] = "620999100201"                          # another county
    rows[7]["village_code"] = "62052310020"                           # 11 digits
    rows[8]["end_month"] = "2019-06-01"                               # ends before it starts
    rows[9]["monthly_amount"] = "-5.00"                               # money < 0
    rows[10]["name"] = None                                           # required blank
    rows[11]["end_month"] = "2019-06-01"
    rows[11]["assistance"] = "救济"                                    # two reasons, one row
    insert(con, "minzheng", period, rows)

    # Hand-written counts, independent of the suite's SQL (stdnum checks the identity numbers).
    ids = [r[0] for r in con.execute(
        "SELECT id_number FROM pending.minzheng WHERE period = ?", [period]).fetchall()]
    hand = {
        "id_number_check_char": sum(1 for x in ids if not id_ok(x)),
        "assistance_in_list": con.execute(
            "SELECT count(*) FROM pending.minzheng WHERE period = ? AND assistance NOT IN "
            "('低保', '特困供养', '临时救助')", [period]).fetchall()[0][0],
        "village_code_in_county": con.execute(
            "SELECT count(*) FROM pending.minzheng WHERE period = ? AND NOT (village_code LIKE '620523%' "
            "AND length(village_code) = 12)", [period]).fetchall()[0][0],
        "end_month_not_before_start": con.execute(
            "SELECT count(*) FROM pending.minzheng WHERE period = ? AND end_month < start_month",
            [period]).fetchall()[0][0],
        "monthly_amount_in_range": con.execute(
            "SELECT count(*) FROM pending.minzheng WHERE period = ? AND monthly_amount < 0",
            [period]).fetchall()[0][0],
        "name_not_null": con.execute(
            "SELECT count(*) FROM pending.minzheng WHERE period = ? AND name IS NULL", [period]).fetchall()[0][0],
    }
    assert hand == {"id_number_check_char": 2, "assistance_in_list": 2, "village_code_in_county": 2,
                    "end_month_not_before_start": 2, "monthly_amount_in_range": 1, "name_not_null": 1}

    outcome = validate_extract(path, period, "minzheng", "run-rows")

    assert not outcome.blocking_failed
    gx_counts = {f["expectation"]: f["unexpected_count"] for f in outcome.failures}
    assert gx_counts == hand
    # audit.validations holds GX's results
    recorded = validations(con, period, "minzheng")
    for name, count in hand.items():
        blocking, success, unexpected, details = recorded[name]
        assert (blocking, success, unexpected) == (False, False, count)
        assert json.loads(details)["meta"]["name"] == name
        assert json.loads(details)["rows_found"] == count      # the rows quarantine acts on
    # every failing row is quarantined once, with the expectation names as reasons
    assert outcome.quarantined_rows == 9
    q = dict(con.execute(
        "SELECT row_number, reasons FROM quarantine.rows WHERE period = ? AND dept = 'minzheng' "
        "AND stage = 'validate'", [period]).fetchall())
    assert sorted(q) == [5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert any("id_number_check_char" in r for r in q[5])
    assert any("end_month_not_before_start" in r for r in q[10])
    assert sorted(len(r) for r in q.values())[-1] == 2 and len(q[13]) == 2
    assert any("终止年月" in r for r in q[13])
    row_data = con.execute("SELECT row_data FROM quarantine.rows WHERE period = ? AND row_number = 13",
                           [period]).fetchall()[0][0]
    assert json.loads(row_data)["救助类型"] == "救济"        # the row, keyed by the Chinese headers
    left = con.execute("SELECT count(*) FROM pending.minzheng WHERE period = ?", [period]).fetchall()[0][0]
    assert left == 60 - 9
    # a sample names file and row, identity numbers masked
    sample = next(f["sample"] for f in outcome.failures if f["expectation"] == "id_number_check_char")
    assert sample[0]["row"] == 5 and re.fullmatch(r"620523\*{8}\w{4}", sample[0]["身份证号"])


def test_duplicate_key_rows_are_quarantined_and_the_rest_kept(wh):
    """Two assessments of one head (#20): both rows quarantined under 重复键 naming the key
    (masked), the extract not rejected; GX's uniqueness result still recorded."""
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    rows = [{"head_name": f"户主{i}", "head_id_number": make_id(i), "village_code": village(i), "grade": "B",
             "assessed_on": "2020-02-10", "renovation": "无需改造"} for i in range(30)]
    rows[7]["head_id_number"] = rows[6]["head_id_number"]          # two assessments for one head
    rows[9]["grade"] = "E"                                          # and a warning-level problem
    insert(con, "zhujian", "2020-03", rows)

    outcome = validate_extract(path, "2020-03", "zhujian", "run-dup")

    assert not outcome.blocking_failed
    dup = next(f for f in outcome.failures if f["expectation"] == "unique_head_id_number")
    assert dup["unexpected_count"] == 2 and dup["quarantine"] and not dup["blocking"]
    assert outcome.quarantined_rows == 3      # the pair and the grade E row
    assert con.execute("SELECT count(*) FROM pending.zhujian WHERE period = '2020-03'").fetchall()[0][0] == 27
    reasons_ = [r[0] for r in con.execute(
        "SELECT reasons FROM quarantine.rows WHERE dept = 'zhujian' AND period = '2020-03' "
        "AND list_filter(reasons, lambda r: starts_with(r, '重复键')) <> [] ORDER BY row_number").fetchall()]
    masked = make_id(6)[:6] + "********" + make_id(6)[-4:]
    assert len(reasons_) == 2 and all(f"户主身份证号 {masked}" in " ".join(r) for r in reasons_)
    assert make_id(6) not in outcome.message and make_id(6) not in json.dumps(outcome.failures, ensure_ascii=False)
    assert validations(con, "2020-03", "zhujian")["unique_head_id_number"][:3] == (False, False, 2)


def test_many_failing_rows_escalate_to_blocking(wh):
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    rows = [{"id_number": make_id(i), "work_place": "县内", "months": str(13 if i % 2 else 6),
             "monthly_wage": "3000", "public_job": "false"} for i in range(20)]
    insert(con, "renshe", "2020-03", rows)

    outcome = validate_extract(path, "2020-03", "renshe", "run-many")

    failure = next(f for f in outcome.failures if f["expectation"] == "months_in_range")
    assert failure["unexpected_count"] == 10 and failure["escalated"] and failure["blocking"]
    assert outcome.blocking_failed and outcome.quarantined_rows == 0


def test_volume_against_previous_period_is_a_warning(wh):
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    student = lambda i: {"student_name": f"学生{i}", "id_number": make_id(i), "school": "一中",  # noqa: E731
                         "stage": "初中", "grade": "2", "status": "在读", "aid_amount": "500"}
    insert(con, "jiaoyu", "2020-01", [student(i) for i in range(100)], table="staging")
    insert(con, "jiaoyu", "2020-02", [student(i) for i in range(30)])     # -70 %
    insert(con, "jiaoyu", "2020-03", [student(i) for i in range(120)])    # +20 %

    dropped = validate_extract(path, "2020-02", "jiaoyu", "run-vol")
    steady = validate_extract(path, "2020-03", "jiaoyu", "run-vol")

    assert [f["expectation"] for f in dropped.failures] == ["volume_vs_previous_period"]
    assert not dropped.blocking_failed and dropped.failures[0]["observed"] == 30
    assert "数据量" in dropped.message
    details = json.loads(validations(con, "2020-02", "jiaoyu")["volume_vs_previous_period"][3])
    assert details["volume"] == {"previous_period": "2020-01", "previous_rows": 100, "max_change": 0.5,
                                 "min": 50, "max": 150}
    assert steady.failures == []


def test_conditional_required_and_percent_ranges(wh):
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    rows = [{"household_id": f"H{i // 3}", "name": f"人{i}", "id_number": make_id(i), "relation": "户主",
             "village_code": village(i // 3), "household_type": "一般贫困户", "poverty_status": "已脱贫",
             "exit_year": "2019"} for i in range(30)]
    rows[2]["exit_year"] = None                     # 已脱贫 without a year
    rows[3]["poverty_status"] = "未脱贫"
    rows[3]["exit_year"] = None                     # fine
    insert(con, "fupin", "2020-04", rows)
    water = [{"head_id_number": make_id(i), "village_code": village(i), "supply": "集中供水",
              "quantity_ok": "true", "quality_ok": "true", "convenience_ok": "true",
              "guarantee_rate": str(95 + (i % 3))} for i in range(20)]
    water[4]["guarantee_rate"] = "120"
    insert(con, "shuili", "2020-04", water)

    fupin = validate_extract(path, "2020-04", "fupin", "run-cond")
    shuili = validate_extract(path, "2020-04", "shuili", "run-cond")

    assert {f["expectation"]: f["unexpected_count"] for f in fupin.failures} == {"exit_year_required_when": 1}
    assert {f["expectation"]: f["unexpected_count"] for f in shuili.failures} == {"guarantee_rate_in_range": 1}
    assert fupin.quarantined_rows == 1 and shuili.quarantined_rows == 1


def test_a_period_without_rows_is_rejected(wh):
    """GX cannot make a batch of a period with no rows: recorded as not_empty failing, blocking."""
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    outcome = validate_extract(path, "2019-12", "canlian", "run-empty")
    assert outcome.blocking_failed and [f["expectation"] for f in outcome.failures] == ["not_empty"]
    assert "实际 0 行" in outcome.message
    assert validations(con, "2019-12", "canlian")["not_empty"][:2] == (True, False)


def test_other_tasks_db_connections_keep_working(wh):
    """GX's connections and tasks.core.db's share one DuckDB instance in the process."""
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    other = db.connect(path)
    insert(other, "minzheng", "2020-05", minzheng_rows(10))
    outcome = validate_extract(path, "2020-05", "minzheng", "run-conc")
    assert outcome.failures == []
    other.execute("INSERT INTO audit.runs (run_id) VALUES ('after-gx')")
    assert con.execute("SELECT count(*) FROM audit.runs WHERE run_id = 'after-gx'").fetchall()[0][0] == 1
    other.close()


def _valid_ids_in(text: str) -> list[str]:
    return [m for m in re.findall(r"(?<![0-9])[0-9]{17}[0-9X](?![0-9])", text) if id_ok(m)]


def test_data_docs_built_without_identity_numbers(wh):
    """GX keeps unexpected values (here: duplicated identity numbers) in its results and renders
    them in Data Docs; nothing under the output folder may hold a valid identity number."""
    from povwatch.tasks.core.settings import output_dir
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    rows = [{"id_number": make_id(i), "contracted": "true", "disease_class": "无"} for i in range(8)]
    rows[3]["id_number"] = rows[2]["id_number"]
    insert(con, "weijian", "2020-08", rows)
    outcome = validate_extract(path, "2020-08", "weijian", "run-docs")
    assert outcome.blocking_failed and outcome.data_docs and outcome.data_docs.exists()
    out = output_dir(path)
    index = out / "datadocs" / "index.html"
    assert index.exists()
    assert list((out / "datadocs" / "validations").rglob("*.html"))
    leaks = []
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".html", ".json", ".yml", ".js"):
            found = _valid_ids_in(f.read_text(encoding="utf-8", errors="replace"))
            if found:
                leaks.append((str(f.relative_to(out)), found[:2]))
    assert leaks == []


def test_a_period_s_data_docs_pages_are_written_once_on_the_way_out(wh):
    """Inside data_docs_index_once (the flow's period) each department's result is stored and its
    page rendered with the index when the period's validations are done: the outcome already
    names the index, and afterwards every department has its page, listed by the index."""
    from povwatch.tasks.core.settings import output_dir
    from povwatch.tasks.validate.suites import data_docs_index_once, validate_extract

    path, con = wh
    rows = [{"id_number": make_id(i), "contracted": "true", "disease_class": "无"} for i in range(4)]
    insert(con, "weijian", "2020-10", rows)
    insert(con, "canlian", "2020-10", [{"id_number": make_id(i), "level": "2"} for i in range(3)])
    pages = output_dir(path) / "datadocs" / "validations"
    before = set(pages.rglob("*2020-10.html"))
    with data_docs_index_once(path):
        outcomes = [validate_extract(path, "2020-10", dept, "run-once") for dept in ("weijian", "canlian")]
    index = output_dir(path) / "datadocs" / "index.html"
    assert [o.data_docs for o in outcomes] == [index, index]
    new = {p.name for p in set(pages.rglob("*2020-10.html")) - before}
    assert new == {"weijian-2020-10.html", "canlian-2020-10.html"}
    text = index.read_text(encoding="utf-8")
    assert "weijian-2020-10" in text and "canlian-2020-10" in text
    assert "static/offline/" in text   # made offline after the build


def test_the_data_docs_index_lists_the_latest_results_and_older_pages_stay(tmp_path, monkeypatch):
    """The index lists the latest DOCS_INDEX_RESULTS validation results (GX's
    validation_results_limit: listing every stored result made each period's docs build dearer
    with every month kept); an older result keeps its page, made offline like the others."""
    from povwatch.tasks.core.settings import output_dir
    from povwatch.tasks.validate import suites

    monkeypatch.setattr(suites, "DOCS_INDEX_RESULTS", 2)
    path = tmp_path / "povwatch.duckdb"
    con = db.open_warehouse(path)
    try:
        for period in ("2020-08", "2020-09", "2020-10"):
            insert(con, "canlian", period, [{"id_number": make_id(i), "level": "2"} for i in range(3)])
            suites.validate_extract(path, period, "canlian", f"run-{period}")
    finally:
        con.close()
    docs = output_dir(path) / "datadocs"
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "canlian-2020-10" in index and "canlian-2020-09" in index
    assert "canlian-2020-08" not in index
    old, = (docs / "validations").rglob("canlian-2020-08.html")
    assert "static/offline/" in old.read_text(encoding="utf-8")


def test_blocking_outcome_reaches_a_webhook_masked(wh, monkeypatch):
    """validate_extract -> alert_on_outcomes -> a real receiver on 127.0.0.1: the department,
    period, file, expectation, count and masked sample arrive; no full identity number does."""
    from tests.test_alerts import _Receiver
    import threading

    from povwatch.tasks.validate import alerts
    from povwatch.tasks.validate.suites import validate_extract

    path, con = wh
    rows = [{"id_number": make_id(i), "name": f"人{i}", "cancelled_on": "2020-05-01", "reason": "死亡"}
            for i in range(12)]
    for i in (5, 7, 9):
        rows[i] = dict(rows[i - 1])               # the same cancellation twice, three times:
    insert(con, "gongan", "2020-06", rows)        # half the extract, systematically broken
    outcome = validate_extract(path, "2020-06", "gongan", "run-alert")
    assert outcome.blocking_failed

    server = _Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("POVWATCH_ALERT_URLS", f"json://127.0.0.1:{server.server_address[1]}/hook")
        flow_outcome = {**outcome.alert(), "status": "rejected", "blocking_failed": True,
                        "files": ["2020-06/gongan/a.xlsx"]}
        sent = alerts.alert_on_outcomes(path, "run-alert", [flow_outcome])
    finally:
        server.shutdown()
        server.server_close()
    assert [s["delivered"] for s in sent] == [True] and len(server.posts) == 1
    message = json.loads(server.posts[0]["body"])["message"]
    assert "公安局" in message and "2020-06" in message and "unique_id_number_cancelled_on_reason" in message
    assert "6 行" in message and "620523********" in message and "datadocs" in message
    assert _valid_ids_in(message) == []


def test_an_expectation_gx_cannot_evaluate_blocks(wh, monkeypatch):
    """A broken check (here custom SQL naming a column that does not exist) is never a pass."""
    import copy

    from povwatch.tasks.validate import suites as validate

    path, con = wh
    suite = copy.deepcopy(validate.suite_definition("caizheng"))
    suite["expectations"].append({
        "type": "unexpected_rows_expectation",
        "kwargs": {"unexpected_rows_query": "SELECT period, source_file, source_row FROM {batch} WHERE no_such_column > 0"},
        "description": "坏的自定义校验", "severity": "warning",
        "meta": {"name": "broken_check", "severity": "warning", "row_level": True, "quarantine": True},
    })
    monkeypatch.setattr(validate, "suite_definition", lambda dept: suite)
    insert(con, "caizheng", "2020-07", [{"id_number": make_id(i), "name": f"人{i}", "employer": "县财政局"}
                                        for i in range(5)])
    outcome = validate.validate_extract(path, "2020-07", "caizheng", "run-broken")
    assert outcome.blocking_failed
    failure = next(f for f in outcome.failures if f["expectation"] == "broken_check")
    assert failure["blocking"] and failure["error"]
    assert validations(con, "2020-07", "caizheng")["broken_check"][:2] == (True, False)
    assert outcome.quarantined_rows == 0


def test_gx_reads_every_pending_table_s_columns_as_sqlalchemy_reflects_them(wh):
    """GX's column lookup goes to DuckDB's catalog (gx_duckdb.CatalogInspector) instead of
    SQLAlchemy's pg_catalog reflection: same names, types, nullability, for every department."""
    import sqlalchemy as sa

    from povwatch.tasks.ingest.contracts import department_codes
    from povwatch.tasks.validate import gx_duckdb

    path, con = wh
    for dept in department_codes():
        insert(con, dept, "2019-01", [{}])
    staged_types = con.execute("SELECT DISTINCT data_type FROM duckdb_columns() "
                               "WHERE schema_name = 'pending'").fetchall()
    assert all(gx_duckdb._reflected_type(t) is not None for (t,) in staged_types)  # none falls back
    engine = gx_duckdb.create_engine(gx_duckdb.warehouse_url(path))
    catalog, reflection = gx_duckdb.CatalogInspector(engine), sa.inspect(engine)

    def shown(columns):
        return [{**c, "type": repr(c["type"])} for c in columns]

    try:
        for dept in department_codes():
            fast = catalog.get_columns(dept, schema="pending")
            assert [c["name"] for c in fast] == [c for c, _ in load_contract(dept).staged_ddl_columns()]
            assert shown(fast) == shown(reflection.get_columns(dept, schema="pending")), dept
            assert catalog.get_pk_constraint(dept, schema="pending")["constrained_columns"] == []
    finally:
        engine.dispose()

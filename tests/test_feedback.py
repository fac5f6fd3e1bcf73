"""The township verification round-trip (核实反馈, issue #16), held against the shared eight-period
county (tests/conftest.py: loop_county) and its planted truth: the ledger after the townships'
feedback (truth/ledger.csv), the feedback rows that must be quarantined (truth/quarantine.csv),
the township folders of ``export --kind township``, and a clerk's round trip through a copy of the
county."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from tests.test_report import CHROMIUM, _closed_port

FULL_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def rows(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


def ledger_states(con) -> pl.DataFrame:
    upto = rows(con, "SELECT max(period) FROM mart.policy_used")[0][0]
    return pl.DataFrame(
        rows(con, "SELECT period, code, subject_id, status, rectification_unconfirmed "
                  "FROM mart.ledger_states(?)", [upto]),
        schema=["period", "code", "subject_id", "status", "rectification_unconfirmed"], orient="row")


# ---------------------------------------------------------------- the planted truth

def test_ledger_after_feedback_is_the_planted_truth(loop_county):
    """Every problem in every period: open / closed / dismissed and 整改未见数据, as planted."""
    truth = pl.read_csv(loop_county.truth / "ledger.csv", infer_schema_length=0).with_columns(
        pl.col("rectification_unconfirmed") == "true")
    got = ledger_states(loop_county.con)
    key = ["period", "code", "subject_id", "status", "rectification_unconfirmed"]
    assert sorted(got.select(key).rows()) == sorted(truth.select(key).rows())
    # the truth exercises what loop.md asks: refutations, unconfirmed fixes, closures
    assert {"open", "closed", "dismissed"} <= set(truth["status"])
    assert truth["rectification_unconfirmed"].any()
    events = dict(rows(loop_county.con, "SELECT event, count(*) FROM mart.problem_events GROUP BY ALL"))
    for event in ("confirmed", "dismissed", "suppressed", "rectification_reported",
                  "rectification_unconfirmed"):
        assert events.get(event, 0) > 0, event


def test_badly_filled_feedback_rows_are_quarantined_exactly(loop_county):
    con = loop_county.con
    got = rows(con, "SELECT period, dept, file, row_number::VARCHAR, unnest(reasons) FROM quarantine.rows "
                    "WHERE dept = 'feedback'")
    truth = pl.read_csv(loop_county.truth / "quarantine.csv", infer_schema_length=0).filter(
        pl.col("dept") == "feedback")
    assert truth["period"].n_unique() >= 3 and truth["reason"].n_unique() == 6   # every kind
    assert sorted(got) == sorted(truth.rows())


def test_blank_results_are_counted_not_quarantined(loop_county):
    """Per returned file: read = loaded + quarantined; loaded = verifications + rows left blank,
    and the blank rows are exactly the rows of the workbook whose 核实结果 is empty."""
    con = loop_county.con
    per_file = rows(con, """
        SELECT e.file, e.rows_read, e.rows_loaded, e.rows_quarantined,
               (SELECT count(*) FROM staging.feedback s WHERE s.source_file = e.file
                  AND s.result IS NULL) AS blank,
               (SELECT count(*) FROM mart.verifications v WHERE v.source_file = e.file) AS verified
        FROM audit.extracts e WHERE e.dept = 'feedback' AND e.status = 'accepted'""")
    assert len(per_file) >= 3 * 10
    blank_total = 0
    for file, read, loaded, quarantined, blank, verified in per_file:
        assert read == loaded + quarantined, file
        assert loaded == verified + blank, file
        sheet = openpyxl.load_workbook(loop_county.inbox / file, read_only=True).worksheets[0]
        values = list(sheet.iter_rows(min_row=3, values_only=True))
        assert blank == sum(1 for r in values if r[0] and not r[3]), file
        blank_total += blank
    assert blank_total > 0


# ---------------------------------------------------------------- export --kind township

@pytest.fixture(scope="module")
def township_folders(loop_county, tmp_path_factory):
    from povwatch.tasks.office.township import write_township_exports

    out = tmp_path_factory.mktemp("township_export")
    return write_township_exports(loop_county.warehouse, "2021-03", out_dir=out)


def test_each_township_folder_holds_only_its_own_rows(loop_county, township_folders):
    con = loop_county.con
    ledger = dict(rows(con, "SELECT problem_key, township_code FROM mart.ledger_as_of('2021-03') "
                            "WHERE status = 'open'"))
    homes = dict(rows(con, "SELECT household_id, township_code FROM mart.household_status "
                           "WHERE period = '2021-03' AND monitored AND household_id IS NOT NULL"))
    assert {f.name.split("-")[0] for f in township_folders} >= set(ledger.values()) | set(homes.values())
    exported_keys, exported_homes = [], []
    for folder in township_folders:
        code = folder.name.split("-")[0]
        book = openpyxl.load_workbook(next(folder.glob("核实反馈表-*.xlsx")))
        sheet = book.worksheets[0]
        header = [c.value for c in sheet[2]]
        body = [dict(zip(header, r)) for r in sheet.iter_rows(min_row=3, values_only=True) if r[0]]
        assert {r["乡镇代码"] for r in body} <= {code}
        assert all(ledger[r["问题编号"]] == code for r in body)
        exported_keys += [r["问题编号"] for r in body]
        # the drop-down for 核实结果 and the fill-in columns left empty
        lists = [v for v in sheet.data_validations.dataValidation if v.type == "list"]
        assert lists and lists[0].formula1 == '"属实,不属实,已整改"'
        assert all(r["核实结果"] is None and r["核实日期"] is None for r in body)
        monitored = openpyxl.load_workbook(next(folder.glob("监测对象-*.xlsx"))).worksheets[0]
        mheader = [c.value for c in monitored[1]]
        if "户编号" in mheader:
            ids = [r[mheader.index("户编号")] for r in monitored.iter_rows(min_row=2, values_only=True)]
            assert all(homes[i] == code for i in ids if i)
            exported_homes += [i for i in ids if i]
        for path in folder.iterdir():   # nothing leaves with a full identity number
            text = (path.read_text(encoding="utf-8") if path.suffix == ".html" else
                    " ".join(str(v) for ws in openpyxl.load_workbook(path).worksheets
                             for r in ws.iter_rows(values_only=True) for v in r if v is not None))
            assert not FULL_ID.search(text), path
    # every open problem and every monitored household went to exactly one township
    assert sorted(exported_keys) == sorted(ledger)
    assert sorted(exported_homes) == sorted(homes)


def test_township_page_shows_its_numbers(loop_county, township_folders):
    con = loop_county.con
    ranking = {code: (rank, open_) for code, rank, open_ in rows(
        con, "SELECT township_code, rank, open_problems FROM mart.township_ranking WHERE period = '2021-03'")}
    for folder in township_folders:
        code = folder.name.split("-")[0]
        html = next(folder.glob("乡镇概况-*.html")).read_text(encoding="utf-8")
        assert "<script" not in html and "http://" not in html and "https://" not in html
        if code in ranking:
            rank, open_ = ranking[code]
            assert f"月排名<b>{rank} / {len(ranking)}</b>" in html
            assert f"未整改问题<b>{open_}</b>" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_township_page_renders_offline_in_headless_chromium(township_folders, tmp_path):
    page = next(township_folders[0].glob("乡镇概况-*.html"))
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             f"--proxy-server=127.0.0.1:{_closed_port()}", "--window-size=1000,1400"]
    dom = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True,
                         text=True, timeout=90).stdout
    assert "乡镇概况" in dom and "<svg" in dom and "<rect" in dom and dom.count("<table") >= 1
    shot = tmp_path / "page.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.resolve().as_uri()], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- a clerk's round trip

def _fill_like_a_clerk(workbook: Path, target: Path, refute: str, confirm: str, fixed: str) -> None:
    """As a township clerk in WPS: free text instead of the drop-down, a date typed as text, the
    sheet renamed, blank rows left in, the file saved under another name."""
    book = openpyxl.load_workbook(workbook)
    sheet = book.worksheets[0]
    sheet.title = "Sheet1"
    header = [c.value for c in sheet[2]]
    col = {h: header.index(h) + 1 for h in header}
    for row in range(3, sheet.max_row + 1):
        key = sheet.cell(row, col["问题编号"]).value
        if key == refute:
            sheet.cell(row, col["核实结果"], "不实")             # typed, not picked
            sheet.cell(row, col["说明"], "经入户核实，车辆系他人借用身份证登记")
            sheet.cell(row, col["核实人"], "张三")
            sheet.cell(row, col["核实日期"], "2021年5月6日")      # a date as text
        elif key == confirm:
            sheet.cell(row, col["核实结果"], "属实")
            sheet.cell(row, col["核实人"], "李四")
            sheet.cell(row, col["核实日期"], "2021.5.7")
        elif key == fixed:
            sheet.cell(row, col["核实结果"], "已整改")
            sheet.cell(row, col["佐证材料"], "乡政发〔2021〕12号")
            sheet.cell(row, col["核实日期"], "2021-05-08")
    sheet.insert_rows(3, 2)   # blank rows a clerk leaves under the header
    target.parent.mkdir(parents=True, exist_ok=True)
    book.save(target)


def _ledger_2021_05(warehouse: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return sorted(rows(con, "SELECT period, code, subject_id, status, reopen_count, deadline, "
                                "verified_result, verified_on, rectification_unconfirmed "
                                "FROM mart.ledger_states('2021-05')"))
    finally:
        con.close()


def _run(root: Path) -> int:
    from povwatch.flows.run_command import run_inbox

    return run_inbox(root / "inbox", period="2021-05", warehouse=root / "var" / "povwatch.duckdb",
                     mode="local", echo=lambda _line: None)


def _departments_into(root: Path, source: Path) -> None:
    """The departments deliver 2021-05: the same data as 2021-04 (files renamed for the month)."""
    for dept in source.iterdir():
        if dept.is_dir() and dept.name != "feedback":
            for f in dept.iterdir():
                target = root / "inbox" / "2021-05" / dept.name / f.name.replace("2021-04", "2021-05")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target)


@pytest.mark.slow
def test_round_trip_dismisses_confirms_and_reports_fixed_in_any_order(loop_county, tmp_path):
    import duckdb

    from povwatch.tasks.office.bulletin import bulletin_data
    from povwatch.tasks.office.township import write_township_exports

    con = loop_county.con
    # the township with the most open problems at the end of 2021-04, and three of its problems
    town, = rows(con, "SELECT township_code FROM mart.ledger_as_of('2021-04') WHERE status = 'open' "
                      "GROUP BY ALL ORDER BY count(*) DESC, township_code LIMIT 1")[0]
    keys = [k for k, in rows(con, "SELECT problem_key FROM mart.ledger_as_of('2021-04') WHERE status = 'open' "
                                  "AND township_code = ? "
                                  "ORDER BY problem_key", [town])]
    assert len(keys) >= 3
    refute, confirm, fixed = keys[:3]

    a, b = tmp_path / "a", tmp_path / "b"   # two copies of the county: feedback first / together
    for root in (a, b):
        shutil.copytree(loop_county.inbox, root / "inbox", ignore=shutil.ignore_patterns("truth"))
        shutil.copytree(loop_county.warehouse.parent, root / "var")
    folders = write_township_exports(a / "var" / "povwatch.duckdb", "2021-04", town, tmp_path / "out")
    workbook = next(folders[0].glob("核实反馈表-*.xlsx"))
    filled = a / "inbox" / "2021-05" / "feedback" / f"{town}核实情况.xlsx"
    _fill_like_a_clerk(workbook, filled, refute, confirm, fixed)
    (b / "inbox" / "2021-05" / "feedback").mkdir(parents=True)
    shutil.copy(filled, b / "inbox" / "2021-05" / "feedback" / filled.name)
    # copy a: the same file twice (a second copy under another name), before the departments
    shutil.copy(filled, filled.with_name(f"{town}核实情况（副本）.xlsx"))

    assert _run(a) in (0, 3)
    con_a = duckdb.connect(str(a / "var" / "povwatch.duckdb"), read_only=True)
    try:
        state = {k: (s, r, u) for k, s, r, u in rows(con_a, """
            SELECT problem_key, status, verified_result, rectification_unconfirmed
            FROM mart.ledger_as_of('2021-05') WHERE problem_key IN (?, ?, ?)""", [refute, confirm, fixed])}
        assert state[refute][:2] == ("dismissed", "不属实")
        assert state[confirm][:2] == ("open", "属实")
        assert state[fixed] == ("open", "已整改", False)   # no department data since the report yet
        # the ranking and the bulletin no longer count the dismissed problem
        open_before, = rows(con, "SELECT open_problems FROM mart.township_ranking "
                                 "WHERE period = '2021-04' AND township_code = ?", [town])[0]
        open_after, = rows(con_a, "SELECT open_problems FROM mart.township_ranking "
                                  "WHERE period = '2021-05' AND township_code = ?", [town])[0]
        assert open_after == open_before - 1
        from datetime import date
        data = bulletin_data(con_a, date(2021, 5, 1), date(2021, 5, 31))
        open_ledger, = rows(con_a, "SELECT count(*) FROM mart.ledger_as_of('2021-05') WHERE status = 'open'")[0]
        assert data["totals"]["open_end"] == open_ledger
        # the copy's duplicate rows were loaded once (重复行), nothing else was quarantined
        reasons = rows(con_a, "SELECT DISTINCT unnest(reasons) FROM quarantine.rows "
                              "WHERE dept = 'feedback' AND period = '2021-05'")
        assert reasons == [("重复行",)]
    finally:
        con_a.close()

    _departments_into(a, loop_county.inbox / "2021-04")   # the departments after the feedback
    assert _run(a) in (0, 3)
    _departments_into(b, loop_county.inbox / "2021-04")   # … and together with it, file once
    assert _run(b) in (0, 3)
    ledger_a, ledger_b = _ledger_2021_05(a / "var" / "povwatch.duckdb"), _ledger_2021_05(b / "var" / "povwatch.duckdb")
    assert ledger_a == ledger_b
    fixed_now = [r for r in ledger_a if r[0] == "2021-05" and r[6] == "已整改"]
    assert fixed_now and all(r[8] for r in fixed_now if r[3] == "open")   # 整改未见数据: data still shows it


# ---------------------------------------------------------------- the rules, on a hand-built county

def _verification(key: str, code: str, result: str, on: str, **extra) -> dict:
    note = "经核实系同名同姓" if result == "不属实" else None
    evidence = "乡政发〔2021〕3号" if result == "已整改" else None
    return {"problem_key": key, "code": code, "township_code": "620523101", "result": result,
            "note": note, "evidence": evidence, "verifier": "王五", "verified_on": on, **extra}


@pytest.fixture(scope="module")
def payroll_county(tmp_path_factory):
    """Twelve households whose heads are on the state payroll (P08) over five periods. In 2021-02
    the township refutes ten (不属实) and confirms two (属实); in 2021-04 the first one's employer
    changes (new evidence) and the second one's record disappears (the data closes it)."""
    from tests.support.marts import Fixture, add_all, good_household, idn

    periods = ("2021-01", "2021-02", "2021-03", "2021-04", "2021-05")
    heads = [idn("1970-01-01", 100 + i) for i in range(12)]
    key = {h: hashlib.md5(f"P08:{h}".encode()).hexdigest()[:16] for h in heads}
    fx = Fixture(tmp_path_factory.mktemp("payroll") / "w.duckdb")
    for period in periods:
        add_all(fx, period, *[good_household(f"H{i:02d}", h, period_year=2021) for i, h in enumerate(heads)])
        payroll = [{"id_number": h, "name": "张三", "employer": "县一中", "hired_on": "2010-09-01"}
                   for h in heads]
        if period >= "2021-04":
            payroll[0]["employer"] = "县医院"      # new evidence for a refuted problem
            payroll.pop(1)                           # refuted, then the data stops showing it
        fx.add("caizheng", period, payroll)
        if period == "2021-02":
            fx.add("feedback", period, [_verification(key[h], "P08", "不属实" if i < 10 else "属实",
                                                      "2021-02-20") for i, h in enumerate(heads)])
        fx.accept(period)
        if period == "2021-02":
            fx.accept(period, ("feedback",))
    for period in periods:
        fx.build(period)
    return fx, heads, key


def test_refuted_problem_is_suppressed_until_its_detail_changes(payroll_county):
    fx, heads, key = payroll_county
    history = fx.query("SELECT period, status, reopen_count, seen FROM mart.ledger_states('2021-05') "
                       "WHERE problem_key = ? ORDER BY period", [key[heads[0]]])
    assert [(p, s, r) for p, s, r, _ in history] == [
        ("2021-01", "open", 0), ("2021-02", "dismissed", 0), ("2021-03", "dismissed", 0),
        ("2021-04", "open", 1), ("2021-05", "open", 1)]
    events = fx.query("SELECT period, event FROM mart.problem_events WHERE problem_key = ? "
                      "AND event IN ('dismissed', 'suppressed', 'reopened') ORDER BY period, event",
                      [key[heads[0]]])
    assert events == [("2021-02", "dismissed"), ("2021-03", "suppressed"), ("2021-04", "reopened")]
    # the one the data stopped showing stays dismissed: it was never an error to fix
    assert fx.query("SELECT status FROM mart.problem_ledger WHERE problem_key = ?",
                    [key[heads[1]]]) == [("dismissed",)]
    ledger = fx.query("SELECT status, verified_result, verifier, verified_note FROM mart.problem_ledger "
                      "WHERE problem_key = ?", [key[heads[2]]])
    assert ledger == [("dismissed", "不属实", "王五", "经核实系同名同姓")]


def test_dismissed_problems_leave_the_ranking(payroll_county):
    fx, heads, key = payroll_county
    open_p08 = fx.query("SELECT count(*) FROM mart.ledger_as_of('2021-03') WHERE code = 'P08' "
                        "AND status = 'open'")[0][0]
    assert open_p08 == 2   # the two confirmed ones
    ranking, = fx.query("SELECT open_problems FROM mart.township_ranking WHERE period = '2021-03'")
    everything, = fx.query("SELECT count(*) FROM mart.ledger_as_of('2021-03') WHERE status = 'open'")
    assert ranking == everything


def test_rule_precision_and_its_alert(payroll_county):
    fx, _, _ = payroll_county
    county = fx.query("SELECT period, confirmed, refuted, precision, median_days_to_verify, "
                      "window_verifications, alert FROM mart.rule_precision "
                      "WHERE code = 'P08' AND township_code IS NULL ORDER BY period")
    # 2 属实 + 10 不属实 on 2021-02-20, 20 days after the end of 2021-01 (when they opened)
    assert county == [("2021-02", 2, 10, pytest.approx(2 / 12), 20.0, 12, True)]
    township = fx.query("SELECT confirmed, refuted FROM mart.rule_precision "
                        "WHERE code = 'P08' AND township_code = '620523101'")
    assert township == [(2, 10)]


def test_a_changed_precision_threshold_reaches_every_built_period(payroll_county, tmp_path, monkeypatch):
    """The alert's thresholds are the latest period's policy. A build writes only the rebuilt
    periods' rule precision while they stay the same; when the county changes one, building the
    latest period again rewrites every period's rows with it (2021-02's 12 verifications fall under
    a minimum of 13: no alert)."""
    import duckdb

    from povwatch.tasks.core.settings import POLICY_DIR
    from povwatch.tasks.marts.build import build_marts

    fx, _, _ = payroll_county
    fx.con.execute("CHECKPOINT")
    copy = tmp_path / "wh" / "w.duckdb"
    copy.parent.mkdir()
    shutil.copyfile(fx.path, copy)
    folder = tmp_path / "county" / "policy"
    folder.mkdir(parents=True)
    text = (POLICY_DIR / "2020.toml").read_text(encoding="utf-8")
    assert "rule_precision_min_verifications = 10 " in text
    (folder / "2020.toml").write_text(text.replace("rule_precision_min_verifications = 10 ",
                                                   "rule_precision_min_verifications = 13 "),
                                      encoding="utf-8")
    monkeypatch.setenv("POVWATCH_COUNTY", str(tmp_path / "county"))
    assert build_marts(copy, "2021-05", "run-threshold")["periods_built"] == ["2021-05"]
    con = duckdb.connect(str(copy), read_only=True)
    try:
        alerts = con.execute("SELECT period, window_verifications, alert FROM mart.rule_precision "
                             "WHERE code = 'P08' AND township_code IS NULL").fetchall()
    finally:
        con.close()
    assert alerts == [("2021-02", 12, False)]

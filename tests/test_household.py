"""``povwatch household``: the household file (一户一档) held against the generator's planted truth,
key lookups (identity number, 户编号, masked number + name, ambiguous, unknown, malformed), and
every HTML page povwatch writes free of network references — Data Docs included — with one Data
Docs page and one household page rendered in headless Chromium with the network unreachable."""
from __future__ import annotations

import csv
import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import polars as pl
import pytest

from povwatch.tasks.core.privacy import mask_id
from povwatch.flows.office_commands import household_cli, township_export_cli
from povwatch.tasks.office.household import (KeyProblem, household_file,
                                             render_html, resolve_key)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# A reference the browser would fetch or follow: src/href/action/url()/@import to http(s) or //.
NETWORK_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|action|poster|data)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']?)"""
    r"""(?:https?:)?//""", re.IGNORECASE)


def _truth(loop_county, name: str) -> pl.DataFrame:
    return pl.read_csv(loop_county.truth / name, infer_schema=False)


def _members(con, household_id: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT DISTINCT id_number FROM staging.fupin "
                                      "WHERE household_id = ?", [household_id]).fetchall()}


@pytest.fixture(scope="module")
def planted(loop_county):
    """The registry household with planted problems that the generator warned in the most periods
    (the richest story), and its file as the office reads it (unmasked, to compare)."""
    con = loop_county.con
    people = pl.from_arrow(con.sql(
        "SELECT DISTINCT id_number AS subject_id, household_id AS household_key FROM staging.fupin "
        "UNION SELECT DISTINCT household_id, household_id FROM staging.fupin").to_arrow_table())
    with_problems = (_truth(loop_county, "problems.csv").join(people, on="subject_id")
                     ["household_key"].unique())
    counts = (_truth(loop_county, "monitoring.csv")
              .filter(pl.col("household_key").is_in(with_problems.to_list()))
              .group_by("household_key").agg(pl.col("period").n_unique().alias("n"))
              .sort(["n", "household_key"], descending=[True, False]))
    assert counts.height, "the generator planted no warned registry household with a problem"
    key = counts["household_key"][0]
    reader = duckdb.connect(str(loop_county.warehouse), read_only=True)
    try:
        return key, household_file(reader, key, unmasked=True)
    finally:
        reader.close()


def _inbox_row(inbox: Path, source_file: str, row: int) -> list[str]:
    """The cells of a row of a delivered file, as the clerk numbers it (Excel row / editor line)."""
    path = inbox / source_file
    if path.suffix.lower() == ".xlsx":
        sheet = openpyxl.load_workbook(path, read_only=True).active
        cells = next(sheet.iter_rows(min_row=row, max_row=row, values_only=True))
        return ["" if v is None else str(v) for v in cells]
    data = path.read_bytes()
    text = data.decode("utf-8-sig") if data[:3] == b"\xef\xbb\xbf" else data.decode("gb18030")
    return next(csv.reader([text.splitlines()[row - 1]]))


def test_warnings_and_problems_are_the_planted_ones(loop_county, planted):
    key, hf = planted
    truth = _truth(loop_county, "monitoring.csv").filter(pl.col("household_key") == key)
    shown = set(hf.warnings.select("period", "category").iter_rows())
    assert shown == set(truth.select("period", "category").iter_rows())

    household_id = hf.status["household_id"][-1]
    subjects = {key, household_id} | _members(loop_county.con, household_id)
    planted_problems = _truth(loop_county, "problems.csv").filter(pl.col("subject_id").is_in(sorted(subjects)))
    ledger = hf.sections["问题台账"]
    assert set(ledger.select("code", "subject_id").iter_rows()) == \
        set(planted_problems.select("code", "subject_id").iter_rows())


def test_evidence_rows_are_the_marts_and_point_at_this_households_rows(loop_county, planted):
    key, hf = planted
    mart = loop_county.con.execute(
        "SELECT DISTINCT m.period, e->>'reason', e->>'source_file', CAST(e->>'source_row' AS INTEGER) "
        "FROM mart.monitoring m, unnest(from_json(m.evidence, '[\"json\"]')) AS t(e) "
        "WHERE m.household_key = ?", [key]).fetchall()
    shown = set(hf.evidence.select("period", "reason", "source_file", "source_row").iter_rows())
    assert shown == set(mart) and shown
    # every row named exists in the delivered file and holds this household's number or a member's
    household_id = hf.status["household_id"][-1]
    ours = {key, household_id} | _members(loop_county.con, household_id)
    rows = hf.evidence.filter(pl.col("source_file").is_not_null())
    assert rows.height
    for source_file, source_row in rows.select("source_file", "source_row").unique().iter_rows():
        cells = _inbox_row(loop_county.inbox, source_file, source_row)
        assert ours & set(cells), f"{source_file} row {source_row} is not this household's: {cells}"


def test_events_and_plan_are_the_marts(loop_county, planted):
    key, hf = planted
    con = loop_county.con
    events = con.execute("SELECT period, event FROM mart.monitoring_events WHERE household_key = ?",
                         [key]).fetchall()
    assert set(hf.sections["监测事件"].select("period", "event").iter_rows()) == set(events)
    problem_events = con.execute("SELECT period, problem_key, event FROM mart.problem_events "
                                 "WHERE household_key = ?", [key]).fetchall()
    assert set(hf.sections["问题事件"].select("period", "problem_key", "event").iter_rows()) == \
        set(problem_events)
    plan = con.execute("SELECT period, measure FROM mart.household_plan WHERE household_key = ?",
                       [key]).fetchall()
    assert set(hf.plan.select("period", "measure").iter_rows()) == set(plan) and plan


def test_the_printed_file_is_masked_and_says_why(loop_county, planted):
    key, hf = planted
    lines: list[str] = []
    assert household_cli(key, None, None, False, False, loop_county.warehouse, echo=lines.append) == 0
    text = "\n".join(lines)
    household_id = hf.status["household_id"][-1]
    for number in _members(loop_county.con, household_id):
        assert number not in text and mask_id(number) in text
    for reason in hf.evidence["reason"].unique().to_list():
        assert reason in text
    for source_file in hf.evidence["source_file"].drop_nulls().unique().to_list():
        assert source_file in text


def test_lookups_by_number_registry_number_and_masked_number_with_name(loop_county, planted):
    key, hf = planted
    con = loop_county.con
    household_id = hf.status["household_id"][-1]
    number, name = con.execute("SELECT id_number, name FROM staging.fupin WHERE household_id = ? "
                               "ORDER BY period DESC, person_no LIMIT 1", [household_id]).fetchone()
    assert resolve_key(con, number) == key
    assert resolve_key(con, household_id) == key
    assert resolve_key(con, mask_id(number), name) == key
    lines: list[str] = []
    assert household_cli(mask_id(number), name, None, False, False, loop_county.warehouse,
                         echo=lines.append) == 0


def test_ambiguous_unknown_and_malformed_keys_get_a_message(tmp_path):
    """Two households each with a 张伟 whose numbers share their first 6 and last 4 characters."""
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("CREATE SCHEMA mart; CREATE SCHEMA staging")
    con.execute("CREATE TABLE mart.household_status (period VARCHAR, household_key VARCHAR, "
                "household_id VARCHAR, head_id_number VARCHAR)")
    con.execute("CREATE TABLE staging.fupin (period VARCHAR, household_id VARCHAR, "
                "id_number VARCHAR, name VARCHAR)")
    con.execute("INSERT INTO mart.household_status VALUES ('2020-09', 'H1', 'H1', NULL), "
                "('2020-09', 'H2', 'H2', NULL)")
    con.execute("INSERT INTO staging.fupin VALUES ('2020-09', 'H1', '620523198001018004', '张伟'), "
                "('2020-09', 'H2', '620523199912318004', '张伟')")
    with pytest.raises(KeyProblem, match="对应多户"):
        resolve_key(con, "620523********8004", "张伟")
    assert resolve_key(con, "620523198001018004") == "H1"
    with pytest.raises(KeyProblem, match="没有找到"):
        resolve_key(con, "620523********8004", "李四")
    with pytest.raises(KeyProblem, match="须同时给出姓名"):
        resolve_key(con, "620523********8004")
    with pytest.raises(KeyProblem, match="无法识别"):
        resolve_key(con, "'; DROP TABLE x; --")
    con.close()
    for args in [("620523********8004", "张伟"), ("nobody",), ("a b c",)]:
        lines: list[str] = []
        key, name = args[0], (args[1] if len(args) > 1 else None)
        assert household_cli(key, name, None, False, False, warehouse, echo=lines.append) == 1
        assert lines and lines[0].startswith("错误：") and "Traceback" not in "\n".join(lines)
        assert "620523199912318004" not in "\n".join(lines)


# ----------------------------------------------------------------------------- offline pages


@pytest.fixture(scope="module")
def pages(loop_county, planted, tmp_path_factory):
    """Every kind of HTML page povwatch writes, from the loop county, in a folder of this module's
    own (the shared county's output stays as the run left it): the run's Data Docs (copied, with
    their assets) and reports, and a report, bulletin, township pages (where that export exists)
    and a household page written here."""
    import datetime
    import os

    from povwatch.tasks.office.bulletin import write_bulletin
    from povwatch.tasks.office.report import write_report

    key, _ = planted
    out = tmp_path_factory.mktemp("household-pages")
    for folder in ("datadocs", "reports"):
        if (loop_county.output / folder).is_dir():
            shutil.copytree(loop_county.output / folder, out / folder)
    os.environ["POVWATCH_OUTPUT"] = str(out)
    try:
        write_report(loop_county.warehouse)
        write_bulletin(loop_county.warehouse, "weekly", datetime.date(2000, 1, 1),
                       datetime.date(2030, 1, 1))
        township_export_cli(period=None, township=None, out_dir=None, warehouse=loop_county.warehouse)
        assert household_cli(key, None, None, True, False, loop_county.warehouse,
                             echo=lambda _line: None) == 0
    finally:
        os.environ.pop("POVWATCH_OUTPUT", None)
    return out, sorted(out.rglob("*.html"))


def test_no_page_povwatch_writes_references_the_network(pages):
    out, pages = pages
    kinds = {p.relative_to(out).parts[0] for p in pages}
    assert {"datadocs", "reports", "bulletins", "households"} <= kinds, kinds
    found = [f"{p.relative_to(out)}: {m.group(0)}"
             for p in pages for m in NETWORK_REFERENCE.finditer(p.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found[:20])


def test_household_page_is_masked_and_has_the_income_chart(loop_county, planted, pages):
    key, hf = planted
    page = pages[0] / "households" / f"household-{key}.html"    # a 户编号: as it is
    html = page.read_text(encoding="utf-8")
    assert "<svg" in html and "人均纯收入" in html
    for number in _members(loop_county.con, hf.status["household_id"][-1]):
        assert number not in html


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _computed_style(page: Path, selector: str, prop: str, tmp_path: Path) -> str:
    """getComputedStyle(selector)[prop] of a page rendered by headless Chromium with every request
    sent to a closed port: a harness page beside it loads it in a frame and writes the value."""
    harness = page.parent / f"_harness_{page.stem}.html"
    harness.write_text(f"""<!DOCTYPE html><html><body><div id="out">pending</div>
<iframe id="f" src="{page.name}" style="width:1200px;height:900px"></iframe>
<script>
document.getElementById('f').addEventListener('load', function () {{
  var d = this.contentDocument, el = d && d.querySelector({json.dumps(selector)});
  document.getElementById('out').textContent =
    'STYLE[' + (el ? getComputedStyle(el)[{json.dumps(prop)}] : 'missing') + ']';
}});
</script></body></html>""", encoding="utf-8")
    try:
        flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--allow-file-access-from-files", "--virtual-time-budget=8000",
                 f"--user-data-dir={tmp_path / 'profile'}",
                 f"--proxy-server=127.0.0.1:{_closed_port()}", "--host-resolver-rules=MAP * ~NOTFOUND",
                 "--dump-dom", harness.as_uri()]
        dom = subprocess.run(flags, capture_output=True, text=True, timeout=120).stdout
    finally:
        harness.unlink()
    found = re.search(r"STYLE\[(.*?)\]", dom)
    assert found, dom[-2000:]
    return found.group(1)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_data_docs_and_household_page_render_styled_offline(pages, tmp_path):
    out, pages = pages
    docs = [p for p in pages if "datadocs" in p.parts and "validations" in p.parts]
    assert docs, "no Data Docs validation page was written"
    # Bootstrap's font stack (unstyled: the browser's serif default) and a Font Awesome icon
    assert "apple-system" in _computed_style(docs[0], "body", "fontFamily", tmp_path)
    household = next(p for p in pages if p.parent.name == "households")
    assert _computed_style(household, "table.data th", "backgroundColor",
                           tmp_path) == "rgb(238, 242, 248)"


def test_every_cdn_file_the_pages_name_is_shipped_with_its_licence():
    from povwatch.tasks.validate.datadocs_offline import ASSETS, LOCAL_COPIES

    for local in LOCAL_COPIES.values():
        assert (ASSETS / local).is_file(), local
        package = ASSETS / local.split("/")[0]
        assert any((package / n).is_file() for n in ("LICENSE", "LICENSE.txt", "package.json")), package

"""The HTML report: one self-contained, offline file per period that says what it was built from."""
from __future__ import annotations

import re
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import duckdb
import pytest

from povwatch.tasks.office.outputs import WarehouseUnavailable
from povwatch.flows.office_commands import report_cli
from povwatch.tasks.office.report import write_report
from tests.support.fixtures_marts import PERIODS, TOWNSHIPS, full_ids_in, marts_warehouse  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(marts_warehouse) -> Path:  # noqa: F811
    return write_report(marts_warehouse)


def test_report_is_kept_per_run_with_a_stable_latest_copy(marts_warehouse, report):  # noqa: F811
    folder = marts_warehouse.parent / "output" / "reports" / PERIODS[-1]
    assert report.parent == folder and re.fullmatch(r"report-\d{8}T\d{6}Z\.html", report.name)
    latest = folder / "latest.html"
    assert latest.read_bytes() == report.read_bytes()
    again = write_report(marts_warehouse, run_id="run 7/x")
    assert again.name == "report-run_7_x.html" and report.exists()
    rerun = write_report(marts_warehouse, run_id="run 7/x")
    assert rerun.name == "report-run_7_x-2.html" and again.exists()
    for path in (report, latest, again, rerun):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_report_covers_every_section_in_chinese(report):
    html = report.read_text(encoding="utf-8")
    for heading in ("“3+1”指标与收入", "监测对象", "问题台账", "乡镇月排名", "各部门数据质量", "数据来源"):
        assert heading in html
    for name in TOWNSHIPS.values():
        assert name in html
    # the bottom three of the ranking are marked, and only they
    assert html.count('class="bottom3"') == 3 and html.count("末三位</span>") == 3
    # change from the last period is shown
    assert f"对比上期 {PERIODS[-2]}" in html and "本期新预警" in html


def test_report_says_what_it_was_built_from_without_ids(marts_warehouse, report):  # noqa: F811
    html = report.read_text(encoding="utf-8")
    period = PERIODS[-1]
    assert f"{period}/fupin/fupin_{period}.xlsx" in html
    assert f"{PERIODS[-2]}/shuili/shuili_{PERIODS[-2]}.xlsx" in html   # carried forward, said so
    assert f"沿用{PERIODS[-2]}" in html
    assert "2020-11-30" in html                     # the as-of date
    assert "run-1" not in html and "run-3" not in html and "abfupin" not in html
    assert "bad.csv" not in html                    # a rejected delivery is not a source
    assert not full_ids_in(html)


def test_report_is_self_contained_and_links_data_docs(marts_warehouse, report):  # noqa: F811
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    assert "<link" not in html.lower()
    href = re.search(r'<a href="([^"]+)">Great Expectations', html).group(1)
    assert not href.startswith("/")                 # relative: the output folder can be moved
    assert (report.parent / href).resolve() == (
        marts_warehouse.parent / "output" / "datadocs" / "local_site" / "index.html").resolve()


def test_past_period_shows_the_ledger_as_it_was(marts_warehouse):  # noqa: F811
    path = write_report(marts_warehouse, PERIODS[1])
    html = path.read_text(encoding="utf-8")
    con = duckdb.connect(str(marts_warehouse), read_only=True)
    open_, overdue = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'open'), "
        "count(*) FILTER (WHERE status = 'open' AND overdue) FROM mart.ledger_as_of(?)",
        [PERIODS[1]]).fetchall()[0]
    con.close()
    kpi = re.search(r"未整改问题<b>(\d+)</b>其中逾期 (\d+)", html)
    assert (int(kpi.group(1)), int(kpi.group(2))) == (open_, overdue)
    assert path.parent.name == PERIODS[1]


def test_report_works_while_this_process_holds_the_warehouse(marts_warehouse):  # noqa: F811
    """A flow calls write_report with its own read-write connection still open."""
    con = duckdb.connect(str(marts_warehouse))
    try:
        assert write_report(marts_warehouse).exists()
    finally:
        con.close()


def test_unknown_period_and_missing_warehouse_are_clear(marts_warehouse, tmp_path, capsys):  # noqa: F811
    with pytest.raises(WarehouseUnavailable, match="2019-01"):
        write_report(marts_warehouse, "2019-01")
    assert report_cli("2019-01", marts_warehouse) == 2
    assert report_cli(None, tmp_path / "none.duckdb") == 2
    err = capsys.readouterr().err
    assert "仓库文件不存在" in err and "does not exist" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_offline_in_headless_chromium(report, tmp_path):
    """Charts and tables render with every request pointed at a closed proxy port."""
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             f"--proxy-server=127.0.0.1:{_closed_port()}", "--window-size=1200,2400"]
    url = report.resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=90).stdout
    assert dom.count("<svg") >= 10, "charts missing"
    assert dom.count("<table") >= 8, "tables missing"
    assert "乡镇月排名" in dom and "<rect" in dom and "<path" in dom
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", url], capture_output=True, timeout=90)
    assert shot.exists() and shot.stat().st_size > 50_000   # a rendered page, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_township_names_come_from_the_divisions_csv(marts_warehouse, tmp_path, monkeypatch):  # noqa: F811
    """A warehouse without mart.divisions (never built by this version) is named from the division
    CSV of the settings: here the county folder's."""
    copy = tmp_path / "w" / "povwatch.duckdb"
    copy.parent.mkdir()
    shutil.copy(marts_warehouse, copy)
    con = duckdb.connect(str(copy))
    con.execute("DROP TABLE mart.divisions")
    con.close()
    county = tmp_path / "county"
    (county / "reference").mkdir(parents=True)
    (county / "reference" / "divisions.csv").write_text(
        "code,name,level,parent\n620523100,甲镇,township,620523\n620523,乙县,county,620500\n",
        encoding="utf-8")
    monkeypatch.setenv("POVWATCH_COUNTY", str(county))
    html = write_report(copy).read_text(encoding="utf-8")
    assert "甲镇" in html and "<h1>乙县" in html
    assert "620523101" in html                      # a township the CSV does not name: its code

"""``povwatch sql``: read-only by construction, three output formats, clear messages."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from tests.support.fixtures_marts import PERIODS, marts_warehouse  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def _sql(warehouse: Path, query: str, *extra: str):
    return CliRunner().invoke(main, ["sql", query, "--warehouse", str(warehouse), *extra])


def _display(text: str) -> int:
    return sum(2 if ord(c) > 0x2E80 else 1 for c in text)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


QUERY = ("SELECT period, count(DISTINCT household_key) AS households, list_sort(list_distinct("
         "flatten(list(reasons)))) AS reasons FROM mart.monitoring GROUP BY period ORDER BY period")


def test_table_csv_and_json(marts_warehouse):  # noqa: F811
    table = _sql(marts_warehouse, QUERY)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split(" | ")[0].strip() == "period" and set(lines[1]) <= {"-", "+"}
    assert lines[2].startswith(PERIODS[0]) and "因病" in table.output
    assert f"（{len(PERIODS)} 行 / rows）" in table.output
    # columns line up (CJK counted as two cells wide): every separator at the same display column
    shown = [lines[0], *lines[2:2 + len(PERIODS)]]
    first = {len(line.split(" | ")[0]) for line in shown}
    second = {_display(line.split(" | ")[1]) for line in shown}
    assert len(first) == 1 and len(second) == 1 and lines[1].index("+") == first.pop() + 1

    csv_out = _sql(marts_warehouse, QUERY, "--format", "csv")
    assert csv_out.exit_code == 0
    assert csv_out.output.splitlines()[0] == "period,households,reasons"
    assert len(csv_out.output.splitlines()) == 1 + len(PERIODS)

    js = _sql(marts_warehouse, QUERY, "--format", "json")
    rows = json.loads(js.output)
    assert [r["period"] for r in rows] == list(PERIODS)
    assert isinstance(rows[0]["reasons"], list) and isinstance(rows[0]["households"], int)


def test_json_handles_dates_and_decimals(marts_warehouse):  # noqa: F811
    result = _sql(marts_warehouse, "SELECT DATE '2020-10-31' AS d, 1.50::DECIMAL(14,2) AS m, "
                  "NULL AS n", "--format", "json")
    assert json.loads(result.output) == [{"d": "2020-10-31", "m": 1.5, "n": None}]


@pytest.mark.parametrize("statement, says", [
    ("INSERT INTO audit.runs (run_id) VALUES ('x')", "read-only"),
    ("DELETE FROM mart.monitoring", "read-only"),
    ("CREATE TABLE mart.x AS SELECT 1", "read-only"),
    ("DROP TABLE mart.monitoring", "read-only"),
    ("COPY mart.household_status TO '{out}'", "other files"),
    ("EXPORT DATABASE '{out}.d'", "other files"),
    ("ATTACH '{out}.duckdb' AS other", "other files"),
    ("SELECT 1; DELETE FROM mart.monitoring", "One statement"),
])
def test_writes_are_refused_and_nothing_changes(marts_warehouse, tmp_path, statement, says):  # noqa: F811
    before = _digest(marts_warehouse)
    out = tmp_path / "leak.csv"
    result = _sql(marts_warehouse, statement.format(out=out))
    assert result.exit_code == 2
    assert says in result.output and "错误：" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not Path(f"{out}.duckdb").exists()
    assert not Path(f"{out}.d").exists()
    assert _digest(marts_warehouse) == before


def test_bad_query_and_missing_warehouse(marts_warehouse, tmp_path):  # noqa: F811
    bad = _sql(marts_warehouse, "SELEC 1")
    assert bad.exit_code == 1 and "query failed" in bad.output and "Traceback" not in bad.output
    missing = _sql(tmp_path / "nowhere.duckdb", "SELECT 1")
    assert missing.exit_code == 2
    assert "仓库文件不存在" in missing.output and "does not exist" in missing.output
    assert not (tmp_path / "nowhere.duckdb").exists()   # a read does not create a warehouse


def test_locked_warehouse_is_reported_clearly(marts_warehouse):  # noqa: F811
    """Another process (a running pipeline) holds a write connection: DuckDB's file lock."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, duckdb\n"
         "from povwatch.tasks.core.locking import warehouse_lock\n"
         "with warehouse_lock(sys.argv[1], what='povwatch run'):\n"
         "    c = duckdb.connect(sys.argv[1]); print('ready', flush=True); sys.stdin.read()",
         str(marts_warehouse)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        result = subprocess.run(
            [sys.executable, "-m", "povwatch.flows.cli", "sql", "SELECT 1", "--warehouse",
             str(marts_warehouse)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.returncode == 2
    assert "写锁" in result.stderr and "locked by a running pipeline" in result.stderr
    assert "povwatch run" in result.stderr             # who holds it, from the run lock file
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_raw_rows_in_the_lake_are_queryable_and_the_lake_stays_unwritable(tmp_path):
    """raw.<dept> reads Parquet beside the DuckDB file: povwatch sql may read those files, and
    still cannot write any file, not even into the lake folder, nor read files elsewhere."""
    from povwatch.tasks.ingest.load import lake_root, stage_extract

    inbox = tmp_path / "inbox"
    folder = inbox / "2020-06" / "caizheng"
    folder.mkdir(parents=True)
    (folder / "财政.csv").write_text("身份证号,姓名,工作单位,入职日期\n"
                                     "11010519491231002X,张三,县财政局,2010-01-15\n", encoding="utf-8")
    warehouse = tmp_path / "wh" / "povwatch.duckdb"
    assert stage_extract(warehouse, inbox, "2020-06", "caizheng", "r1").status == "staged"

    result = _sql(warehouse, "SELECT source_row, name FROM raw.caizheng", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"source_row": 2, "name": "张三"}]

    lake = lake_root(warehouse)
    before = sorted(p for p in lake.rglob("*"))
    for statement in (f"COPY (SELECT 1) TO '{lake}/leak.csv'",
                      f"SELECT * FROM read_csv('{folder / '财政.csv'}')"):
        refused = _sql(warehouse, statement)
        assert refused.exit_code == 2 and "other files" in refused.output, refused.output
    assert sorted(p for p in lake.rglob("*")) == before

"""docs/new-department.md followed literally: a made-up sixteenth department (农机 — farm machinery
subsidies, `nongji`) and a rule that reads it (P90) are added to a temporary copy of the package
as files only — a contract, a suite written by scripts/build_suites.py, a model file with its
ORDER line, a catalogue entry and a deadline — and `povwatch run` over an inbox holding its
extract loads it, validates it with its suite, quarantines its bad row, writes its receipt and
raises P90 in the ledger. Every Python file of the copy is byte-identical to the repository's."""
from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = ("flows", "tasks", "warehouse", "expectations")
PERIOD = "2020-06"

CONTRACT = '''# 农机 — farm machinery purchase subsidies (农机购置补贴), one row per machine.
code = "nongji"
name = "农机服务中心"
grain = "machine"
unique = [["id_number", "machine"]]

[[columns]]
name = "id_number"
header = "身份证号"
type = "id"
required = true

[[columns]]
name = "machine"
header = "机具名称"
type = "text"
required = true

[[columns]]
name = "subsidy"
header = "补贴金额"
type = "money"
required = true
min = 0
'''

MODEL = '''-- reads:  deadlines, eff_fupin, eff_nongji, mart.departments, mart.rules, policy
-- writes: mart.problem_findings
-- P90: a registry member who received a farm-machinery subsidy of 30000 yuan or more.
DELETE FROM mart.problem_findings WHERE period = (SELECT period FROM policy) AND code = 'P90';
INSERT INTO mart.problem_findings
SELECT p.period, 'P90', n.id_number, r.subject_type, min(f.household_id),
       left(min(f.village_code), 9), min(f.village_code), r.responsible_dept, d.name, dl.days,
       '农机补贴' || sum(n.subsidy) || '元', to_json([{'dept': 'nongji'}])
FROM eff_nongji n
JOIN eff_fupin f USING (id_number)
CROSS JOIN policy p
JOIN mart.rules r ON r.code = 'P90'
LEFT JOIN mart.departments d ON d.code = r.responsible_dept
LEFT JOIN deadlines dl ON dl.code = 'P90'
GROUP BY p.period, n.id_number, r.subject_type, r.responsible_dept, d.name, dl.days
HAVING sum(n.subsidy) >= 30000;
'''

RULE = '''
[[rule]]
code = "P90"
name = "建档立卡人员享受大额农机购置补贴"
label = "大额农机补贴"
subject = "person"
responsible = "fupin"
reads = ["fupin", "nongji"]
'''


def _copy_package(root: Path) -> Path:
    """<root>/site/povwatch/{flows,tasks,warehouse,expectations}: the package as installed."""
    pkg = root / "site" / "povwatch"
    for part in PARTS:
        shutil.copytree(REPO / part, pkg / part,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return pkg


def _add_department(pkg: Path, env: dict) -> None:
    """Exactly the files docs/new-department.md lists, nothing else."""
    (pkg / "warehouse" / "contracts" / "nongji.toml").write_text(CONTRACT, encoding="utf-8")
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_suites.py"), "--dept", "nongji",
                    "--out", str(pkg / "expectations")], env=env, check=True, capture_output=True)
    (pkg / "warehouse" / "models" / "55_nongji.sql").write_text(MODEL, encoding="utf-8")
    order = pkg / "warehouse" / "models" / "ORDER"
    order.write_text(order.read_text(encoding="utf-8").replace(
        "50_findings.sql\n", "50_findings.sql\n55_nongji.sql\n"), encoding="utf-8")
    rules = pkg / "warehouse" / "rules.toml"
    rules.write_text(rules.read_text(encoding="utf-8") + RULE, encoding="utf-8")
    for policy in (pkg / "warehouse" / "policy").glob("[0-9]*.toml"):
        text = policy.read_text(encoding="utf-8")
        policy.write_text(text.replace("[deadlines]", "[deadlines]\nP90 = 30", 1), encoding="utf-8")


def test_the_model_states_what_it_reads_and_writes():
    from povwatch.tasks.marts.lineage import model_io
    reads, writes = model_io(MODEL)
    header = dict(line[3:].split(":", 1) for line in MODEL.splitlines()[:2])
    assert {n.strip() for n in header["reads"].split(",")} == reads
    assert {n.strip() for n in header["writes"].split(",")} == writes


def _python_files_identical(pkg: Path) -> list[str]:
    changed = []
    for part in ("flows", "tasks"):
        for path in (REPO / part).rglob("*.py"):
            copy = pkg / part / path.relative_to(REPO / part)
            if not copy.exists() or not filecmp.cmp(path, copy, shallow=False):
                changed.append(str(path.relative_to(REPO)))
    return changed


@pytest.fixture(scope="module")
def sixteenth(tmp_path_factory):
    root = tmp_path_factory.mktemp("dept16")
    pkg = _copy_package(root)
    changed_python = _python_files_identical(pkg)   # compared right after the copy
    env = {**os.environ, "PYTHONPATH": str(root / "site"), "POVWATCH_PREFECT": "local",
           "POVWATCH_WAREHOUSE": str(root / "w.duckdb"), "POVWATCH_OUTPUT": str(root / "out")}
    env.pop("POVWATCH_COUNTY", None)
    _add_department(pkg, env)
    inbox = root / "inbox"
    code = ("from povwatch.tasks.synth.generate import generate;"
            f"generate({str(inbox)!r}, period={PERIOD!r}, periods=2, households=20, seed=16)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    registry = pl.read_excel(next((inbox / PERIOD / "fupin").glob("*.xlsx")), read_options={"header_row": 2})
    member = registry["证件号码"].cast(pl.Utf8)[0]
    folder = inbox / PERIOD / "nongji"
    folder.mkdir()
    (folder / "农机补贴.csv").write_text(
        "身份证号,机具名称,补贴金额\n"
        f"{member},拖拉机,30000.00\n"
        "62052319800101001,收割机,8000\n",            # 17 digits: quarantined
        encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "povwatch.flows.cli", "run", "--inbox", str(inbox),
                          "--period", PERIOD, "--warehouse", str(root / "w.duckdb")], env=env, capture_output=True,
                         text=True, timeout=600)
    # the copy must be what ran: povwatch resolved from the copy, not from the repository
    where = subprocess.run([sys.executable, "-c", "import povwatch.tasks, sys; print(povwatch.tasks.__file__)"],
                           env=env, capture_output=True, text=True).stdout
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    yield {"root": root, "pkg": pkg, "run": run, "where": where, "con": con, "member": member,
           "changed_python": changed_python}
    con.close()


def test_the_copy_ran_and_no_python_file_differs(sixteenth):
    assert str(sixteenth["pkg"]) in sixteenth["where"]
    assert sixteenth["changed_python"] == []
    assert sixteenth["run"].returncode in (0, 3), sixteenth["run"].stderr[-2000:]


def test_the_new_department_is_loaded_validated_and_quarantined(sixteenth):
    con = sixteenth["con"]
    assert con.execute("SELECT id_number, machine, subsidy FROM staging.nongji").fetchall() == [
        (sixteenth["member"], "拖拉机", 30000)]
    reasons = con.execute("SELECT row_number, reasons FROM quarantine.rows WHERE dept = 'nongji'").fetchall()
    assert [r[0] for r in reasons] == [3] and reasons[0][1]
    status = con.execute("SELECT status FROM audit.extracts WHERE dept = 'nongji'").fetchall()
    assert ("accepted",) in status
    assert con.execute("SELECT count(*) FROM audit.validations WHERE dept = 'nongji'").fetchone()[0] > 0
    receipts = list((sixteenth["root"] / "out").rglob("回执_*_nongji.xlsx"))
    assert receipts


def test_its_rule_is_in_the_ledger(sixteenth):
    rows = sixteenth["con"].execute(
        "SELECT subject_id, status, responsible_name, rule_name FROM mart.problem_ledger WHERE code = 'P90'"
    ).fetchall()
    assert rows == [(sixteenth["member"], "open", "扶贫办", "建档立卡人员享受大额农机购置补贴")]
    depts = dict(sixteenth["con"].execute("SELECT code, name FROM mart.departments").fetchall())
    assert depts["nongji"] == "农机服务中心"



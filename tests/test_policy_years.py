"""Policy years after 2020: 2021 compares the watch line with income after unavoidable medical and
schooling costs (刚性支出), and a period whose year has no policy file runs on the latest earlier
file — saying so in audit.runs, `povwatch status`, the report's header and an alert."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import pytest

from povwatch.tasks.marts.build import load_policy
from tests.support.marts import Fixture, add_all, good_household, idn

ID: dict[str, str] = {}


def _i(key: str) -> str:
    if key not in ID:
        ID[key] = idn("1975-03-03")
    return ID[key]


def test_2021_is_2020_with_the_new_window_and_the_deduction():
    p20, p21, p22 = load_policy(2020), load_policy(2021), load_policy(2022)
    assert (p20["deduct_unavoidable_costs"], p21["deduct_unavoidable_costs"]) == (False, True)
    assert p21["monitoring_line"] == 6000 and p21["poverty_line"] == p20["poverty_line"]
    assert str(p21["income_window_start"]) == "2020-10-01" and str(p21["income_window_end"]) == "2021-09-30"
    assert p21["deadlines"] == p20["deadlines"]
    assert (p22["policy_year"], p22["policy_file_year"]) == (2022, 2021)


@pytest.fixture(scope="module")
def costs(tmp_path_factory):
    """An exited household at 6500 yuan a head whose costs take 600 a head (under 6000 after
    them), one whose costs leave exactly 6000, in December 2020 and January 2021."""
    fx = Fixture(tmp_path_factory.mktemp("costs") / "w.duckdb")
    for period, year in (("2020-12", 2020), ("2021-01", 2021)):
        under = good_household("H_UNDER", _i("under"), [_i("under2")], period_year=year,
                               status="已脱贫", pci_total=13000)
        under["shouru"][0].update(medical_out_of_pocket=400, education_out_of_pocket=800.02)
        at = good_household("H_AT", _i("at"), [_i("at2")], period_year=year, status="已脱贫",
                            pci_total=13000)
        at["shouru"][0].update(medical_out_of_pocket=200, education_out_of_pocket=800)
        add_all(fx, period, under, at)
        fx.accept(period)
        fx.build(period)
    return fx


def test_costs_push_a_household_under_the_watch_line_from_2021(costs):
    rows = costs.query("SELECT period, household_key, category, reasons FROM mart.monitoring "
                       "ORDER BY period, household_key")
    assert [(p, k, c) for p, k, c, _ in rows] == [("2021-01", "H_UNDER", "unstable_exited")]
    assert "刚性支出较大" in rows[0][3] and "收入不达标" not in rows[0][3]


def test_the_colour_and_income_ok_keep_the_plain_income(costs):
    rows = costs.query("SELECT household_key, color, income_ok FROM mart.household_status "
                       "WHERE period = '2021-01' ORDER BY household_key")
    assert rows == [("H_AT", "yellow", True), ("H_UNDER", "yellow", True)]


def test_the_policy_used_is_recorded_per_period(costs):
    used = dict(costs.query("SELECT period, json_extract_string(arg_max(\"values\", built_at), "
                            "'$.deduct_unavoidable_costs') FROM mart.policy_used GROUP BY period"))
    assert used == {"2020-12": "false", "2021-01": "true"}


@pytest.fixture(scope="module")
def run_2022(tmp_path_factory):
    root = tmp_path_factory.mktemp("y2022")
    env = {**os.environ, "POVWATCH_PREFECT": "local", "POVWATCH_WAREHOUSE": str(root / "w.duckdb"),
           "POVWATCH_OUTPUT": str(root / "out")}
    env.pop("POVWATCH_ALERT_URLS", None)
    env.pop("POVWATCH_COUNTY", None)
    inbox = root / "inbox"
    subprocess.run([sys.executable, "-c",
                    "from povwatch.tasks.synth.generate import generate;"
                    f"generate({str(inbox)!r}, period='2022-01', periods=2, households=30, seed=22)"],
                   env=env, check=True, capture_output=True)
    cli = [sys.executable, "-m", "povwatch.flows.cli"]
    run = subprocess.run([*cli, "run", "--inbox", str(inbox), "--period", "2022-01"], env=env,
                         capture_output=True, text=True, timeout=600)
    status = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=120)
    return {"root": root, "run": run, "status": status}


WARNING = "2022年没有政策参数文件，沿用2021年参数"


def test_a_year_without_a_policy_file_runs_on_the_latest_earlier_one(run_2022):
    assert run_2022["run"].returncode == 0, run_2022["run"].stdout[-1500:] + run_2022["run"].stderr[-1500:]
    con = duckdb.connect(str(run_2022["root"] / "w.duckdb"), read_only=True)
    try:
        used = json.loads(con.execute("SELECT \"values\" FROM mart.policy_used WHERE period = '2022-01'")
                          .fetchone()[0])
        warnings = [w for (w,) in con.execute("SELECT warnings FROM audit.runs").fetchall() if w]
        alerts = con.execute("SELECT period, severity, summary FROM audit.alerts").fetchall()
    finally:
        con.close()
    assert (used["policy_year"], used["policy_file_year"]) == (2022, 2021)
    assert warnings and WARNING in warnings[0]                                   # audit.runs
    assert WARNING in run_2022["status"].stdout                                   # povwatch status
    report = run_2022["root"] / "out" / "reports" / "2022-01" / "latest.html"
    assert WARNING in report.read_text(encoding="utf-8")                          # the report
    assert any(p == "2022-01" and s == "warning" and "运行提示" in summary
               for p, s, summary in alerts)                                       # an alert

"""`povwatch rebuild`: a policy change reaches the marts without a delivery; a failed rebuild
leaves its periods for the next run to finish."""
from __future__ import annotations

import shutil

import duckdb
import pytest
from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.flows.rebuild import rebuild
from povwatch.tasks.core import runs
from povwatch.tasks.core.settings import POLICY_DIR
from povwatch.tasks.marts import build as marts
from tests.support.marts import Fixture, good_household, idn

PERIODS = ("2020-06", "2020-07")
HEAD = idn("1980-01-01")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Two periods of one household with 9000 yuan a head: yellow under the shipped policy."""
    fx = Fixture(tmp_path_factory.mktemp("rebuild") / "povwatch.duckdb")
    for period in PERIODS:
        for dept, rows in good_household("HA", HEAD, pci_total=9000).items():
            fx.add(dept, period, rows)
        fx.accept(period)
        fx.build(period)
    fx.con.execute("CHECKPOINT")
    fx.con.close()
    return fx.path


@pytest.fixture()
def built(template, tmp_path, monkeypatch):
    """A copy of the template warehouse for one test; its outputs in the test's folder."""
    monkeypatch.setenv("POVWATCH_OUTPUT", str(tmp_path / "output"))
    (tmp_path / "wh").mkdir()
    shutil.copyfile(template, tmp_path / "wh" / "povwatch.duckdb")
    return Fixture(tmp_path / "wh" / "povwatch.duckdb")


def colours(fx: Fixture) -> list[tuple]:
    return fx.query("SELECT period, color FROM mart.household_status ORDER BY period")


def county_policy(tmp_path, monkeypatch, red_below: int) -> None:
    folder = tmp_path / "county" / "policy"
    folder.mkdir(parents=True, exist_ok=True)
    text = (POLICY_DIR / "2020.toml").read_text(encoding="utf-8")
    assert "color_red_below = 5000" in text
    (folder / "2020.toml").write_text(text.replace("color_red_below = 5000", f"color_red_below = {red_below}"),
                                      encoding="utf-8")
    monkeypatch.setenv("POVWATCH_COUNTY", str(tmp_path / "county"))


def test_a_changed_policy_value_reaches_the_marts_through_rebuild(built, tmp_path, monkeypatch):
    assert colours(built) == [("2020-06", "yellow"), ("2020-07", "yellow")]
    county_policy(tmp_path, monkeypatch, red_below=9500)
    assert rebuild(built.path, "2020-07")["periods"] == ["2020-07"]          # --from: later only
    assert colours(built) == [("2020-06", "yellow"), ("2020-07", "red")]
    result = CliRunner().invoke(main, ["rebuild", "--warehouse", str(built.path)])
    assert result.exit_code == 0, result.output
    assert colours(built) == [("2020-06", "red"), ("2020-07", "red")]
    assert built.query("SELECT DISTINCT json_extract(\"values\", '$.color_red_below')::INT FROM mart.policy_used "
                       "WHERE run_id LIKE 'rebuild-%'") == [(9500,)]
    assert built.query("SELECT inbox, periods, status FROM audit.runs WHERE run_id LIKE 'rebuild-%' "
                       "ORDER BY started_at") == [("(rebuild)", "2020-07", "completed"),
                                                  ("(rebuild)", "2020-06,2020-07", "completed")]
    assert sorted(p.parent.name for p in (tmp_path / "output" / "reports").rglob("latest.html")) == list(PERIODS)


def test_a_failing_model_leaves_the_periods_for_the_next_run_then_a_fixed_one_finishes(
        built, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(marts.MODELS_DIR, models)
    monitoring = models / "30_monitoring.sql"
    good = monitoring.read_text(encoding="utf-8")
    monitoring.write_text(good + "\nSELECT no_such_column FROM policy;\n", encoding="utf-8")
    monkeypatch.setattr(marts, "MODELS_DIR", models)
    county_policy(tmp_path, monkeypatch, red_below=9500)
    with pytest.raises(RuntimeError, match="30_monitoring"):
        rebuild(built.path)
    assert runs.unfinished_periods(built.path) == list(PERIODS)     # what the next run finishes
    assert colours(built) == [("2020-06", "yellow"), ("2020-07", "yellow")]   # marts untouched
    monitoring.write_text(good, encoding="utf-8")
    assert rebuild(built.path)["periods"] == list(PERIODS)
    assert runs.unfinished_periods(built.path) == []
    assert colours(built) == [("2020-06", "red"), ("2020-07", "red")]


def test_a_warehouse_of_an_earlier_release_is_upgraded_and_rebuilt(built):
    """A contract column added since the warehouse was written (here shouru's 2021 costs, which an
    earlier release did not stage) is added empty at the next read-write open, so rebuild runs the
    current models over the old snapshots instead of failing on the missing column."""
    built.con.execute("ALTER TABLE staging.shouru DROP COLUMN education_out_of_pocket")
    built.con.execute("DROP TABLE audit.schema_state")   # an earlier release kept no fingerprint
    built.con.execute("CHECKPOINT")
    built.con.close()
    assert rebuild(built.path)["periods"] == list(PERIODS)
    con = duckdb.connect(str(built.path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'staging' "
                           "AND table_name = 'shouru' AND column_name = 'education_out_of_pocket'").fetchone() == (1,)
        assert con.execute("SELECT period, color FROM mart.household_status ORDER BY period").fetchall() == \
            [("2020-06", "yellow"), ("2020-07", "yellow")]
    finally:
        con.close()

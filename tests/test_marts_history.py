"""Policy as data, 风险消除 proposals in the monitoring history, and the spot-check sample."""
from __future__ import annotations

import shutil

import pytest

from povwatch.tasks.marts import build as marts
from tests.support.marts import Fixture, good_household, idn, income, person

PERIODS = ("2020-06", "2020-07", "2020-08", "2020-09")


# ------------------------------------------------------------------------------------ policy

def test_policy_file_has_every_parameter_and_falls_back_to_an_earlier_year():
    p = marts.load_policy(2020)
    assert p["poverty_line"] == 4000 and p["monitoring_line"] == 6000
    assert p["deadlines"]["P04"] == 60 and p["deadlines"]["P07b"] == 15
    later = marts.load_policy(2023)
    assert later["policy_year"] == 2023 and later["policy_file_year"] == max(marts.policy_years()) == 2021
    with pytest.raises(ValueError):
        marts.load_policy(2019)


def test_no_threshold_is_written_in_the_sql_models():
    for path in marts.MODELS_DIR.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        for number in ("4000", "6000", "5000", "10000", "0.3", "0.5", " 90", "200"):
            assert number not in text, (path.name, number)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A county folder whose 2020 policy file proposes 风险消除 after 2 clean periods."""
    county = tmp_path_factory.mktemp("county")
    folder = county / "policy"
    folder.mkdir()
    text = (marts.POLICY_DIR / "2020.toml").read_text(encoding="utf-8")
    (folder / "2020.toml").write_text(text.replace("risk_clear_months = 6", "risk_clear_months = 2"),
                                      encoding="utf-8")
    return county


# ---------------------------------------------------------------------------- history

HA, HL, HC, HR = (idn("1980-01-01"), idn("1940-01-01"), idn("1970-01-01"), idn("1975-01-01"))


def history_rows(period: str) -> dict[str, list]:
    i = PERIODS.index(period)
    sets = [
        good_household("HA", HA, pci_total=3000 if i == 0 else 9000),        # flagged once
        good_household("HL", HL, pci_total=3000 if i == 0 else 9000),        # no labour-able
        good_household("HC", HC, pci_total=3000),                            # always flagged
        good_household("HR", HR, pci_total=3000 if i in (0, 2) else 9000),   # returns in 08
    ]
    sets[1]["fupin"][0]["labor"] = "无劳动力"
    merged: dict[str, list] = {}
    for s in sets:
        for d, rows in s.items():
            merged.setdefault(d, []).extend(rows)
    return merged


@pytest.fixture(scope="module")
def history(tmp_path_factory, policy_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("POVWATCH_COUNTY", str(policy_dir))
    try:
        fx = Fixture(tmp_path_factory.mktemp("history") / "w.duckdb")
        for p in PERIODS:
            for dept, rows in history_rows(p).items():
                fx.add(dept, p, rows)
            fx.accept(p)
            fx.build(p)
    finally:
        mp.undo()
    return fx


def test_monitoring_history_proposes_clearance(history):
    rows = {r[0]: r[1:] for r in history.query(
        "SELECT household_key, entered_period, last_flagged_period, clean_periods, "
        "proposed_clear_period, status FROM mart.monitoring_history")}
    assert rows["HA"] == ("2020-06", "2020-06", 3, "2020-08", "proposed_clear")
    assert rows["HL"] == ("2020-06", "2020-06", 3, None, "manual_review")   # never automatic
    assert rows["HC"] == ("2020-06", "2020-09", 0, None, "monitoring")
    assert rows["HR"] == ("2020-06", "2020-08", 1, None, "monitoring")
    used = history.query("SELECT DISTINCT json_extract(\"values\", '$.risk_clear_months')::INT "
                         "FROM mart.policy_used")
    assert used == [(2,)]


# ---------------------------------------------------------------------------- spot check

BIG, SMALL = "620523", "620524"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    fx = Fixture(tmp_path_factory.mktemp("spot") / "w.duckdb")
    fupin, shouru = [], []
    n = 0
    for county, villages, per_village in ((BIG, 15, 20), (SMALL, 3, 5)):
        for v in range(villages):
            village = f"{county}1{v:02d}001"
            for h in range(per_village):
                n += 1
                head = idn("1970-01-01", n % 1000, area=county if n < 1000 else county)
                kind = n % 3
                total = 3000 if n % 7 == 0 else 20000   # some below the line: monitored
                if kind < 2:
                    hh = f"H{n:04d}"
                    fupin.append(person(hh, head, status="未脱贫" if kind == 0 else "已脱贫",
                                        village=village))
                    shouru.append(income(head, 1, total, hh=hh, village=village))
                else:
                    shouru.append(income(head, 1, total, object_type="边缘户", village=village))
    fx.add("fupin", "2020-06", fupin)
    fx.add("shouru", "2020-06", shouru)
    fx.accept("2020-06")
    fx.build("2020-06")
    fx.first = sorted(fx.query("SELECT * FROM mart.spot_check"))
    return fx


def test_sample_sizes_per_county(sample):
    big = sample.query("SELECT count(DISTINCT village_code), count(*) FROM mart.spot_check "
                       "WHERE county_code = ?", [BIG])[0]
    assert big[0] >= 10 and big[1] >= 200
    small = sample.query("SELECT count(DISTINCT village_code), count(*) FROM mart.spot_check "
                         "WHERE county_code = ?", [SMALL])[0]
    assert small == (3, 15)   # fewer than the minimum: all
    strata = {r[0] for r in sample.query("SELECT DISTINCT stratum FROM mart.spot_check")}
    assert strata == {"未脱贫", "已脱贫", "非建档立卡"}


def test_monitored_households_drawn_first(sample):
    # in every (village, stratum) cell of a drawn village, no unmonitored household is drawn
    # while a monitored one of the same cell is left out
    bad = sample.query("""
        SELECT h.village_code, h.registry_status FROM mart.household_status h
        JOIN (SELECT DISTINCT village_code, stratum FROM mart.spot_check
              WHERE NOT monitored) c ON c.village_code = h.village_code AND c.stratum = h.registry_status
        WHERE h.monitored AND h.household_key NOT IN (SELECT household_key FROM mart.spot_check)""")
    assert bad == []
    assert sample.query("SELECT count(*) FROM mart.spot_check WHERE monitored")[0][0] > 0


def test_same_seed_same_sample_and_seed_recorded(sample):
    sample.build("2020-06", run_id="again")
    assert sorted(sample.query("SELECT * FROM mart.spot_check")) == sample.first
    sample.build("2020-06", run_id="other-seed", seed=7)
    other = sorted(sample.query("SELECT * FROM mart.spot_check"))
    assert other != sample.first and {r[5] for r in other} == {7}
    assert {r[5] for r in sample.first} == {2020}


def test_policy_recorded_on_the_run(sample):
    sample.con.execute("INSERT INTO audit.runs (run_id, status) VALUES ('with-run', 'running')")
    sample.build("2020-06", run_id="with-run")
    policy = sample.query("SELECT json_extract(policy, '$.poverty_line')::INT, "
                          "json_extract(policy, '$.deadlines.P04')::INT FROM audit.runs "
                          "WHERE run_id = 'with-run'")
    assert policy == [(4000, 60)]


def test_a_failing_model_leaves_the_marts_as_they_were(sample, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(marts.MODELS_DIR, models)
    (models / "99_broken.sql").write_text("SELECT * FROM no_such_table;", encoding="utf-8")
    with (models / "ORDER").open("a", encoding="utf-8") as fh:
        fh.write("99_broken.sql\n")
    monkeypatch.setattr(marts, "MODELS_DIR", models)
    before = sorted(sample.query("SELECT * FROM mart.spot_check"))
    runs = sample.query("SELECT count(*) FROM mart.policy_used")
    with pytest.raises(RuntimeError, match="99_broken"):
        sample.build("2020-06", run_id="broken", seed=99)
    assert sorted(sample.query("SELECT * FROM mart.spot_check")) == before
    assert sample.query("SELECT count(*) FROM mart.policy_used") == runs


def test_a_mart_table_of_an_older_schema_is_rebuilt(sample):
    sample.con.execute("ALTER TABLE mart.household_status DROP COLUMN monitored")
    before = sample.query("SELECT count(*) FROM mart.household_status")
    sample.build("2020-06", run_id="after-upgrade")
    cols = [r[0] for r in sample.query("SELECT column_name FROM duckdb_columns() WHERE schema_name = "
                                       "'mart' AND table_name = 'household_status'")]
    assert "monitored" in cols
    assert sample.query("SELECT count(*) FROM mart.household_status") == before

"""The county folder: `povwatch init DIR` copies the shipped defaults; the county's copies win."""
from __future__ import annotations

import json
import tomllib

from click.testing import CliRunner

from povwatch.flows.cli import main
from povwatch.tasks.core import settings as settings_module
from povwatch.tasks.core.settings import load_settings
from povwatch.tasks.ingest.contracts import department_codes, load_contract
from povwatch.tasks.validate.suites import suite_definition


def test_init_copies_the_defaults_and_keeps_what_the_county_edited(tmp_path):
    county = tmp_path / "county"
    result = CliRunner().invoke(main, ["init", str(county)])
    assert result.exit_code == 0, result.output
    assert f"POVWATCH_COUNTY={county}" in result.output
    for part, pattern in (("contracts", "*.toml"), ("expectations", "*.json"), ("policy", "2*.toml")):
        shipped = {p.name for p in (settings_module.WAREHOUSE_DIR / part).glob(pattern)} \
            if part != "expectations" else {p.name for p in settings_module.EXPECTATIONS_DIR.glob(pattern)}
        assert {p.name for p in (county / part).glob(pattern)} == shipped
    assert (county / "reference" / "divisions.csv").read_bytes() == settings_module.DIVISIONS_CSV.read_bytes()
    assert not (county / "policy" / "keys.toml").exists()     # the schema stays with the models
    config = tomllib.loads((county / "povwatch.toml").read_text(encoding="utf-8"))
    assert config == {"settings": {}, "alerts": {"urls": []}}  # every setting commented out

    edited = county / "policy" / "2020.toml"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# ours\n", encoding="utf-8")
    again = CliRunner().invoke(main, ["init", str(county)])
    assert again.exit_code == 0 and "0 个文件已写入" in again.output
    assert edited.read_text(encoding="utf-8").endswith("# ours\n")


def test_the_county_folders_contracts_suites_and_divisions_are_the_ones_read(tmp_path, monkeypatch):
    county = tmp_path / "county"
    CliRunner().invoke(main, ["init", str(county)])
    contract = county / "contracts" / "yibao.toml"
    contract.write_text(contract.read_text(encoding="utf-8").replace(
        'name = "', 'name = "本县', 1), encoding="utf-8")
    (county / "contracts" / "canlian.toml").unlink()            # this county has no 残联 extract
    suite = county / "expectations" / "yibao.json"
    definition = json.loads(suite.read_text(encoding="utf-8"))
    definition["meta"]["county_note"] = "本县"
    suite.write_text(json.dumps(definition, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv("POVWATCH_COUNTY", str(county))
    assert load_settings().divisions_csv == county / "reference" / "divisions.csv"
    assert load_contract("yibao").name.startswith("本县")
    assert "canlian" not in department_codes() and "yibao" in department_codes()
    assert suite_definition("yibao")["meta"]["county_note"] == "本县"
    monkeypatch.delenv("POVWATCH_COUNTY")
    assert not load_contract("yibao").name.startswith("本县")   # the package's copy again
    assert "canlian" in department_codes()

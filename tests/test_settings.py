"""One settings object, the only reader of the environment; policy keys declared once."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import duckdb
import pytest

from povwatch.tasks.core import settings as settings_module
from povwatch.tasks.core.settings import env_name, load_settings, spec
from povwatch.tasks.marts import build, policy

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS_DOC = ROOT / "docs" / "operations.md"


# ------------------------------------------------------------------------------- settings

def documented_settings() -> dict[str, str]:
    """environment variable -> default, from the table after the settings-table marker."""
    text = OPERATIONS_DOC.read_text(encoding="utf-8").split("<!-- settings-table", 1)[1]
    rows = {}
    for line in text.splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].strip("`")
        if re.fullmatch(r"[A-Z_]+", name):
            rows[name] = cells[1].strip("`")
    return rows


def _shown(default) -> str:
    if default is None or default in ((), ""):
        return "—"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def test_the_documented_settings_table_lists_every_setting_and_nothing_else():
    documented = documented_settings()
    declared = {env_name(f): _shown(f.default) for f in spec()}
    assert list(documented) == list(declared)          # the same settings, in the same order
    assert documented == declared                      # with the same defaults


ENV_READS = ("environ.get", "getenv", "environ[", "in os.environ")


def _environment_reads(path: Path) -> list[str]:
    """os.environ.get / os.getenv / os.environ[...] read / `in os.environ` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                found.append(f"{path.name}:{node.lineno} {target}")
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) \
                and ast.unparse(node.value) in ("os.environ", "environ"):
            found.append(f"{path.name}:{node.lineno} os.environ[...]")
        elif isinstance(node, ast.Compare) and any(ast.unparse(c) in ("os.environ", "environ")
                                                   for c in node.comparators):
            found.append(f"{path.name}:{node.lineno} in os.environ")
    return found


def test_only_the_settings_module_reads_the_environment():
    modules = [p for folder in ("flows", "tasks") for p in (ROOT / folder).rglob("*.py")]
    reads = [r for p in modules if p.name != "settings.py" or p.parent.name != "core"
             for r in _environment_reads(p)]
    assert reads == []
    assert _environment_reads(ROOT / "tasks" / "core" / "settings.py")   # the scan sees reads


def test_lookup_order_argument_environment_secrets_county_default(tmp_path, monkeypatch):
    county = tmp_path / "county"
    county.mkdir()
    (county / "povwatch.toml").write_text(
        '[settings]\nlock_timeout = 11\ndb_lock_wait = 12\noutput = "out"\n'
        '[alerts]\nurls = ["json://county.example/a"]\n', encoding="utf-8")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[settings]\nlock_timeout = 21\n[alerts]\nurls = ["json://secret.example/b"]\n',
                       encoding="utf-8")
    for f in spec():
        monkeypatch.delenv(env_name(f), raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().lock_timeout == 300                        # default
    monkeypatch.setenv("POVWATCH_COUNTY", str(county))                # set after import
    s = load_settings()
    assert (s.lock_timeout, s.db_lock_wait) == (11, 12)               # county folder
    assert s.output_dir == county / "out"                             # relative to the folder
    assert s.alert_urls == ("json://county.example/a",)
    monkeypatch.setenv("POVWATCH_SECRETS_FILE", str(secrets))
    s = load_settings()
    assert (s.lock_timeout, s.db_lock_wait) == (21, 12)               # secrets over county
    assert s.alert_urls == ("json://secret.example/b",)
    monkeypatch.setenv("POVWATCH_LOCK_TIMEOUT", "31")
    monkeypatch.setenv("POVWATCH_ALERT_URLS", "json://a.example/x, json://b.example/y")
    s = load_settings()
    assert s.lock_timeout == 31                                       # environment over files
    assert s.alert_urls == ("json://a.example/x", "json://b.example/y")
    assert load_settings(lock_timeout=41).lock_timeout == 41          # argument over all
    assert load_settings(warehouse="w.duckdb").warehouse == tmp_path / "w.duckdb"


def test_a_setting_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("POVWATCH_LOCK_TIMEOUT", "five minutes")
    with pytest.raises(ValueError, match="five minutes"):
        load_settings()


def test_the_county_folder_replaces_only_the_parts_it_holds(tmp_path, monkeypatch):
    (tmp_path / "policy").mkdir()
    monkeypatch.setenv("POVWATCH_COUNTY", str(tmp_path))
    s = load_settings()
    assert s.policy_dir == tmp_path / "policy"
    assert s.contracts_dir == settings_module.CONTRACTS_DIR
    assert s.divisions_csv == settings_module.DIVISIONS_CSV


# ---------------------------------------------------------------------------- policy keys

def _county_policy(tmp_path, monkeypatch, edit) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir(parents=True)
    text = (settings_module.POLICY_DIR / "2020.toml").read_text(encoding="utf-8")
    (folder / "2020.toml").write_text(edit(text), encoding="utf-8")
    monkeypatch.setenv("POVWATCH_COUNTY", str(tmp_path))
    return folder


def test_a_misspelt_policy_key_is_named_with_the_key_it_resembles(tmp_path, monkeypatch):
    _county_policy(tmp_path, monkeypatch,
                   lambda t: t.replace("income_drop_ratio = 0.30", "income_drop_ration = 0.30"))
    with pytest.raises(policy.PolicyError) as err:
        build.load_policy(2020)
    message = str(err.value)
    assert "income_drop_ration" in message and "did you mean income_drop_ratio" in message
    assert "missing income_drop_ratio" in message and "2020.toml" in message


def test_a_policy_value_of_the_wrong_type_is_named(tmp_path, monkeypatch):
    _county_policy(tmp_path, monkeypatch,
                   lambda t: t.replace("risk_clear_months = 6", 'risk_clear_months = "six"'))
    with pytest.raises(policy.PolicyError, match="risk_clear_months = 'six'.*integer"):
        build.load_policy(2020)


def test_a_new_policy_key_is_a_line_in_the_schema_and_reaches_the_sql(tmp_path, monkeypatch):
    schema = tmp_path / "keys.toml"
    schema.write_text(policy.KEYS_FILE.read_text(encoding="utf-8").replace(
        "\n[keys]\n", '\n[keys]\nnew_threshold = { type = "decimal", meaning = "a new rule\'s line" }\n'),
        encoding="utf-8")
    monkeypatch.setattr(policy, "KEYS_FILE", schema)
    _county_policy(tmp_path, monkeypatch, lambda t: t + "\n")
    with pytest.raises(policy.PolicyError, match="missing new_threshold"):
        build.load_policy(2020)
    _county_policy(tmp_path / "again", monkeypatch, lambda t: t.replace(
        "poverty_line = 4000", "poverty_line = 4000\nnew_threshold = 1234.5"))
    values = build.load_policy(2020)
    con = duckdb.connect()
    build._set_policy(con, "2020-06", values, seed=1)
    assert con.execute("SELECT new_threshold, typeof(new_threshold), poverty_line FROM policy"
                       ).fetchone() == (pytest.approx(1234.5), "DECIMAL(18,4)", 4000)

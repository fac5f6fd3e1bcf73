"""Every setting of povwatch, in one place, and the only reader of the environment and the
secrets file.

``Settings`` is one frozen dataclass: each field is a setting with its type, its default and a
one-line meaning (as dlt's RuntimeConfiguration specifies its configuration). ``load_settings()``
resolves it when called — never at import time — looking each setting up in this order:

1. an explicit argument (``load_settings(warehouse=...)``, i.e. a command-line option);
2. the environment: ``POVWATCH_<NAME>`` (``PREFECT_API_URL`` for the Prefect server);
3. the git-ignored secrets file (``POVWATCH_SECRETS_FILE``, else ``.povwatch-secrets.toml`` in
   the working folder), table ``[settings]`` (alert URLs also as ``[alerts] urls``);
4. the county folder's ``povwatch.toml`` (same tables; ``povwatch init DIR`` writes one);
5. the default written below.

The county folder (``POVWATCH_COUNTY``) holds the county's own contracts, suites, policy files,
division table and alert settings; each of those folders that it lacks is taken from the package
(its copies are the defaults). The SQL models and the DDL always come from the package.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The package's own folders: <povwatch>/warehouse and <povwatch>/expectations, wherever it is
# installed (the repository root in an editable install, site-packages/povwatch in a wheel).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
WAREHOUSE_DIR = PACKAGE_ROOT / "warehouse"
MODELS_DIR = WAREHOUSE_DIR / "models"
# The shipped defaults of what a county folder may replace. Readers ask ``load_settings()`` for
# ``contracts_dir`` / ``expectations_dir`` / ``policy_dir`` / ``divisions_csv`` instead.
CONTRACTS_DIR = WAREHOUSE_DIR / "contracts"
POLICY_DIR = WAREHOUSE_DIR / "policy"
EXPECTATIONS_DIR = PACKAGE_ROOT / "expectations"
DIVISIONS_CSV = WAREHOUSE_DIR / "reference" / "divisions.csv"
# What `povwatch init` copies, as (folder in the county, the package's copy).
COUNTY_PARTS = (("contracts", CONTRACTS_DIR), ("expectations", EXPECTATIONS_DIR),
                ("policy", POLICY_DIR), ("reference", DIVISIONS_CSV.parent))

DEFAULT_WAREHOUSE = Path("var") / "povwatch.duckdb"
SECRETS_FILE_NAME = ".povwatch-secrets.toml"
COUNTY_CONFIG_NAME = "povwatch.toml"
ENV_PREFIX = "POVWATCH_"
_LIST_SEPARATOR = re.compile(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)")


def setting(default: Any, meaning: str, *, env: str | None = None, in_files: bool = True):
    """A field of Settings: its default, what it means, its environment variable when that is not
    POVWATCH_<NAME>, and whether the secrets/county files may set it."""
    return field(default=default, metadata={"meaning": meaning, "env": env, "in_files": in_files})


@dataclass(frozen=True)
class Settings:
    """Every setting povwatch reads (the README's settings table lists exactly these)."""

    warehouse: Path = setting(DEFAULT_WAREHOUSE, "the DuckDB warehouse file (`--warehouse`)")
    output: Path | None = setting(
        None, "reports, receipts, exports, Data Docs; default `output/` beside the warehouse")
    county: Path | None = setting(
        None, "county folder (`povwatch init DIR`): contracts, suites, policy, divisions, alerts")
    inbox: Path = setting(Path("var") / "inbox", "the inbox `povwatch serve` watches (`--inbox`)")
    alert_urls: tuple[str, ...] = setting(
        (), "Apprise URLs for alerts, whitespace- or comma-separated (secret: tokens)")
    secrets_file: Path | None = setting(
        None, "the secrets file; default `.povwatch-secrets.toml` in the working folder",
        in_files=False)
    prefect_api_url: str | None = setting(
        None, "a Prefect server: runs become Prefect flow runs", env="PREFECT_API_URL",
        in_files=False)
    prefect: str = setting("", "force the run mode: `prefect`, `ephemeral` or `local`")
    prefect_startup_timeout: int = setting(
        120, "seconds Prefect's temporary server may take to start (`ephemeral` mode)")
    task_runner: str = setting("thread", "Prefect task runner: `thread`, or `dask` (a local cluster)")
    dask_address: str | None = setting(None, "a Dask scheduler (`tcp://…`) to scale out over counties")
    dask_workers: int = setting(2, "worker processes of the local Dask cluster")
    max_workers: int = setting(4, "threads that run a period's department steps")
    monthly_cron: str = setting("0 6 5 * *", "when the `monthly` deployment runs (cron, Beijing time)")
    watch_minutes: float = setting(10.0, "minutes between two looks of the `inbox-watch` deployment")
    settle_seconds: float = setting(
        5.0, "a file changed this recently is watched this long before it is read")
    volume_max_change: float | None = setting(
        None, "allowed change of an extract's row count against the last one; default per suite")
    lock_timeout: float = setting(300.0, "seconds a run waits for another run to finish")
    db_lock_wait: float = setting(
        60.0, "seconds a run waits for a reader (`povwatch sql`, a BI tool) to close the file")
    duckdb_threads: int = setting(
        1, "DuckDB's threads while a run holds the warehouse; `0`: DuckDB's own (one per core)")

    # -- where the county's files are: the county folder's copy, else the package's

    def _county_part(self, name: str, default: Path) -> Path:
        if self.county is not None and (self.county / name).exists():
            return self.county / name
        return default

    @property
    def contracts_dir(self) -> Path:
        return self._county_part("contracts", CONTRACTS_DIR)

    @property
    def expectations_dir(self) -> Path:
        return self._county_part("expectations", EXPECTATIONS_DIR)

    @property
    def policy_dir(self) -> Path:
        return self._county_part("policy", POLICY_DIR)

    @property
    def divisions_csv(self) -> Path:
        return self._county_part("reference/divisions.csv", DIVISIONS_CSV)

    @property
    def output_dir(self) -> Path:
        """Everything written here leaves the warehouse: never a full identity number."""
        return self.output if self.output is not None else self.warehouse.parent / "output"


def spec() -> list[dataclasses.Field]:
    """The settings, in their declared order (the README's table follows it)."""
    return list(dataclasses.fields(Settings))


def env_name(f: dataclasses.Field) -> str:
    return f.metadata["env"] or ENV_PREFIX + f.name.upper()


def load_settings(**explicit: Any) -> Settings:
    """The settings now: explicit arguments (None = not given) > environment > secrets file >
    county folder's povwatch.toml > defaults."""
    unknown = set(explicit) - {f.name for f in spec()}
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    hints = _type_hints()
    chosen: dict[str, Any] = {}
    env_file = os.environ.get(ENV_PREFIX + "SECRETS_FILE")
    secrets_path = _secrets_path(explicit.get("secrets_file") or env_file)
    files = [_read_config(secrets_path)]
    # the county folder first: its povwatch.toml is a source for every other setting
    by_name = {f.name: f for f in spec()}
    raw, base = _first_given(by_name["county"], explicit, files)
    county = _coerce(raw, Path, base) if raw is not None else None
    if county is not None:
        files.append(_read_config(county / COUNTY_CONFIG_NAME))
    for f in spec():
        raw, base = _first_given(f, explicit, files)
        chosen[f.name] = _coerce(raw, hints[f.name], base) if raw is not None else f.default
    chosen["secrets_file"] = secrets_path
    warehouse = Path(chosen["warehouse"]).expanduser().resolve()
    return dataclasses.replace(Settings(**chosen), warehouse=warehouse)


@functools.lru_cache(maxsize=1)
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


def _first_given(f: dataclasses.Field, explicit: dict, files: list) -> tuple[Any, Path | None]:
    """The raw value of one setting from the first source that has it, and the folder a relative
    path in it is relative to (None: the working folder)."""
    if explicit.get(f.name) is not None:
        return explicit[f.name], None
    env = os.environ.get(env_name(f))
    if env is not None and env.strip():
        return env, None
    if f.metadata["in_files"]:
        for folder, table in files:
            if table.get(f.name) is not None:
                return table[f.name], folder
    return None, None


def _secrets_path(chosen: str | os.PathLike | None) -> Path | None:
    if chosen:
        return Path(chosen).expanduser()
    candidate = Path.cwd() / SECRETS_FILE_NAME
    return candidate if candidate.exists() else None


def _read_config(path: Path | None) -> tuple[Path | None, dict]:
    """(folder of the file, its settings): table [settings], plus [alerts] urls."""
    if path is None or not path.exists():
        return None, {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    table = dict(data.get("settings") or {})
    urls = (data.get("alerts") or {}).get("urls")
    if urls and "alert_urls" not in table:
        table["alert_urls"] = urls
    return path.parent.resolve(), table


def _coerce(raw: Any, hint: Any, base: Path | None) -> Any:
    """A raw value (text from the environment, a TOML value) as the field's type."""
    kind = _concrete(hint)
    if kind is Path:
        path = Path(str(raw)).expanduser()
        return (base / path) if base is not None and not path.is_absolute() else path.resolve()
    if kind is tuple:
        return tuple(split_list(raw) if isinstance(raw, str) else (str(u) for u in raw if u))
    if kind in (int, float):
        try:
            return kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"setting value {raw!r} is not a number ({kind.__name__})") from None
    return str(raw).strip()


def _concrete(hint: Any) -> Any:
    """Path for ``Path | None``, tuple for ``tuple[str, ...]``, ..."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def split_list(text: str) -> list[str]:
    """URLs separated by whitespace, or by commas (a comma followed by the next URL's scheme)."""
    parts = _LIST_SEPARATOR.split(text or "")
    return [p.strip().rstrip(",") for p in parts if p and p.strip().rstrip(",")]


# -- the helpers older code calls, kept as thin views of load_settings()

def warehouse_path(explicit: str | os.PathLike | None = None) -> Path:
    """--warehouse, else POVWATCH_WAREHOUSE, else ./var/povwatch.duckdb."""
    return load_settings(warehouse=explicit).warehouse


def output_dir(warehouse: Path) -> Path:
    """Reports, receipts, exports and GX Data Docs: POVWATCH_OUTPUT, else output/ beside the
    warehouse file."""
    return load_settings(warehouse=warehouse).output_dir


@dataclass(frozen=True)
class RunnerSettings:
    """How flows run their tasks: a thread pool by default, Dask when an address is set."""

    task_runner: str = "thread"
    dask_address: str | None = None
    max_workers: int = 4

    @classmethod
    def current(cls) -> "RunnerSettings":
        s = load_settings()
        return cls(task_runner=s.task_runner, dask_address=s.dask_address, max_workers=s.max_workers)


# Prefect's own configuration variables: not povwatch settings, but this module stays the one
# reader of the environment. flows/runners.py asks them whether Prefect's configuration could name
# a server before paying Prefect's import to find out.
PREFECT_CONFIG_VARIABLES = ("PREFECT_PROFILES_PATH", "PREFECT_PROFILE", "PREFECT_HOME")


def prefect_config_environment() -> dict[str, str]:
    """The variables of PREFECT_CONFIG_VARIABLES that are set (non-empty), by name."""
    return {name: os.environ[name] for name in PREFECT_CONFIG_VARIABLES if os.environ.get(name)}

"""Validate a conformed extract with Great Expectations, inside DuckDB.

``validate_extract(warehouse, period, dept, run_id)`` runs ``expectations/<dept>.json`` through GX
against ``pending.<dept> WHERE period = <period>``. GX compiles every expectation to SQL that
DuckDB executes (tasks/validate/gx_duckdb.py); only aggregate results and at most a few sample values come
back to Python, never the data.

What happens with the results (docs/validation.md has the whole policy):

* every expectation's result is a row of ``audit.validations``;
* a failed ``blocking`` expectation (or a quarantining one that failed on more than its
  ``reject_above_share`` of the rows) sets ``blocking_failed``: the flow then rejects the extract
  and the previous good data stays in use;
* otherwise the rows that failed a row-level ``quarantine`` expectation move from
  ``pending.<dept>`` to ``quarantine.rows`` (stage ``validate``, one row with every reason);
* GX Data Docs are built under ``output_dir(warehouse)/datadocs`` (identity numbers masked in
  everything GX keeps: results pass ``privacy.scrub_value``).

GX costs a few seconds to import and set up: it is imported lazily, once per process, and its
file context (``output_dir(warehouse)/gx``, never committed) is kept per output folder.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from povwatch.tasks.core import db
from povwatch.tasks.ingest.contracts import department_codes, load_contract
from povwatch.tasks.core.privacy import mask_id_sql, scrub, scrub_value
from povwatch.tasks.core.runtime import on_roomy_frame_stack
from povwatch.tasks.validate.datadocs_offline import make_offline
from povwatch.tasks.core.settings import load_settings, output_dir

log = logging.getLogger(__name__)

DATASOURCE = "warehouse"
BATCH_DEFINITION = "by_period"
DOCS_SITE = "povwatch"
# The Data Docs index lists this many of the latest validation results: about three months of
# every department. Older results keep their pages (datadocs/validations/<dept>/) and their rows
# in audit.validations.
DOCS_INDEX_RESULTS = 3 * len(department_codes())
SAMPLE_ROWS = 3
DEFAULT_VOLUME_MAX_CHANGE = 0.5
_PERIOD = re.compile(r"^[0-9]{4}-[0-9]{2}$")
_DEPT = re.compile(r"^[a-z][a-z0-9_]*$")

# GX talks to nobody: no usage statistics from an office network.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass
class ValidationOutcome:
    period: str
    dept: str
    blocking_failed: bool
    failures: list[dict]           # {expectation, description, blocking, unexpected_count, sample}
    quarantined_rows: int
    data_docs: Path | None
    message: str | None            # Chinese summary, for the rejection message and alerts
    run_id: str | None = None
    results: int = 0               # expectations evaluated
    row_count: int = 0             # rows of the batch before quarantine

    def alert(self, files: list[dict] | None = None) -> dict:
        """The dict tasks.validate.alerts.alert_on_outcomes takes (files: [{file, sha256}], optional)."""
        return {
            "period": self.period, "dept": self.dept,
            "severity": "error" if self.blocking_failed else "warning",
            "files": files or [], "failures": self.failures, "message": self.message,
            "data_docs": str(self.data_docs) if self.data_docs else None,
        }


# --------------------------------------------------------------------------- suites

@lru_cache(maxsize=None)
def _suite_json(path: Path, mtime_ns: int) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def suite_definition(dept: str) -> dict:
    """expectations/<dept>.json as a dict, checked for the meta this module relies on."""
    if not _DEPT.match(dept):
        raise ValueError(f"bad department code {dept!r}")
    path = load_settings().expectations_dir / f"{dept}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"no expectation suite for department {dept!r}: {path} "
            f"(start one with: python scripts/build_suites.py --dept {dept})")
    raw = _suite_json(path, path.stat().st_mtime_ns)
    names = set()
    for exp in raw["expectations"]:
        meta = exp.get("meta") or {}
        name = meta.get("name")
        if not name or name in names:
            raise ValueError(f"{path}: every expectation needs a unique meta.name ({name!r})")
        names.add(name)
        if meta.get("severity") not in ("blocking", "warning"):
            raise ValueError(f"{path}: {name}: meta.severity must be 'blocking' or 'warning'")
    return raw


def expectation_description(dept: str, name: str) -> str | None:
    """The Chinese description of a suite's expectation (what a quarantine reason means)."""
    for exp in suite_definition(dept)["expectations"]:
        if exp["meta"]["name"] == name:
            return exp.get("description")
    return None


def quarantine_reason(description: str | None, name: str) -> str:
    """A quarantine reason: the clerk's words and the expectation's name, e.g.
    ``终止年月：早于起始年月（end_month_not_before_start）``."""
    return f"{description}（{name}）" if description else name


# --------------------------------------------------------------------------- parameters

def county_village_regex(con) -> str:
    """``^(620523|...)[0-9]{6}$`` from the division table, else from the registry's villages."""
    prefixes: list[str] = []
    divisions_csv = load_settings().divisions_csv
    if divisions_csv.exists():
        prefixes = _division_prefixes(con, divisions_csv)
    if not prefixes:
        prefixes = [r[0] for r in con.execute(
            "SELECT DISTINCT substr(village_code, 1, 6) FROM ("
            " SELECT village_code FROM staging.fupin UNION ALL SELECT village_code FROM pending.fupin)"
            " WHERE regexp_full_match(village_code, '[0-9]{12}') ORDER BY 1").fetchall()]
    prefixes = [p for p in prefixes if re.fullmatch(r"[0-9]{6}", p or "")]
    if not prefixes:
        return "^[0-9]{12}$"
    return "^(" + "|".join(prefixes) + ")[0-9]{6}$"


_DIVISION_PREFIXES: dict[tuple, list[str]] = {}


def _division_prefixes(con, divisions_csv: Path) -> list[str]:
    """The county codes of the division table, read once per version of the file (every
    department's validation asks; reading the CSV cost ~15 ms each time)."""
    stat = divisions_csv.stat()
    key = (str(divisions_csv), stat.st_mtime_ns, stat.st_size)
    if key not in _DIVISION_PREFIXES:
        _DIVISION_PREFIXES[key] = [r[0] for r in con.execute(
            "SELECT DISTINCT substr(CAST(code AS VARCHAR), 1, 6) FROM read_csv(?, all_varchar=true) "
            "WHERE lower(level) = 'county' ORDER BY 1", [str(divisions_csv)]).fetchall()]
    return list(_DIVISION_PREFIXES[key])


def volume_bounds(con, dept: str, period: str, max_change: float) -> tuple[int, int | None, dict]:
    """Allowed row count: the latest earlier accepted period's count ± max_change."""
    prev = con.execute(
        f"SELECT period, count(*) FROM staging.{dept} WHERE period < ? GROUP BY period "
        f"ORDER BY period DESC LIMIT 1", [period]).fetchall()
    prev = prev[0] if prev else None
    if prev is None:
        return 0, None, {"previous_period": None}
    n = int(prev[1])
    low = int(math.floor(n * (1 - max_change)))
    high = int(math.ceil(n * (1 + max_change)))
    return max(low, 0), high, {"previous_period": prev[0], "previous_rows": n, "max_change": max_change}


def suite_parameters(con, dept: str, period: str, suite_meta: dict) -> tuple[dict, dict]:
    max_change = load_settings().volume_max_change
    if max_change is None:
        max_change = float(suite_meta.get("volume_max_change", DEFAULT_VOLUME_MAX_CHANGE))
    low, high, info = volume_bounds(con, dept, period, max_change)
    params = {"volume_min": low, "volume_max": high, "county_village_regex": county_village_regex(con)}
    return params, info


# --------------------------------------------------------------------------- GX context

_GX_LOCK = threading.RLock()
_CONTEXTS: dict[Path, Any] = {}


def gx_context(warehouse: Path):
    """The GX file context under output_dir(warehouse)/gx, Data Docs in output_dir/datadocs."""
    out = output_dir(Path(warehouse))
    with _GX_LOCK:
        if out in _CONTEXTS:
            return _CONTEXTS[out]
        from povwatch.tasks.validate import deferred_imports

        deferred_imports.defer()  # GX's import without scipy.stats and altair (~1.2 s of CPU)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        from povwatch.tasks.validate import gx_duckdb  # noqa: F401  registers the "duckdb" datasource type
        from povwatch.tasks.validate.datadocs_views import (SharedTemplatesIndexPageView,
                                                            SharedTemplatesPageView, view_config)

        out.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(out))
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        site = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(out / "datadocs")},
            # GX's documented site options (history stays flat, docs/validation.md): the index
            # lists the latest DOCS_INDEX_RESULTS results, not every one stored (reading each
            # stored result made a period's docs build grow with the months kept); no profiling
            # section (povwatch profiles nothing: GX listed every stored result for it anyway).
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "validation_results_limit": DOCS_INDEX_RESULTS,
                                   "view": view_config(SharedTemplatesIndexPageView)},
            "site_section_builders": {"profiling": "None",
                                      "expectations": {"view": view_config(SharedTemplatesPageView)},
                                      "validations": {"view": view_config(SharedTemplatesPageView)}},
        }
        sites = context.get_config().data_docs_sites or {}
        for name in list(sites):
            if name != DOCS_SITE:
                context.delete_data_docs_site(name)
        if DOCS_SITE in sites:
            context.update_data_docs_site(DOCS_SITE, site)
        else:
            context.add_data_docs_site(DOCS_SITE, site)
        _CONTEXTS[out] = context
        return context


# GX validates a copy of the period's rows, made once per validation in an in-memory database
# attached to the warehouse's DuckDB instance (so GX's own connections see it): GX sends ~20
# queries per suite, each of which read pending.<dept> again (its Parquet files, and the
# anti-join that leaves out rows dropped earlier). The 15 validations of M, copies included,
# alternating, 6 rounds: median 7.23 -> 6.71 s CPU (docs/validation.md).
BATCH_CATALOG = "gx_batch"
# Copies alive at once, and the lock for the catalog's changes (_batch_table, below).
_BATCH_COPIES = threading.BoundedSemaphore(2)
_BATCH_CATALOG_LOCK = threading.Lock()


def _batch_catalog(warehouse: Path):
    """A connection to the warehouse with BATCH_CATALOG attached (once per DuckDB instance)."""
    con = db.connect(warehouse)
    try:
        with _BATCH_CATALOG_LOCK:   # two threads attaching at once: "already exists"
            con.execute(f"ATTACH IF NOT EXISTS ':memory:' AS {BATCH_CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


@contextlib.contextmanager
def _batch_table(warehouse: Path, dept: str, period: str):
    """``gx_batch.<dept>``: the period's rows of pending.<dept> (same columns and types), while
    GX validates them; dropped after (memory).

    Made before the validation's turn inside GX (_GX_LOCK), by the validation's own thread: the
    flow validates on several threads, one at a time inside GX, so the next department's copy
    (DuckDB work, without the GIL) is made while GX's Python runs the current one's suite,
    instead of on the one thread validation is bound to (~0.5 s of the ~5 s of validation at
    size M). At most two copies exist at once (memory): the one GX validates and the next. The
    tables of gx_batch are created and dropped under _BATCH_CATALOG_LOCK, which _add_datasource
    also holds while GX reads every asset's table."""
    with _BATCH_COPIES:
        con = _batch_catalog(warehouse)
        try:
            table = f"{BATCH_CATALOG}.{dept}"
            with _BATCH_CATALOG_LOCK:
                con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM pending.{dept} "
                            f"WHERE period = '{period}'")
            try:
                yield table
            finally:
                with _BATCH_CATALOG_LOCK:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            con.close()


def _batch_definition(context, warehouse: Path, dept: str):
    from great_expectations.core.partitioners import PartitionerColumnValue

    from povwatch.tasks.validate.gx_duckdb import warehouse_url

    url = warehouse_url(warehouse)
    try:
        ds = context.data_sources.get(DATASOURCE)
        if str(ds.connection_string) != url:
            ds = context.data_sources.update_duckdb(name=DATASOURCE, connection_string=url)
        if any(getattr(a, "schema_name", None) != BATCH_CATALOG for a in ds.assets):
            # an output folder from before the batch copies: its assets read pending.<dept>
            _release(ds)
            context.data_sources.delete(DATASOURCE)
            ds = _add_datasource(context, url, warehouse)
    except (KeyError, ValueError, LookupError):
        ds = _add_datasource(context, url, warehouse)
    try:
        asset = ds.get_asset(dept)
    except LookupError:
        # A table asset: GX's description of failing rows (unexpected_index_query) is broken SQL
        # for query assets in GX 1.24 ("FROM SELECT ..."). schema_name is deprecated in favour of
        # the connection's configuration, which a DuckDB URL cannot carry.
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asset = ds.add_table_asset(dept, table_name=dept, schema_name=BATCH_CATALOG)
    try:
        return ds, asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        # GX only checks date partitioners; a column-value one works on any column.
        return ds, asset.add_batch_definition(
            BATCH_DEFINITION, partitioner=PartitionerColumnValue(column_name="period"),
            validate_partitioner=False)


def _add_datasource(context, url: str, warehouse: Path):
    """The warehouse datasource with every department's table asset and batch definition, written
    to the context's YAML once: added one by one, each asset and each batch definition rewrites
    the whole file (~0.4 s of CPU in a new output folder, which every test run pays). A department
    added later gets its asset in _batch_definition as before.

    GX reads every asset's table when a datasource is added: the departments whose batch table
    does not exist now get an empty one (pending's columns) for that moment."""
    import warnings

    depts = department_codes()
    assets = [{"type": "table", "name": dept, "table_name": dept, "schema_name": BATCH_CATALOG,
               "batch_definitions": [{"name": BATCH_DEFINITION,
                                      "partitioner": {"column_name": "period"}}]}
              for dept in depts]
    con = _batch_catalog(warehouse)
    try:
        with _BATCH_CATALOG_LOCK:   # no batch copy made or dropped while GX reads them all
            present = {r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [BATCH_CATALOG]).fetchall()}
            placeholders = [d for d in depts if d not in present]
            for dept in placeholders:
                con.execute(f"CREATE TABLE {BATCH_CATALOG}.{dept} AS SELECT * FROM pending.{dept} LIMIT 0")
            try:
                with warnings.catch_warnings():   # schema_name: see _batch_definition
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return context.data_sources.add_duckdb(name=DATASOURCE, connection_string=url,
                                                           assets=assets)
            finally:
                for dept in placeholders:
                    con.execute(f"DROP TABLE IF EXISTS {BATCH_CATALOG}.{dept}")
    finally:
        con.close()


def _release(ds) -> None:
    """Close GX's DuckDB connections so the file is not held open between validations."""
    try:
        ds.get_execution_engine().engine.dispose()
        ds.get_engine().dispose()
    except Exception:  # pragma: no cover - best effort
        log.debug("disposing GX engines failed", exc_info=True)


RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 5,
}


def run_suite(warehouse: Path, dept: str, period: str, run_id: str, parameters: dict,
              keep: bool = True):
    """Run the department's suite by GX on the period's batch; store scrubbed results, build docs.

    Returns (results, data_docs_index_path). ``keep=False`` only validates (the benchmark).
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    raw = suite_definition(dept)
    # GX reads the period's rows from a copy made for this validation (BATCH_CATALOG), before
    # its turn inside GX
    with _batch_table(warehouse, dept, period), _GX_LOCK:
        context = gx_context(warehouse)
        suite = gx.ExpectationSuite(name=raw["name"], meta=raw.get("meta") or {},
                                    expectations=raw["expectations"])
        out = output_dir(Path(warehouse))
        ds, batch_definition = _batch_definition(context, warehouse, dept)
        try:
            batch = batch_definition.get_batch(batch_parameters={"period": period})
            ds.get_execution_engine().forget_row_counts()   # counts of this suite only
            results = batch.validate(suite, result_format=RESULT_FORMAT,
                                     expectation_parameters=parameters)
            for r in results.results:
                r.result = scrub_value(r.result or {})
                if r.exception_info:
                    r.exception_info = scrub_value(r.exception_info)
            if not keep:
                return results, None
            results.meta["run_id"] = RunIdentifier(run_name=run_id, run_time=_dt.datetime.now(_dt.timezone.utc))
            results.meta["batch_parameters"] = {"period": period}
            vr_id = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                run_id=results.meta["run_id"], batch_identifier=f"{dept}-{period}")
            context.validation_results_store.set(vr_id, results)
            with _DEFERRED_LOCK:  # pages and index are built once, by data_docs_index_once
                deferred = out in _DEFERRED_INDEX
                if deferred:
                    _DEFERRED_INDEX[out].append(vr_id)
            docs = _site_index(context, out) if deferred else _build_docs(context, [vr_id])
        finally:
            _hold_or_release(out, ds)
    return results, docs


# Output folders whose Data Docs index a caller builds once (data_docs_index_once) -> the pages
# rendered meanwhile. Its own lock: entering must not wait for _GX_LOCK, which GX's import holds
# for seconds (flows.pipeline warms GX up in the background while departments are staged).
_DEFERRED_INDEX: dict[Path, list] = {}
_DEFERRED_LOCK = threading.Lock()
# Output folders -> the GX datasource whose engine is kept open until data_docs_index_once ends.
_HELD_ENGINES: dict[Path, Any] = {}


@contextlib.contextmanager
def data_docs_index_once(warehouse: Path, background: bool = False):
    """Validations inside store their results; their Data Docs pages and the site's index are
    built once, in one GX docs build, on the way out. The index lists every validation result ever
    stored, so building it after each department cost 12 x (0.1-0.3 s of CPU, growing with the
    months kept) per period; each docs build also lists every stored result (again growing with
    the months kept), sets up its site builder and copies GX's static files, ~60 ms a department.
    All on the one thread GX runs on. Validations in other processes (Dask workers) build their
    page and the index as before.

    ``background``: the docs build runs on a thread of its own, started on the way out, and
    :func:`wait_for_data_docs` waits for it. The period's marts come next and run inside DuckDB
    (which releases the GIL), so the build's ~0.3 s of GX Python at size M costs no wall time
    beside them instead of sitting between the last validation and the marts."""
    warehouse = Path(warehouse).resolve()
    out = output_dir(warehouse)
    with _DEFERRED_LOCK:
        nested = out in _DEFERRED_INDEX
        _DEFERRED_INDEX.setdefault(out, [])
    in_background = False   # only when the period's block ends normally: a caller leaving on
    try:                     # an exception would not wait for the build
        yield
        in_background = background
    finally:
        if not nested:
            with _DEFERRED_LOCK:
                rendered = _DEFERRED_INDEX.pop(out, [])
                held = _HELD_ENGINES.pop(out, None)
            with _GX_LOCK:
                if held is not None:
                    _release(held)   # the warehouse file is not held open after the period
                if rendered and not in_background:
                    _build_docs(gx_context(warehouse), rendered)
            if rendered and in_background:
                _start_docs_build(warehouse, out, rendered)


# Output folders -> the docs build running in the background (data_docs_index_once(background=True))
# and a list that holds the exception it raised, if any, for wait_for_data_docs to raise.
_DOCS_BUILDS: dict[Path, tuple[threading.Thread, list]] = {}


def _start_docs_build(warehouse: Path, out: Path, rendered: list) -> None:
    wait_for_data_docs(warehouse)   # one build at a time per output folder
    failure: list = []

    def build() -> None:
        try:
            with _GX_LOCK:
                _build_docs(gx_context(warehouse), rendered)
        except BaseException as exc:   # handed to the waiting thread, raised there
            failure.append(exc)

    thread = threading.Thread(target=on_roomy_frame_stack, args=(build,), name="povwatch-datadocs")
    with _DEFERRED_LOCK:
        _DOCS_BUILDS[out] = (thread, failure)
    thread.start()


def wait_for_data_docs(warehouse: Path) -> None:
    """Wait for the Data Docs build data_docs_index_once(background=True) started for this
    warehouse's output folder, if any; what it raised is raised here."""
    out = output_dir(Path(warehouse).resolve())
    with _DEFERRED_LOCK:
        running = _DOCS_BUILDS.pop(out, None)
    if running is None:
        return
    thread, failure = running
    thread.join()
    if failure:
        raise failure[0]


def _hold_or_release(out: Path, ds) -> None:
    """Inside a period (data_docs_index_once) GX's engine is kept for the next department and
    released on the way out: a new engine costs ~45 ms of set-up per validation."""
    with _DEFERRED_LOCK:
        held = out in _DEFERRED_INDEX
        replaced = _HELD_ENGINES.get(out) if held else None
        if held:
            _HELD_ENGINES[out] = ds
    if not held:
        _release(ds)
    elif replaced is not None and replaced is not ds:   # another warehouse's datasource
        _release(replaced)


_SITE_INDEX: dict[Path, Path] = {}


def _site_index(context, out: Path) -> Path | None:
    """The Data Docs site's index page, the URL a docs build returns (asked of GX once per output
    folder: it sets up a site builder)."""
    if out not in _SITE_INDEX:
        urls = context.get_docs_sites_urls(site_name=DOCS_SITE, only_if_exists=False)
        url = urls[0].get("site_url") if urls else None
        if not url:
            return None
        _SITE_INDEX[out] = Path(url.removeprefix("file://"))
    return _SITE_INDEX[out]


def _build_docs(context, vr_ids: list) -> Path | None:
    """The pages of the given validation results and the site's index, then offline."""
    try:
        urls = context.build_data_docs(site_names=[DOCS_SITE], resource_identifiers=vr_ids,
                                       build_index=True)
    except Exception:
        log.warning("GX Data Docs could not be built", exc_info=True)
        urls = {}   # the pages already rendered are still made offline below
    # The pages load their styling from CDNs: point them at the copies povwatch ships. That reads
    # every page of the site (all months kept), so it is done once per docs build.
    make_offline(Path(context.root_directory).parent / "datadocs")
    url = urls.get(DOCS_SITE)
    return Path(url.removeprefix("file://")) if url else None


# --------------------------------------------------------------------------- outcome

def _strip_sql(sql: str) -> str:
    return sql.strip().rstrip(";")


def _lit(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _resolve(value: Any, parameters: dict) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


def failing_condition(cfg, parameters: dict) -> str | None:
    """The DuckDB condition a row fails the expectation on, or None if it is not row-level.

    Written here rather than taken from GX's ``unexpected_index_query``: GX 1.24 builds that text
    without the batch filter for simple column maps, as invalid SQL for query assets, and as a
    cross join for compound uniqueness. The counts are held against GX's ``unexpected_count``.
    """
    kw = {k: _resolve(v, parameters) for k, v in cfg.kwargs.items()}
    t = cfg.type
    if t == "expect_column_values_to_not_be_null":
        return f"{_q(kw['column'])} IS NULL"
    col = _q(kw["column"]) if "column" in kw else None
    if t == "expect_column_values_to_be_in_set":
        values = ", ".join(_lit(v) for v in kw["value_set"])
        return f"{col} IS NOT NULL AND {col} NOT IN ({values})"
    if t == "expect_column_values_to_not_be_in_set":
        values = ", ".join(_lit(v) for v in kw["value_set"])
        return f"{col} IS NOT NULL AND {col} IN ({values})"
    if t == "expect_column_values_to_match_regex":
        return f"{col} IS NOT NULL AND NOT regexp_matches({col}, {_lit(kw['regex'])})"
    if t == "expect_column_values_to_not_match_regex":
        return f"{col} IS NOT NULL AND regexp_matches({col}, {_lit(kw['regex'])})"
    if t == "expect_column_values_to_be_between":
        parts = []
        if kw.get("min_value") is not None:
            parts.append(f"{col} {'>' if kw.get('strict_min') else '>='} {_lit(kw['min_value'])}")
        if kw.get("max_value") is not None:
            parts.append(f"{col} {'<' if kw.get('strict_max') else '<='} {_lit(kw['max_value'])}")
        return f"{col} IS NOT NULL AND NOT ({' AND '.join(parts) or 'TRUE'})"
    if t == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = _q(kw["column_A"]), _q(kw["column_B"])
        op = ">=" if kw.get("or_equal") else ">"
        ignore = kw.get("ignore_row_if", "both_values_are_missing")
        if ignore == "either_value_is_missing":
            return f"{a} IS NOT NULL AND {b} IS NOT NULL AND NOT ({a} {op} {b})"
        return f"NOT ({a} IS NULL AND {b} IS NULL) AND NOT coalesce({a} {op} {b}, FALSE)"
    return None


def failing_rows_sql(cfg, parameters: dict, batch_sql: str) -> str | None:
    """SQL of the failing rows' keys (period, source_file, source_row), or None (table-level)."""
    t = cfg.type
    if t == "unexpected_rows_expectation":
        query = cfg.kwargs["unexpected_rows_query"].replace("{batch}", f"({batch_sql})")
        return f"SELECT period, source_file, source_row FROM ({_strip_sql(query)})"
    if t in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        cols = [cfg.kwargs["column"]] if "column" in cfg.kwargs else list(cfg.kwargs["column_list"])
        quoted = ", ".join(_q(c) for c in cols)
        if t == "expect_column_values_to_be_unique":
            skip = f"{_q(cols[0])} IS NULL"
        else:  # GX's default ignore_row_if for compound keys: all_values_are_missing
            skip = " AND ".join(f"{_q(c)} IS NULL" for c in cols)
        return (f"SELECT period, source_file, source_row FROM (SELECT period, source_file, source_row, "
                f"count(*) OVER (PARTITION BY {quoted}) AS _n FROM ({batch_sql}) WHERE NOT ({skip})) "
                f"WHERE _n > 1")
    condition = failing_condition(cfg, parameters)
    if condition is None:
        return None
    return f"SELECT period, source_file, source_row FROM ({batch_sql}) WHERE {condition}"


DUPLICATE_KEY = "重复键"


def _key_columns(cfg) -> list[str]:
    return [cfg.kwargs["column"]] if "column" in cfg.kwargs else list(cfg.kwargs["column_list"])


def duplicate_key_reasons_sql(dept: str, cfg, batch_sql: str) -> str:
    """(period, source_file, source_row, reason) of every row whose key another row shares.

    The reason names the key and its values (identity numbers masked) and how many rows share
    it, e.g. ``重复键：身份证号 620523********0012、救助类型 低保、起始年月 2019-01-01，共2行，
    请核对保留哪一行（unique_id_number_assistance_start_month）``: the rows of one key read
    alike, so the receipt lists them together and the department can say which is right.
    """
    contract = load_contract(dept)
    types = {c.name: c.type for c in contract.columns}
    labels = {c.name: c.header for c in contract.columns}
    cols = _key_columns(cfg)
    quoted = ", ".join(_q(c) for c in cols)
    shown = " || '、' || ".join(
        f"'{labels.get(c, c)} ' || coalesce("
        + (mask_id_sql(_q(c)) if types.get(c) == "id"
           else f"strftime({_q(c)}, '%Y-%m')" if types.get(c) == "month"
           else f"CAST({_q(c)} AS VARCHAR)")
        + ", '（空）')" for c in cols)
    skip = " AND ".join(f"{_q(c)} IS NULL" for c in cols)
    name = cfg.meta["name"].replace("'", "''")
    return (f"SELECT period, source_file, source_row, '{DUPLICATE_KEY}：' || {shown} || '，共' || _n "
            f"|| '行，请核对保留哪一行（{name}）' AS reason FROM (SELECT *, count(*) OVER "
            f"(PARTITION BY {quoted}) AS _n FROM ({batch_sql}) WHERE NOT ({skip})) WHERE _n > 1")


def _unexpected_count(result) -> int | None:
    res = result.result or {}
    if result.expectation_config.type == "unexpected_rows_expectation":
        return res.get("observed_value")
    return res.get("unexpected_count")


def _sample_rows(con, dept: str, keys_sql: str, columns: list[str], period: str) -> list[dict]:
    """A few failing rows, shown by file, row and the expectation's columns (ids masked)."""
    contract = load_contract(dept)
    types = {c.name: c.type for c in contract.columns}
    labels = {c.name: c.header for c in contract.columns}
    cols = [c for c in columns if c in types]
    select = ", ".join(
        (mask_id_sql(f'p."{c}"') if types[c] == "id" else f'CAST(p."{c}" AS VARCHAR)') + f' AS "{c}"'
        for c in cols)
    sql = (f"SELECT p.source_file, p.source_row{', ' + select if select else ''} FROM pending.{dept} p "
           f"SEMI JOIN ({keys_sql}) k ON p.period = k.period AND p.source_file = k.source_file "
           f"AND p.source_row = k.source_row WHERE p.period = ? ORDER BY p.source_file, p.source_row "
           f"LIMIT {SAMPLE_ROWS}")
    rows = con.execute(sql, [period]).fetchall()
    out = []
    for row in rows:
        item = {"file": row[0], "row": row[1]}
        item.update({labels[c]: v for c, v in zip(cols, row[2:])})
        out.append(scrub_value(item))
    return out


def _row_json_sql(dept: str) -> str:
    """The row as delivered (raw.<dept> text, with its extra columns), JSON keyed by the contract's
    Chinese headers, as the conformer's quarantine keeps it; the typed value where raw has none."""
    contract = load_contract(dept)
    parts = ", ".join(f"'{c.header}', coalesce(r.\"{c.name}\", CAST(p.\"{c.name}\" AS VARCHAR))"
                      for c in contract.columns)
    return f"CAST(json_merge_patch(json_object({parts}), coalesce(r.extra, '{{}}')) AS VARCHAR)"


def _exception_message(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return scrub(info.get("exception_message"))
    for value in info.values():  # GX 1.x may key exception info by metric
        if isinstance(value, dict) and value.get("raised_exception"):
            return scrub(value.get("exception_message"))
    return None


def validate_extract(warehouse: Path, period: str, dept: str, run_id: str) -> ValidationOutcome:
    """Validate pending.<dept> for one period by GX in DuckDB; record, quarantine, build docs."""
    warehouse = Path(warehouse).resolve()
    if not _PERIOD.match(period):
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    raw = suite_definition(dept)
    batch_sql = f"SELECT * FROM pending.{dept} WHERE period = '{period}'"
    con = db.connect(warehouse)
    try:
        row_count = con.execute(f"SELECT count(*) FROM pending.{dept} WHERE period = ?", [period]).fetchall()[0][0]
        if row_count == 0:
            empty_snapshot = load_contract(dept).may_be_empty and _nothing_read(con, period, dept, run_id)
            return _empty_outcome(con, raw, period, dept, run_id, empty_snapshot)
        params, volume_info = suite_parameters(con, dept, period, raw.get("meta") or {})
        results, docs = run_suite(warehouse, dept, period, run_id, params)

        records, failures, quarantine_keys, temp_tables = [], [], [], []
        for r in results.results:
            cfg = r.expectation_config
            meta = cfg.meta or {}
            name = meta["name"]
            count = _unexpected_count(r)
            error = _exception_message(r)
            keys_sql = failing_rows_sql(cfg, params, batch_sql) if not (r.success or error) else None
            if keys_sql:
                # One scan per failed check: its failing rows' keys, then sample and quarantine
                # read the small temp table.
                flag_table = f"_validate_keys_{len(temp_tables)}"
                con.execute(f"CREATE OR REPLACE TEMP TABLE {flag_table} AS "
                            f"SELECT DISTINCT period, source_file, source_row FROM ({keys_sql})")
                temp_tables.append(flag_table)
                keys_sql = f"SELECT period, source_file, source_row FROM {flag_table}"
                found = con.execute(f"SELECT count(*) FROM {flag_table}").fetchall()[0][0]
                if isinstance(count, int) and found != count:
                    log.warning("%s/%s %s: GX counted %s failing rows, the row SQL finds %s",
                                dept, period, name, count, found)
            blocking = meta["severity"] == "blocking"
            escalated = False
            if (not r.success and meta.get("quarantine") and not blocking and count
                    and row_count and meta.get("reject_above_share") is not None
                    and count / row_count > float(meta["reject_above_share"])):
                escalated = True
            if error:
                # An expectation GX could not evaluate is a broken check: never silently passed.
                blocking, escalated = True, False
            effective_blocking = blocking or escalated
            details = {
                "type": cfg.type, "description": cfg.description, "meta": meta,
                "result": r.result, "escalated": escalated,
            }
            if keys_sql:
                details["rows_found"] = found
            if error:
                details["exception"] = error
            if meta["name"] == "volume_vs_previous_period":
                details["volume"] = {**volume_info, "min": params["volume_min"], "max": params["volume_max"]}
            records.append((run_id, period, dept, name, effective_blocking, bool(r.success), count,
                            json.dumps(scrub_value(details), ensure_ascii=False, default=str)))
            if r.success:
                continue
            sample: list | Any
            if keys_sql:
                sample = _sample_rows(con, dept, keys_sql, meta.get("columns", []), period)
            else:
                sample = scrub_value((r.result or {}).get("observed_value"))
            failures.append({
                "expectation": name, "description": cfg.description, "blocking": effective_blocking,
                "unexpected_count": count, "sample": sample, "escalated": escalated,
                "quarantine": bool(meta.get("quarantine")) and keys_sql is not None,
                "observed": None if keys_sql else scrub_value((r.result or {}).get("observed_value")),
                "error": error,
                "keys_sql": keys_sql,
            })
            if meta.get("quarantine") and keys_sql:
                if meta.get("duplicate_key"):
                    # every row of a repeated key, each reason naming the key's values
                    quarantine_keys.append((None, duplicate_key_reasons_sql(dept, cfg, batch_sql)))
                else:
                    quarantine_keys.append((quarantine_reason(cfg.description, name), keys_sql))

        blocking_failed = any(f["blocking"] for f in failures)
        quarantined = 0
        with db.write_lock:
            con.execute("BEGIN")
            try:
                con.executemany(
                    "INSERT INTO audit.validations (run_id, period, dept, expectation, blocking, success, "
                    "unexpected_count, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)
                if quarantine_keys and not blocking_failed:
                    quarantined = _quarantine(con, dept, period, run_id, quarantine_keys)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        for f in failures:
            f.pop("keys_sql", None)
        for table in temp_tables:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        outcome = ValidationOutcome(
            period=period, dept=dept, blocking_failed=blocking_failed, failures=failures,
            quarantined_rows=quarantined, data_docs=docs, message=None, run_id=run_id,
            results=len(results.results), row_count=row_count)
        outcome.message = summary_message(outcome)
        return outcome
    finally:
        con.close()


def _empty_outcome(con, raw: dict, period: str, dept: str, run_id: str,
                   empty_snapshot: bool = False) -> ValidationOutcome:
    """No row for the period: GX has no batch to validate (its partitioner finds no such period),
    so the rest of the suite is not run. Recorded as the suite's ``not_empty`` expectation failing:
    blocking (the extract is rejected), or, for an ``empty_snapshot`` (the contract's
    ``may_be_empty``: no cancellation yet this year, no vehicle registered), a warning — the
    extract is accepted as empty and its emptiness stays visible in audit.validations."""
    exp = next((e for e in raw["expectations"] if e["meta"]["name"] == "not_empty"),
               {"description": "数据量：本期数据不能为空", "meta": {"name": "not_empty"}})
    name = exp["meta"]["name"]
    description = ("数据量：本期为空快照（只有表头），按本期无记录采用" if empty_snapshot
                   else exp.get("description"))
    details = {"type": "expect_table_row_count_to_be_between", "description": description,
               "meta": exp["meta"], "result": {"observed_value": 0},
               "note": ("empty snapshot accepted (contract may_be_empty): " if empty_snapshot
                        else "no row for this period: ") + "the rest of the suite was not run"}
    blocking = not empty_snapshot
    with db.write_lock:
        con.execute(
            "INSERT INTO audit.validations (run_id, period, dept, expectation, blocking, success, "
            "unexpected_count, details) VALUES (?, ?, ?, ?, ?, FALSE, NULL, ?)",
            [run_id, period, dept, name, blocking, json.dumps(details, ensure_ascii=False)])
    outcome = ValidationOutcome(
        period=period, dept=dept, blocking_failed=blocking,
        failures=[{"expectation": name, "description": description, "blocking": blocking,
                   "unexpected_count": None, "sample": 0, "escalated": False, "quarantine": False,
                   "observed": 0, "error": None}],
        quarantined_rows=0, data_docs=None, message=None, run_id=run_id, results=1, row_count=0)
    outcome.message = summary_message(outcome)
    return outcome


def _nothing_read(con, period: str, dept: str, run_id: str) -> bool:
    """The delivery had no data row at all (header-only files). Rows that were read and all
    quarantined (a shifted or broken file) are no empty snapshot: that extract is rejected."""
    read = con.execute("SELECT coalesce(sum(rows_read), 0) FROM audit.extracts "
                       "WHERE run_id = ? AND period = ? AND dept = ?", [run_id, period, dept]).fetchone()[0]
    return read == 0


def _quarantine(con, dept: str, period: str, run_id: str, keys: list[tuple[str | None, str]]) -> int:
    """Move flagged rows from pending to quarantine.rows, one row with every reason. In the caller's
    transaction. A reason of None: the SQL gives each row's own ``reason``."""
    flagged = " UNION ALL ".join(
        (f"SELECT period, source_file, source_row, '{reason.replace(chr(39), chr(39) * 2)}' AS reason "
         if reason is not None else "SELECT period, source_file, source_row, reason ")
        + f"FROM ({sql})" for reason, sql in keys)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _validate_flagged AS "
        f"SELECT source_file, source_row, list(DISTINCT reason ORDER BY reason) AS reasons "
        f"FROM ({flagged}) WHERE period = ? GROUP BY source_file, source_row", [period])
    con.execute(
        f"INSERT INTO quarantine.rows (run_id, period, dept, file, row_number, reasons, stage, row_data) "
        f"SELECT ?, p.period, ?, p.source_file, p.source_row, f.reasons, 'validate', {_row_json_sql(dept)} "
        f"FROM pending.{dept} p JOIN _validate_flagged f "
        f"ON p.source_file = f.source_file AND p.source_row = f.source_row "
        f"LEFT JOIN raw.{dept} r ON r.period = p.period AND r.source_file = p.source_file "
        f"AND r.source_row = p.source_row WHERE p.period = ?",
        [run_id, dept, period])
    # pending.<dept> is a view over Parquet files: the rows are left out, not deleted
    from povwatch.tasks.ingest.load import drop_pending_rows

    moved = drop_pending_rows(con, dept, period, "_validate_flagged")
    con.execute("DROP TABLE _validate_flagged")
    return int(moved)


def summary_message(outcome: ValidationOutcome) -> str | None:
    """Chinese summary: what failed, how many rows, what happens now, where to look."""
    if not outcome.failures:
        return None
    contract = load_contract(outcome.dept)
    lines = []
    if outcome.blocking_failed:
        lines.append(f"{contract.name}（{outcome.dept}）{outcome.period} 数据校验未通过，本期数据未采用，"
                     f"继续使用上期数据。请核对后重新报送。")
    else:
        lines.append(f"{contract.name}（{outcome.dept}）{outcome.period} 数据已采用，但有以下校验提示"
                     + (f"，{outcome.quarantined_rows} 行已隔离，未进入数据仓库" if outcome.quarantined_rows else "")
                     + "。")
    for f in outcome.failures:
        kind = "阻断" if f["blocking"] else ("隔离" if f.get("quarantine") else "提示")
        count = f["unexpected_count"]
        if isinstance(count, int):
            count_text = f"{count} 行"
        elif isinstance(f.get("observed"), int):
            count_text = f"实际 {f['observed']} 行"
        elif f.get("error"):
            count_text = f"校验无法执行：{f['error']}"
        else:
            count_text = "未通过"
        extra = "（不合格比例过高，整批退回）" if f.get("escalated") else ""
        lines.append(f"- [{kind}] {f['description'] or f['expectation']}（{f['expectation']}）：{count_text}{extra}")
    if outcome.data_docs:
        lines.append(f"校验报告：{outcome.data_docs}")
    return scrub("\n".join(lines))

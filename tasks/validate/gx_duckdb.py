"""A Great Expectations datasource for the DuckDB warehouse, so suites run as SQL inside DuckDB.

GX 1.x ships no DuckDB engine, and through plain ``duckdb_engine`` every expectation fails with an
``IndexError`` in ``resolve_metric_bundle``: GX reads the SQLAlchemy result *after* leaving the
connection's ``with`` block, closing the connection rolls back, and DuckDB discards the pending
result. Three small pieces fix it:

* :class:`DuckDBExecutionEngine` subclasses ``SqlAlchemyExecutionEngine``: ``execute_query``
  materialises the rows with SQLAlchemy's ``freeze()`` while the connection is still open (GX's
  metric queries return a handful of aggregate rows, so this costs nothing), and it uses the
  PostgreSQL dialect module, so regex expectations compile to ``col ~ pattern`` (DuckDB's ``~``
  is a partial match, like PostgreSQL's).
* The engine's DuckDB connections are opened by :func:`tasks.core.db.connect` itself (through a
  SQLAlchemy ``creator``). DuckDB shares one database instance between connections of one process
  only when they use the same configuration, and ``duckdb_engine`` would add its own
  ``custom_user_agent``: a warehouse already open through ``tasks.core.db`` would then refuse GX
  ("different configuration"), and the other way round.
* :class:`CatalogInspector` answers GX's one reflection question (a table's columns and primary
  key) from DuckDB's own catalog: through the PostgreSQL dialect SQLAlchemy asks ``pg_catalog``,
  which DuckDB emulates with views over the whole catalog (~0.1 s of CPU per table, once per
  department and period) where ``duckdb_columns()`` answers in a millisecond.
* :class:`DuckDBDatasource` subclasses the fluent ``SQLDatasource`` with ``type = "duckdb"``, so
  GX registers ``context.data_sources.add_duckdb(...)`` and can read it back from a file context.

Import this module before creating a file context that holds a ``duckdb`` datasource.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, List, Literal, Type, Union

import sqlalchemy as sa
from duckdb_engine import ConnectionWrapper

from povwatch.tasks.validate import deferred_imports

deferred_imports.defer()  # before GX's import: scipy.stats and altair only if a suite uses them

from great_expectations.compatibility import pydantic  # noqa: E402
from great_expectations.datasource.fluent.config_str import ConfigStr  # noqa: E402
from great_expectations.datasource.fluent.sql_datasource import (  # noqa: E402
    QueryAsset,
    SQLDatasource,
    TableAsset,
)
from great_expectations.execution_engine.sqlalchemy_execution_engine import (  # noqa: E402
    SqlAlchemyExecutionEngine,
)

from povwatch.tasks.core import db  # noqa: E402

_URL_PREFIX = "duckdb:///"


def warehouse_url(warehouse: Path | str) -> str:
    """The connection string GX keeps for a warehouse file (an absolute path, no secrets)."""
    return _URL_PREFIX + str(Path(warehouse).resolve())


def _warehouse_of(connection_string: str) -> Path:
    if not connection_string.startswith(_URL_PREFIX):
        raise ValueError(f"not a DuckDB warehouse connection string: {connection_string!r}")
    return Path(connection_string[len(_URL_PREFIX):])


def create_engine(connection_string: str, **kwargs) -> sa.engine.Engine:
    """A SQLAlchemy engine whose DuckDB connections are opened exactly as tasks.core.db opens them.

    One static connection per engine: GX runs its metric queries one after the other, and a
    single connection keeps the database instance (and its catalog cache) alive between them.
    """
    warehouse = _warehouse_of(connection_string)
    kwargs.setdefault("poolclass", sa.pool.StaticPool)
    return sa.create_engine(
        "duckdb:///:memory:",  # only selects the dialect; creator() decides what is opened
        creator=lambda: ConnectionWrapper(db.connect(warehouse)),
        **kwargs,
    )


# DuckDB's column types as SQLAlchemy's reflection through duckdb_engine names them (held against
# it in tests/test_validate.py); a table with any other type is reflected the slow way.
_REFLECTED_TYPES = {"VARCHAR": sa.String, "DOUBLE": sa.FLOAT, "DATE": sa.DATE,
                    "INTEGER": sa.Integer, "BOOLEAN": sa.BOOLEAN}
_DECIMAL = re.compile(r"DECIMAL\((\d+),(\d+)\)")


def _reflected_type(duckdb_type: str):
    if duckdb_type in _REFLECTED_TYPES:
        return _REFLECTED_TYPES[duckdb_type]()
    decimal = _DECIMAL.fullmatch(duckdb_type)
    return sa.NUMERIC(precision=int(decimal[1]), scale=int(decimal[2])) if decimal else None


class CatalogInspector:
    """SQLAlchemy's Inspector with a table's columns and primary key read from duckdb_columns() and
    duckdb_constraints(); everything else, and a column type not in _REFLECTED_TYPES, is the
    Inspector's own answer."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self._engine = engine
        self._inspector = sa.inspect(engine)

    def __getattr__(self, name):
        return getattr(self._inspector, name)

    def _rows(self, sql: str, table_name: str, schema: str | None) -> list:
        with self._engine.connect() as connection:
            return list(connection.execute(sa.text(sql), {"schema": schema or "main",
                                                          "table": str(table_name)}))

    # A "schema" GX names may also be an attached database's (default) schema: the batch copies
    # in suites.BATCH_CATALOG are read as ``gx_batch.<dept>``.
    _WHERE = ("(schema_name = :schema OR (database_name = :schema AND schema_name = 'main')) "
              "AND table_name = :table")

    def get_columns(self, table_name, schema=None, **kw):
        rows = self._rows("SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                          f"WHERE {self._WHERE} ORDER BY column_index", table_name, schema)
        types = [_reflected_type(data_type) for _, data_type, _ in rows]
        if not rows or any(t is None for t in types):
            return self._inspector.get_columns(table_name, schema=schema, **kw)
        return [{"name": name, "type": t, "nullable": bool(nullable), "default": None,
                 "autoincrement": False, "comment": None}
                for (name, _, nullable), t in zip(rows, types)]

    def get_pk_constraint(self, table_name, schema=None, **kw):
        rows = self._rows("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                          f"{self._WHERE} AND constraint_type = 'PRIMARY KEY'", table_name, schema)
        return {"constrained_columns": list(rows[0][0]) if rows else [], "name": None}


class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
    """SqlAlchemyExecutionEngine that works on DuckDB (results frozen before the connection closes)."""

    # Rows and queries GX brought back into Python, process-wide (the benchmark reads them to show
    # that validation is pushed down: a few aggregate rows, never the data).
    queries_executed: ClassVar[int] = 0
    rows_fetched: ClassVar[int] = 0
    counts_reused: ClassVar[int] = 0     # custom-SQL row counts answered from the rows fetched

    # GX's unexpected_rows_expectation asks two metrics of its custom SQL: the failing rows
    # (``unexpected_rows_query.table``: the query's text itself) and their number
    # (``unexpected_rows_query.row_count``: the query wrapped as below), each one a full pass over
    # the batch (the identity-number check of every suite: ~0.8 s of CPU per pass at M). The rows
    # are fetched whole anyway (results are frozen), so within one suite the query runs once:
    # whichever metric comes first runs it and keeps its rows, the other is answered from them
    # (the count is their number). Any other text runs as sent.
    _COUNT_PREFIX = "SELECT COUNT(*) as unexpected_row_count FROM ("
    _COUNT_SUFFIX = ") AS substituted_batch_subquery"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # GX picks its SQL idioms (regex operator, type lookups) from this module.
        import sqlalchemy.dialects.postgresql as postgresql_dialect

        self.dialect_module = postgresql_dialect
        self._fetched: dict[str, object] = {}   # custom SQL -> its rows (FrozenResult), one suite

    def forget_row_counts(self) -> None:
        """Called before each suite: rows are reused only within the suite that fetched them
        (its batch does not change while it runs)."""
        self._fetched.clear()

    def _setup_engine(self, kwargs, connection_string=None, credentials=None, url=None):
        self.engine = create_engine(connection_string or url, **kwargs)

    def get_inspector(self) -> CatalogInspector:
        if self._inspector is None:
            self._inspector = CatalogInspector(self.engine)
        return self._inspector

    @classmethod
    def _frozen(cls, result):
        """The result's rows, kept (None for a statement without rows)."""
        cls.queries_executed += 1
        if not result.returns_rows:
            return None
        frozen = result.freeze()
        cls.rows_fetched += len(frozen.data)
        return frozen

    @classmethod
    def _materialise(cls, result):
        frozen = cls._frozen(result)
        return result if frozen is None else frozen()

    @staticmethod
    def _plain_text(query) -> str | None:
        """The SQL of a text query without bound parameters, else None."""
        if isinstance(query, sa.sql.elements.TextClause) and not query._bindparams:
            return query.text
        return None

    def _run_frozen(self, query):
        with self.get_connection() as connection:
            result = self._execute_query_with_recovery(connection, query)
            # A CursorResult of DuckDB dies with the connection's transaction: keep its rows.
            return result, self._frozen(result)

    def _run(self, query):
        """The query run as sent, its rows kept (as execute_query always returned them)."""
        result, frozen = self._run_frozen(query)
        return result if frozen is None else frozen()

    def execute_query(self, query):  # noqa: D401 - GX signature
        text = self._plain_text(query)
        if text is None:
            return self._run(query)
        if text.startswith(self._COUNT_PREFIX) and text.endswith(self._COUNT_SUFFIX):
            inner = text[len(self._COUNT_PREFIX):-len(self._COUNT_SUFFIX)]
            rows = self._fetched.pop(inner, None)
            if rows is None:   # the count first: run the query itself, keep its rows
                try:
                    _, rows = self._run_frozen(sa.text(inner))
                except Exception:   # a broken query fails as GX sent it (same error text)
                    return self._run(query)
                self._fetched[inner] = rows
            else:
                DuckDBExecutionEngine.counts_reused += 1
            _, count = self._run_frozen(sa.text(
                "SELECT CAST(:n AS BIGINT) AS unexpected_row_count").bindparams(n=len(rows.data)))
            return count()
        rows = self._fetched.pop(text, None)
        if rows is not None:   # fetched for its count a moment ago
            DuckDBExecutionEngine.counts_reused += 1
            return rows()
        result, frozen = self._run_frozen(query)
        if frozen is None:
            return result
        self._fetched[text] = frozen
        return frozen()

    def execute_query_in_transaction(self, query):
        with self.get_connection() as connection:
            frozen = self._materialise(self._execute_query_with_recovery(connection, query))
            if connection.in_transaction():
                connection.commit()
            return frozen


class DuckDBTableAsset(TableAsset):
    type: Literal["table"] = "table"


class DuckDBQueryAsset(QueryAsset):
    type: Literal["query"] = "query"


class DuckDBDatasource(SQLDatasource):
    """Fluent datasource ``type: duckdb`` over a warehouse file (``duckdb:///<absolute path>``)."""

    asset_types: ClassVar[List[Type]] = [DuckDBTableAsset, DuckDBQueryAsset]
    type: Literal["duckdb"] = "duckdb"  # type: ignore[assignment]
    connection_string: Union[ConfigStr, str]

    _TableAsset: Type[TableAsset] = pydantic.PrivateAttr(DuckDBTableAsset)
    _QueryAsset: Type[QueryAsset] = pydantic.PrivateAttr(DuckDBQueryAsset)

    @property
    def execution_engine_type(self) -> Type[SqlAlchemyExecutionEngine]:
        return DuckDBExecutionEngine

    def _create_engine(self) -> sa.engine.Engine:
        return create_engine(str(self.connection_string), **dict(self.kwargs or {}))

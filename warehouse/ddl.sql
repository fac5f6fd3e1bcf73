-- Schemas and the audit / quarantine tables. Department tables (raw.<dept>, pending.<dept>,
-- staging.<dept>) are created from the contracts by tasks.core.db.ensure_department_tables.
-- raw        as delivered, text, with file and row number: views over Parquet files in
--            <warehouse>.lake/raw (tasks.ingest.load.load_parts), listed in audit.lake_files
-- pending    conformed candidate of a (period, dept) being validated; promoted or dropped
-- staging    typed, canonical, accepted extracts, one snapshot per (period, dept)
-- quarantine rows refused, with reasons
-- mart       what the marts build;  audit  runs, extracts, validations, alerts
-- work       intermediate results one model hands to later ones (warehouse/models/ORDER), rebuilt
--            with every period built: never a source of truth
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS pending;
CREATE SCHEMA IF NOT EXISTS staging;
CREATE SCHEMA IF NOT EXISTS quarantine;
CREATE SCHEMA IF NOT EXISTS work;
DROP SCHEMA IF EXISTS core;   -- an empty schema of earlier versions, never used
CREATE SCHEMA IF NOT EXISTS mart;
CREATE SCHEMA IF NOT EXISTS audit;

CREATE TABLE IF NOT EXISTS audit.runs (
    run_id       VARCHAR PRIMARY KEY,
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    inbox        VARCHAR,
    periods      VARCHAR,      -- comma-separated periods the run covered
    status       VARCHAR,      -- running / completed / rejected_extracts / failed
    message      VARCHAR,
    flow_run_id  VARCHAR,      -- Prefect flow run id, when run as a flow
    policy       VARCHAR,      -- JSON of the policy values used
    warnings     VARCHAR       -- said loudly: e.g. a period run on an earlier year's policy file
);
ALTER TABLE audit.runs ADD COLUMN IF NOT EXISTS warnings VARCHAR;

CREATE TABLE IF NOT EXISTS audit.extracts (
    run_id           VARCHAR,
    period           VARCHAR,
    dept             VARCHAR,
    file             VARCHAR,  -- path relative to the inbox
    sha256           VARCHAR,
    rows_read        BIGINT,
    rows_loaded      BIGINT,
    rows_quarantined BIGINT,
    status           VARCHAR,  -- accepted / rejected / unchanged
    message          VARCHAR,  -- Chinese, for the department
    extra_columns    VARCHAR,  -- headers not in the contract, kept in raw
    recorded_at      TIMESTAMP DEFAULT current_timestamp
);

-- The Parquet files behind the raw.<dept> and pending.<dept> views (absolute paths, in
-- <warehouse>.lake/<layer>): replaced with the view in the transaction that loads, promotes or
-- rejects a (period, dept), so a delivery's rows appear and disappear atomically with its
-- quarantine and audit rows. pending_dropped: rows validation or the writer took out of the
-- pending files (which are never rewritten).
-- lake_files.path is relative to the lake (tasks/core/lake.py resolves it when the warehouse is
-- opened); lake_homes: every lake files were listed from, read by a copy of the .duckdb file alone.
CREATE TABLE IF NOT EXISTS audit.lake_homes (path VARCHAR);

CREATE TABLE IF NOT EXISTS audit.lake_files (
    layer            VARCHAR,  -- raw | pending
    dept             VARCHAR,
    period           VARCHAR,
    path             VARCHAR,
    run_id           VARCHAR
);

CREATE TABLE IF NOT EXISTS audit.pending_dropped (
    dept             VARCHAR,
    period           VARCHAR,
    source_file      VARCHAR,
    source_row       INTEGER
);

CREATE TABLE IF NOT EXISTS audit.validations (
    run_id           VARCHAR,
    period           VARCHAR,
    dept             VARCHAR,
    expectation      VARCHAR,
    blocking         BOOLEAN,
    success          BOOLEAN,
    unexpected_count BIGINT,
    details          VARCHAR,  -- JSON
    recorded_at      TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS audit.alerts (
    alert_id     VARCHAR,
    run_id       VARCHAR,
    created_at   TIMESTAMP DEFAULT current_timestamp,
    severity     VARCHAR,      -- error / warning
    dept         VARCHAR,
    period       VARCHAR,
    summary      VARCHAR,
    channel      VARCHAR,
    delivered    BOOLEAN,
    fingerprint  VARCHAR,      -- same failure on a rerun -> same fingerprint -> not sent again
    attempts     INTEGER,
    error        VARCHAR
);

CREATE TABLE IF NOT EXISTS quarantine.rows (
    run_id      VARCHAR,
    period      VARCHAR,
    dept        VARCHAR,
    file        VARCHAR,
    row_number  INTEGER,       -- Excel row / editor line as the clerk sees it
    reasons     VARCHAR[],
    stage       VARCHAR,       -- conform / validate
    row_data    VARCHAR        -- the row as delivered, JSON of header -> text
);

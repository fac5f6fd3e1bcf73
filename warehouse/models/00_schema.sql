-- reads:  mart.departments, mart.ledger_as_of, mart.ledger_states, mart.policy_used, mart.problem_states, mart.rules
-- writes: mart.household_plan, mart.household_status, mart.ledger_as_of, mart.ledger_states, mart.monitoring, mart.monitoring_events, mart.monitoring_exclusions, mart.monitoring_history, mart.monitoring_states, mart.period_deliveries, mart.policy_used, mart.problem_events, mart.problem_events_withdrawn, mart.problem_findings, mart.problem_ledger, mart.problem_states, mart.problems_open_in, mart.roster_unmatched, mart.rule_precision, mart.spot_check, mart.township_monitoring, mart.township_ranking, mart.verifications
-- Mart tables and the ledger macros (the rule catalogue, mart.rules, is written by the build from
-- warehouse/rules.toml). The work schema holds what one model hands to a later one.
CREATE SCHEMA IF NOT EXISTS work;
-- Run first on every build (idempotent). Column lists of the interface tables follow
-- the interface (docs/marts.md, "Tables") exactly; extra columns come after them.

CREATE TABLE IF NOT EXISTS mart.household_status (
    period VARCHAR, household_key VARCHAR, household_id VARCHAR, county_code VARCHAR,
    township_code VARCHAR, village_code VARCHAR, registry_status VARCHAR, object_type VARCHAR,
    members INTEGER, per_capita_income DECIMAL(14,2), education_ok BOOLEAN, medical_ok BOOLEAN,
    housing_ok BOOLEAN, water_ok BOOLEAN, income_ok BOOLEAN, color VARCHAR,
    head_id_number VARCHAR, declared_members INTEGER, income_known BOOLEAN,
    labour_able_members INTEGER, monitored BOOLEAN
);
CREATE TABLE IF NOT EXISTS mart.monitoring (
    period VARCHAR, household_key VARCHAR, category VARCHAR, reasons VARCHAR[], evidence JSON,
    category_name VARCHAR, registry_status VARCHAR, village_code VARCHAR
);
-- 负面清单: non-registry households not warned as marginal because of an asset, and why.
CREATE TABLE IF NOT EXISTS mart.monitoring_exclusions (
    period VARCHAR, household_key VARCHAR, asset VARCHAR, evidence JSON
);
CREATE TABLE IF NOT EXISTS mart.monitoring_history (
    household_key VARCHAR, entered_period VARCHAR, last_flagged_period VARCHAR,
    clean_periods INTEGER, proposed_clear_period VARCHAR, status VARCHAR,
    as_of_period VARCHAR, flagged_periods INTEGER, categories_by_period JSON,
    has_labour BOOLEAN, village_code VARCHAR,
    entered_by VARCHAR, cleared_period VARCHAR, cleared_on DATE, clear_way VARCHAR,
    identified_on DATE, on_roster BOOLEAN, township_code VARCHAR
);
-- Monitoring as the office counts it (36_monitoring_states.sql): one row per household that ever
-- entered monitoring and period from its entry on.
CREATE TABLE IF NOT EXISTS mart.monitoring_states (
    period VARCHAR, household_key VARCHAR, household_id VARCHAR, village_code VARCHAR,
    township_code VARCHAR, status VARCHAR, under_monitoring BOOLEAN, warned BOOLEAN,
    entered_period VARCHAR, entered_by VARCHAR, first_warned_period VARCHAR,
    last_warned_period VARCHAR, clean_periods INTEGER, on_roster BOOLEAN, identified_on DATE,
    risk_status VARCHAR, cleared_on DATE, clear_way VARCHAR, roster_category VARCHAR,
    in_data BOOLEAN, registry BOOLEAN, has_labour BOOLEAN, three_plus_one BOOLEAN,
    income_at_line BOOLEAN, proposed_clear_period VARCHAR, cleared_period VARCHAR
);
CREATE TABLE IF NOT EXISTS mart.monitoring_events (
    period VARCHAR, household_key VARCHAR, event VARCHAR, detail VARCHAR, status VARCHAR,
    village_code VARCHAR, township_code VARCHAR
);
-- 名单无数据: rows of the roster standing for a period that match no household of its data
CREATE TABLE IF NOT EXISTS mart.roster_unmatched (
    period VARCHAR, roster_period VARCHAR, household_id VARCHAR, head_id_number VARCHAR,
    village_code VARCHAR, township_code VARCHAR, category VARCHAR, identified_on DATE,
    risk_status VARCHAR, source_file VARCHAR, source_row INTEGER
);
CREATE TABLE IF NOT EXISTS mart.township_monitoring (
    period VARCHAR, township_code VARCHAR, monitored INTEGER, warned INTEGER,
    proposed_clear INTEGER, manual_review INTEGER, cleared INTEGER, not_identified INTEGER,
    identification_overdue INTEGER, reflagged INTEGER
);
CREATE TABLE IF NOT EXISTS mart.problem_findings (
    period VARCHAR, code VARCHAR, subject_id VARCHAR, subject_type VARCHAR,
    household_key VARCHAR, township_code VARCHAR, village_code VARCHAR,
    responsible_dept VARCHAR, responsible_name VARCHAR, deadline_days INTEGER,
    detail VARCHAR, evidence JSON
);
CREATE TABLE IF NOT EXISTS mart.period_deliveries (period VARCHAR, dept VARCHAR);
CREATE TABLE IF NOT EXISTS mart.problem_ledger (
    problem_key VARCHAR, code VARCHAR, subject_id VARCHAR, household_key VARCHAR,
    township_code VARCHAR, village_code VARCHAR, responsible_dept VARCHAR, status VARCHAR,
    first_seen_period VARCHAR, last_seen_period VARCHAR, deadline DATE, overdue BOOLEAN,
    closed_period VARCHAR, reopen_count INTEGER, detail VARCHAR,
    responsible_name VARCHAR, subject_type VARCHAR, rule_name VARCHAR,
    opened_period VARCHAR, as_of_period VARCHAR,
    verified_result VARCHAR, verified_on DATE, verifier VARCHAR, verified_note VARCHAR,
    rectification_unconfirmed BOOLEAN
);
-- The ledger's state per problem and built period from its first sighting on (75_ledger_states.sql,
-- carried one period to the next): what mart.ledger_states(upto) returns, and the carried values
-- the next period's step needs (the last closing, the verification in force and what it decided).
CREATE TABLE IF NOT EXISTS mart.problem_states (
    period VARCHAR, code VARCHAR, subject_id VARCHAR, first_seen_period VARCHAR,
    problem_key VARCHAR, status VARCHAR, seen BOOLEAN, closable BOOLEAN, spell_start BOOLEAN,
    closing BOOLEAN, opened_period VARCHAR, deadline DATE, overdue BOOLEAN, was_overdue BOOLEAN,
    reopen_count INTEGER, last_seen_period VARCHAR, closed_period VARCHAR, household_key VARCHAR,
    township_code VARCHAR, village_code VARCHAR, responsible_dept VARCHAR, detail VARCHAR,
    verified_result VARCHAR, verified_on DATE, verifier VARCHAR, verified_note VARCHAR,
    verified_period VARCHAR, verified_now BOOLEAN, rectification_unconfirmed BOOLEAN,
    was_unconfirmed BOOLEAN, was_dismissed BOOLEAN,
    last_closed_period VARCHAR, verified_source_file VARCHAR, verified_source_row INTEGER,
    detail_refuted VARCHAR, new_evidence BOOLEAN, spell_reported INTEGER
);
-- 撤销: events a later run no longer finds (a resubmission corrected a past period), kept with the
-- run that withdrew them, so the ledger the office saw on any date can be told (80_ledger.sql).
CREATE TABLE IF NOT EXISTS mart.problem_events_withdrawn (
    period VARCHAR, problem_key VARCHAR, code VARCHAR, subject_id VARCHAR, event VARCHAR,
    status VARCHAR, household_key VARCHAR, township_code VARCHAR, detail VARCHAR,
    withdrawn_run VARCHAR, withdrawn_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS mart.problem_events (
    period VARCHAR, problem_key VARCHAR, code VARCHAR, subject_id VARCHAR, event VARCHAR,
    status VARCHAR, deadline DATE, overdue BOOLEAN, reopen_count INTEGER,
    household_key VARCHAR, township_code VARCHAR, village_code VARCHAR,
    responsible_dept VARCHAR, detail VARCHAR,
    verifier VARCHAR, verified_note VARCHAR
);
-- The townships' verifications (核实反馈): every accepted feedback row with a 核实结果, copied
-- from staging.feedback at every build (80_ledger.sql) so that the ledger macros below read
-- only mart tables.
CREATE TABLE IF NOT EXISTS mart.verifications (
    period VARCHAR, problem_key VARCHAR, code VARCHAR, township_code VARCHAR, result VARCHAR,
    note VARCHAR, evidence VARCHAR, verifier VARCHAR, verified_on DATE, source_file VARCHAR,
    source_row INTEGER
);
CREATE TABLE IF NOT EXISTS mart.rule_precision (
    period VARCHAR, code VARCHAR, township_code VARCHAR, confirmed INTEGER, refuted INTEGER,
    precision DOUBLE, median_days_to_verify DOUBLE,
    window_periods INTEGER, window_verifications INTEGER, window_precision DOUBLE, alert BOOLEAN
);
CREATE TABLE IF NOT EXISTS mart.township_ranking (
    period VARCHAR, township_code VARCHAR, township_name VARCHAR, households INTEGER,
    open_problems INTEGER, overdue_problems INTEGER, closed_in_period INTEGER,
    rectification_rate DOUBLE, monitored_households INTEGER, score DOUBLE, rank INTEGER,
    bottom3_streak INTEGER, county_code VARCHAR, closed_problems INTEGER
);
CREATE TABLE IF NOT EXISTS mart.spot_check (
    period VARCHAR, county_code VARCHAR, village_code VARCHAR, household_key VARCHAR,
    stratum VARCHAR, seed BIGINT, monitored BOOLEAN, draw_order INTEGER
);
CREATE TABLE IF NOT EXISTS mart.household_plan (
    period VARCHAR, household_key VARCHAR, measure VARCHAR, department VARCHAR,
    dept_code VARCHAR, reason VARCHAR
);
CREATE TABLE IF NOT EXISTS mart.policy_used (
    run_id VARCHAR, period VARCHAR, policy_year INTEGER, "values" JSON,
    built_at TIMESTAMP DEFAULT current_timestamp
);

-- The ledger's states per problem and built period up to upto, one row per problem and period
-- from its first sighting on (docs/rules.md: 'S' a sighting opens or keeps it open, 'C' not seen
-- although every department the rule reads delivered closes it, 'D' a refutation in force
-- dismisses it). Stored by 75_ledger_states.sql period by period: a state depends only on the
-- periods up to its own, so the ledger as of an earlier period is this macro with that period.
CREATE OR REPLACE MACRO mart.ledger_states(upto) AS TABLE
SELECT period, code, subject_id, first_seen_period, problem_key, status, seen, closable,
       spell_start, closing, opened_period, deadline, overdue, was_overdue, reopen_count,
       last_seen_period, closed_period, household_key, township_code, village_code,
       responsible_dept, detail, verified_result, verified_on, verifier, verified_note,
       verified_period, verified_now, rectification_unconfirmed, was_unconfirmed, was_dismissed
FROM mart.problem_states WHERE period <= upto;

-- The problem ledger as of a period: each problem's state after that period's replay.
CREATE OR REPLACE MACRO mart.ledger_as_of(upto) AS TABLE
SELECT s.problem_key, s.code, s.subject_id, s.household_key, s.township_code, s.village_code,
       s.responsible_dept, s.status, s.first_seen_period, s.last_seen_period, s.deadline,
       s.overdue, s.closed_period, s.reopen_count, s.detail,
       d.name AS responsible_name, r.subject_type, r.rule_name, s.opened_period,
       s.period AS as_of_period, s.verified_result, s.verified_on, s.verifier, s.verified_note,
       s.rectification_unconfirmed
FROM mart.ledger_states(upto) s
JOIN mart.rules r USING (code)
LEFT JOIN mart.departments d ON d.code = s.responsible_dept
-- every problem has a state row in every built period from its first sighting on
WHERE s.period = (SELECT max(period) FROM mart.policy_used WHERE period <= upto);

-- Problems open at the end of a period (rules.md: first seen <= period, not closed since).
CREATE OR REPLACE MACRO mart.problems_open_in(p) AS TABLE
SELECT * FROM mart.ledger_as_of(p) WHERE status = 'open';

-- reads:  mart.departments, mart.ledger_as_of, mart.ledger_states, mart.period_deliveries, mart.policy_used, mart.problem_findings, mart.rules, mart.verifications
-- writes: mart.household_plan, mart.household_status, mart.ledger_as_of, mart.ledger_states, mart.monitoring, mart.monitoring_events, mart.monitoring_exclusions, mart.monitoring_history, mart.monitoring_states, mart.period_deliveries, mart.policy_used, mart.problem_events, mart.problem_events_withdrawn, mart.problem_findings, mart.problem_ledger, mart.problems_open_in, mart.roster_unmatched, mart.rule_precision, mart.spot_check, mart.township_monitoring, mart.township_ranking, mart.verifications
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

-- The ledger, replayed from the per-period findings and the townships' verifications: one row
-- per problem and built period from its first sighting on. A sighting ('S') opens or keeps it
-- open; a period in which it is not seen although every department the rule reads delivered
-- ('C') closes it; a refutation (不属实) in force dismisses it ('D') — docs/rules.md, 核实反馈;
-- any other period leaves it as it was. Everything here depends only on periods <= upto, so the
-- ledger as of an earlier period is this macro with that period.
CREATE OR REPLACE MACRO mart.ledger_states(upto) AS TABLE
WITH periods AS (
    SELECT DISTINCT period FROM mart.policy_used WHERE period <= upto
), delivered AS (
    SELECT p.period, coalesce(list(d.dept) FILTER (WHERE d.dept IS NOT NULL), []) AS depts
    FROM periods p LEFT JOIN mart.period_deliveries d USING (period) GROUP BY p.period
), seen AS (
    SELECT * FROM mart.problem_findings WHERE period IN (SELECT period FROM periods)
), keys AS (
    SELECT code, subject_id, min(period) AS first_seen_period,
           substr(md5(code || ':' || subject_id), 1, 16) AS problem_key
    FROM seen GROUP BY ALL
), verifications AS (
    -- accepted rows with a result; the order that decides which one is in force is the data's
    -- own (核实日期, then the delivery's period, file and row), never the order of loading
    SELECT f.problem_key, f.period AS v_period, f.result AS v_result,
           coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE) AS v_on,
           f.verifier AS v_verifier, coalesce(f.note, f.evidence) AS v_note,
           (coalesce(f.verified_on, last_day(strptime(f.period || '-01', '%Y-%m-%d'))::DATE),
            f.period, f.source_file, f.source_row) AS v_order
    FROM mart.verifications f
    WHERE f.period IN (SELECT period FROM periods)
), grid AS (
    SELECT k.code, k.subject_id, k.problem_key, k.first_seen_period, p.period,
           s.period IS NOT NULL AS seen,
           s.period IS NULL AND list_has_all(d.depts, r.reads) AS closable,
           list_contains(d.depts, r.responsible_dept) AS responsible_delivered,
           s.household_key, s.township_code, s.village_code, s.detail, s.deadline_days,
           r.responsible_dept
    FROM keys k
    JOIN periods p ON p.period >= k.first_seen_period
    JOIN delivered d ON d.period = p.period
    JOIN mart.rules r ON r.code = k.code
    LEFT JOIN seen s ON s.code = k.code AND s.subject_id = k.subject_id AND s.period = p.period
), in_force AS (   -- the verification in force at the end of each period: the latest delivered so far
    SELECT g.code, g.subject_id, g.period, max(v.v_order) AS v_order
    FROM grid g JOIN verifications v ON v.problem_key = g.problem_key AND v.v_period <= g.period
    GROUP BY ALL
), verified AS (
    SELECT g.*, v.v_period, v.v_result, v.v_on, v.v_verifier, v.v_note, v.v_order,
           last_value(g.detail IGNORE NULLS) OVER w AS detail_so_far
    FROM grid g
    LEFT JOIN in_force i USING (code, subject_id, period)
    LEFT JOIN verifications v ON v.problem_key = g.problem_key AND v.v_order = i.v_order
    WINDOW w AS (PARTITION BY g.code, g.subject_id ORDER BY g.period ROWS UNBOUNDED PRECEDING)
), refuted AS (
    -- a refutation holds while the rule finds the subject with the detail it had when refuted
    SELECT *,
           max(CASE WHEN period = v_period THEN detail_so_far END)
               OVER (PARTITION BY code, subject_id, v_order) AS detail_refuted
    FROM verified
), broken AS (
    SELECT *,
           bool_or(v_result = '不属实' AND seen AND detail IS DISTINCT FROM detail_refuted)
               OVER (PARTITION BY code, subject_id, v_order ORDER BY period
                     ROWS UNBOUNDED PRECEDING) AS new_evidence
    FROM refuted
), marked AS (
    SELECT *,
           coalesce(v_result = '不属实' AND NOT new_evidence, false) AS dismissed,
           CASE WHEN coalesce(v_result = '不属实' AND NOT new_evidence, false) THEN 'D'
                WHEN seen THEN 'S' WHEN closable THEN 'C' END AS mark,
           last_day(strptime(period || '-01', '%Y-%m-%d')::DATE) AS period_end
    FROM broken
), stated AS (
    SELECT *,
           last_value(mark IGNORE NULLS) OVER w AS state
    FROM marked
    WINDOW w AS (PARTITION BY code, subject_id ORDER BY period ROWS UNBOUNDED PRECEDING)
), transitions AS (
    SELECT *,
           lag(state) OVER (PARTITION BY code, subject_id ORDER BY period) AS prev_state,
           lag(v_order) OVER (PARTITION BY code, subject_id ORDER BY period) AS prev_v_order
    FROM stated
), spells AS (
    SELECT *,
           state = 'S' AND coalesce(prev_state, 'C') IN ('C', 'D') AS spell_start,
           mark = 'C' AND prev_state = 'S' AS closing,
           v_order IS NOT NULL AND v_order IS DISTINCT FROM prev_v_order AS verified_now
    FROM transitions
), carried AS (
    SELECT *,
           last_value(CASE WHEN spell_start THEN period END IGNORE NULLS) OVER w AS opened_period,
           last_value(CASE WHEN spell_start THEN period_end + deadline_days::INTEGER END IGNORE NULLS) OVER w AS deadline,
           (count(*) FILTER (WHERE spell_start) OVER w) - 1 AS reopen_count,
           count(*) FILTER (WHERE spell_start) OVER w AS spell_no,
           last_value(CASE WHEN seen THEN period END IGNORE NULLS) OVER w AS last_seen_period,
           last_value(CASE WHEN closing THEN period END IGNORE NULLS) OVER w AS last_closed_period,
           last_value(household_key IGNORE NULLS) OVER w AS hh_key,
           last_value(township_code IGNORE NULLS) OVER w AS twp,
           last_value(village_code IGNORE NULLS) OVER w AS vil,
           last_value(detail IGNORE NULLS) OVER w AS last_detail
    FROM spells
    WINDOW w AS (PARTITION BY code, subject_id ORDER BY period ROWS UNBOUNDED PRECEDING)
), rectified AS (
    -- 已整改 is closed only by the data: the responsible department's data still showing it in
    -- the spell it was reported in marks it 整改未见数据 until it closes
    SELECT *,
           max(CASE WHEN period = v_period THEN spell_no END)
               OVER (PARTITION BY code, subject_id, v_order) AS spell_reported
    FROM carried
), final AS (
    SELECT *,
           state = 'S' AND period_end > deadline AS overdue,
           coalesce(bool_or(v_result = '已整改' AND state = 'S' AND seen AND responsible_delivered
                            AND spell_no = spell_reported)
                        OVER (PARTITION BY code, subject_id, v_order, spell_no ORDER BY period
                              ROWS UNBOUNDED PRECEDING), false)
               AND state = 'S' AS rectification_unconfirmed
    FROM rectified
)
SELECT period, code, subject_id, first_seen_period, problem_key,
       CASE state WHEN 'S' THEN 'open' WHEN 'D' THEN 'dismissed' ELSE 'closed' END AS status,
       seen, closable, spell_start, closing, opened_period, deadline, overdue,
       coalesce(lag(overdue) OVER (PARTITION BY code, subject_id ORDER BY period), false)
           AND NOT spell_start AS was_overdue,
       reopen_count::INTEGER AS reopen_count, last_seen_period,
       CASE WHEN state = 'C' THEN last_closed_period END AS closed_period,
       hh_key AS household_key, twp AS township_code, vil AS village_code,
       responsible_dept, last_detail AS detail,
       v_result AS verified_result, v_on AS verified_on, v_verifier AS verifier,
       v_note AS verified_note, v_period AS verified_period, verified_now,
       rectification_unconfirmed,
       coalesce(lag(rectification_unconfirmed) OVER (PARTITION BY code, subject_id ORDER BY period),
                false) AS was_unconfirmed,
       coalesce(lag(state) OVER (PARTITION BY code, subject_id ORDER BY period), '') = 'D' AS was_dismissed
FROM final;

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

-- reads:  mart.departments, mart.policy_used, mart.problem_events, mart.problem_states, mart.rule_precision, mart.rules
-- writes: mart.problem_events, mart.problem_events_withdrawn, mart.problem_ledger, mart.rule_precision, work.states
-- History: the problem ledger as of the latest built period (getvariable('upto')) and its events,
-- from the states 75_ledger_states.sql stored period by period. Only the periods rebuilt by this
-- build (from getvariable('rebuilt_from') on) have new states, so only their events are written
-- again: the events of earlier periods, like their states, cannot have changed. Loading periods
-- out of order gives the same ledger as loading them in order.

-- the states of the periods this build rebuilt (the events and the township models read them)
CREATE OR REPLACE TABLE work.states AS
SELECT * FROM mart.problem_states
WHERE period >= getvariable('rebuilt_from') AND period <= getvariable('upto');

DELETE FROM mart.problem_ledger;
INSERT INTO mart.problem_ledger
SELECT s.problem_key, s.code, s.subject_id, s.household_key, s.township_code, s.village_code,
       s.responsible_dept, s.status, s.first_seen_period, s.last_seen_period, s.deadline,
       s.overdue, s.closed_period, s.reopen_count, s.detail,
       d.name, r.subject_type, r.rule_name, s.opened_period, s.period,
       s.verified_result, s.verified_on, s.verifier, s.verified_note, s.rectification_unconfirmed
FROM mart.problem_states s
JOIN mart.rules r USING (code)
LEFT JOIN mart.departments d ON d.code = s.responsible_dept
WHERE s.period = getvariable('upto');   -- every problem has a row in every period from its first

-- what was recorded for the rebuilt periods before: events no longer found are withdrawn, not lost
CREATE OR REPLACE TEMP TABLE previous_events AS
SELECT * FROM mart.problem_events WHERE period >= getvariable('rebuilt_from');

DELETE FROM mart.problem_events WHERE period >= getvariable('rebuilt_from');
INSERT INTO mart.problem_events
WITH ev AS (
    SELECT *, CASE WHEN reopen_count = 0 THEN 'opened' ELSE 'reopened' END AS event
    FROM work.states WHERE spell_start
    UNION ALL
    SELECT *, 'still_open' FROM work.states WHERE seen AND NOT spell_start AND status = 'open'
    UNION ALL
    SELECT *, 'awaiting_data' FROM work.states WHERE NOT seen AND status = 'open'
    UNION ALL
    SELECT *, 'overdue' FROM work.states WHERE overdue AND NOT was_overdue
    UNION ALL
    SELECT *, 'closed' FROM work.states WHERE closing
    UNION ALL   -- the townships' verifications (核实反馈), docs/rules.md
    SELECT *, 'confirmed' FROM work.states WHERE verified_now AND verified_result = '属实'
    UNION ALL
    SELECT *, 'dismissed' FROM work.states WHERE status = 'dismissed' AND NOT was_dismissed
    UNION ALL
    SELECT *, 'suppressed' FROM work.states WHERE status = 'dismissed' AND was_dismissed AND seen
    UNION ALL
    SELECT *, 'rectification_reported' FROM work.states WHERE verified_now AND verified_result = '已整改'
    UNION ALL
    SELECT *, 'rectification_unconfirmed' FROM work.states WHERE rectification_unconfirmed AND NOT was_unconfirmed
)
SELECT period, problem_key, code, subject_id, event, status, deadline, overdue, reopen_count,
       household_key, township_code, village_code, responsible_dept, detail,
       CASE WHEN verified_now OR event = 'dismissed' THEN verifier END,
       CASE WHEN verified_now OR event = 'dismissed' THEN verified_note END
FROM ev;

-- 撤销: an event recorded before that the replay no longer finds (a resubmission corrected a past
-- period) stays visible, with the run that withdrew it; found again later, it is live again.
INSERT INTO mart.problem_events_withdrawn BY NAME
SELECT p.period, p.problem_key, p.code, p.subject_id, p.event, p.status, p.household_key,
       p.township_code, p.detail, getvariable('run_id') AS withdrawn_run,
       current_timestamp AS withdrawn_at
FROM previous_events p
WHERE NOT EXISTS (SELECT 1 FROM mart.problem_events n
                  WHERE n.period = p.period AND n.problem_key = p.problem_key AND n.event = p.event);

-- 规则准确率 (rule precision): per period, rule and township (and the county: township_code
-- NULL), the verifications delivered in that period — 属实 confirmed, 不属实 refuted, the latest
-- of a problem's rows in the period counting once — precision = confirmed ÷ (confirmed + refuted)
-- and the median days from the end of the period the problem was opened in to 核实日期. window_*
-- look back over the last rule_precision_periods built periods; a rule is flagged (alert) when
-- it had at least rule_precision_min_verifications there and a precision under
-- rule_precision_alert. The thresholds are the latest period's policy (mart.policy_used).
-- A period's rows depend on its own and the earlier built periods' states and on those three
-- thresholds: when the thresholds are the ones the stored rows were written with (the policy of
-- the latest period before this build: getvariable('stored_policy'), set by the build) and rows
-- are stored, only the rebuilt periods' rows are written again, reading the states of the periods
-- their windows reach back to; otherwise every period's.
SET VARIABLE precision_from = (
    SELECT CASE WHEN (SELECT count(*) FROM mart.rule_precision) > 0
                 AND json_extract_string(getvariable('stored_policy'), '$.rule_precision_alert')
                     IS NOT DISTINCT FROM json_extract_string(v, '$.rule_precision_alert')
                 AND json_extract_string(getvariable('stored_policy'), '$.rule_precision_periods')
                     IS NOT DISTINCT FROM json_extract_string(v, '$.rule_precision_periods')
                 AND json_extract_string(getvariable('stored_policy'), '$.rule_precision_min_verifications')
                     IS NOT DISTINCT FROM json_extract_string(v, '$.rule_precision_min_verifications')
                THEN getvariable('rebuilt_from') ELSE '' END
    FROM (SELECT arg_max("values", built_at) AS v FROM mart.policy_used
          WHERE period = getvariable('upto')));

DELETE FROM mart.rule_precision WHERE period >= getvariable('precision_from');
INSERT INTO mart.rule_precision
WITH policy_now AS (
    SELECT CAST(json_extract_string(v, '$.rule_precision_alert') AS DOUBLE) AS alert_below,
           CAST(json_extract_string(v, '$.rule_precision_periods') AS INTEGER) AS window_periods,
           CAST(json_extract_string(v, '$.rule_precision_min_verifications') AS INTEGER) AS min_verifications
    FROM (SELECT arg_max("values", built_at) AS v FROM mart.policy_used
          WHERE period = getvariable('upto'))
), periods AS (
    SELECT period, row_number() OVER (ORDER BY period) AS i
    FROM (SELECT DISTINCT period FROM mart.policy_used WHERE period <= getvariable('upto'))
), reach AS (   -- the first period the windows of the written periods look back to
    SELECT coalesce(min(p.period), '') AS first_period
    FROM periods p CROSS JOIN policy_now pn
    WHERE p.i > (SELECT coalesce(min(i), 1) FROM periods WHERE period >= getvariable('precision_from'))
                - pn.window_periods
), verdicts AS (   -- the verifications that took effect in their period, on the state they found
    SELECT period, code, township_code, verified_result,
           date_diff('day', last_day(strptime(opened_period || '-01', '%Y-%m-%d'))::DATE,
                     verified_on) AS days
    FROM mart.problem_states   -- the window and thresholds are the latest period's
    WHERE verified_now AND verified_period = period AND verified_result IN ('属实', '不属实')
      AND period <= getvariable('upto') AND period >= (SELECT first_period FROM reach)
), counted AS (
    SELECT period, code, township_code,
           count(*) FILTER (WHERE verified_result = '属实')::INTEGER AS confirmed,
           count(*) FILTER (WHERE verified_result = '不属实')::INTEGER AS refuted,
           median(days)::DOUBLE AS median_days_to_verify
    FROM verdicts
    GROUP BY GROUPING SETS ((period, code, township_code), (period, code))
), windowed AS (
    SELECT c.*, p.i,
           (SELECT sum(c2.confirmed + c2.refuted) FROM counted c2 JOIN periods p2 USING (period)
            WHERE c2.code = c.code AND c2.township_code IS NOT DISTINCT FROM c.township_code
              AND p2.i > p.i - pn.window_periods AND p2.i <= p.i)::INTEGER AS window_verifications,
           (SELECT sum(c2.confirmed) FROM counted c2 JOIN periods p2 USING (period)
            WHERE c2.code = c.code AND c2.township_code IS NOT DISTINCT FROM c.township_code
              AND p2.i > p.i - pn.window_periods AND p2.i <= p.i) AS window_confirmed,
           pn.window_periods, pn.alert_below, pn.min_verifications
    FROM counted c JOIN periods p USING (period) CROSS JOIN policy_now pn
    WHERE c.period >= getvariable('precision_from')
)
SELECT period, code, township_code, confirmed, refuted,
       confirmed / nullif(confirmed + refuted, 0) AS precision, median_days_to_verify,
       window_periods, window_verifications,
       window_confirmed / nullif(window_verifications, 0) AS window_precision,
       coalesce(window_verifications >= min_verifications
                AND window_confirmed / nullif(window_verifications, 0) < alert_below, false) AS alert
FROM windowed;

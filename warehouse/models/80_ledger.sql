-- reads:  mart.departments, mart.ledger_states, mart.rules
-- writes: mart.problem_events, mart.problem_ledger, work.states
-- History: the problem ledger and its events, replayed from every built period's findings up to
-- the latest built period (getvariable('upto')). Loading periods out of order gives the same
-- ledger as loading them in order, because nothing here depends on the order of the builds.
CREATE OR REPLACE TABLE work.states AS SELECT * FROM mart.ledger_states(getvariable('upto'));

DELETE FROM mart.problem_ledger;
INSERT INTO mart.problem_ledger
SELECT s.problem_key, s.code, s.subject_id, s.household_key, s.township_code, s.village_code,
       s.responsible_dept, s.status, s.first_seen_period, s.last_seen_period, s.deadline,
       s.overdue, s.closed_period, s.reopen_count, s.detail,
       d.name, r.subject_type, r.rule_name, s.opened_period, s.period
FROM work.states s
JOIN mart.rules r USING (code)
LEFT JOIN mart.departments d ON d.code = s.responsible_dept
WHERE s.period = getvariable('upto');   -- every problem has a row in every period from its first

DELETE FROM mart.problem_events;
INSERT INTO mart.problem_events
WITH ev AS (
    SELECT *, CASE WHEN reopen_count = 0 THEN 'opened' ELSE 'reopened' END AS event
    FROM work.states WHERE spell_start
    UNION ALL
    SELECT *, 'still_open' FROM work.states WHERE seen AND NOT spell_start
    UNION ALL
    SELECT *, 'awaiting_data' FROM work.states WHERE NOT seen AND status = 'open'
    UNION ALL
    SELECT *, 'overdue' FROM work.states WHERE overdue AND NOT was_overdue
    UNION ALL
    SELECT *, 'closed' FROM work.states WHERE closing
)
SELECT period, problem_key, code, subject_id, event, status, deadline, overdue, reopen_count,
       household_key, township_code, village_code, responsible_dept, detail
FROM ev;

-- reads:  mart.monitoring_states, mart.policy_used, work.states
-- writes: mart.township_monitoring
-- 监测对象 per township and built period, as the report shows them: households under monitoring
-- (docs/monitoring.md; those in the period's data, as household_status.monitored counts them),
-- warned this period, proposals awaiting the office (风险消除 proposed, not yet cleared on the
-- roster), manual reviews, cleared, identification overdue (P17 open past its deadline) and
-- re-flagged after a clearance (P18 open). A period's figures are its own states', so only the
-- periods this build rebuilt (from getvariable('rebuilt_from') on: work.states) are written again.
DELETE FROM mart.township_monitoring WHERE period >= getvariable('rebuilt_from');
INSERT INTO mart.township_monitoring
WITH periods AS (
    SELECT DISTINCT period FROM mart.policy_used
    WHERE period <= getvariable('upto') AND period >= getvariable('rebuilt_from')
), st AS (
    SELECT period, township_code,
           count(*) FILTER (WHERE under_monitoring AND in_data)::INTEGER AS monitored,
           count(*) FILTER (WHERE warned)::INTEGER AS warned,
           count(*) FILTER (WHERE status = 'proposed_clear')::INTEGER AS proposed_clear,
           count(*) FILTER (WHERE status = 'manual_review')::INTEGER AS manual_review,
           count(*) FILTER (WHERE status = 'cleared')::INTEGER AS cleared
    FROM mart.monitoring_states
    WHERE period IN (SELECT period FROM periods) AND township_code IS NOT NULL
    GROUP BY ALL
), roster_problems AS (
    SELECT period, township_code,
           count(*) FILTER (WHERE code = 'P17' AND status = 'open')::INTEGER AS not_identified,
           count(*) FILTER (WHERE code = 'P17' AND status = 'open' AND overdue)::INTEGER
               AS identification_overdue,
           count(*) FILTER (WHERE code = 'P18' AND status = 'open')::INTEGER AS reflagged
    FROM work.states
    WHERE code IN ('P17', 'P18') AND township_code IS NOT NULL AND period IN (SELECT period FROM periods)
    GROUP BY ALL
)
SELECT period, township_code,
       coalesce(st.monitored, 0), coalesce(st.warned, 0), coalesce(st.proposed_clear, 0),
       coalesce(st.manual_review, 0), coalesce(st.cleared, 0),
       coalesce(rp.not_identified, 0), coalesce(rp.identification_overdue, 0),
       coalesce(rp.reflagged, 0)
FROM st FULL JOIN roster_problems rp USING (period, township_code);

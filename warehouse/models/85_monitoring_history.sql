-- reads:  mart.monitoring, mart.monitoring_events, mart.monitoring_states, mart.policy_used
-- writes: mart.monitoring_events, mart.monitoring_history
-- 监测对象历史 and its events, from the per-period states (36_monitoring_states.sql). Nothing here
-- depends on the order of the builds. The events of a period depend on its states and the
-- previous built period's, so only the periods this build rebuilt (from getvariable('rebuilt_from')
-- on) are written again.
-- Events: entered (预警 / 名单), warned (every warning period), proposed_clear (with the
-- conditions met), manual_review, proposal_withdrawn, cleared (date and way from the roster),
-- reflagged_after_clear (a warning after a roster clearance: 风险再标注, P18).
DELETE FROM mart.monitoring_events WHERE period >= getvariable('rebuilt_from');
INSERT INTO mart.monitoring_events
WITH s AS MATERIALIZED (   -- one window pass; the branches below read it, not the states again
    SELECT period, household_key, status, village_code, township_code, warned, entered_by,
           identified_on, clean_periods, registry, income_at_line, three_plus_one, cleared_on,
           clear_way,
           lag(status) OVER w AS prev_status,
           lag(period) OVER w AS prev_period,
           warned AND coalesce(risk_status = '已消除'
                               AND cleared_on < strptime(period || '-01', '%Y-%m-%d')::DATE, false)
               AS reflagged,
           coalesce(lag(warned AND coalesce(risk_status = '已消除'
                                            AND cleared_on < strptime(period || '-01', '%Y-%m-%d')::DATE,
                                            false)) OVER w, false) AS prev_reflagged
    FROM mart.monitoring_states
    -- the rebuilt periods and the one before them (what they are compared with)
    WHERE period IN (SELECT period FROM mart.policy_used WHERE period <= getvariable('upto'))
      AND period >= coalesce((SELECT max(period) FROM mart.policy_used
                              WHERE period < getvariable('rebuilt_from')), getvariable('rebuilt_from'))
    WINDOW w AS (PARTITION BY household_key ORDER BY period)
), cats AS (
    SELECT period, household_key,
           string_agg(coalesce(category_name, category), '、' ORDER BY category) AS categories
    FROM mart.monitoring WHERE period >= getvariable('rebuilt_from') GROUP BY ALL
), ev AS (
    SELECT period, household_key, 'entered' AS event,
           CASE WHEN entered_by = '名单' THEN '名单：识别纳入 ' || strftime(identified_on, '%Y-%m-%d')
                ELSE '预警' END AS detail, status, village_code, township_code
    FROM s WHERE prev_period IS NULL
    UNION ALL
    SELECT period, household_key, 'warned', c.categories, status, village_code, township_code
    FROM s JOIN cats c USING (period, household_key) WHERE warned
    UNION ALL
    SELECT period, household_key, 'proposed_clear',
           '连续' || clean_periods || '期无预警且人均收入不低于监测线；3+1达标；有劳动力',
           status, village_code, township_code
    FROM s WHERE status = 'proposed_clear' AND prev_status IS DISTINCT FROM 'proposed_clear'
    UNION ALL
    SELECT period, household_key, 'manual_review',
           '连续' || clean_periods || '期无预警且人均收入不低于监测线；'
               || CASE WHEN registry THEN '无劳动力' ELSE '非建档立卡户，劳动力不详' END
               || '，需人工评估', status, village_code, township_code
    FROM s WHERE status = 'manual_review' AND prev_status IS DISTINCT FROM 'manual_review'
    UNION ALL
    SELECT period, household_key, 'proposal_withdrawn',
           CASE WHEN warned THEN '再次预警' WHEN NOT coalesce(income_at_line, false) THEN '收入低于监测线'
                WHEN NOT three_plus_one THEN '3+1未达标' ELSE '条件不再满足' END,
           status, village_code, township_code
    FROM s WHERE prev_status = 'proposed_clear' AND status IN ('monitoring', 'manual_review')
    UNION ALL
    SELECT period, household_key, 'cleared',
           strftime(cleared_on, '%Y-%m-%d') || ' ' || coalesce(clear_way, '消除方式未填'),
           status, village_code, township_code
    FROM s WHERE status = 'cleared' AND prev_status IS DISTINCT FROM 'cleared'
    UNION ALL
    SELECT period, household_key, 'reflagged_after_clear',
           '名单' || strftime(cleared_on, '%Y-%m-%d') || '已消除，本期再次预警',
           status, village_code, township_code
    FROM s WHERE reflagged AND NOT prev_reflagged
)
SELECT period, household_key, event, detail, status, village_code, township_code FROM ev
WHERE period >= getvariable('rebuilt_from');

DELETE FROM mart.monitoring_history;
INSERT INTO mart.monitoring_history
WITH latest AS (
    SELECT * FROM mart.monitoring_states
    WHERE period IN (SELECT period FROM mart.policy_used WHERE period <= getvariable('upto'))
    QUALIFY row_number() OVER (PARTITION BY household_key ORDER BY period DESC) = 1
), flagged AS (
    SELECT household_key, count(*)::INTEGER AS flagged_periods,
           to_json(map_from_entries(list((period, cats) ORDER BY period))) AS categories_by_period
    FROM (SELECT household_key, period, list(category ORDER BY category) AS cats
          FROM mart.monitoring
          WHERE period IN (SELECT period FROM mart.policy_used WHERE period <= getvariable('upto'))
          GROUP BY ALL)
    GROUP BY household_key
), proposals AS (   -- a proposal is history: the latest one stays even when withdrawn
    SELECT household_key, max(period) AS proposed_clear_period
    FROM mart.monitoring_events WHERE event = 'proposed_clear' GROUP BY household_key
)
SELECT l.household_key, l.entered_period, l.last_warned_period, l.clean_periods,
       p.proposed_clear_period, l.status, getvariable('upto'), coalesce(f.flagged_periods, 0),
       f.categories_by_period, l.has_labour, l.village_code, l.entered_by, l.cleared_period,
       CASE WHEN l.status = 'cleared' THEN l.cleared_on END,
       CASE WHEN l.status = 'cleared' THEN l.clear_way END,
       l.identified_on, l.on_roster, l.township_code
FROM latest l
LEFT JOIN flagged f USING (household_key)
LEFT JOIN proposals p USING (household_key);

-- 监测对象历史: per household ever flagged, up to the latest built period. A household is
-- proposed for 风险消除 after risk_clear_months consecutive clean built periods, never for one
-- with no labour-able member (status manual_review: 需人工评估).
DELETE FROM mart.monitoring_history;
INSERT INTO mart.monitoring_history
WITH periods AS (
    SELECT period, row_number() OVER (ORDER BY period) AS i
    FROM (SELECT DISTINCT period FROM mart.policy_used WHERE period <= getvariable('upto'))
), flagged AS (
    SELECT m.household_key, m.period, p.i, list(m.category ORDER BY m.category) AS cats
    FROM mart.monitoring m JOIN periods p USING (period) GROUP BY ALL
), per_hh AS (
    SELECT household_key, min(period) AS entered_period, max(period) AS last_flagged_period,
           max(i) AS last_i, count(*)::INTEGER AS flagged_periods,
           to_json(map_from_entries(list((period, cats) ORDER BY period))) AS categories_by_period
    FROM flagged GROUP BY household_key
), latest_status AS (
    SELECT household_key, labour_able_members > 0 AS has_labour, village_code
    FROM mart.household_status
    WHERE period <= getvariable('upto')
    QUALIFY row_number() OVER (PARTITION BY household_key ORDER BY period DESC) = 1
), n AS (SELECT max(i) AS n FROM periods)
SELECT h.household_key, h.entered_period, h.last_flagged_period,
       (n.n - h.last_i)::INTEGER AS clean_periods,
       CASE WHEN n.n - h.last_i >= pol.risk_clear_months AND coalesce(s.has_labour, false)
            THEN (SELECT period FROM periods WHERE i = h.last_i + pol.risk_clear_months) END,
       CASE WHEN n.n - h.last_i < pol.risk_clear_months THEN 'monitoring'
            WHEN coalesce(s.has_labour, false) THEN 'proposed_clear'
            ELSE 'manual_review' END,
       getvariable('upto'), h.flagged_periods, h.categories_by_period, s.has_labour, s.village_code
FROM per_hh h CROSS JOIN n CROSS JOIN upto_policy pol
LEFT JOIN latest_status s USING (household_key);

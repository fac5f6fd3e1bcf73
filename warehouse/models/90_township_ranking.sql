-- reads:  divisions, mart.household_status, mart.policy_used, mart.township_ranking, upto_policy, work.states
-- writes: mart.township_ranking
-- 月排名 of the periods this build rebuilt (from getvariable('rebuilt_from') on), from their ledger
-- states (work.states). A period's ranking is its own data's, except the streak in the last places,
-- which continues the one stored for the built period before. Every number of the score (base,
-- weights, per how many households, how many last places) is policy.
CREATE OR REPLACE TEMP TABLE streak_before AS   -- read before the rebuilt periods' rows go
SELECT township_code, bottom3_streak FROM mart.township_ranking
WHERE period = (SELECT max(period) FROM mart.policy_used WHERE period < getvariable('rebuilt_from'));

DELETE FROM mart.township_ranking WHERE period >= getvariable('rebuilt_from');
INSERT INTO mart.township_ranking
WITH periods AS (
    SELECT period, row_number() OVER (ORDER BY period) AS i
    FROM (SELECT DISTINCT period FROM mart.policy_used WHERE period <= getvariable('upto'))
), weights AS (   -- each period ranked with its own policy's numbers (a period built before
                  -- they were policy keys falls back on the latest policy's)
    SELECT u.period,
           coalesce((u.v->>'ranking_base_score')::DOUBLE, up.ranking_base_score::DOUBLE) AS base,
           coalesce((u.v->>'ranking_open_weight')::DOUBLE, up.ranking_open_weight::DOUBLE) AS open_weight,
           coalesce((u.v->>'ranking_overdue_weight')::DOUBLE, up.ranking_overdue_weight::DOUBLE) AS overdue_weight,
           coalesce((u.v->>'ranking_rate_weight')::DOUBLE, up.ranking_rate_weight::DOUBLE) AS rate_weight,
           coalesce((u.v->>'ranking_per_households')::DOUBLE, up.ranking_per_households::DOUBLE) AS per_households,
           coalesce((u.v->>'ranking_bottom_places')::INTEGER, up.ranking_bottom_places) AS bottom_places
    FROM (SELECT period, arg_max("values", built_at) AS v FROM mart.policy_used
          WHERE period <= getvariable('upto') AND period >= getvariable('rebuilt_from')
          GROUP BY period) u
    CROSS JOIN upto_policy up
), hh AS (
    SELECT period, township_code,
           (count(*) FILTER (WHERE household_id IS NOT NULL))::INTEGER AS households,
           (count(*) FILTER (WHERE monitored))::INTEGER AS monitored_households
    FROM mart.household_status
    WHERE period IN (SELECT period FROM periods) AND period >= getvariable('rebuilt_from')
    GROUP BY ALL
), pr AS (
    SELECT period, township_code,
           (count(*) FILTER (WHERE status = 'open'))::INTEGER AS open_problems,
           (count(*) FILTER (WHERE status = 'open' AND overdue))::INTEGER AS overdue_problems,
           (count(*) FILTER (WHERE closing))::INTEGER AS closed_in_period,
           (count(*) FILTER (WHERE status = 'closed'))::INTEGER AS closed_problems
    FROM work.states WHERE township_code IS NOT NULL GROUP BY ALL
), t AS (
    SELECT period, township_code,
           coalesce(hh.households, 0) AS households,
           coalesce(pr.open_problems, 0) AS open_problems,
           coalesce(pr.overdue_problems, 0) AS overdue_problems,
           coalesce(pr.closed_in_period, 0) AS closed_in_period,
           coalesce(pr.closed_problems, 0) AS closed_problems,
           coalesce(hh.monitored_households, 0) AS monitored_households
    FROM hh FULL JOIN pr USING (period, township_code)
), ranked_set AS (   -- townships with registry households or problems take part
    SELECT * FROM t WHERE households > 0 OR open_problems + closed_problems > 0
), rated AS (
    SELECT *,
           CASE WHEN closed_problems + open_problems = 0 THEN 1.0
                ELSE closed_problems / (closed_problems + open_problems) END AS rectification_rate
    FROM ranked_set
), scored AS (   -- score = base − w_open·open/100hh − w_overdue·overdue/100hh + w_rate·rate
    SELECT r.*,
           w.base - w.open_weight * open_problems * w.per_households / greatest(households, 1)
               - w.overdue_weight * overdue_problems * w.per_households / greatest(households, 1)
               + w.rate_weight * rectification_rate AS score,
           w.bottom_places
    FROM rated r JOIN weights w USING (period)
), ranked AS (
    SELECT s.*, p.i,
           -- ties: fewer overdue, then fewer open problems, then township code: every rank distinct
           row_number() OVER (PARTITION BY period ORDER BY score DESC, overdue_problems,
                                                  open_problems, township_code)::INTEGER AS rank,
           count(*) OVER (PARTITION BY period) AS n
    FROM scored s JOIN periods p USING (period)
), b3 AS (
    -- a county with no more townships than the last places has no 末位 at all
    SELECT *, rank > n - bottom_places AND n > bottom_places AS in_bottom3 FROM ranked
), islands AS (
    SELECT b3.*, sb.bottom3_streak AS streak_before,
           i - row_number() OVER (PARTITION BY township_code, in_bottom3 ORDER BY i) AS grp
    FROM b3 LEFT JOIN streak_before sb USING (township_code)
), streaks AS (   -- consecutive built periods in the last three places, ending at this one; a
                  -- run that starts at the first rebuilt period continues the stored streak
    SELECT *,
           CASE WHEN in_bottom3
                THEN row_number() OVER (PARTITION BY township_code, in_bottom3, grp ORDER BY i)
                     + CASE WHEN min(i) OVER (PARTITION BY township_code, in_bottom3, grp)
                                 = (SELECT min(i) FROM periods WHERE period >= getvariable('rebuilt_from'))
                            THEN coalesce(streak_before, 0)
                            ELSE 0 END
                ELSE 0 END AS bottom3_streak
    FROM islands
)
SELECT period, township_code,
       coalesce((SELECT name FROM divisions d WHERE d.code IN (s.township_code, s.township_code || '000')
                 ORDER BY length(d.code) LIMIT 1), township_code) AS township_name,
       households, open_problems, overdue_problems, closed_in_period, rectification_rate,
       monitored_households, round(score, 2), rank, bottom3_streak::INTEGER,
       left(township_code, 6), closed_problems
FROM streaks s;

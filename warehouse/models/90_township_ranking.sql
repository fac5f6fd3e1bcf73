-- 月排名 for every built period up to the latest, from the replayed ledger states.
DELETE FROM mart.township_ranking;
INSERT INTO mart.township_ranking
WITH periods AS (
    SELECT period, row_number() OVER (ORDER BY period) AS i
    FROM (SELECT DISTINCT period FROM mart.policy_used WHERE period <= getvariable('upto'))
), hh AS (
    SELECT period, township_code,
           (count(*) FILTER (WHERE household_id IS NOT NULL))::INTEGER AS households,
           (count(*) FILTER (WHERE monitored))::INTEGER AS monitored_households
    FROM mart.household_status WHERE period IN (SELECT period FROM periods) GROUP BY ALL
), pr AS (
    SELECT period, township_code,
           (count(*) FILTER (WHERE status = 'open'))::INTEGER AS open_problems,
           (count(*) FILTER (WHERE status = 'open' AND overdue))::INTEGER AS overdue_problems,
           (count(*) FILTER (WHERE closing))::INTEGER AS closed_in_period,
           (count(*) FILTER (WHERE status = 'closed'))::INTEGER AS closed_problems
    FROM states WHERE township_code IS NOT NULL GROUP BY ALL
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
), scored AS (
    SELECT *,
           CASE WHEN closed_problems + open_problems = 0 THEN 1.0
                ELSE closed_problems / (closed_problems + open_problems) END AS rectification_rate,
           100 - 2 * open_problems * 100.0 / greatest(households, 1)
               - 5 * overdue_problems * 100.0 / greatest(households, 1)
               + 20 * CASE WHEN closed_problems + open_problems = 0 THEN 1.0
                           ELSE closed_problems / (closed_problems + open_problems) END AS score
    FROM ranked_set
), ranked AS (
    SELECT s.*, p.i,
           rank() OVER (PARTITION BY period ORDER BY score DESC)::INTEGER AS rank,
           count(*) OVER (PARTITION BY period) AS n
    FROM scored s JOIN periods p USING (period)
), b3 AS (
    SELECT *, rank > n - 3 AS in_bottom3 FROM ranked
), islands AS (
    SELECT *, i - row_number() OVER (PARTITION BY township_code, in_bottom3 ORDER BY i) AS grp
    FROM b3
), streaks AS (   -- consecutive built periods in the last three places, ending at this one
    SELECT *,
           CASE WHEN in_bottom3
                THEN row_number() OVER (PARTITION BY township_code, in_bottom3, grp ORDER BY i)
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

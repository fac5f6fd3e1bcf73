-- reads:  divisions, policy, work.households, work.monitoring_states_now
-- writes: mart.spot_check
-- 抽查: per county, villages first (seeded order) until at least the minimum number of villages
-- and households is reached (all where there are fewer), then households within the drawn
-- villages, stratified by village x registry status (ceil of the proportional share, so every
-- stratum of a drawn village is represented), households under monitoring first.
-- Deterministic: the order is md5(seed, period, key).
DELETE FROM mart.spot_check WHERE period = (SELECT period FROM policy);
INSERT INTO mart.spot_check
WITH hs AS (
    SELECT h.county_code, h.village_code, h.household_key, h.registry_status AS stratum,
           -- under monitoring as the office counts it (36_monitoring_states.sql)
           h.household_key IN (SELECT household_key FROM work.monitoring_states_now WHERE under_monitoring) AS monitored
    FROM work.households h WHERE h.village_code IS NOT NULL
), county_min AS (
    SELECT c.county_code,
           CASE WHEN dv.name LIKE '%管理区%' OR dv.level LIKE '%管理区%'
                THEN p.spot_check_min_villages_district ELSE p.spot_check_min_villages END AS min_villages,
           CASE WHEN dv.name LIKE '%管理区%' OR dv.level LIKE '%管理区%'
                THEN p.spot_check_min_households_district ELSE p.spot_check_min_households END AS min_households
    FROM (SELECT DISTINCT county_code FROM hs) c
    CROSS JOIN policy p
    LEFT JOIN divisions dv ON dv.code IN (c.county_code, c.county_code || '000000')
    QUALIFY row_number() OVER (PARTITION BY c.county_code ORDER BY dv.code) = 1
), villages AS (
    SELECT county_code, village_code, count(*) AS n,
           row_number() OVER (PARTITION BY county_code
                              ORDER BY md5(p.seed || '|' || p.period || '|' || village_code)) AS v_order
    FROM hs, policy p GROUP BY county_code, village_code, p.seed, p.period
), cum AS (
    SELECT v.*, sum(n) OVER (PARTITION BY county_code ORDER BY v_order
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_n
    FROM villages v
), drawn AS (   -- keep drawing while fewer than min villages or min households are drawn
    SELECT c.* FROM cum c JOIN county_min m USING (county_code)
    WHERE c.v_order <= m.min_villages OR coalesce(c.before_n, 0) < m.min_households
), universe AS (
    SELECT hs.* FROM hs JOIN drawn USING (county_code, village_code)
), sizes AS (
    SELECT county_code, count(*) AS total FROM universe GROUP BY county_code
), cells AS (
    SELECT u.county_code, u.village_code, u.stratum, count(*) AS n,
           least(count(*), ceil(count(*) * m.min_households / s.total))::INTEGER AS take
    FROM universe u JOIN sizes s USING (county_code) JOIN county_min m USING (county_code)
    GROUP BY u.county_code, u.village_code, u.stratum, s.total, m.min_households
), ordered AS (
    SELECT u.*, row_number() OVER (
               PARTITION BY u.county_code, u.village_code, u.stratum
               ORDER BY u.monitored DESC, md5(p.seed || '|' || p.period || '|' || u.household_key)) AS k
    FROM universe u, policy p
)
SELECT p.period, o.county_code, o.village_code, o.household_key, o.stratum, p.seed, o.monitored,
       row_number() OVER (PARTITION BY o.county_code
                          ORDER BY d.v_order, o.stratum, o.k)::INTEGER AS draw_order
FROM ordered o
JOIN cells c USING (county_code, village_code, stratum)
JOIN drawn d USING (county_code, village_code)
CROSS JOIN policy p
WHERE o.k <= c.take;

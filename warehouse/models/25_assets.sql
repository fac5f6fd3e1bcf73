-- reads:  eff_budongchan, eff_cheliang, eff_shichang, policy
-- writes: work.counted_assets
-- The asset registers' counted assets (P14–P16 and the negative list 负面清单), one row per owner
-- and asset: a non-operating passenger car still owned (小型/微型载客汽车, 非营运, 正常 or 查封), a
-- commercial town dwelling (城镇, 住宅, 商品房), a company of an active registration (存续/在业) with
-- registered capital at or above policy.enterprise_capital_line. A truck, a tractor, a 营运 car,
-- a 注销/报废 car, a 农村 自建房 or a 注销/吊销 company count for nothing. Reads the effective
-- snapshots eff_cheliang / eff_budongchan / eff_shichang (a register's last accepted snapshot
-- stands until the next one) and the temp table `policy`.
CREATE OR REPLACE TABLE work.counted_assets AS
SELECT 'P14' AS code, 'car' AS asset, id_number, 'cheliang' AS dept, source_file, source_row,
       vehicle_type || '，' || "use" || '，' || status || '，号牌'
           -- the plate masked as tasks/core/privacy.py's mask_plate does (甘A12345 -> 甘A***45)
           || CASE WHEN length(plate) > 4 THEN left(plate, 2) || repeat('*', length(plate) - 4)
                                             || right(plate, 2) ELSE '***' END
           AS detail
FROM eff_cheliang
WHERE vehicle_type IN ('小型载客汽车', '微型载客汽车') AND "use" = '非营运' AND status IN ('正常', '查封')
UNION ALL
SELECT 'P15', 'town_dwelling', id_number, 'budongchan', source_file, source_row,
       location_type || usage || kind || '，' || area_m2 || '平方米'
FROM eff_budongchan
WHERE location_type = '城镇' AND usage = '住宅' AND kind = '商品房'
UNION ALL
SELECT 'P16', 'company', s.id_number, 'shichang', s.source_file, s.source_row,
       s.company || '，' || s.role || '，注册资本' || s.registered_capital || '元，' || s.status
FROM eff_shichang s, policy p
WHERE s.status IN ('存续', '在业') AND s.registered_capital >= p.enterprise_capital_line;

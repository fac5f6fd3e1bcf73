"""The demo county's three asset registers: 公安交管 vehicles (cheliang), 不动产 dwellings
(budongchan) and 市场监管 companies (shichang), and the oracle's reading of them (P14–P16 and the
negative list).

The registers are delivered quarterly — in the first generated period and in every March, June,
September and December — and each delivery is a full snapshot that stands until the next one.
Planted on purpose (docs/generator.md, "Asset registers"):

* registry members who own what P14–P16 are about, 挂名 included (a car in a poor person's name
  is a finding to verify, so it fires like any other);
* the edges that raise nothing: a 营运 car, a 注销 or 报废 car, a truck, a tractor, a 中型 bus, a
  农村 自建房, a town 自建房 or shop, a 注销 or 吊销 company, capital one yuan under the line;
  and the edges that do: a 查封 car, capital exactly at the line, capital written "50万元";
* namesakes: people outside the registry who share a registry member's name own the same kinds
  of asset (matching is by identity number only, so they raise nothing);
* heads of watched non-registry households with an asset (the negative list keeps them out of
  ``marginal``) and with an asset that does not count (a 营运 car: still watched);
* changes between deliveries: a planted car is 注销 from the second delivery on (its P14 closes),
  a planted company appears only from the second delivery (its P16 opens late).
"""
from __future__ import annotations


import numpy as np
import polars as pl

ASSET_DEPTS = ("cheliang", "budongchan", "shichang")
PASSENGER_CARS = ("小型载客汽车", "微型载客汽车")
OWNED_CAR_STATUS = ("正常", "查封")
ACTIVE_COMPANY = ("存续", "在业")
INTERNAL = ["_pid", "_hh", "_town", "_protect"]

# (vehicle_type, use, status) of each planted car, and whether it is an asset of the rules
CARS = [
    ("小型载客汽车", "非营运", "正常", True),
    ("微型载客汽车", "非营运", "查封", True),     # seized: still owned
    ("小型载客汽车", "营运", "正常", False),       # operating (a taxi): its use, not wealth
    ("小型载客汽车", "非营运", "注销", False),
    ("小型载客汽车", "非营运", "报废", False),
    ("轻型货车", "货运", "正常", False),
    ("拖拉机", "非营运", "正常", False),
    ("中型载客汽车", "非营运", "正常", False),
]
# (location_type, usage, kind) of each planted dwelling
HOMES = [
    ("城镇", "住宅", "商品房", True),
    ("农村", "住宅", "自建房", False),
    ("城镇", "住宅", "自建房", False),
    ("城镇", "商业", "商品房", False),
    ("城镇", "住宅", "保障性住房", False),
]
# (role, capital in cents, status, written as 万元) of each planted company; the line is policy
COMPANIES = [
    ("法定代表人", 80_000_000, "存续", False, True),
    ("股东", 50_000_000, "在业", True, True),          # exactly at the line, written "50万元"
    ("法定代表人兼股东", 49_999_900, "存续", False, False),   # one yuan under
    ("法定代表人", 200_000_000, "注销", False, False),
    ("股东", 100_000_000, "吊销", False, False),
]
BACKGROUND_SHARE = 0.04   # of non-registry adults owning a car (namesakes among them)


def delivers(period: str, t: int) -> bool:
    """The registers come in the first generated period and then quarterly."""
    return t == 0 or int(period[5:7]) % 3 == 0


class AssetRegisters:
    """One county's registers, chosen once from its population; ``frames(t)`` per delivery."""

    def __init__(self, rng: np.random.Generator, P: pl.DataFrame, H: pl.DataFrame, county: str):
        self.county = county
        adults = P.filter(pl.col("age") >= 22)
        reg = adults.filter(pl.col("registry")).sort("pid")
        reg = reg.sample(fraction=1.0, shuffle=True, seed=int(rng.integers(2**31)))
        reg = reg.unique("hh", keep="first", maintain_order=True)
        need = len(CARS) + len(HOMES) + len(COMPANIES) + 1
        owners = reg.head(need)
        self.car_owners = owners.slice(0, len(CARS))
        self.home_owners = owners.slice(len(CARS), len(HOMES))
        self.company_owners = owners.slice(len(CARS) + len(HOMES), len(COMPANIES))
        self.late_company_owner = owners.slice(need - 1, 1)
        # heads of watched non-registry households: two with counted assets, one with a 营运 car
        watched = H.filter(pl.col("object_type").is_not_null() & ~pl.col("registry")).select("hh")
        heads = P.filter((pl.col("k") == 0) & ~pl.col("registry")).join(watched, on="hh", how="semi")
        heads = heads.sort("pid").sample(fraction=1.0, shuffle=True, seed=int(rng.integers(2**31)))
        self.watched_heads = heads.head(4)
        # background owners: other non-registry adults, namesakes of registry members first
        reg_names = P.filter(pl.col("registry")).select("name").unique()
        others = adults.filter(~pl.col("registry")).join(
            self.watched_heads.select("pid"), on="pid", how="anti")
        namesakes = others.join(reg_names, on="name", how="semi").sort("pid").head(6)
        rest = others.join(namesakes.select("pid"), on="pid", how="anti").sort("pid")
        n_bg = max(4, int(len(rest) * BACKGROUND_SHARE))
        picks = np.sort(rng.choice(len(rest), size=min(n_bg, len(rest)), replace=False))
        self.background = pl.concat([namesakes, rest[picks]])
        self.plate_seed = int(rng.integers(10_000, 90_000))

    # ------------------------------------------------------------------ one delivery
    def frames(self, t: int) -> dict[str, pl.DataFrame]:
        return {"cheliang": self._cars(t), "budongchan": self._homes(), "shichang": self._companies(t)}

    def _owner_cols(self, who: pl.DataFrame, protect: bool) -> list[pl.Expr]:
        return [pl.Series("_pid", who["pid"]), pl.Series("_hh", who["hh"]),
                pl.Series("_town", who["township_code"]), pl.lit(protect).alias("_protect")]

    def _cars(self, t: int) -> pl.DataFrame:
        planted = self.car_owners
        kinds = list(CARS)
        # the first car is 注销 from the second delivery on: its P14 closes
        if t > 0:
            kinds[0] = (kinds[0][0], kinds[0][1], "注销", False)
        watched = self.watched_heads
        watched_kinds = [("小型载客汽车", "非营运", "正常"), ("微型载客汽车", "非营运", "正常"),
                         ("小型载客汽车", "营运", "正常"), ("拖拉机", "非营运", "正常")][:len(watched)]
        bg = self.background
        bg_kinds = [CARS[i % 3][:3] for i in range(len(bg))]
        rows = [(planted, [k[:3] for k in kinds[:len(planted)]], True),
                (watched, watched_kinds, True), (bg, bg_kinds, False)]
        parts = []
        for who, kinds_, protect in rows:
            if who.is_empty():
                continue
            parts.append(pl.DataFrame({
                "id_number": who["id_number"],
                "vehicle_type": [k[0] for k in kinds_], "use": [k[1] for k in kinds_],
                "status": [k[2] for k in kinds_],
            }).with_columns(self._owner_cols(who, protect)))
        cars = pl.concat(parts)
        n = cars.height
        letters = np.array(list("ABCDEFGHJK"))
        plates = [f"甘{letters[i % len(letters)]}{(self.plate_seed + i * 37) % 100_000:05d}" for i in range(n)]
        return cars.with_columns(
            pl.Series("plate", plates),
            pl.date(2012, 1, 1).dt.offset_by(pl.format("{}d", (pl.col("_pid") * 97) % 3000)).alias("registered_on"),
        ).select("id_number", "plate", "vehicle_type", "use", "registered_on", "status", *INTERNAL)

    def _homes(self) -> pl.DataFrame:
        watched = self.watched_heads.head(2).tail(1)   # the second watched head: a town flat
        parts = [
            pl.DataFrame({"id_number": self.home_owners["id_number"],
                          "location_type": [h[0] for h in HOMES[:self.home_owners.height]],
                          "usage": [h[1] for h in HOMES[:self.home_owners.height]],
                          "kind": [h[2] for h in HOMES[:self.home_owners.height]]})
            .with_columns(self._owner_cols(self.home_owners, True)),
        ]
        if not watched.is_empty():
            parts.append(pl.DataFrame({"id_number": watched["id_number"], "location_type": ["城镇"],
                                       "usage": ["住宅"], "kind": ["商品房"]})
                         .with_columns(self._owner_cols(watched, True)))
        bg = self.background.head(max(1, self.background.height // 2))
        parts.append(pl.DataFrame({"id_number": bg["id_number"],
                                   "location_type": ["城镇" if i % 2 else "农村" for i in range(bg.height)],
                                   "usage": ["住宅"] * bg.height,
                                   "kind": ["商品房" if i % 2 else "自建房" for i in range(bg.height)]})
                     .with_columns(self._owner_cols(bg, False)))
        homes = pl.concat(parts)
        return homes.with_columns(
            (60 + (pl.col("_pid") * 13) % 90 + 0.5).alias("area_m2"),
            pl.date(2008, 1, 1).dt.offset_by(pl.format("{}d", (pl.col("_pid") * 53) % 4000)).alias("registered_on"),
        ).select("id_number", "location_type", "usage", "kind", "area_m2", "registered_on", *INTERNAL)

    def _companies(self, t: int) -> pl.DataFrame:
        who = self.company_owners
        spec = COMPANIES[:who.height]
        parts = [pl.DataFrame({
            "id_number": who["id_number"], "role": [c[0] for c in spec],
            "registered_capital": [c[1] for c in spec], "status": [c[2] for c in spec],
            "_wan": [c[3] for c in spec]}).with_columns(self._owner_cols(who, True))]
        if t > 0 and not self.late_company_owner.is_empty():   # founded between deliveries
            late = self.late_company_owner
            parts.append(pl.DataFrame({"id_number": late["id_number"], "role": ["法定代表人"],
                                       "registered_capital": [100_000_000], "status": ["存续"],
                                       "_wan": [True]}).with_columns(self._owner_cols(late, True)))
        bg = self.background.tail(max(1, self.background.height // 3))
        parts.append(pl.DataFrame({"id_number": bg["id_number"], "role": ["股东"] * bg.height,
                                   "registered_capital": [30_000_000 + 10_000_000 * i for i in range(bg.height)],
                                   "status": ["存续"] * bg.height, "_wan": [False] * bg.height})
                     .with_columns(self._owner_cols(bg, False)))
        firms = pl.concat(parts, how="vertical_relaxed")
        return firms.with_columns(
            (pl.lit(f"{self.county}") + pl.col("_pid").cast(pl.Utf8) + pl.lit("商贸有限公司")).alias("company"),
            pl.date(2015, 3, 1).dt.offset_by(pl.format("{}d", (pl.col("_pid") * 31) % 1800)).alias("founded_on"),
        ).select("id_number", "company", "role", "registered_capital", "status", "founded_on",
                 "_wan", *INTERNAL)


def wan_text(text: pl.DataFrame, canon: pl.DataFrame) -> pl.DataFrame:
    """shichang as some offices write it: capital in 万元 ("50万元") on the rows marked ``_wan``."""
    wan = canon["_wan"].gather(text["_src"])
    cents = canon["registered_capital"].gather(text["_src"])
    as_wan = (cents // 1_000_000).cast(pl.Utf8) + "万元"
    return text.with_columns(pl.when(pl.lit(wan) & (cents % 1_000_000 == 0)).then(pl.lit(as_wan))
                             .otherwise(pl.col("registered_capital")).alias("registered_capital"))


# ---------------------------------------------------------------------------- the oracle's part

def owners_of_counted_assets(frames: dict[str, pl.DataFrame], capital_line_cents: int) -> pl.DataFrame:
    """(code, id_number, asset) for every asset P14–P16 and the negative list count."""
    cars = frames["cheliang"].filter(pl.col("vehicle_type").is_in(PASSENGER_CARS)
                                     & (pl.col("use") == "非营运")
                                     & pl.col("status").is_in(OWNED_CAR_STATUS))
    homes = frames["budongchan"].filter((pl.col("location_type") == "城镇") & (pl.col("usage") == "住宅")
                                        & (pl.col("kind") == "商品房"))
    firms = frames["shichang"].filter(pl.col("status").is_in(ACTIVE_COMPANY)
                                      & (pl.col("registered_capital") >= capital_line_cents))
    return pl.concat([
        cars.select(pl.lit("P14").alias("code"), "id_number", pl.lit("car").alias("asset")),
        homes.select(pl.lit("P15").alias("code"), "id_number", pl.lit("town_dwelling").alias("asset")),
        firms.select(pl.lit("P16").alias("code"), "id_number", pl.lit("company").alias("asset")),
    ]).unique()


def asset_problems(frames: dict[str, pl.DataFrame], registry_ids: pl.DataFrame,
                   capital_line_cents: int) -> pl.DataFrame:
    """P14–P16: registry members (``registry_ids``: id_number) owning a counted asset."""
    owned = owners_of_counted_assets(frames, capital_line_cents)
    return owned.join(registry_ids, on="id_number", how="semi").select(
        "code", pl.col("id_number").alias("subject_id")).unique()


def excluded_heads(frames: dict[str, pl.DataFrame], capital_line_cents: int) -> pl.DataFrame:
    """household_key (the head's id_number) of non-registry households the negative list covers."""
    owned = owners_of_counted_assets(frames, capital_line_cents)
    return owned.select(pl.col("id_number").alias("household_key")).unique()


def empty_frame(dept: str) -> pl.DataFrame:
    """An as-loaded register before any delivery: no rows, the columns the oracle reads."""
    schemas = {
        "cheliang": {"id_number": pl.Utf8, "vehicle_type": pl.Utf8, "use": pl.Utf8, "status": pl.Utf8},
        "budongchan": {"id_number": pl.Utf8, "location_type": pl.Utf8, "usage": pl.Utf8, "kind": pl.Utf8},
        "shichang": {"id_number": pl.Utf8, "status": pl.Utf8, "registered_capital": pl.Int64},
    }
    return pl.DataFrame(schema=schemas[dept])



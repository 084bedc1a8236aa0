//! Generation, second part: the day-to-day events, the bad rows of `nasty`, and the price
//! paths.

use super::*;

impl Builder<'_> {
    /// Listings, delistings, reclassifications and share-count changes on days 2..=days.
    pub(super) fn events(&mut self) {
        let mut rng = rng_for(self.p.seed, SEED_EVENTS);
        let scale = self.p.stocks as f64 / 5000.0;
        let etf_share = if self.p.etfs > 0 { 0.15 } else { 0.0 };
        for d in 2..=self.p.days as u32 {
            let date = trading_date(d as usize);
            // New listings: small to mid caps, listed (and first traded) today.
            for _ in 0..count_for(&mut rng, 2.0 * scale) {
                let mut e = if rng.random_bool(etf_share) {
                    let aum = rng.random_range(5f64.ln()..500f64.ln()).exp();
                    self.generic_etf(&mut rng, aum)
                } else {
                    let cap = cap_at(rng.random_range(0.15..1.0));
                    self.generic_stock(&mut rng, cap, "CS")
                };
                e.listed_day = d;
                e.list_date = Some(date);
                self.entities.push(e);
            }
            let n = self.entities.len();
            // Delistings.
            for _ in 0..count_for(&mut rng, 1.0 * scale) {
                for _ in 0..50 {
                    let i = rng.random_range(0..n);
                    let e = &mut self.entities[i];
                    if e.role == Role::Generic && e.delist_day == NEVER && e.listed_day < d {
                        e.delist_day = d;
                        break;
                    }
                }
            }
            // Sector / industry reclassifications.
            for _ in 0..count_for(&mut rng, 0.5 * scale) {
                for _ in 0..50 {
                    let i = rng.random_range(0..n);
                    let e = &self.entities[i];
                    if e.role != Role::Generic
                        || !e.is_cs()
                        || !e.active_on(d)
                        || e.listed_day == d
                        || !e.reclass.is_empty()
                    {
                        continue;
                    }
                    let (Some(old_sector), Some(old_industry)) = (e.sector, e.industry) else {
                        continue;
                    };
                    let s = if rng.random_bool(0.5) {
                        SECTORS.iter().position(|x| x.0 == old_sector).unwrap_or(0)
                    } else {
                        rng.random_range(0..SECTORS.len())
                    };
                    let inds = SECTORS[s].2;
                    let mut ind = inds[rng.random_range(0..inds.len())].0;
                    if ind == old_industry {
                        ind = inds
                            [(inds.iter().position(|x| x.0 == ind).unwrap_or(0) + 1) % inds.len()]
                        .0;
                    }
                    self.entities[i]
                        .reclass
                        .push((d, Some(SECTORS[s].0), Some(ind)));
                    break;
                }
            }
            // Share-count changes: buybacks (60%) and issuance, 1–10%.
            for _ in 0..count_for(&mut rng, 2.0 * scale) {
                for _ in 0..50 {
                    let i = rng.random_range(0..n);
                    let e = &self.entities[i];
                    if e.role == Role::Nasty || !e.is_cs() || !e.active_on(d) || e.listed_day == d {
                        continue;
                    }
                    let pct = rng.random_range(0.01..0.10);
                    let factor = if rng.random_bool(0.6) {
                        1.0 - pct
                    } else {
                        1.0 + pct
                    };
                    let new = ((e.shares_on(d) as f64 * factor).round() as i64).max(1000);
                    self.entities[i].share_events.push((d, new));
                    break;
                }
            }
        }
    }

    /// Bad rows on top of the clean market (all active).
    pub(super) fn nasty(&mut self) {
        let mut rng = rng_for(self.p.seed, SEED_NASTY);
        // Case / whitespace duplicates of real tickers: distinct strings, separate rows.
        for (orig, dup, bars) in [
            ("AAPL", "aapl", true),
            ("MSFT", " MSFT", false),
            ("NVDA", "NVDA ", true),
            ("AMZN", "Amzn", false),
            ("GOOGL", "GOOGL  ", true),
            ("SPY", " SPY", false),
        ] {
            if let Some(src) = self.entities.iter().position(|e| e.ticker == orig) {
                let mut e = self.entities[src].clone();
                e.ticker = dup.to_string();
                e.role = Role::Nasty;
                e.has_bars = bars;
                e.path_src = Some(src);
                self.used.insert(e.ticker.clone());
                self.entities.push(e);
            }
        }
        let mut add = |b: &mut Self, cap: f64, f: &dyn Fn(&mut Entity)| {
            let mut e = b.generic_stock(&mut rng, cap, "CS");
            e.role = Role::Nasty;
            f(&mut e);
            b.entities.push(e);
        };
        // Impossible caps with NULL shares.
        add(self, 1e9, &|e| {
            e.cap_mode = CapMode::Fixed(0);
            e.shares_null = true;
        });
        add(self, 1e9, &|e| {
            e.cap_mode = CapMode::Fixed(-2_500_000_000);
            e.shares_null = true;
        });
        add(self, 1e9, &|e| {
            e.cap_mode = CapMode::Fixed(7_500_000_000_000_000);
            e.shares_null = true;
        });
        // Share counts that give absurd caps (~$1e15 and more).
        add(self, 1e9, &|e| {
            e.shares0 = 90_000_000_000_000;
            e.price0 = 40.0;
        });
        add(self, 1e9, &|e| {
            e.shares0 = 1_000_000_000_000;
            e.price0 = 900.0;
        });
        // Perfectly normal-looking stocks that never trade.
        for cap in [5.0e10, 3.0e9, 1.0e8] {
            add(self, cap, &|e| e.has_bars = false);
        }
        // Missing classification and names.
        add(self, 5e9, &|e| e.sector = None);
        add(self, 8e8, &|e| {
            e.sector = None;
            e.industry = None;
        });
        add(self, 2e9, &|e| e.name = None);
        add(self, 4e8, &|e| {
            e.name = None;
            e.sector = None;
        });
        add(self, 6e9, &|e| {
            e.sector = Some("Unknown");
            e.industry = Some("Unknown");
        });
        add(self, 7e8, &|e| e.sector = Some("technology "));
        // Very long names (exactly 100 and 99 characters).
        add(self, 3e9, &|e| e.name = Some(long_name(100)));
        add(self, 9e8, &|e| e.name = Some(long_name(99)));
        // Missing exchange, market and list date.
        add(self, 1.5e9, &|e| {
            e.exchange = None;
            e.market = None;
            e.list_date = None;
        });
    }

    /// `p.renames` ticker changes on days drawn from the seed: a generic, always-listed common
    /// stock turns inactive on its day and a successor with a fresh ticker, a new name and the
    /// same identity (it shares the price path, which the identity follows) is listed that
    /// day. The successor's `list_date` is the rename date, as vendors report it, so the job's
    /// rule that a renamed stock keeps its old listing date is exercised.
    pub(super) fn renames(&mut self) {
        if self.p.renames == 0 || self.p.days < 2 {
            return;
        }
        let mut rng = rng_for(self.p.seed, SEED_RENAMES);
        for _ in 0..self.p.renames {
            let d = rng.random_range(2..=self.p.days as u32);
            let candidates: Vec<usize> = (0..self.entities.len())
                .filter(|&i| {
                    let e = &self.entities[i];
                    e.role == Role::Generic
                        && e.is_cs()
                        && e.listed_day == 1
                        && e.delist_day == NEVER
                        && e.has_bars
                        && !e.shares_null
                        && e.cap_mode == CapMode::Computed
                })
                .collect();
            if candidates.is_empty() {
                return;
            }
            let old = candidates[rng.random_range(0..candidates.len())];
            let mut successor = self.entities[old].clone();
            successor.ticker = self.fresh_ticker("");
            successor.name = successor.name.map(|n| format!("{n} Holdings"));
            successor.listed_day = d;
            successor.list_date = Some(trading_date(d as usize));
            successor.role = Role::Successor;
            successor.path_src = Some(old);
            self.entities[old].delist_day = d;
            self.entities.push(successor);
        }
    }

    /// Price paths: per-entity normal log-returns, then large movers aimed at band boundaries.
    pub(super) fn paths(&mut self) -> Vec<f64> {
        let days = self.p.days as u32;
        let path_seed = sub_seed(self.p.seed, SEED_PATHS);
        let mut closes = Vec::new();
        for (i, e) in self.entities.iter_mut().enumerate() {
            if e.path_src.is_some() {
                continue;
            }
            e.path_first = e.listed_day - 1;
            e.path_off = closes.len();
            let mut rng = ChaCha8Rng::seed_from_u64(mix3(path_seed, i as u64, 0));
            let mut price = e.price0;
            closes.push(price);
            for d in e.listed_day..=days {
                let r = if d == e.listed_day && e.listed_day > 1 {
                    0.05 + 0.08 * normal(&mut rng)
                } else {
                    e.sigma * normal(&mut rng)
                };
                price = (price * r.exp()).max(0.05);
                closes.push(price);
            }
        }
        // Large movers.
        let mut rng = rng_for(self.p.seed, SEED_MOVERS);
        let eligible: Vec<usize> = (0..self.entities.len())
            .filter(|&i| {
                let e = &self.entities[i];
                e.role == Role::Generic && e.is_cs() && e.delist_day > 1
            })
            .collect();
        let randoms = ((self.p.stocks as f64 / 2500.0).round() as usize).max(1);
        let idx = |e: &Entity, d: u32| e.path_off + (d - e.path_first) as usize;
        for d in 1..=days {
            let live: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| {
                    let e = &self.entities[i];
                    e.listed_day < d.max(2) && d < e.delist_day
                })
                .collect();
            if live.is_empty() {
                continue;
            }
            let mut moves: Vec<(usize, f64)> = Vec::new();
            for &b in CAP_BOUNDARIES {
                let near: Vec<(usize, f64)> = live
                    .iter()
                    .filter_map(|&i| {
                        let e = &self.entities[i];
                        let cap = e.shares0 as f64 * closes[idx(e, d - 1)];
                        (cap > b / 1.2 && cap < b * 1.2).then_some((i, cap))
                    })
                    .collect();
                if near.is_empty() {
                    continue;
                }
                let (i, cap) = near[rng.random_range(0..near.len())];
                let need = if cap < b {
                    b / cap - 1.0
                } else {
                    1.0 - b / cap
                };
                let lo = (need + 0.01).max(0.10);
                let u = rng.random_range(lo..lo.max(0.30) + 1e-9);
                moves.push((i, if cap < b { 1.0 + u } else { 1.0 - u }));
            }
            for _ in 0..randoms {
                let i = live[rng.random_range(0..live.len())];
                let u = rng.random_range(0.10..0.30);
                moves.push((
                    i,
                    if rng.random_bool(0.5) {
                        1.0 + u
                    } else {
                        1.0 - u
                    },
                ));
            }
            for (i, factor) in moves {
                let e = &self.entities[i];
                for c in &mut closes[idx(e, d)..=idx(e, days)] {
                    *c = (*c * factor).max(0.05);
                }
            }
        }
        closes
    }
}

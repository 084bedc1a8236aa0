//! Generation, first part: the stocks, the ETFs and the extra rows of day 1.

use super::*;

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

pub(super) struct Builder<'a> {
    pub(super) p: &'a FixtureParams,
    pub(super) used: HashSet<String>,
    pub(super) ticker_rng: ChaCha8Rng,
    pub(super) entities: Vec<Entity>,
    pub(super) day1: NaiveDate,
}

impl<'a> Builder<'a> {
    pub(super) fn new(p: &'a FixtureParams) -> Self {
        let mut used = HashSet::new();
        for f in FAMOUS {
            used.insert(f.0.to_string());
        }
        for f in FIXED_ETFS {
            used.insert(f.0.to_string());
        }
        Builder {
            p,
            used,
            ticker_rng: rng_for(p.seed, SEED_TICKERS),
            entities: Vec::new(),
            day1: trading_date(1),
        }
    }

    pub(super) fn build(mut self) -> SyntheticMarket {
        self.stocks();
        self.etfs();
        self.extras();
        self.events();
        if self.p.nasty {
            self.nasty();
        }
        // After every other draw of tickers and events, so that `renames: 0` is the market
        // without the option, bit for bit.
        self.renames();
        let closes = self.paths();
        let mut order: Vec<usize> = (0..self.entities.len()).collect();
        let ents = &self.entities;
        order.sort_by(|&a, &b| ents[a].ticker.cmp(&ents[b].ticker));
        SyntheticMarket {
            days: self.p.days,
            seed: self.p.seed,
            entities: self.entities,
            order,
            closes,
        }
    }

    /// A fresh random ticker of 2–5 uppercase letters (plus `suffix`).
    pub(super) fn fresh_ticker(&mut self, suffix: &str) -> String {
        loop {
            let len = pick_weighted(&mut self.ticker_rng, &[3, 35, 55, 7]) + 2;
            let len = if suffix.is_empty() {
                len
            } else {
                len.clamp(3, 4)
            };
            let mut t: String = (0..len)
                .map(|_| (b'A' + self.ticker_rng.random_range(0..26u8)) as char)
                .collect();
            t.push_str(suffix);
            if self.used.insert(t.clone()) {
                return t;
            }
        }
    }

    /// Old listing date: at least 45 days and typically a decade before day 1.
    pub(super) fn old_list_date(&self, rng: &mut ChaCha8Rng) -> NaiveDate {
        let u: f64 = 1.0 - rng.random::<f64>();
        let days_ago = (45.0 + -u.ln() * 3500.0).min(19_000.0) as i64;
        back_to_weekday(self.day1 - Duration::days(days_ago))
    }

    /// Recent listing date: within the 30 calendar days before day 1.
    pub(super) fn recent_list_date(&self, rng: &mut ChaCha8Rng) -> NaiveDate {
        back_to_weekday(self.day1 - Duration::days(rng.random_range(1..=28)))
    }

    /// A generic common stock (or other equity kind) of the given cap.
    pub(super) fn generic_stock(
        &mut self,
        rng: &mut ChaCha8Rng,
        cap: f64,
        kind: &'static str,
    ) -> Entity {
        let ticker = if kind == "WARRANT" {
            self.fresh_ticker("W")
        } else {
            self.fresh_ticker("")
        };
        let mut e = Entity::new(ticker, kind);
        let s = pick_weighted_by(rng, SECTORS, |s| s.1);
        let (sector, _, industries) = SECTORS[s];
        let ind = industries[pick_weighted_by(rng, industries, |x| x.1)].0;
        e.sector = Some(sector);
        e.industry = Some(ind);
        let prefix = NAME_PREFIXES[rng.random_range(0..NAME_PREFIXES.len())];
        let core = NAME_CORES[s][rng.random_range(0..NAME_CORES[s].len())];
        let suffix = NAME_SUFFIXES[pick_weighted_by(rng, NAME_SUFFIXES, |x| x.1)].0;
        e.name = Some(match kind {
            "ADRC" => format!("{prefix} {core} Ltd. ADR"),
            "PFD" => format!("{prefix} {core} Inc. 6.25% Series A Preferred"),
            "WARRANT" => format!("{prefix} {core} Corp. Warrants"),
            _ => format!("{prefix} {core} {suffix}"),
        });
        e.exchange = Some(["XNAS", "XNYS", "ARCX", "BATS"][pick_weighted(rng, &[55, 40, 3, 2])]);
        let log10p = 0.2 + 0.3 * (cap / 1e6).log10() + 0.3 * normal(rng);
        let price = 10f64.powf(log10p).clamp(0.3, 2500.0);
        e.shares0 = ((cap / price).round() as i64).max(1000);
        e.price0 = cap / e.shares0 as f64;
        e.sigma = rng.random_range(0.015..0.020);
        e.turnover = rng.random_range(0.002..0.015);
        e.list_date = Some(self.old_list_date(rng));
        if kind == "PFD" || kind == "WARRANT" {
            e.cap_mode = CapMode::Null;
            e.shares_null = true;
        }
        e
    }

    pub(super) fn generic_etf(&mut self, rng: &mut ChaCha8Rng, aum: f64) -> Entity {
        let mut e = Entity::new(self.fresh_ticker(""), "ETF");
        // Never reuse the exact name of a well-known fixed ETF (e.g. "Vanguard S&P 500 ETF").
        let (name, etf_type, issuer, vol) = loop {
            let (theme, etf_type, _, vol) = ETF_THEMES[pick_weighted_by(rng, ETF_THEMES, |x| x.2)];
            let (issuer, prefix) = if etf_type == "Leveraged" {
                let iss = LEVERAGED_ISSUERS[rng.random_range(0..LEVERAGED_ISSUERS.len())];
                (iss, iss)
            } else {
                let (iss, _, prefixes) = ETF_ISSUERS[pick_weighted_by(rng, ETF_ISSUERS, |x| x.1)];
                (iss, prefixes[rng.random_range(0..prefixes.len())])
            };
            let name = format!("{prefix} {theme} ETF");
            if !FIXED_ETFS.iter().any(|f| f.1 == name) {
                break (name, etf_type, issuer, vol);
            }
        };
        e.name = Some(name);
        e.etf = Some(EtfInfo {
            etf_type,
            issuer,
            aum0: aum,
        });
        e.exchange = Some(["ARCX", "XNAS", "BATS"][pick_weighted(rng, &[70, 15, 15])]);
        e.price0 = (rng.random_range(15f64.ln()..400f64.ln())).exp();
        e.sigma = vol / 100.0;
        e.turnover = rng.random_range(0.005..0.03);
        e.list_date = Some(self.old_list_date(rng));
        // Most ETFs have neither shares nor cap (they are ranked by AUM); some have shares.
        e.shares0 = ((aum * 1e6 / e.price0).round() as i64).max(1000);
        let with_shares = rng.random_bool(0.15);
        e.shares_null = !with_shares;
        e.cap_mode = if with_shares && rng.random_bool(0.5) {
            CapMode::Computed
        } else {
            CapMode::Null
        };
        e
    }

    pub(super) fn stocks(&mut self) {
        let n = self.p.stocks;
        if n == 0 {
            return;
        }
        // Cap by rank fraction, jittered, sorted descending.
        let mut rng = rng_for(self.p.seed, SEED_CAPS);
        let mut caps: Vec<f64> = (0..n)
            .map(|r| cap_at((r as f64 + 0.5) / n as f64) * (0.04 * normal(&mut rng)).exp())
            .collect();
        caps.sort_by(|a, b| b.total_cmp(a));
        if n >= 500 {
            caps[0] = caps[0].max(3.6e12);
            caps[1] = caps[1].max(2.4e12);
        }
        // Well-known tickers take the free rank nearest their real cap.
        let mut taken = vec![false; n];
        let mut famous_at: Vec<Option<usize>> = vec![None; n];
        let ln_caps: Vec<f64> = caps.iter().map(|c| c.ln()).collect();
        let mut famous: Vec<usize> = (0..FAMOUS.len().min(n)).collect();
        famous.sort_by(|&a, &b| FAMOUS[b].5.total_cmp(&FAMOUS[a].5));
        for f in famous {
            let target = (FAMOUS[f].5 * 1e9).ln();
            let best = (0..n)
                .filter(|&r| !taken[r])
                .min_by(|&a, &b| {
                    (ln_caps[a] - target)
                        .abs()
                        .total_cmp(&(ln_caps[b] - target).abs())
                })
                .expect("a free rank");
            taken[best] = true;
            famous_at[best] = Some(f);
        }
        let mut rng = rng_for(self.p.seed, SEED_STOCKS);
        let first = self.entities.len();
        for r in 0..n {
            let e = match famous_at[r] {
                Some(f) => {
                    let (t, name, sector, industry, exch, _, price, (y, m, d)) = FAMOUS[f];
                    let mut e = Entity::new(t.to_string(), "CS");
                    e.name = Some(name.to_string());
                    e.sector = Some(sector);
                    e.industry = Some(industry);
                    e.exchange = Some(exch);
                    e.shares0 = ((caps[r] / price).round() as i64).max(1000);
                    e.price0 = caps[r] / e.shares0 as f64;
                    e.sigma = 0.015 + 0.005 * rng.random::<f64>();
                    e.turnover = rng.random_range(0.002..0.01);
                    e.list_date = NaiveDate::from_ymd_opt(y, m, d);
                    e.role = Role::Protected;
                    e
                }
                None => {
                    let mut e = self.generic_stock(&mut rng, caps[r], "CS");
                    // Dirty columns on ~1–2% of the generic stocks.
                    let u: f64 = rng.random();
                    if u < 0.004 {
                        e.sector = None;
                        e.industry = None;
                    } else if u < 0.007 {
                        e.sector = None;
                    } else if u < 0.010 {
                        e.industry = None;
                    }
                    if rng.random_bool(0.01) {
                        e.cap_mode = CapMode::Null;
                    }
                    if rng.random_bool(0.02) {
                        e.shares_null = true;
                    }
                    e
                }
            };
            self.entities.push(e);
        }
        // A few non-ASCII names and a few listings in the 30 days before day 1.
        let generic: Vec<usize> = (first..self.entities.len())
            .filter(|&i| self.entities[i].role == Role::Generic)
            .collect();
        if generic.is_empty() {
            return;
        }
        for name in NON_ASCII_NAMES {
            let i = generic[rng.random_range(0..generic.len())];
            self.entities[i].name = Some(name.to_string());
        }
        let recent = ((n as f64 * 0.003).round() as usize).max(1);
        for _ in 0..recent {
            let i = generic[rng.random_range(0..generic.len())];
            self.entities[i].list_date = Some(self.recent_list_date(&mut rng));
        }
    }

    pub(super) fn etfs(&mut self) {
        let n = self.p.etfs;
        let mut rng = rng_for(self.p.seed, SEED_ETFS);
        let fixed = n.min(FIXED_ETFS.len());
        for &(t, name, etf_type, issuer, aum, price, exch, (y, m, d)) in &FIXED_ETFS[..fixed] {
            let mut e = Entity::new(t.to_string(), "ETF");
            e.name = Some(name.to_string());
            e.etf = Some(EtfInfo {
                etf_type,
                issuer,
                aum0: aum,
            });
            e.exchange = Some(exch);
            e.price0 = price;
            e.shares0 = (aum * 1e6 / price).round() as i64;
            e.shares_null = true;
            e.cap_mode = CapMode::Null;
            e.sigma = match etf_type {
                "Fixed Income" => 0.003,
                "Leveraged" => 0.03,
                "Sector" => 0.013,
                _ => 0.01,
            };
            e.turnover = rng.random_range(0.01..0.05);
            e.list_date = NaiveDate::from_ymd_opt(y, m, d);
            e.role = Role::Protected;
            self.entities.push(e);
        }
        let rest = n - fixed;
        let first = self.entities.len();
        let mut aums: Vec<f64> = (0..rest)
            .map(|r| etf_aum_at((r as f64 + 0.5) / rest as f64) * (0.1 * normal(&mut rng)).exp())
            .collect();
        aums.sort_by(|a, b| b.total_cmp(a));
        for aum in aums {
            let e = self.generic_etf(&mut rng, aum);
            self.entities.push(e);
        }
        if rest > 0 {
            let recent = ((n as f64 * 0.006).round() as usize).max(1);
            for _ in 0..recent {
                let i = first + rng.random_range(0..rest);
                self.entities[i].list_date = Some(self.recent_list_date(&mut rng));
            }
        }
    }

    /// Non-CS equity types and symbols inactive from the start.
    pub(super) fn extras(&mut self) {
        let mut rng = rng_for(self.p.seed, SEED_EXTRAS);
        if self.p.stocks > 0 {
            let others = (self.p.stocks / 250).max(3);
            for k in 0..others {
                let kind = ["ADRC", "ADRC", "PFD", "WARRANT"][k % 4];
                let cap = cap_at(rng.random_range(0.05..0.9));
                let e = self.generic_stock(&mut rng, cap, kind);
                self.entities.push(e);
            }
            let inactive = ((self.p.stocks as f64 * 0.02).round() as usize).max(1);
            for _ in 0..inactive {
                let cap = cap_at(rng.random_range(0.3..1.0));
                let mut e = self.generic_stock(&mut rng, cap, "CS");
                e.delist_day = 1;
                self.entities.push(e);
            }
        }
        if self.p.etfs > 0 {
            let inactive = ((self.p.etfs as f64 * 0.02).round() as usize).max(1);
            for _ in 0..inactive {
                let aum = rng.random_range(2f64.ln()..200f64.ln()).exp();
                let mut e = self.generic_etf(&mut rng, aum);
                e.delist_day = 1;
                self.entities.push(e);
            }
        }
    }
}

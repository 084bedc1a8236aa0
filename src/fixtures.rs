//! Deterministic synthetic US equity market for tests, demos and benchmarks.
//!
//! [`SyntheticMarket::generate`] builds, from a [`FixtureParams`], a `symbols` table and a
//! `ohlcv_daily` price history that look like the real US market:
//!
//! * a heavy-tailed market-cap distribution for the common stocks (a handful above $1T, about
//!   1% above $200B, about 12% above $10B, a long tail down to a few $M), defined by rank
//!   fraction so the shape holds from 100 to 100,000 stocks;
//! * real GICS-style sector and industry names, with uneven sector sizes;
//! * well-known tickers at the top (NVDA, AAPL, MSFT, …), the theme tickers, tricky tickers
//!   (`BRK.B`, `BF-B`, `F`, `T`, `C`) and a few non-ASCII company names;
//! * ETFs with realistic names, issuers, types and AUM, including SPY, QQQ, IWM, VTI, AGG, …;
//! * dirty data: inactive symbols, NULL sectors, NULL caps and shares, non-CS types;
//! * day-to-day events (new listings, delistings, reclassifications, share-count changes),
//!   large movers that push stocks across the market-cap band boundaries, and missing bars;
//! * optionally (`nasty`), deliberately bad rows on top.
//!
//! Everything is a pure function of the parameters: no I/O, no clock, no hash-map iteration
//! order. Sub-streams of randomness are derived per purpose from the seed, so turning `nasty`
//! on only *adds* rows and leaves every other row and bar unchanged.
//!
//! Trading days are numbered `1..=days`; day 1 is Monday 2026-01-05 and the calendar is plain
//! weekdays (no exchange holidays). `symbols.market_cap` is vendor-style stale: the shares as of
//! the day times the *previous* trading day's close.

use std::collections::HashSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::market::{DailyBar, SymbolRow};

// ---------------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------------

/// What to generate. Same parameters, same market, bit for bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureParams {
    /// Active common stocks (`type = 'CS'`) on day 1, before bad rows. The well-known tickers
    /// count towards this number; below about 40 some of them are left out.
    pub stocks: usize,
    /// Active ETFs on day 1. The essential ETFs (SPY, QQQ, …) come first; below about 50 only
    /// the first of them are included.
    pub etfs: usize,
    /// Number of trading days of prices, numbered `1..=days`.
    pub days: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Add deliberately bad rows (case/whitespace duplicates, absurd or negative caps, NULL
    /// names and sectors, stocks without bars, very long names). All of them are active.
    pub nasty: bool,
}

impl Default for FixtureParams {
    /// 5000 stocks, 800 ETFs, 30 days, seed 42, no bad rows.
    fn default() -> Self {
        FixtureParams {
            stocks: 5000,
            etfs: 800,
            days: 30,
            seed: 42,
            nasty: false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Static reference data
// ---------------------------------------------------------------------------------------------

/// (sector, weight in % of common stocks, [(industry, relative weight)])
type SectorDef = (&'static str, u32, &'static [(&'static str, u32)]);

const SECTORS: &[SectorDef] = &[
    (
        "Technology",
        18,
        &[
            ("Software - Application", 30),
            ("Software - Infrastructure", 20),
            ("Semiconductors", 14),
            ("Information Technology Services", 10),
            ("Communication Equipment", 8),
            ("Semiconductor Equipment & Materials", 7),
            ("Computer Hardware", 6),
            ("Consumer Electronics", 3),
        ],
    ),
    (
        "Healthcare",
        19,
        &[
            ("Biotechnology", 45),
            ("Medical Devices", 14),
            ("Diagnostics & Research", 10),
            ("Drug Manufacturers - Specialty & Generic", 9),
            ("Medical Instruments & Supplies", 8),
            ("Medical Care Facilities", 6),
            ("Drug Manufacturers - General", 4),
            ("Healthcare Plans", 2),
        ],
    ),
    (
        "Financial Services",
        16,
        &[
            ("Banks - Regional", 40),
            ("Asset Management", 16),
            ("Capital Markets", 12),
            ("Insurance - Property & Casualty", 9),
            ("Credit Services", 9),
            ("Banks - Diversified", 4),
            ("Financial Data & Stock Exchanges", 4),
            ("Insurance - Diversified", 4),
        ],
    ),
    (
        "Consumer Cyclical",
        11,
        &[
            ("Specialty Retail", 18),
            ("Restaurants", 15),
            ("Auto Parts", 14),
            ("Apparel Retail", 12),
            ("Internet Retail", 12),
            ("Travel Services", 10),
            ("Auto Manufacturers", 8),
            ("Home Improvement Retail", 4),
        ],
    ),
    (
        "Industrials",
        12,
        &[
            ("Specialty Industrial Machinery", 25),
            ("Aerospace & Defense", 18),
            ("Engineering & Construction", 15),
            ("Building Products & Equipment", 12),
            ("Trucking", 10),
            ("Airlines", 8),
            ("Waste Management", 6),
            ("Railroads", 4),
        ],
    ),
    (
        "Communication Services",
        4,
        &[
            ("Internet Content & Information", 30),
            ("Entertainment", 25),
            ("Telecom Services", 22),
            ("Advertising Agencies", 13),
            ("Electronic Gaming & Multimedia", 10),
        ],
    ),
    (
        "Consumer Defensive",
        4,
        &[
            ("Packaged Foods", 35),
            ("Household & Personal Products", 20),
            ("Beverages - Non-Alcoholic", 12),
            ("Grocery Stores", 12),
            ("Discount Stores", 11),
            ("Beverages - Wineries & Distilleries", 10),
        ],
    ),
    (
        "Energy",
        4,
        &[
            ("Oil & Gas E&P", 35),
            ("Oil & Gas Equipment & Services", 22),
            ("Oil & Gas Midstream", 18),
            ("Oil & Gas Refining & Marketing", 10),
            ("Uranium", 10),
            ("Oil & Gas Integrated", 5),
        ],
    ),
    (
        "Basic Materials",
        4,
        &[
            ("Specialty Chemicals", 30),
            ("Gold", 22),
            ("Copper", 14),
            ("Steel", 12),
            ("Building Materials", 12),
            ("Agricultural Inputs", 10),
        ],
    ),
    (
        "Real Estate",
        6,
        &[
            ("REIT - Residential", 20),
            ("Real Estate Services", 20),
            ("REIT - Retail", 18),
            ("REIT - Industrial", 16),
            ("REIT - Office", 14),
            ("REIT - Specialty", 12),
        ],
    ),
    (
        "Utilities",
        2,
        &[
            ("Utilities - Regulated Electric", 45),
            ("Utilities - Renewable", 25),
            ("Utilities - Regulated Gas", 18),
            ("Utilities - Diversified", 12),
        ],
    ),
];

/// Per-sector words for company names, same order as [`SECTORS`].
#[rustfmt::skip]
const NAME_CORES: &[&[&str]] = &[
    &["Robotics", "Software", "Systems", "Networks", "Semiconductor", "Data", "Cloud", "Micro", "Digital", "Cyber", "Logic", "Computing", "Photonics", "Silicon"],
    &["Therapeutics", "Biosciences", "Pharma", "Medical", "Genomics", "Health", "Diagnostics", "Bio", "Oncology", "Biologics", "Surgical", "Life Sciences"],
    &["Bancorp", "Financial", "Capital", "Bank", "Trust", "Insurance", "Asset Management", "Lending", "Payments", "Savings"],
    &["Motors", "Retail", "Brands", "Restaurants", "Apparel", "Leisure", "Outfitters", "Travel", "Home", "Auto Parts"],
    &["Industries", "Aerospace", "Machinery", "Logistics", "Engineering", "Construction", "Freight", "Manufacturing", "Air", "Dynamics"],
    &["Media", "Communications", "Telecom", "Entertainment", "Broadcasting", "Interactive", "Studios", "Wireless"],
    &["Foods", "Beverages", "Consumer Products", "Farms", "Grocers", "Brewing", "Household", "Nutrition"],
    &["Energy", "Petroleum", "Oil & Gas", "Resources", "Drilling", "Pipeline", "Midstream", "Exploration"],
    &["Materials", "Chemicals", "Mining", "Gold", "Steel", "Metals", "Minerals", "Copper"],
    &["Realty", "Properties", "REIT", "Real Estate", "Residential", "Land", "Storage", "Office Trust"],
    &["Power", "Electric", "Utilities", "Gas & Electric", "Water", "Renewables", "Energy Services"],
];

const NAME_PREFIXES: &[&str] = &[
    "Acme",
    "Apex",
    "Atlas",
    "Beacon",
    "Blue Ridge",
    "Cardinal",
    "Cascade",
    "Centurion",
    "Cobalt",
    "Crescent",
    "Delta",
    "Eagle",
    "Evergreen",
    "Falcon",
    "First",
    "Frontier",
    "Global",
    "Granite",
    "Harbor",
    "Horizon",
    "Ironwood",
    "Keystone",
    "Liberty",
    "Lighthouse",
    "Magnolia",
    "Meridian",
    "Nova",
    "Northstar",
    "Oak",
    "Orion",
    "Pacific",
    "Paramount",
    "Pinnacle",
    "Pioneer",
    "Summit",
    "Redwood",
    "Riverstone",
    "Sapphire",
    "Sierra",
    "Silverline",
    "Sterling",
    "Stonebridge",
    "Titan",
    "Trident",
    "Union",
    "Vertex",
    "Vista",
    "Westfield",
    "Zenith",
    "Arcadia",
    "Bluewater",
    "Coastal",
    "Copperhead",
    "Everest",
    "Helix",
    "Ionic",
    "Juniper",
    "Lumen",
    "Mosaic",
    "Nimbus",
    "Polaris",
    "Solstice",
    "Tidewater",
    "Upland",
    "Willow",
];

const NAME_SUFFIXES: &[(&str, u32)] = &[
    ("Inc.", 40),
    ("Corp.", 18),
    ("Corporation", 8),
    ("Holdings, Inc.", 10),
    ("Group", 6),
    ("Ltd.", 5),
    ("Co.", 4),
    ("plc", 3),
    ("N.V.", 2),
    ("Holdings Corp.", 4),
];

/// Company names with non-ASCII characters, given to a few generated stocks.
const NON_ASCII_NAMES: &[&str] = &[
    "Société Générale Holdings",
    "Nestlé Foods Corp",
    "Zürich Systems AG",
    "Crédit Mutuel Partners SA",
    "Müller Präzision Technik AG",
];

/// Well-known common stocks: (ticker, name, sector, industry, exchange, target cap $B,
/// price, list date). They are placed at the rank whose generated cap is nearest the target.
type FamousDef = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    (i32, u32, u32),
);

#[rustfmt::skip]
const FAMOUS: &[FamousDef] = &[
    ("NVDA", "NVIDIA Corporation", "Technology", "Semiconductors", "XNAS", 4500.0, 185.0, (1999, 1, 22)),
    ("AAPL", "Apple Inc.", "Technology", "Consumer Electronics", "XNAS", 3900.0, 260.0, (1980, 12, 12)),
    ("MSFT", "Microsoft Corporation", "Technology", "Software - Infrastructure", "XNAS", 3600.0, 480.0, (1986, 3, 13)),
    ("GOOGL", "Alphabet Inc. Class A", "Communication Services", "Internet Content & Information", "XNAS", 3400.0, 310.0, (2004, 8, 19)),
    ("AMZN", "Amazon.com, Inc.", "Consumer Cyclical", "Internet Retail", "XNAS", 2400.0, 230.0, (1997, 5, 15)),
    ("META", "Meta Platforms, Inc.", "Communication Services", "Internet Content & Information", "XNAS", 1650.0, 650.0, (2012, 5, 18)),
    ("AVGO", "Broadcom Inc.", "Technology", "Semiconductors", "XNAS", 1600.0, 340.0, (2009, 8, 6)),
    ("TSLA", "Tesla, Inc.", "Consumer Cyclical", "Auto Manufacturers", "XNAS", 1450.0, 440.0, (2010, 6, 29)),
    ("BRK.B", "Berkshire Hathaway Inc. Class B", "Financial Services", "Insurance - Diversified", "XNYS", 1050.0, 490.0, (1996, 5, 9)),
    ("LLY", "Eli Lilly and Company", "Healthcare", "Drug Manufacturers - General", "XNYS", 950.0, 1050.0, (1972, 6, 1)),
    ("WMT", "Walmart Inc.", "Consumer Defensive", "Discount Stores", "XNAS", 900.0, 112.0, (1972, 8, 25)),
    ("JPM", "JPMorgan Chase & Co.", "Financial Services", "Banks - Diversified", "XNYS", 850.0, 310.0, (1969, 3, 5)),
    ("V", "Visa Inc.", "Financial Services", "Credit Services", "XNYS", 650.0, 340.0, (2008, 3, 19)),
    ("ORCL", "Oracle Corporation", "Technology", "Software - Infrastructure", "XNYS", 550.0, 195.0, (1986, 3, 12)),
    ("MA", "Mastercard Incorporated", "Financial Services", "Credit Services", "XNYS", 510.0, 560.0, (2006, 5, 25)),
    ("JNJ", "Johnson & Johnson", "Healthcare", "Drug Manufacturers - General", "XNYS", 500.0, 205.0, (1944, 9, 25)),
    ("XOM", "Exxon Mobil Corporation", "Energy", "Oil & Gas Integrated", "XNYS", 480.0, 115.0, (1970, 1, 2)),
    ("NFLX", "Netflix, Inc.", "Communication Services", "Entertainment", "XNAS", 400.0, 95.0, (2002, 5, 23)),
    ("COST", "Costco Wholesale Corporation", "Consumer Defensive", "Discount Stores", "XNAS", 400.0, 900.0, (1985, 12, 5)),
    ("AMD", "Advanced Micro Devices, Inc.", "Technology", "Semiconductors", "XNAS", 350.0, 215.0, (1972, 9, 27)),
    ("HD", "The Home Depot, Inc.", "Consumer Cyclical", "Home Improvement Retail", "XNYS", 350.0, 350.0, (1981, 9, 22)),
    ("PG", "The Procter & Gamble Company", "Consumer Defensive", "Household & Personal Products", "XNYS", 340.0, 145.0, (1978, 1, 13)),
    ("CRM", "Salesforce, Inc.", "Technology", "Software - Application", "XNYS", 250.0, 260.0, (2004, 6, 23)),
    ("C", "Citigroup Inc.", "Financial Services", "Banks - Diversified", "XNYS", 210.0, 115.0, (1986, 10, 29)),
    ("T", "AT&T Inc.", "Communication Services", "Telecom Services", "XNYS", 175.0, 24.5, (1983, 11, 21)),
    ("AMGN", "Amgen Inc.", "Healthcare", "Drug Manufacturers - General", "XNAS", 175.0, 325.0, (1983, 6, 17)),
    ("GILD", "Gilead Sciences, Inc.", "Healthcare", "Drug Manufacturers - General", "XNAS", 150.0, 120.0, (1992, 1, 22)),
    ("SNOW", "Snowflake Inc.", "Technology", "Software - Application", "XNYS", 75.0, 225.0, (2020, 9, 16)),
    ("COIN", "Coinbase Global, Inc.", "Financial Services", "Financial Data & Stock Exchanges", "XNAS", 65.0, 250.0, (2021, 4, 14)),
    ("F", "Ford Motor Company", "Consumer Cyclical", "Auto Manufacturers", "XNYS", 53.0, 13.5, (1956, 1, 18)),
    ("SQ", "Block, Inc.", "Technology", "Software - Infrastructure", "XNYS", 40.0, 65.0, (2015, 11, 19)),
    ("BIIB", "Biogen Inc.", "Healthcare", "Drug Manufacturers - General", "XNAS", 25.0, 170.0, (1991, 9, 17)),
    ("BF-B", "Brown-Forman Corporation Class B", "Consumer Defensive", "Beverages - Wineries & Distilleries", "XNYS", 13.0, 28.0, (1973, 3, 15)),
    ("MRNA", "Moderna, Inc.", "Healthcare", "Biotechnology", "XNAS", 12.0, 30.0, (2018, 12, 7)),
    ("RIOT", "Riot Platforms, Inc.", "Financial Services", "Capital Markets", "XNAS", 5.0, 14.0, (2016, 10, 4)),
    ("MARA", "MARA Holdings, Inc.", "Financial Services", "Capital Markets", "XNAS", 4.5, 11.0, (2012, 5, 4)),
];

/// Fixed ETFs, essential ones first: (ticker, name, etf_type, issuer, AUM $M, price, exchange,
/// list date).
type FixedEtfDef = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    &'static str,
    (i32, u32, u32),
);

#[rustfmt::skip]
const FIXED_ETFS: &[FixedEtfDef] = &[
    ("SPY", "SPDR S&P 500 ETF Trust", "Equity", "SPDR", 690_000.0, 690.0, "ARCX", (1993, 1, 22)),
    ("QQQ", "Invesco QQQ Trust", "Equity", "Invesco", 400_000.0, 620.0, "XNAS", (1999, 3, 10)),
    ("IWM", "iShares Russell 2000 ETF", "Equity", "iShares", 70_000.0, 250.0, "ARCX", (2000, 5, 22)),
    ("VTI", "Vanguard Total Stock Market ETF", "Equity", "Vanguard", 550_000.0, 335.0, "ARCX", (2001, 5, 24)),
    ("VUG", "Vanguard Growth ETF", "Equity", "Vanguard", 190_000.0, 480.0, "ARCX", (2004, 1, 26)),
    ("VTV", "Vanguard Value ETF", "Equity", "Vanguard", 150_000.0, 190.0, "ARCX", (2004, 1, 26)),
    ("MTUM", "iShares MSCI USA Momentum Factor ETF", "Equity", "iShares", 19_000.0, 250.0, "BATS", (2013, 4, 16)),
    ("VGT", "Vanguard Information Technology ETF", "Sector", "Vanguard", 110_000.0, 760.0, "ARCX", (2004, 1, 26)),
    ("XLK", "Technology Select Sector SPDR Fund", "Sector", "SPDR", 90_000.0, 145.0, "ARCX", (1998, 12, 16)),
    ("XLF", "Financial Select Sector SPDR Fund", "Sector", "SPDR", 53_000.0, 54.0, "ARCX", (1998, 12, 16)),
    ("XLV", "Health Care Select Sector SPDR Fund", "Sector", "SPDR", 38_000.0, 155.0, "ARCX", (1998, 12, 16)),
    ("XLE", "Energy Select Sector SPDR Fund", "Sector", "SPDR", 27_000.0, 45.0, "ARCX", (1998, 12, 16)),
    ("XLI", "Industrial Select Sector SPDR Fund", "Sector", "SPDR", 23_000.0, 155.0, "ARCX", (1998, 12, 16)),
    ("XLP", "Consumer Staples Select Sector SPDR Fund", "Sector", "SPDR", 15_000.0, 78.0, "ARCX", (1998, 12, 16)),
    ("XLY", "Consumer Discretionary Select Sector SPDR Fund", "Sector", "SPDR", 23_000.0, 120.0, "ARCX", (1998, 12, 16)),
    ("AGG", "iShares Core U.S. Aggregate Bond ETF", "Fixed Income", "iShares", 135_000.0, 100.0, "ARCX", (2003, 9, 22)),
    ("BND", "Vanguard Total Bond Market ETF", "Fixed Income", "Vanguard", 140_000.0, 74.0, "XNAS", (2007, 4, 3)),
    ("VEA", "Vanguard FTSE Developed Markets ETF", "Equity", "Vanguard", 180_000.0, 62.0, "ARCX", (2007, 7, 20)),
    ("EEM", "iShares MSCI Emerging Markets ETF", "Equity", "iShares", 25_000.0, 55.0, "ARCX", (2003, 4, 7)),
    ("IEFA", "iShares Core MSCI EAFE ETF", "Equity", "iShares", 160_000.0, 88.0, "BATS", (2012, 10, 18)),
    // Second tier: fills in the remaining name patterns even for small ETF counts.
    ("VOO", "Vanguard S&P 500 ETF", "Equity", "Vanguard", 750_000.0, 630.0, "ARCX", (2010, 9, 7)),
    ("IVV", "iShares Core S&P 500 ETF", "Equity", "iShares", 700_000.0, 690.0, "ARCX", (2000, 5, 15)),
    ("VXUS", "Vanguard Total International Stock ETF", "Equity", "Vanguard", 100_000.0, 72.0, "XNAS", (2011, 1, 26)),
    ("QUAL", "iShares MSCI USA Quality Factor ETF", "Equity", "iShares", 50_000.0, 195.0, "BATS", (2013, 7, 16)),
    ("USMV", "iShares MSCI USA Min Vol Factor ETF", "Equity", "iShares", 24_000.0, 94.0, "BATS", (2011, 10, 18)),
    ("SPLV", "Invesco S&P 500 Low Volatility ETF", "Equity", "Invesco", 7_500.0, 72.0, "ARCX", (2011, 5, 5)),
    ("TMKT", "Fidelity Total Market Index ETF", "Equity", "Fidelity", 1_200.0, 41.0, "ARCX", (2019, 3, 14)),
    ("ITOT", "iShares Core S&P Total U.S. Stock Market ETF", "Equity", "iShares", 75_000.0, 145.0, "ARCX", (2004, 1, 20)),
    ("IWF", "iShares Russell 1000 Growth ETF", "Equity", "iShares", 115_000.0, 470.0, "ARCX", (2000, 5, 22)),
    ("IWD", "iShares Russell 1000 Value ETF", "Equity", "iShares", 65_000.0, 205.0, "ARCX", (2000, 5, 22)),
    ("VWO", "Vanguard FTSE Emerging Markets ETF", "Equity", "Vanguard", 95_000.0, 52.0, "ARCX", (2005, 3, 4)),
    ("EFA", "iShares MSCI EAFE ETF", "Equity", "iShares", 60_000.0, 95.0, "ARCX", (2001, 8, 14)),
    ("IEMG", "iShares Core MSCI Emerging Markets ETF", "Equity", "iShares", 100_000.0, 64.0, "ARCX", (2012, 10, 18)),
    ("SCHD", "Schwab U.S. Dividend Equity ETF", "Equity", "Schwab", 72_000.0, 28.0, "ARCX", (2011, 10, 20)),
    ("VIG", "Vanguard Dividend Appreciation ETF", "Equity", "Vanguard", 95_000.0, 215.0, "ARCX", (2006, 4, 21)),
    ("IJH", "iShares Core S&P Mid-Cap ETF", "Equity", "iShares", 100_000.0, 66.0, "ARCX", (2000, 5, 22)),
    ("IJR", "iShares Core S&P Small-Cap ETF", "Equity", "iShares", 90_000.0, 120.0, "ARCX", (2000, 5, 22)),
    ("DIA", "SPDR Dow Jones Industrial Average ETF Trust", "Equity", "SPDR", 40_000.0, 485.0, "ARCX", (1998, 1, 14)),
    ("XLC", "Communication Services Select Sector SPDR Fund", "Sector", "SPDR", 25_000.0, 115.0, "ARCX", (2018, 6, 19)),
    ("XLB", "Materials Select Sector SPDR Fund", "Sector", "SPDR", 5_500.0, 90.0, "ARCX", (1998, 12, 16)),
    ("XLRE", "Real Estate Select Sector SPDR Fund", "Sector", "SPDR", 7_800.0, 42.0, "ARCX", (2015, 10, 8)),
    ("XLU", "Utilities Select Sector SPDR Fund", "Sector", "SPDR", 21_000.0, 83.0, "ARCX", (1998, 12, 16)),
    ("SMH", "VanEck Semiconductor ETF", "Sector", "VanEck", 33_000.0, 370.0, "XNAS", (2011, 12, 20)),
    ("VNQ", "Vanguard Real Estate ETF", "Sector", "Vanguard", 34_000.0, 90.0, "ARCX", (2004, 9, 23)),
    ("TLT", "iShares 20+ Year Treasury Bond ETF", "Fixed Income", "iShares", 48_000.0, 88.0, "XNAS", (2002, 7, 22)),
    ("LQD", "iShares iBoxx $ Investment Grade Corporate Bond ETF", "Fixed Income", "iShares", 30_000.0, 111.0, "ARCX", (2002, 7, 22)),
    ("HYG", "iShares iBoxx $ High Yield Corporate Bond ETF", "Fixed Income", "iShares", 17_000.0, 80.0, "ARCX", (2007, 4, 4)),
    ("GLD", "SPDR Gold Shares", "Commodity", "SPDR", 140_000.0, 400.0, "ARCX", (2004, 11, 18)),
    ("TQQQ", "ProShares UltraPro QQQ", "Leveraged", "ProShares", 28_000.0, 105.0, "XNAS", (2010, 2, 9)),
    ("ARKK", "ARK Innovation ETF", "Equity", "ARK Invest", 7_000.0, 78.0, "ARCX", (2014, 10, 31)),
];

/// ETF themes for generated names: (theme, etf_type, weight, daily volatility in %).
#[rustfmt::skip]
const ETF_THEMES: &[(&str, &str, u32, f64)] = &[
    ("S&P 500", "Equity", 6, 1.0),
    ("S&P 500 Equal Weight", "Equity", 2, 1.0),
    ("Total Stock Market", "Equity", 3, 1.0),
    ("Total Market", "Equity", 3, 1.0),
    ("Russell 1000", "Equity", 2, 1.0),
    ("Russell 2000", "Equity", 3, 1.4),
    ("Russell Midcap", "Equity", 2, 1.2),
    ("Large-Cap Core", "Equity", 2, 1.0),
    ("Large-Cap Growth", "Equity", 4, 1.2),
    ("Mid-Cap Growth", "Equity", 2, 1.3),
    ("Small-Cap Growth", "Equity", 2, 1.5),
    ("Large-Cap Value", "Equity", 4, 0.9),
    ("Mid-Cap Value", "Equity", 2, 1.1),
    ("Small-Cap Value", "Equity", 3, 1.3),
    ("Dividend Equity", "Equity", 3, 0.9),
    ("High Dividend Yield", "Equity", 2, 0.9),
    ("USA Momentum Factor", "Equity", 2, 1.2),
    ("USA Quality Factor", "Equity", 2, 1.0),
    ("USA Min Vol Factor", "Equity", 2, 0.7),
    ("S&P 500 Low Volatility", "Equity", 1, 0.7),
    ("Low Vol High Dividend", "Equity", 1, 0.7),
    ("Value Factor", "Equity", 1, 1.0),
    ("Multifactor", "Equity", 2, 1.0),
    ("Technology", "Sector", 3, 1.5),
    ("Information Technology", "Sector", 2, 1.5),
    ("Tech Leaders", "Sector", 1, 1.6),
    ("Semiconductor", "Sector", 2, 2.0),
    ("Health Care", "Sector", 2, 1.0),
    ("Biotech", "Sector", 2, 1.8),
    ("Financials", "Sector", 2, 1.1),
    ("Regional Banking", "Sector", 1, 1.5),
    ("Energy", "Sector", 2, 1.5),
    ("Oil & Gas Exploration & Production", "Sector", 1, 1.8),
    ("Industrials", "Sector", 1, 1.1),
    ("Utilities", "Sector", 1, 0.9),
    ("Real Estate", "Sector", 2, 1.1),
    ("Materials", "Sector", 1, 1.2),
    ("Consumer Staples", "Sector", 1, 0.8),
    ("Consumer Discretionary", "Sector", 1, 1.3),
    ("Communication Services", "Sector", 1, 1.3),
    ("Cybersecurity", "Sector", 1, 1.7),
    ("Clean Energy", "Sector", 1, 2.0),
    ("Cloud Computing", "Sector", 1, 1.8),
    ("Robotics & Artificial Intelligence", "Sector", 1, 1.7),
    ("FinTech", "Sector", 1, 1.8),
    ("Aggregate Bond", "Fixed Income", 3, 0.3),
    ("Core U.S. Aggregate Bond", "Fixed Income", 1, 0.3),
    ("Total Bond Market", "Fixed Income", 2, 0.3),
    ("Short-Term Treasury Bond", "Fixed Income", 2, 0.1),
    ("20+ Year Treasury Bond", "Fixed Income", 1, 0.9),
    ("Intermediate-Term Corporate Bond", "Fixed Income", 2, 0.4),
    ("High Yield Bond", "Fixed Income", 2, 0.4),
    ("TIPS Bond", "Fixed Income", 1, 0.3),
    ("Municipal Bond", "Fixed Income", 2, 0.2),
    ("Ultra-Short Bond", "Fixed Income", 1, 0.05),
    ("Emerging Markets Bond", "Fixed Income", 1, 0.5),
    ("International Equity", "Equity", 2, 1.0),
    ("Total International Stock", "Equity", 1, 1.0),
    ("Emerging Markets", "Equity", 3, 1.2),
    ("MSCI EAFE", "Equity", 2, 1.0),
    ("Developed Markets", "Equity", 2, 1.0),
    ("FTSE Developed Markets", "Equity", 1, 1.0),
    ("Europe", "Equity", 1, 1.1),
    ("Japan", "Equity", 1, 1.1),
    ("China Large-Cap", "Equity", 1, 1.8),
    ("International Dividend", "Equity", 1, 0.9),
    ("International Small-Cap", "Equity", 1, 1.1),
    ("Gold Trust", "Commodity", 1, 1.0),
    ("Silver Trust", "Commodity", 1, 1.8),
    ("Broad Commodity Strategy", "Commodity", 1, 1.0),
    ("Daily S&P 500 Bull 3X", "Leveraged", 1, 3.0),
    ("Daily Semiconductor Bull 3X", "Leveraged", 1, 5.0),
];

/// ETF issuers: (issuer column, weight, name prefixes).
const ETF_ISSUERS: &[(&str, u32, &[&str])] = &[
    ("iShares", 22, &["iShares", "iShares Core", "iShares MSCI"]),
    ("Vanguard", 12, &["Vanguard"]),
    ("SPDR", 12, &["SPDR", "SPDR Portfolio"]),
    ("Invesco", 10, &["Invesco"]),
    ("First Trust", 8, &["First Trust"]),
    ("Schwab", 6, &["Schwab", "Schwab U.S."]),
    ("Global X", 6, &["Global X"]),
    ("VanEck", 5, &["VanEck"]),
    ("WisdomTree", 5, &["WisdomTree"]),
    ("Fidelity", 5, &["Fidelity"]),
    ("JPMorgan", 4, &["JPMorgan"]),
    ("Dimensional", 3, &["Dimensional"]),
];

const LEVERAGED_ISSUERS: &[&str] = &["ProShares", "Direxion"];

/// Market-cap curve knots: (rank fraction, cap in $), log-linear in between.
const CAP_KNOTS: &[(f64, f64)] = &[
    (0.0, 4.6e12),
    (0.0008, 1.0e12),
    (0.01, 2.0e11),
    (0.12, 1.0e10),
    (0.30, 2.0e9),
    (0.60, 3.0e8),
    (0.93, 5.0e7),
    (1.0, 3.0e6),
];

/// Band boundaries the large movers are aimed at.
const CAP_BOUNDARIES: &[f64] = &[2.0e11, 1.0e10, 2.0e9, 3.0e8, 5.0e7];

/// Per-purpose sub-seed tags.
const SEED_CAPS: u64 = 1;
const SEED_STOCKS: u64 = 2;
const SEED_ETFS: u64 = 3;
const SEED_EXTRAS: u64 = 4;
const SEED_EVENTS: u64 = 5;
const SEED_NASTY: u64 = 6;
const SEED_PATHS: u64 = 7;
const SEED_MOVERS: u64 = 8;
const SEED_MISSING: u64 = 9;
const SEED_BARS: u64 = 10;
const SEED_TICKERS: u64 = 11;

/// Probability that an unprotected active symbol has no bar on a given day.
const MISSING_PER_MILLION: u64 = 2_000;

const NEVER: u32 = u32::MAX;

// ---------------------------------------------------------------------------------------------
// The market
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum CapMode {
    /// shares × previous close
    Computed,
    Null,
    Fixed(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Randomly generated; may receive any event or dirty flag.
    Generic,
    /// Well-known ticker or fixed ETF: always active, always priced, never dirty.
    Protected,
    /// A bad row added by `nasty`; never touched by events.
    Nasty,
}

#[derive(Debug, Clone, PartialEq)]
struct EtfInfo {
    etf_type: &'static str,
    issuer: &'static str,
    aum0: f64,
}

#[derive(Debug, Clone, PartialEq)]
struct Entity {
    ticker: String,
    name: Option<String>,
    kind: Option<&'static str>,
    exchange: Option<&'static str>,
    market: Option<&'static str>,
    sector: Option<&'static str>,
    industry: Option<&'static str>,
    list_date: Option<NaiveDate>,
    etf: Option<EtfInfo>,
    /// First trading day on which the symbol is in the table (1 for the initial universe).
    listed_day: u32,
    /// First trading day on which it is inactive ([`NEVER`] if never; 1 = inactive from start).
    delist_day: u32,
    shares0: i64,
    shares_null: bool,
    cap_mode: CapMode,
    /// (day, shares from that day on), increasing days.
    share_events: Vec<(u32, i64)>,
    /// (day, sector, industry from that day on), increasing days.
    reclass: Vec<(u32, Option<&'static str>, Option<&'static str>)>,
    price0: f64,
    sigma: f64,
    turnover: f64,
    role: Role,
    has_bars: bool,
    /// Share the price path of another entity (case/whitespace duplicates).
    path_src: Option<usize>,
    path_off: usize,
    path_first: u32,
}

impl Entity {
    fn new(ticker: String, kind: &'static str) -> Entity {
        Entity {
            ticker,
            name: None,
            kind: Some(kind),
            exchange: Some("XNAS"),
            market: Some("stocks"),
            sector: None,
            industry: None,
            list_date: None,
            etf: None,
            listed_day: 1,
            delist_day: NEVER,
            shares0: 1,
            shares_null: false,
            cap_mode: CapMode::Computed,
            share_events: Vec::new(),
            reclass: Vec::new(),
            price0: 10.0,
            sigma: 0.017,
            turnover: 0.005,
            role: Role::Generic,
            has_bars: true,
            path_src: None,
            path_off: 0,
            path_first: 0,
        }
    }

    fn is_cs(&self) -> bool {
        self.kind == Some("CS")
    }

    fn active_on(&self, day: u32) -> bool {
        self.listed_day <= day && day < self.delist_day
    }

    fn shares_on(&self, day: u32) -> i64 {
        self.share_events
            .iter()
            .rev()
            .find(|(d, _)| *d <= day)
            .map_or(self.shares0, |&(_, s)| s)
    }

    fn class_on(&self, day: u32) -> (Option<&'static str>, Option<&'static str>) {
        self.reclass
            .iter()
            .rev()
            .find(|(d, _, _)| *d <= day)
            .map_or((self.sector, self.industry), |&(_, s, i)| (s, i))
    }
}

/// A generated market: a `symbols` table that evolves over `days` trading days and the daily
/// bars of every listed, active symbol. Build it with [`SyntheticMarket::generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticMarket {
    days: usize,
    seed: u64,
    entities: Vec<Entity>,
    /// Entity indices sorted by ticker.
    order: Vec<usize>,
    /// Unrounded closes, per entity from `path_first` to `days` inclusive.
    closes: Vec<f64>,
}

impl SyntheticMarket {
    /// Generates the market for `params`. Pure and deterministic: equal parameters give equal
    /// markets.
    pub fn generate(params: &FixtureParams) -> SyntheticMarket {
        Builder::new(params).build()
    }

    /// Number of trading days; days are numbered `1..=days()`.
    pub fn days(&self) -> usize {
        self.days
    }

    /// Calendar date of trading day `day`: weekdays only, day 1 is Monday 2026-01-05 (no
    /// exchange holidays).
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn date_of_day(&self, day: usize) -> NaiveDate {
        self.check_day(day);
        trading_date(day)
    }

    /// The `symbols` table as it looks after day `day`'s events, sorted by symbol (byte order).
    ///
    /// Symbols listed on a later day are absent; delisted ones stay with `active = false`.
    /// `market_cap` is the day's share count times the previous trading day's close (vendors
    /// lag by a day); NULL, zero, negative or absurd where the row is meant to be dirty.
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn symbols_as_of_day(&self, day: usize) -> Vec<SymbolRow> {
        self.check_day(day);
        let d = day as u32;
        let mut rows = Vec::with_capacity(self.entities.len());
        for &i in &self.order {
            let e = &self.entities[i];
            if e.listed_day > d {
                continue;
            }
            let shares = e.shares_on(d);
            // Price the vendor saw: previous close, frozen at the last close before delisting.
            let price_day = d.min(e.delist_day).max(self.path_first(i) + 1) - 1;
            let price = round4(self.close(i, price_day));
            let market_cap = match e.cap_mode {
                CapMode::Computed => Some((shares as f64 * price).round() as i64),
                CapMode::Null => None,
                CapMode::Fixed(v) => Some(v),
            };
            let (sector, industry) = e.class_on(d);
            let aum_millions = e.etf.as_ref().map(|etf| {
                let first = self.close(i, self.path_first(i));
                round2(etf.aum0 * price / first)
            });
            rows.push(SymbolRow {
                symbol: e.ticker.clone(),
                name: e.name.clone(),
                kind: e.kind.map(str::to_string),
                active: Some(e.active_on(d)),
                market_cap,
                weighted_shares_outstanding: if e.shares_null { None } else { Some(shares) },
                primary_exchange: e.exchange.map(str::to_string),
                market: e.market.map(str::to_string),
                sector: sector.map(str::to_string),
                industry: industry.map(str::to_string),
                list_date: e.list_date,
                etf_type: e.etf.as_ref().map(|x| x.etf_type.to_string()),
                issuer: e.etf.as_ref().map(|x| x.issuer.to_string()),
                aum_millions,
            });
        }
        rows
    }

    /// The `ohlcv_daily` rows of day `day` only, sorted by symbol (byte order).
    ///
    /// Only symbols listed on or before `day` and still active have bars; about 0.2% of them
    /// randomly have none (missing closes). OHLC are consistent (`low ≤ open, close ≤ high`),
    /// positive and rounded to 4 decimals; volume is positive.
    ///
    /// # Panics
    /// If `day` is 0 or greater than [`days`](Self::days).
    pub fn bars_for_day(&self, day: usize) -> Vec<DailyBar> {
        self.check_day(day);
        let d = day as u32;
        let date = trading_date(day);
        let miss_seed = sub_seed(self.seed, SEED_MISSING);
        let bar_seed = sub_seed(self.seed, SEED_BARS);
        let mut bars = Vec::with_capacity(self.entities.len());
        for &i in &self.order {
            let e = &self.entities[i];
            if !e.has_bars || !e.active_on(d) {
                continue;
            }
            if e.role == Role::Generic
                && d != e.listed_day
                && mix3(miss_seed, i as u64, d as u64) % 1_000_000 < MISSING_PER_MILLION
            {
                continue;
            }
            let prev = self.close(i, d - 1);
            let close_raw = self.close(i, d);
            let ret = (close_raw / prev).ln();
            let mut noise = SplitMix(mix3(bar_seed, i as u64, d as u64));
            let sigma = e.sigma;
            let gap = if ret.abs() > 0.08 {
                ret * 0.8 * noise.unit()
            } else {
                0.0
            };
            let open_raw = prev * (gap + 0.4 * sigma * noise.normal()).exp();
            let high_raw = open_raw.max(close_raw) * (0.5 * sigma * noise.normal()).abs().exp();
            let low_raw = open_raw.min(close_raw) * (-(0.5 * sigma * noise.normal()).abs()).exp();
            let open = round4(open_raw).max(0.0001);
            let close = round4(close_raw).max(0.0001);
            let high = round4(high_raw).max(open).max(close);
            let low = round4(low_raw).max(0.0001).min(open).min(close);
            let base_shares = match &e.etf {
                Some(etf) if e.shares_null || e.cap_mode != CapMode::Computed => {
                    etf.aum0 * 1e6 / e.price0
                }
                _ => e.shares_on(d) as f64,
            };
            let boost = if ret.abs() > 0.08 { 4.0 } else { 1.0 };
            let volume = (base_shares * e.turnover * boost * (0.4 * noise.normal()).exp())
                .clamp(100.0, 5e11)
                .round() as i64;
            bars.push(DailyBar {
                symbol: e.ticker.clone(),
                date,
                open,
                high,
                low,
                close,
                volume,
            });
        }
        bars
    }

    fn check_day(&self, day: usize) {
        assert!(
            day >= 1 && day <= self.days,
            "trading day {day} out of range 1..={}",
            self.days
        );
    }

    fn path_first(&self, i: usize) -> u32 {
        let src = self.entities[i].path_src.unwrap_or(i);
        self.entities[src].path_first
    }

    /// Unrounded close of entity `i` on day `d` (day `path_first` is the pre-listing price).
    fn close(&self, i: usize, d: u32) -> f64 {
        let src = self.entities[i].path_src.unwrap_or(i);
        let e = &self.entities[src];
        self.closes[e.path_off + (d - e.path_first) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

struct Builder<'a> {
    p: &'a FixtureParams,
    used: HashSet<String>,
    ticker_rng: ChaCha8Rng,
    entities: Vec<Entity>,
    day1: NaiveDate,
}

impl<'a> Builder<'a> {
    fn new(p: &'a FixtureParams) -> Self {
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

    fn build(mut self) -> SyntheticMarket {
        self.stocks();
        self.etfs();
        self.extras();
        self.events();
        if self.p.nasty {
            self.nasty();
        }
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
    fn fresh_ticker(&mut self, suffix: &str) -> String {
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
    fn old_list_date(&self, rng: &mut ChaCha8Rng) -> NaiveDate {
        let u: f64 = 1.0 - rng.random::<f64>();
        let days_ago = (45.0 + -u.ln() * 3500.0).min(19_000.0) as i64;
        back_to_weekday(self.day1 - Duration::days(days_ago))
    }

    /// Recent listing date: within the 30 calendar days before day 1.
    fn recent_list_date(&self, rng: &mut ChaCha8Rng) -> NaiveDate {
        back_to_weekday(self.day1 - Duration::days(rng.random_range(1..=28)))
    }

    /// A generic common stock (or other equity kind) of the given cap.
    fn generic_stock(&mut self, rng: &mut ChaCha8Rng, cap: f64, kind: &'static str) -> Entity {
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

    fn generic_etf(&mut self, rng: &mut ChaCha8Rng, aum: f64) -> Entity {
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

    fn stocks(&mut self) {
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

    fn etfs(&mut self) {
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
    fn extras(&mut self) {
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

    /// Listings, delistings, reclassifications and share-count changes on days 2..=days.
    fn events(&mut self) {
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
    fn nasty(&mut self) {
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

    /// Price paths: per-entity normal log-returns, then large movers aimed at band boundaries.
    fn paths(&mut self) -> Vec<f64> {
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

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Date of trading day `day` (day 0 is the Friday before day 1).
fn trading_date(day: usize) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(2026, 1, 5).expect("valid date");
    if day == 0 {
        return start - Duration::days(3);
    }
    let off = (day - 1) as i64;
    start + Duration::days(off / 5 * 7 + off % 5)
}

fn back_to_weekday(mut d: NaiveDate) -> NaiveDate {
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d -= Duration::days(1);
    }
    d
}

/// Market cap at rank fraction `q` (0 = largest, 1 = smallest).
fn cap_at(q: f64) -> f64 {
    interp_log(CAP_KNOTS, q)
}

/// AUM ($M) of a generated ETF at rank fraction `q`.
fn etf_aum_at(q: f64) -> f64 {
    interp_log(
        &[
            (0.0, 50_000.0),
            (0.05, 5_000.0),
            (0.3, 800.0),
            (0.7, 100.0),
            (1.0, 2.0),
        ],
        q,
    )
}

fn interp_log(knots: &[(f64, f64)], q: f64) -> f64 {
    let q = q.clamp(0.0, 1.0);
    for w in knots.windows(2) {
        let ((q0, v0), (q1, v1)) = (w[0], w[1]);
        if q <= q1 {
            let t = (q - q0) / (q1 - q0);
            return (v0.ln() + t * (v1.ln() - v0.ln())).exp();
        }
    }
    knots[knots.len() - 1].1
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// An ASCII company name of exactly `len` characters.
fn long_name(len: usize) -> String {
    let mut s = String::from("Consolidated");
    let words = [
        "International",
        "Amalgamated",
        "Universal",
        "Diversified",
        "Holdings",
    ];
    let mut k = 0;
    while s.len() < len {
        s.push(' ');
        s.push_str(words[k % words.len()]);
        k += 1;
    }
    s.truncate(len);
    if s.ends_with(' ') {
        s.pop();
        s.push('X');
    }
    s
}

/// Events per day for a mean rate `m`: Bernoulli below 1, otherwise uniform around `m`.
fn count_for(rng: &mut ChaCha8Rng, m: f64) -> usize {
    if m <= 0.0 {
        0
    } else if m < 1.0 {
        usize::from(rng.random_bool(m))
    } else {
        rng.random_range((0.5 * m).floor() as usize..=(1.5 * m).ceil() as usize)
    }
}

fn pick_weighted(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn pick_weighted_by<T>(rng: &mut ChaCha8Rng, items: &[T], w: impl Fn(&T) -> u32) -> usize {
    let weights: Vec<u32> = items.iter().map(w).collect();
    pick_weighted(rng, &weights)
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn sub_seed(seed: u64, purpose: u64) -> u64 {
    splitmix64(seed ^ splitmix64(purpose.wrapping_mul(0x2545_F491_4F6C_DD1D)))
}

fn rng_for(seed: u64, purpose: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, purpose))
}

fn mix3(a: u64, b: u64, c: u64) -> u64 {
    splitmix64(
        splitmix64(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            ^ c.wrapping_mul(0xD6E8_FEB8_6659_FD93),
    )
}

/// Cheap stateless noise for per-bar details (open/high/low/volume).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::OnceLock;

    fn default_market() -> &'static SyntheticMarket {
        static M: OnceLock<SyntheticMarket> = OnceLock::new();
        M.get_or_init(|| SyntheticMarket::generate(&FixtureParams::default()))
    }

    fn nasty_market() -> &'static SyntheticMarket {
        static M: OnceLock<SyntheticMarket> = OnceLock::new();
        M.get_or_init(|| {
            SyntheticMarket::generate(&FixtureParams {
                nasty: true,
                ..Default::default()
            })
        })
    }

    fn active_cs(rows: &[SymbolRow]) -> impl Iterator<Item = &SymbolRow> {
        rows.iter()
            .filter(|r| r.kind.as_deref() == Some("CS") && r.active == Some(true))
    }

    fn count_caps_at_least(rows: &[SymbolRow], floor: i64) -> usize {
        active_cs(rows)
            .filter(|r| r.market_cap.is_some_and(|c| c >= floor))
            .count()
    }

    #[test]
    fn the_same_params_generate_the_same_market() {
        let p = FixtureParams {
            stocks: 800,
            etfs: 120,
            days: 6,
            seed: 7,
            nasty: true,
        };
        let a = SyntheticMarket::generate(&p);
        let b = SyntheticMarket::generate(&p);
        assert_eq!(a, b);
        for d in 1..=a.days() {
            assert_eq!(a.symbols_as_of_day(d), b.symbols_as_of_day(d));
            assert_eq!(a.bars_for_day(d), b.bars_for_day(d));
        }
        let c = SyntheticMarket::generate(&FixtureParams { seed: 8, ..p });
        assert_ne!(a.symbols_as_of_day(1), c.symbols_as_of_day(1));
    }

    #[test]
    fn day_one_has_exactly_the_requested_active_stocks_and_etfs() {
        let m = default_market();
        let rows = m.symbols_as_of_day(1);
        assert_eq!(active_cs(&rows).count(), 5000);
        let etfs = rows
            .iter()
            .filter(|r| r.kind.as_deref() == Some("ETF") && r.active == Some(true));
        assert_eq!(etfs.count(), 800);
    }

    #[test]
    fn market_caps_follow_a_heavy_tailed_distribution() {
        let rows = default_market().symbols_as_of_day(1);
        let trillion = count_caps_at_least(&rows, 1_000_000_000_000);
        let large = count_caps_at_least(&rows, 200_000_000_000);
        let mid = count_caps_at_least(&rows, 10_000_000_000);
        let micro = active_cs(&rows)
            .filter(|r| r.market_cap.is_some_and(|c| c < 50_000_000))
            .count();
        assert!((2..=8).contains(&trillion), "{trillion} above $1T");
        assert!((35..=70).contains(&large), "{large} above $200B");
        assert!((450..=800).contains(&mid), "{mid} above $10B");
        assert!(micro >= 100, "{micro} below $50M");
        let smallest = active_cs(&rows).filter_map(|r| r.market_cap).min().unwrap();
        assert!(smallest < 10_000_000, "smallest cap {smallest}");
    }

    #[test]
    fn smaller_and_larger_markets_keep_the_shape() {
        let m = SyntheticMarket::generate(&FixtureParams {
            stocks: 500,
            etfs: 30,
            days: 2,
            ..Default::default()
        });
        let rows = m.symbols_as_of_day(1);
        assert!(count_caps_at_least(&rows, 1_000_000_000_000) >= 2);
        let mid = count_caps_at_least(&rows, 10_000_000_000);
        assert!((40..=80).contains(&mid), "{mid} above $10B of 500");
        let m = SyntheticMarket::generate(&FixtureParams {
            stocks: 100,
            etfs: 10,
            days: 3,
            ..Default::default()
        });
        assert_eq!(active_cs(&m.symbols_as_of_day(1)).count(), 100);
    }

    #[test]
    fn market_cap_is_shares_times_the_previous_close() {
        let m = default_market();
        let d = 5;
        let rows = m.symbols_as_of_day(d);
        let prev: BTreeMap<String, f64> = m
            .bars_for_day(d - 1)
            .into_iter()
            .map(|b| (b.symbol, b.close))
            .collect();
        let mut checked = 0;
        for r in active_cs(&rows) {
            if let (Some(cap), Some(shares), Some(close)) = (
                r.market_cap,
                r.weighted_shares_outstanding,
                prev.get(&r.symbol),
            ) {
                let expect = shares as f64 * close;
                assert!(
                    (cap as f64 - expect).abs() <= 1.0 + expect * 1e-12,
                    "{}",
                    r.symbol
                );
                checked += 1;
            }
        }
        assert!(checked > 4500);
    }

    #[test]
    fn essential_etf_and_theme_tickers_are_present_and_active() {
        let rows = default_market().symbols_as_of_day(1);
        let by: BTreeMap<&str, &SymbolRow> = rows.iter().map(|r| (r.symbol.as_str(), r)).collect();
        for t in "SPY QQQ IWM VTI VUG VTV MTUM VGT XLK XLF XLV XLE XLI XLP XLY AGG BND VEA EEM IEFA"
            .split(' ')
        {
            let r = by[t];
            assert_eq!(
                (r.kind.as_deref(), r.active),
                (Some("ETF"), Some(true)),
                "{t}"
            );
            assert!(
                r.etf_type.is_some() && r.issuer.is_some() && r.aum_millions.is_some(),
                "{t}"
            );
        }
        for t in "NVDA GOOGL MSFT AMD MRNA GILD BIIB AMGN CRM SNOW AMZN COIN RIOT MARA SQ AAPL META BRK.B BF-B F T C"
            .split(' ')
        {
            let r = by[t];
            assert_eq!((r.kind.as_deref(), r.active), (Some("CS"), Some(true)), "{t}");
            assert!(r.sector.is_some() && r.industry.is_some() && r.market_cap.is_some(), "{t}");
        }
        assert_eq!(by["SPY"].name.as_deref(), Some("SPDR S&P 500 ETF Trust"));
        let m = default_market();
        for d in 1..=m.days() {
            let bars: BTreeSet<String> = m.bars_for_day(d).into_iter().map(|b| b.symbol).collect();
            for t in ["SPY", "QQQ", "NVDA", "MSFT", "AAPL", "BRK.B"] {
                assert!(bars.contains(t), "{t} has no bar on day {d}");
            }
        }
    }

    #[test]
    fn etf_names_cover_the_category_patterns() {
        let rows = default_market().symbols_as_of_day(1);
        let names: Vec<&str> = rows
            .iter()
            .filter(|r| r.kind.as_deref() == Some("ETF"))
            .filter_map(|r| r.name.as_deref())
            .collect();
        for pat in [
            "S&P 500",
            "Total Stock Market",
            "Total Market",
            "Russell",
            "SPDR",
            "Core",
            "Growth",
            "Value",
            "Technology",
            "Information Technology",
            "Tech",
            "Bond",
            "Aggregate",
            "International",
            "Emerging Markets",
            "EAFE",
            "Developed Markets",
            "Momentum",
            "Quality",
            "Min Vol",
            "Low Vol",
            "Factor",
        ] {
            assert!(
                names.iter().any(|n| n.contains(pat)),
                "no ETF name contains {pat:?}"
            );
        }
        let with_shares = rows
            .iter()
            .filter(|r| r.kind.as_deref() == Some("ETF") && r.weighted_shares_outstanding.is_some())
            .count();
        assert!(
            with_shares > 20 && with_shares < 300,
            "{with_shares} ETFs with shares"
        );
    }

    #[test]
    fn sectors_and_industries_are_realistic_and_uneven() {
        let rows = default_market().symbols_as_of_day(1);
        let mut sectors: BTreeMap<&str, usize> = BTreeMap::new();
        let mut industries: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for r in active_cs(&rows) {
            if let Some(s) = r.sector.as_deref() {
                *sectors.entry(s).or_default() += 1;
                if let Some(i) = r.industry.as_deref() {
                    industries.entry(s).or_default().insert(i);
                }
            }
        }
        assert_eq!(sectors.len(), 11);
        assert!(sectors["Technology"] > 4 * sectors["Utilities"]);
        assert!(sectors["Healthcare"] > 4 * sectors["Utilities"]);
        for (s, inds) in &industries {
            assert!(
                (4..=8).contains(&inds.len()),
                "{s} has {} industries",
                inds.len()
            );
        }
        assert!(industries["Energy"].contains("Oil & Gas E&P"));
        let null_sector = active_cs(&rows).filter(|r| r.sector.is_none()).count();
        assert!(
            (5..=100).contains(&null_sector),
            "{null_sector} with NULL sector"
        );
        let null_cap = active_cs(&rows).filter(|r| r.market_cap.is_none()).count();
        assert!(null_cap >= 10, "{null_cap} with NULL cap");
        let null_shares = active_cs(&rows)
            .filter(|r| r.weighted_shares_outstanding.is_none())
            .count();
        assert!(null_shares >= 30, "{null_shares} with NULL shares");
        let inactive = rows.iter().filter(|r| r.active == Some(false)).count();
        assert!((50..=200).contains(&inactive), "{inactive} inactive");
        for k in ["ADRC", "PFD", "WARRANT"] {
            assert!(rows.iter().any(|r| r.kind.as_deref() == Some(k)), "no {k}");
        }
        assert!(rows
            .iter()
            .any(|r| r.name.as_deref().is_some_and(|n| !n.is_ascii())));
    }

    #[test]
    fn recent_listings_exist_before_day_one() {
        let m = default_market();
        let day1 = m.date_of_day(1);
        let rows = m.symbols_as_of_day(1);
        let recent = |kind: &str| {
            rows.iter()
                .filter(|r| r.kind.as_deref() == Some(kind))
                .filter(|r| {
                    r.list_date
                        .is_some_and(|d| d < day1 && d >= day1 - Duration::days(30))
                })
                .count()
        };
        assert!(
            (8..=25).contains(&recent("CS")),
            "{} recent CS",
            recent("CS")
        );
        assert!(recent("ETF") >= 1);
    }

    #[test]
    fn tickers_are_unique_every_day() {
        let m = nasty_market();
        for d in 1..=m.days() {
            let rows = m.symbols_as_of_day(d);
            let set: BTreeSet<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
            assert_eq!(set.len(), rows.len(), "day {d}");
            assert!(
                rows.windows(2).all(|w| w[0].symbol < w[1].symbol),
                "sorted on day {d}"
            );
            let bars = m.bars_for_day(d);
            assert!(
                bars.windows(2).all(|w| w[0].symbol < w[1].symbol),
                "bars sorted on day {d}"
            );
        }
        let clean = default_market().symbols_as_of_day(1);
        for r in &clean {
            let plain = r.symbol.chars().all(|c| c.is_ascii_uppercase());
            assert!(
                plain || r.symbol == "BRK.B" || r.symbol == "BF-B",
                "{:?}",
                r.symbol
            );
            assert!((1..=5).contains(&r.symbol.len()));
        }
    }

    #[test]
    fn strings_fit_the_column_limits() {
        let m = nasty_market();
        let fits = |s: &Option<String>, n: usize| s.as_ref().is_none_or(|s| s.chars().count() <= n);
        for d in [1, m.days()] {
            for r in m.symbols_as_of_day(d) {
                assert!(r.symbol.chars().count() <= 20, "{:?}", r.symbol);
                assert!(fits(&r.name, 100), "{:?}", r.name);
                assert!(
                    fits(&r.sector, 50) && fits(&r.industry, 100),
                    "{:?}",
                    r.symbol
                );
                assert!(
                    fits(&r.etf_type, 50) && fits(&r.issuer, 100),
                    "{:?}",
                    r.symbol
                );
                assert!(
                    fits(&r.kind, 20) && fits(&r.primary_exchange, 20),
                    "{:?}",
                    r.symbol
                );
            }
        }
    }

    #[test]
    fn listings_and_delistings_happen_over_thirty_days() {
        let m = default_market();
        let (mut listed, mut delisted) = (0, 0);
        let mut prev = m.symbols_as_of_day(1);
        for d in 2..=m.days() {
            let rows = m.symbols_as_of_day(d);
            let before: BTreeMap<&str, &SymbolRow> =
                prev.iter().map(|r| (r.symbol.as_str(), r)).collect();
            let bars: BTreeSet<String> = m.bars_for_day(d).into_iter().map(|b| b.symbol).collect();
            let prev_bars: BTreeSet<String> = m
                .bars_for_day(d - 1)
                .into_iter()
                .map(|b| b.symbol)
                .collect();
            for r in &rows {
                match before.get(r.symbol.as_str()) {
                    None => {
                        listed += 1;
                        assert_eq!(r.list_date, Some(m.date_of_day(d)));
                        assert_eq!(r.active, Some(true));
                        assert!(
                            bars.contains(&r.symbol),
                            "{} has no listing-day bar",
                            r.symbol
                        );
                        assert!(!prev_bars.contains(&r.symbol));
                    }
                    Some(old) if old.active == Some(true) && r.active == Some(false) => {
                        delisted += 1;
                        assert!(!bars.contains(&r.symbol));
                    }
                    Some(old) => assert!(!(old.active == Some(false) && r.active == Some(true))),
                }
            }
            assert!(rows.len() >= prev.len());
            prev = rows;
        }
        assert!((29..=90).contains(&listed), "{listed} listings");
        assert!((10..=60).contains(&delisted), "{delisted} delistings");
    }

    #[test]
    fn reclassifications_and_share_changes_happen() {
        let m = default_market();
        let first = m.symbols_as_of_day(1);
        let last = m.symbols_as_of_day(m.days());
        let last_by: BTreeMap<&str, &SymbolRow> =
            last.iter().map(|r| (r.symbol.as_str(), r)).collect();
        let (mut reclassed, mut reshared) = (0, 0);
        for r in &first {
            let l = last_by[r.symbol.as_str()];
            reclassed += usize::from((&r.sector, &r.industry) != (&l.sector, &l.industry));
            reshared += usize::from(r.weighted_shares_outstanding != l.weighted_shares_outstanding);
        }
        assert!((5..=30).contains(&reclassed), "{reclassed} reclassified");
        assert!((25..=90).contains(&reshared), "{reshared} share changes");
    }

    #[test]
    fn bars_are_consistent_and_some_stocks_cross_band_boundaries_every_day() {
        let m = default_market();
        let band = |cap: f64| CAP_BOUNDARIES.iter().filter(|&&b| cap >= b).count();
        let shares: BTreeMap<String, i64> = m
            .symbols_as_of_day(1)
            .into_iter()
            .filter(|r| r.kind.as_deref() == Some("CS"))
            .filter_map(|r| Some((r.symbol, r.weighted_shares_outstanding?)))
            .collect();
        let mut prev: BTreeMap<String, usize> = BTreeMap::new();
        let mut big_moves = 0;
        let mut prev_close: BTreeMap<String, f64> = BTreeMap::new();
        for d in 1..=m.days() {
            let bars = m.bars_for_day(d);
            let mut now = BTreeMap::new();
            for b in &bars {
                assert!(
                    b.low > 0.0 && b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close),
                    "{b:?}"
                );
                assert!(b.volume > 0);
                for x in [b.open, b.high, b.low, b.close] {
                    assert_eq!(round4(x), x);
                }
                assert_eq!(b.date, m.date_of_day(d));
                if let Some(s) = shares.get(&b.symbol) {
                    now.insert(b.symbol.clone(), band(*s as f64 * b.close));
                }
                if let Some(p) = prev_close.insert(b.symbol.clone(), b.close) {
                    big_moves += usize::from((b.close / p - 1.0).abs() > 0.095);
                }
            }
            if d > 1 {
                let crossed = now
                    .iter()
                    .filter(|(s, b)| prev.get(*s).is_some_and(|p| p != *b))
                    .count();
                assert!(crossed >= 3, "only {crossed} band crossings on day {d}");
            }
            prev = now;
        }
        assert!(big_moves >= 3 * (m.days() - 1), "{big_moves} large moves");
    }

    #[test]
    fn bars_exist_only_for_listed_and_active_symbols() {
        let m = nasty_market();
        let mut missing = 0usize;
        let mut possible = 0usize;
        for d in 1..=m.days() {
            let rows = m.symbols_as_of_day(d);
            let active: BTreeSet<&str> = rows
                .iter()
                .filter(|r| r.active == Some(true))
                .map(|r| r.symbol.as_str())
                .collect();
            let bars = m.bars_for_day(d);
            for b in &bars {
                assert!(
                    active.contains(b.symbol.as_str()),
                    "bar for {} on day {d}",
                    b.symbol
                );
            }
            possible += active.len();
            missing += active.len() - bars.len();
        }
        // ~0.2% missing closes plus the handful of nasty rows without bars.
        let rate = missing as f64 / possible as f64;
        assert!(rate > 0.0015 && rate < 0.006, "missing rate {rate}");
    }

    #[test]
    fn nasty_mode_only_adds_bad_rows() {
        let clean = default_market();
        let nasty = nasty_market();
        for d in [1, 2, clean.days()] {
            let c = clean.symbols_as_of_day(d);
            let n = nasty.symbols_as_of_day(d);
            let by: BTreeMap<&str, &SymbolRow> = n.iter().map(|r| (r.symbol.as_str(), r)).collect();
            for r in &c {
                assert_eq!(
                    Some(&r),
                    by.get(r.symbol.as_str()),
                    "{} changed on day {d}",
                    r.symbol
                );
            }
            let extra: Vec<&SymbolRow> = n
                .iter()
                .filter(|r| !c.iter().any(|x| x.symbol == r.symbol))
                .collect();
            assert!(extra.len() >= 20);
            assert!(extra.iter().all(|r| r.active == Some(true)));
            let syms: BTreeSet<&str> = extra.iter().map(|r| r.symbol.as_str()).collect();
            for s in ["aapl", " MSFT", "NVDA ", " SPY"] {
                assert!(syms.contains(s), "{s:?}");
            }
            assert!(extra
                .iter()
                .any(|r| r.market_cap == Some(0) && r.weighted_shares_outstanding.is_none()));
            assert!(extra.iter().any(|r| r.market_cap.is_some_and(|c| c < 0)));
            assert!(extra
                .iter()
                .any(|r| r.market_cap.is_some_and(|c| c > 1_000_000_000_000_000)
                    && r.weighted_shares_outstanding.is_none()));
            assert!(extra
                .iter()
                .any(|r| r.market_cap.is_some_and(|c| c > 500_000_000_000_000)
                    && r.weighted_shares_outstanding.is_some()));
            assert!(extra.iter().any(|r| r.name.is_none()));
            assert!(extra
                .iter()
                .any(|r| r.kind.as_deref() == Some("CS") && r.sector.is_none()));
            assert!(extra
                .iter()
                .any(|r| r.name.as_ref().is_some_and(|n| n.len() == 100)));
            let cb = clean.bars_for_day(d);
            let nb = nasty.bars_for_day(d);
            let nb_by: BTreeMap<&str, &DailyBar> =
                nb.iter().map(|b| (b.symbol.as_str(), b)).collect();
            for b in &cb {
                assert_eq!(Some(&b), nb_by.get(b.symbol.as_str()));
            }
            // Some bad CS rows never trade at all.
            let never: Vec<&&SymbolRow> = extra
                .iter()
                .filter(|r| {
                    r.kind.as_deref() == Some("CS") && !nb_by.contains_key(r.symbol.as_str())
                })
                .collect();
            assert!(never.len() >= 3);
        }
    }

    #[test]
    fn calendar_skips_weekends() {
        let m = default_market();
        assert_eq!(
            m.date_of_day(1),
            NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
        );
        assert_eq!(
            m.date_of_day(5),
            NaiveDate::from_ymd_opt(2026, 1, 9).unwrap()
        );
        assert_eq!(
            m.date_of_day(6),
            NaiveDate::from_ymd_opt(2026, 1, 12).unwrap()
        );
        assert_eq!(
            m.date_of_day(30),
            NaiveDate::from_ymd_opt(2026, 2, 13).unwrap()
        );
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn day_zero_panics() {
        default_market().symbols_as_of_day(0);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn a_day_past_the_end_panics() {
        default_market().bars_for_day(31);
    }

    #[test]
    fn a_hundred_thousand_stocks_over_two_days_work() {
        let p = FixtureParams {
            stocks: 100_000,
            etfs: 3000,
            days: 2,
            seed: 1,
            nasty: true,
        };
        let m = SyntheticMarket::generate(&p);
        let rows = m.symbols_as_of_day(2);
        assert!(active_cs(&rows).count() >= 99_900);
        let mid = count_caps_at_least(&m.symbols_as_of_day(1), 10_000_000_000);
        assert!((10_000..=14_000).contains(&mid), "{mid} above $10B");
        assert!(m.bars_for_day(2).len() > 100_000);
    }
}

//! Reference data for listings: the well-known stocks and ETFs, ETF themes and issuers, the
//! market-cap curve, and the sub-seeds of each purpose.

/// Well-known common stocks: (ticker, name, sector, industry, exchange, target cap $B,
/// price, list date). They are placed at the rank whose generated cap is nearest the target.
pub(super) type FamousDef = (
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
pub(super) const FAMOUS: &[FamousDef] = &[
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
pub(super) type FixedEtfDef = (
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
pub(super) const FIXED_ETFS: &[FixedEtfDef] = &[
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
pub(super) const ETF_THEMES: &[(&str, &str, u32, f64)] = &[
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
pub(super) const ETF_ISSUERS: &[(&str, u32, &[&str])] = &[
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

pub(super) const LEVERAGED_ISSUERS: &[&str] = &["ProShares", "Direxion"];

/// Market-cap curve knots: (rank fraction, cap in $), log-linear in between.
pub(super) const CAP_KNOTS: &[(f64, f64)] = &[
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
pub(super) const CAP_BOUNDARIES: &[f64] = &[2.0e11, 1.0e10, 2.0e9, 3.0e8, 5.0e7];

/// Per-purpose sub-seed tags.
pub(super) const SEED_CAPS: u64 = 1;
pub(super) const SEED_STOCKS: u64 = 2;
pub(super) const SEED_ETFS: u64 = 3;
pub(super) const SEED_EXTRAS: u64 = 4;
pub(super) const SEED_EVENTS: u64 = 5;
pub(super) const SEED_NASTY: u64 = 6;
pub(super) const SEED_PATHS: u64 = 7;
pub(super) const SEED_MOVERS: u64 = 8;
pub(super) const SEED_MISSING: u64 = 9;
pub(super) const SEED_BARS: u64 = 10;
pub(super) const SEED_TICKERS: u64 = 11;
pub(super) const SEED_HISTORY: u64 = 12;
pub(super) const SEED_RENAMES: u64 = 13;
pub(super) const SEED_IDENTITY: u64 = 14;

/// Probability that an unprotected active symbol has no bar on a given day.
pub(super) const MISSING_PER_MILLION: u64 = 2_000;

pub(super) const NEVER: u32 = u32::MAX;

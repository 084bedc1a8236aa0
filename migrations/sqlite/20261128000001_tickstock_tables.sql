-- The TickStock tables the job reads and writes (SPEC §2), SQLite dialect for the embedded store.
-- Created only when absent. Times are text: `timestamp` columns hold UTC as
-- 'YYYY-MM-DD HH:MM:SS.ffffff', dates 'YYYY-MM-DD'. JSON values are text (canonical serde_json).

create table if not exists symbols (
    symbol varchar(20) primary key,
    name varchar(100),
    type varchar(20),
    active boolean,
    market_cap bigint,
    weighted_shares_outstanding bigint,
    primary_exchange varchar(20),
    market varchar(20),
    sector varchar(50),
    industry varchar(100),
    list_date date,
    etf_type varchar(50),
    issuer varchar(100),
    -- real, not numeric: numeric affinity would turn 2.0 into the integer 2.
    aum_millions real
);

-- (symbol, date) as the key: the job reads each symbol's latest close on or before the as-of
-- date through it.
create table if not exists ohlcv_daily (
    symbol varchar(20) not null,
    date date not null,
    open real,
    high real,
    low real,
    close real,
    volume bigint,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (symbol, date)
);

-- The four-column identity as the unique constraint (SPEC §2).
create table if not exists cache_entries (
    id integer primary key autoincrement,
    type varchar(50) not null,
    name varchar(100) not null,
    key varchar(100) not null,
    value text not null check (json_valid(value)),
    environment varchar(20) not null default 'DEFAULT',
    created_at timestamp not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    updated_at timestamp not null default (strftime('%Y-%m-%d %H:%M:%f', 'now')),
    constraint cache_entries_type_name_key_environment_key unique (type, name, key, environment)
);

-- The TickStock tables the job reads and writes (SPEC §2), created only when absent so this
-- applies cleanly to a production database that already has them. Nothing here alters an
-- existing table: production tables may carry extra columns and other constraints.

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
    aum_millions numeric
);

-- (symbol, date) as the key: the job reads each symbol's latest close on or before the as-of
-- date through it.
create table if not exists ohlcv_daily (
    symbol varchar(20) not null,
    date date not null,
    open numeric,
    high numeric,
    low numeric,
    close numeric,
    volume bigint,
    created_at timestamptz not null default now(),
    primary key (symbol, date)
);

-- Fresh databases get the four-column identity as their unique constraint; the documented
-- production constraint (type, key, environment) cannot hold the theme rows (SPEC §2).
create table if not exists cache_entries (
    id serial primary key,
    type varchar(50) not null,
    name varchar(100) not null,
    key varchar(100) not null,
    value jsonb not null,
    environment varchar(20) not null default 'DEFAULT',
    created_at timestamp not null default now(),
    updated_at timestamp not null default now(),
    constraint cache_entries_type_name_key_environment_key unique (type, name, key, environment)
);

-- A pre-existing ohlcv_daily without an index led by (symbol, date) would turn the latest-close
-- lookup into a scan; add one only when no such index exists.
do $$
begin
    if not exists (
        select 1
        from pg_index x
        join pg_attribute a1 on a1.attrelid = x.indrelid and a1.attnum = x.indkey[0]
        join pg_attribute a2 on a2.attrelid = x.indrelid and a2.attnum = x.indkey[1]
        where x.indrelid = 'ohlcv_daily'::regclass
          and a1.attname = 'symbol' and a2.attname = 'date'
    ) then
        create index ohlcv_daily_symbol_date_idx on ohlcv_daily (symbol, date);
    end if;
end
$$;

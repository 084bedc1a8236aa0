-- The job's own tables: the append-only audit log (runs and entry events) and a mutable
-- projection of each entry's latest logged state. Run ids and event seqs are allocated by the
-- writer (max + 1) inside its write transaction; SQLite serializes writers.

create table cache_sync_run (
    run_id integer primary key,
    trigger text not null check (trigger in ('cli', 'api', 'pipeline', 'rollback', 'demo', 'test')),
    families text not null,
    environment text not null,
    as_of date,
    config_hash text not null,
    status text not null check (status in ('completed', 'refused', 'failed')),
    forced boolean not null default 0,
    -- UTC, RFC 3339 with fixed-width microseconds ('…T…\.ffffffZ'): text order is time order.
    started_at text not null,
    finished_at text not null,
    created_count integer not null default 0,
    updated_count integer not null default 0,
    deleted_count integer not null default 0,
    unchanged_count integer not null default 0,
    report text not null,
    error text
);

-- One row per entry delta; see the PostgreSQL migration. The run row is written last in the
-- run's transaction, so the reference is checked at commit.
create table cache_sync_event (
    seq integer primary key,
    run_id bigint not null references cache_sync_run (run_id) deferrable initially deferred,
    environment text not null,
    entry_type text not null,
    entry_name text not null,
    entry_key text not null,
    version integer not null check (version > 0),
    op text not null check (op in ('created', 'updated', 'deleted')),
    family text not null,
    hash_before text,
    hash_after text,
    change text not null,
    recorded_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    unique (environment, entry_type, entry_name, entry_key, version)
);

create index cache_sync_event_run_idx on cache_sync_event (run_id);

-- History is never edited: updates and deletes of the log are refused by the schema (SQLite has
-- no TRUNCATE; a DELETE without WHERE fires the row triggers too).
create trigger cache_sync_run_no_update before update on cache_sync_run
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_run_no_delete before delete on cache_sync_run
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_event_no_update before update on cache_sync_event
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_event_no_delete before delete on cache_sync_event
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;

-- The latest logged state of each entry: a projection of the log, rebuilt from it if lost.
create table cache_sync_entry_head (
    environment text not null,
    entry_type text not null,
    entry_name text not null,
    entry_key text not null,
    version integer not null,
    last_seq bigint not null,
    hash text,
    primary key (environment, entry_type, entry_name, entry_key)
);

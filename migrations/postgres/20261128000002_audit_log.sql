-- The job's own tables: the append-only audit log (runs and entry events) and a mutable
-- projection of each entry's latest logged state.

create table cache_sync_run (
    run_id bigint primary key,
    trigger text not null check (trigger in ('cli', 'api', 'pipeline', 'rollback', 'demo', 'test')),
    families text not null,
    environment text not null,
    as_of date,
    config_hash text not null,
    status text not null check (status in ('completed', 'refused', 'failed')),
    forced boolean not null default false,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    created_count integer not null default 0,
    updated_count integer not null default 0,
    deleted_count integer not null default 0,
    unchanged_count integer not null default 0,
    report jsonb not null,
    error text
);

create sequence cache_sync_run_id_seq owned by cache_sync_run.run_id;

-- One row per entry delta. seq is the global order of the log; version counts the deltas of one
-- entry identity. change holds the member-level patch replay applies (see src/domain/diff.rs).
-- The run row is written last in the run's transaction, so the reference is checked at commit.
create table cache_sync_event (
    seq bigserial primary key,
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
    change jsonb not null,
    recorded_at timestamptz not null default now(),
    unique (environment, entry_type, entry_name, entry_key, version)
);

create index cache_sync_event_run_idx on cache_sync_event (run_id);

-- History is never edited: updates, deletes and truncates of the log are refused by the schema,
-- not only by convention.
create function cache_sync_refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'the cache-sync audit log is append-only (% on %)', tg_op, tg_table_name;
end
$$;

create trigger cache_sync_run_append_only before update or delete on cache_sync_run
    for each row execute function cache_sync_refuse_change();
create trigger cache_sync_run_no_truncate before truncate on cache_sync_run
    for each statement execute function cache_sync_refuse_change();
create trigger cache_sync_event_append_only before update or delete on cache_sync_event
    for each row execute function cache_sync_refuse_change();
create trigger cache_sync_event_no_truncate before truncate on cache_sync_event
    for each statement execute function cache_sync_refuse_change();

-- The latest logged state of each entry: version, hash and seq. Drift detection compares live
-- rows against hash; a projection of the log, rebuilt from it if lost.
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

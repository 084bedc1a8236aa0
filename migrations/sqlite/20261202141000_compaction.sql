-- Compaction: the one sanctioned way events and checkpoints leave the log (see the PostgreSQL
-- migration). The record is append-only like the log it shrinks.
create table cache_sync_compaction (
    id integer primary key,
    environment text not null,
    horizon_run bigint not null references cache_sync_run (run_id),
    horizon_as_of date,
    checkpoint_run bigint not null references cache_sync_run (run_id),
    last_seq bigint not null,
    events_removed bigint not null,
    checkpoints_removed bigint not null,
    bytes_before bigint not null,
    bytes_after bigint not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create index cache_sync_compaction_env_idx on cache_sync_compaction (environment, id);

create trigger cache_sync_compaction_no_update before update on cache_sync_compaction
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_compaction_no_delete before delete on cache_sync_compaction
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;

-- SQLite has no transaction-local settings: a compaction inserts its row here at the start of
-- its transaction and deletes it before committing, so the row exists only inside that
-- transaction (the writer lock keeps any other writer out meanwhile).
create table cache_sync_compaction_permit (
    compaction_id integer primary key references cache_sync_compaction (id)
);

drop trigger cache_sync_event_no_delete;
create trigger cache_sync_event_no_delete before delete on cache_sync_event
when not exists (select 1 from cache_sync_compaction_permit)
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;

-- Checkpoints now hold the folded history, so they are append-only too (see PostgreSQL's).
create trigger cache_sync_checkpoint_no_update before update on cache_sync_checkpoint
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_checkpoint_no_delete before delete on cache_sync_checkpoint
when not exists (select 1 from cache_sync_compaction_permit)
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;

-- Compaction: the one sanctioned way events and checkpoints leave the log. Each compaction
-- folds the log up to the last run before its horizon into a checkpoint, deletes the folded
-- events and superseded checkpoints, and records itself here, in one transaction. The record
-- is append-only like the log it shrinks.
create table cache_sync_compaction (
    id bigserial primary key,
    environment text not null,
    -- The earliest run still replayable; earlier ones are refused, naming it.
    horizon_run bigint not null references cache_sync_run (run_id),
    horizon_as_of date,
    -- The run whose checkpoint holds everything folded.
    checkpoint_run bigint not null references cache_sync_run (run_id),
    -- The highest seq the log had allocated: new events continue after it even when every
    -- event holding it is gone.
    last_seq bigint not null,
    events_removed bigint not null,
    checkpoints_removed bigint not null,
    bytes_before bigint not null,
    bytes_after bigint not null,
    -- The transaction that wrote the row: the log's triggers let only it delete.
    txid bigint not null,
    created_at timestamptz not null default now()
);

create index cache_sync_compaction_env_idx on cache_sync_compaction (environment, id);

create trigger cache_sync_compaction_append_only before update or delete on cache_sync_compaction
    for each row execute function cache_sync_refuse_change();
create trigger cache_sync_compaction_no_truncate before truncate on cache_sync_compaction
    for each statement execute function cache_sync_refuse_change();

-- Deletes pass only inside a compaction: the transaction set cache_sync.compaction (SET LOCAL)
-- to the id of a compaction row it wrote itself. Updates never pass. Per statement, so a
-- compaction deleting a million events checks once.
create function cache_sync_refuse_unless_compacting() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' and exists (
        select 1 from cache_sync_compaction
        where id = nullif(current_setting('cache_sync.compaction', true), '')::bigint
          and txid = txid_current()
    ) then
        return null;
    end if;
    raise exception 'the cache-sync audit log is append-only (% on %)', tg_op, tg_table_name;
end
$$;

drop trigger cache_sync_event_append_only on cache_sync_event;
create trigger cache_sync_event_append_only before update or delete on cache_sync_event
    for each statement execute function cache_sync_refuse_unless_compacting();

-- Checkpoints were derived rows anyone could prune; now they are part of what compaction
-- guarantees (the folded history lives only in its checkpoint), so they are append-only too.
create trigger cache_sync_checkpoint_append_only before update or delete on cache_sync_checkpoint
    for each statement execute function cache_sync_refuse_unless_compacting();
create trigger cache_sync_checkpoint_no_truncate before truncate on cache_sync_checkpoint
    for each statement execute function cache_sync_refuse_change();

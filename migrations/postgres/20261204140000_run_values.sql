-- A run's new member figures, each (ticker, field) once: `{field: {ticker: value}}`. The run's
-- events then hold per list only what differs from them (see src/domain/log_form.rs), instead
-- of the same new market cap in every list a stock is in. Written in the run's transaction
-- before its run row, like its events; part of the log, so append-only, and removed only by a
-- compaction along with the events that need it.
create table cache_sync_run_values (
    run_id bigint primary key references cache_sync_run (run_id) deferrable initially deferred,
    environment text not null,
    member_values json not null
);

create trigger cache_sync_run_values_append_only before update or delete on cache_sync_run_values
    for each statement execute function cache_sync_refuse_unless_compacting();
create trigger cache_sync_run_values_no_truncate before truncate on cache_sync_run_values
    for each statement execute function cache_sync_refuse_change();

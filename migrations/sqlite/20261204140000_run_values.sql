-- A run's new member figures, each (ticker, field) once; see the PostgreSQL migration.
create table cache_sync_run_values (
    run_id bigint primary key references cache_sync_run (run_id) deferrable initially deferred,
    environment text not null,
    member_values text not null
);

create trigger cache_sync_run_values_no_update before update on cache_sync_run_values
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;
create trigger cache_sync_run_values_no_delete before delete on cache_sync_run_values
when not exists (select 1 from cache_sync_compaction_permit)
begin
    select raise(abort, 'the cache-sync audit log is append-only');
end;

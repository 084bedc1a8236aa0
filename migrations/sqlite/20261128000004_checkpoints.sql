-- Checkpoints: the full owned catalog as it stood after a run (see the PostgreSQL migration).
create table cache_sync_checkpoint (
    run_id bigint not null references cache_sync_run (run_id) deferrable initially deferred,
    environment text not null,
    last_seq bigint not null,
    entry_type text not null,
    entry_name text not null,
    entry_key text not null,
    family text not null,
    value text not null,
    hash text not null,
    primary key (environment, run_id, entry_type, entry_name, entry_key)
);

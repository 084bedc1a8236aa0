-- The outbox: change events written in the same transaction as the deltas they report, published
-- after commit by a relay that marks them (see the PostgreSQL migration).
create table cache_sync_outbox (
    outbox_id integer primary key autoincrement,
    run_id bigint not null,
    environment text not null,
    seq bigint,
    channel text not null,
    also_channel text,
    event text not null,
    payload text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    published_at text
);

create index cache_sync_outbox_pending_idx on cache_sync_outbox (outbox_id) where published_at is null;
create index cache_sync_outbox_seq_idx on cache_sync_outbox (seq) where seq is not null;

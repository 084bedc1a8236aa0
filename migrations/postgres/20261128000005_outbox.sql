-- The outbox: change events written in the same transaction as the deltas they report, published
-- to Redis after commit by a relay that marks them. A Redis outage delays events and never loses
-- them; a relay that dies between publishing and marking publishes again (subscribers
-- deduplicate universe events by seq; the stream refuses an id it already holds).
create table cache_sync_outbox (
    outbox_id bigserial primary key,
    run_id bigint not null,
    environment text not null,
    seq bigint,
    channel text not null,
    also_channel text,
    event text not null,
    payload jsonb not null,
    created_at timestamptz not null default now(),
    published_at timestamptz
);

create index cache_sync_outbox_pending_idx on cache_sync_outbox (outbox_id) where published_at is null;
create index cache_sync_outbox_seq_idx on cache_sync_outbox (seq) where seq is not null;

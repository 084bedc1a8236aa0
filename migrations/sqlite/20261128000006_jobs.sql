-- Jobs started through the HTTP API (see the PostgreSQL migration). Times are RFC 3339 UTC text.
create table cache_sync_job (
    job_id text primary key,
    mode text not null,
    force boolean not null,
    triggered_by text not null,
    status text not null check (status in ('pending', 'running', 'completed', 'failed')),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    start_time text,
    end_time text,
    error_details text,
    progress text,
    run_id bigint,
    plan_id text
);

create index cache_sync_job_created_idx on cache_sync_job (created_at desc);

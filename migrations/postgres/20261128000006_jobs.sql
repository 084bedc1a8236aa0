-- Jobs started through the HTTP API: their lifecycle (pending → running → completed | failed),
-- progress and outcome. Mutable, unlike the audit log: a job is a request, the run it produces
-- is the history. A service restart marks jobs it left pending or running as failed.
create table cache_sync_job (
    job_id text primary key,
    mode text not null,
    force boolean not null,
    triggered_by text not null,
    status text not null check (status in ('pending', 'running', 'completed', 'failed')),
    created_at timestamptz not null default now(),
    start_time timestamptz,
    end_time timestamptz,
    error_details text,
    progress jsonb,
    run_id bigint,
    plan_id text
);

create index cache_sync_job_created_idx on cache_sync_job (created_at desc);

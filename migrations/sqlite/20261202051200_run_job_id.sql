-- Each run record names the job that asked for it (an API job id, or the id the command line
-- made up), so a service restarted between a run's commit and its job's update can tell the
-- job committed: the job is settled completed with its run instead of failed.
alter table cache_sync_run add column job_id text;

create index cache_sync_run_job_idx on cache_sync_run (job_id);

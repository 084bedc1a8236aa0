-- The Phase 2 import a pipeline job runs for (`data_import_completed`'s `run_id`). Unique: the
-- same import never runs twice, whether its event is re-published, received by several
-- instances or received again after a restart.
alter table cache_sync_job add column import_run_id text;

create unique index cache_sync_job_import_run_uidx on cache_sync_job (import_run_id);

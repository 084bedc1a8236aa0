-- Each job names the service instance that runs it (a per-process id whose lock the process
-- holds while it lives), so an instance starting or sweeping settles only the jobs of instances
-- that are gone, never a job another live instance is running. Jobs from before this column
-- have no owner and count as abandoned.
alter table cache_sync_job add column owner text;

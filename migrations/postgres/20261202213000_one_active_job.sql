-- At most one job pending or running. The job insert's NOT EXISTS alone is not enough on
-- PostgreSQL: under READ COMMITTED two instances' concurrent inserts both see no active job and
-- both get in (the two-instance test caught it). With this index the second insert fails instead,
-- and the trigger answers 409. Jobs that were already active together when this migration runs
-- are left as the newest one; the others are settled as interrupted first, so the index can be
-- built.
update cache_sync_job
   set status = 'failed',
       end_time = coalesce(end_time, current_timestamp),
       error_details = 'interrupted: settled by the migration that allows one active job at a time'
 where status in ('pending', 'running')
   and job_id <> (select job_id from cache_sync_job
                   where status in ('pending', 'running')
                   order by created_at desc, job_id desc
                   limit 1);

create unique index cache_sync_job_one_active_uidx on cache_sync_job ((true))
    where status in ('pending', 'running');

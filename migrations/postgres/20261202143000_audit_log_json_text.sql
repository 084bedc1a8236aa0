-- The audit log's JSON columns are written once and read back whole; jsonb parsed every byte of
-- every change into a tree on the way in (the largest cost of a run's writes). `json` keeps the
-- text as written, validated, and TOAST-compresses it. History's per-symbol filter casts at
-- query time. `cache_entries.value` stays jsonb: the app queries it.
alter table cache_sync_event alter column change type json using change::json;
alter table cache_sync_checkpoint alter column value type json using value::json;
alter table cache_sync_run alter column report type json using report::json;
alter table cache_sync_outbox alter column payload type json using payload::json;

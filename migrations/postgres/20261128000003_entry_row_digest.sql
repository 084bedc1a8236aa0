-- The row version the job last wrote or checked (`xmin/ctid`: every UPDATE makes a new version
-- with a new transaction id). While a live row is still that version its content is known (the
-- head's hash) and a run need not transfer or re-hash it; any other version is loaded and
-- checked for drift. Freezing, dump/restore or a no-op manual UPDATE only cause a reload.
alter table cache_sync_entry_head add column row_digest text;

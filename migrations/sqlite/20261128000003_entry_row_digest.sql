-- The digest of the row the job last wrote or checked. SQLite has no row version (xmin), so the
-- embedded store's digest is the BLAKE3 hash of the stored value text (src/store/sqlite.rs):
-- equal digests mean the row holds exactly the text the job recorded.
alter table cache_sync_entry_head add column row_digest text;

-- The single-writer lock of the embedded store. A run's transaction starts deferred (plans only
-- read, and WAL readers never wait); `try_lock_writer` writes this one row with no busy wait,
-- which takes SQLite's database write lock for the rest of the transaction, or fails at once
-- with SQLITE_BUSY when another connection holds it.
create table cache_sync_writer_lock (
    id integer primary key check (id = 1),
    taken_at text not null
);

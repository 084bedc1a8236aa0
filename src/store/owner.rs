//! `Owner`: the identity a service instance stamps on the jobs it runs, and the lock that shows
//! other instances it is alive. The lock lives exactly as long as the process (or the `Owner`):
//! PostgreSQL drops a session's advisory locks when the session ends, and the kernel drops a
//! file lock when the process dies, `kill -9` included. So "is the owner alive" is a question
//! about a lock, never about a clock or a heartbeat column that could lie.

use sqlx::PgConnection;
use tokio::sync::Mutex;

/// A live owner: its id and the lock held for it. Dropping it releases the lock.
pub struct Owner {
    id: String,
    pub(super) hold: Mutex<OwnerHold>,
}

/// What keeps an owner's lock held.
pub(super) enum OwnerHold {
    /// A dedicated session holding the advisory lock `(OWNER_LOCK_CLASS, hashtext(id))`.
    Postgres(PgConnection),
    /// The exclusively locked file `<db>-writer-owner-<id>` (`None` for an in-memory
    /// database, which no other process can open).
    Sqlite(#[expect(dead_code, reason = "held for its lock, never read")] Option<std::fs::File>),
}

impl Owner {
    pub(super) fn new(id: String, hold: OwnerHold) -> Self {
        Self {
            id,
            hold: Mutex::new(hold),
        }
    }

    /// A fresh id for this process: unique across processes and restarts, safe in file names.
    #[must_use]
    pub fn new_id() -> String {
        format!("p{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
    }

    /// The id stored in `cache_sync_job.owner`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").field("id", &self.id).finish()
    }
}

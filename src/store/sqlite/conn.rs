//! Connections of SQLite's own threads: settle and the usage import work through `rusqlite`
//! on connections they open themselves, beside the store's sqlx pool.

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// The size SQLite cuts its write-ahead log back to after a checkpoint (`journal_size_limit`),
/// so that between commands of a long run (the daemon) the log stays within it; a single
/// transaction larger than this still grows the log while it runs.
pub(crate) const WAL_LIMIT_BYTES: i64 = 64 << 20;

/// Opens a connection to the database file with the settings of `SqliteStore::connect`, but
/// for `foreign_keys`. Settle's connections do not check them: what a page writes refers to the
/// accounts and packs it read under the same write lock and to the bills it inserted just
/// before. Checking costs a primary-key lookup per row. `verify` checks
/// the same references, and every other connection still enforces them. Temporary data (a
/// statement journal, should one be needed) stays in memory rather than in temporary files.
pub(crate) fn open(file: &Path, foreign_keys: bool) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open the SQLite database {}", file.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", foreign_keys)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "journal_size_limit", WAL_LIMIT_BYTES)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

//! Keys of PostgreSQL advisory locks: which settle holds a month, and which turns recharges,
//! pack imports and `migrate` take. Advisory locks live on the server billrun connects to (on
//! Citus, the coordinator), so every billrun process sees the same ones. Also the table lock
//! imports take.

use sha2::{Digest, Sha256};

/// Keeps other imports (and a rebuild of the usage totals or of an import's kept content) out
/// until commit.
pub const LOCK_IMPORTS_SQL: &str = "LOCK TABLE usage_imports IN SHARE ROW EXCLUSIVE MODE";

/// A stable 64-bit advisory lock key for `name`.
pub fn lock_key(name: &str) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Waits for the turn named `name`, held until the transaction `tx` ends.
pub async fn take_turn(tx: &mut sqlx::PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(name))
        .execute(tx)
        .await?;
    Ok(())
}

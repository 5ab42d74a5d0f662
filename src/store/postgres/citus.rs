//! billrun on Citus: the schema spread over a cluster by account, and the few statements that
//! Citus runs differently from one PostgreSQL server.
//!
//! On a database where the `citus` extension is installed, `migrate` distributes billrun's
//! tables after applying the migrations: every table that grows with the accounts is
//! distributed by `account_id` and co-located with `accounts` (an account's rows, of every
//! table, live in the same shard), the stored bytes of usage imports are distributed by import,
//! and the small tables are reference tables, copied to every node. Every unique key leads with `account_id` (migrations/postgres/0011), so each one is
//! checked inside one shard. Tables already distributed are left alone, so `migrate` stays
//! idempotent; a database without the extension is not touched.
//!
//! Citus refuses `SELECT … FOR UPDATE` over rows of several shards. A settle page locks its
//! accounts with an `UPDATE` that changes nothing (which Citus runs on each shard in turn, and
//! which takes the same row locks), and a webhook deliverer claims deliveries with an `UPDATE`
//! whose condition PostgreSQL checks again once it holds each row, instead of `SKIP LOCKED`.
//! Statements that change rows of several shards run shard after shard, under the row locks
//! alone ([`SESSION_SQL`]).

use anyhow::Context;
use sqlx::{PgPool, Row};

/// The tables that grow with the accounts: distributed by `account_id`, co-located with
/// `accounts` (the first, which the others follow).
pub const DISTRIBUTED: &[&str] = &[
    "accounts",
    "ledger",
    "usage_events",
    "usage_totals",
    "packs",
    "bills",
    "bill_lines",
    "pack_consumption",
    "events",
    "webhook_deliveries",
];

/// The tables that grow with the usage imported rather than with the accounts: distributed by
/// `import_id` in a co-location group of their own (an import's stored chunks on one shard).
pub const BY_IMPORT: &[&str] = &["usage_chunks"];

/// The small tables, read by every page and written by few statements: a copy on every node.
/// `webhook_endpoints` comes before `webhook_subscriptions`, which refers to it.
pub const REFERENCE: &[&str] = &[
    "usage_imports",
    "settled_months",
    "settled_shards",
    "free_grants",
    "runs",
    "settings",
    "webhook_endpoints",
    "webhook_subscriptions",
    "catalog_versions",
    "usage_import_sketches",
];

/// Whether the database billrun is connected to has the `citus` extension.
pub async fn installed(conn: &mut sqlx::PgConnection) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            .fetch_one(conn)
            .await?,
    )
}

/// Set on each of billrun's sessions on Citus.
///
/// - A statement that changes rows of several shards runs on them one after another, in shard
///   order, over one connection per node: so a transaction may write a reference table after
///   it (recording a run, disabling an endpoint), which Citus refuses after a parallel one.
/// - Such a statement takes only the row locks PostgreSQL takes, not Citus' lock on each shard
///   it touches, held to commit. Those shard locks let one multi-shard statement at a time
///   into a shard: the two pages a settle has in flight, which hold disjoint accounts, then
///   wait on each other and deadlock when they take the shards in different orders (measured:
///   the balance updates of two pages). billrun's writers are kept apart by the accounts' row
///   locks, as on one server.
/// - A transaction's `SET LOCAL`s are sent along to the workers' sessions it uses, which
///   otherwise keep the workers' settings: so `verify`'s checks run without JIT on the shards
///   too (`PgStore::check_transaction`).
pub const SESSION_SQL: &[&str] = &[
    "SET citus.multi_shard_modify_mode TO 'sequential'",
    "SET citus.enable_deadlock_prevention TO off",
    "SET citus.propagate_set_commands TO 'local'",
];

/// Distributes every table of [`DISTRIBUTED`] and [`REFERENCE`] that is not yet, one at a time,
/// holding an advisory lock so that two `migrate`s take turns. Rows already in a table are
/// moved into its shards.
pub async fn distribute(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(super::advisory::lock_key("billrun:distribute"))
        .execute(&mut *conn)
        .await?;
    let result = async {
        let mut moved = Vec::new();
        let done: Vec<String> = sqlx::query("SELECT logicalrelid::regclass::text AS t FROM pg_dist_partition")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get("t"))
            .collect::<Result<_, _>>()?;
        for &table in REFERENCE {
            if !done.iter().any(|d| d == table) {
                tracing::info!(table, "making a reference table (a copy on every node)");
                sqlx::query("SELECT create_reference_table($1)")
                    .bind(table)
                    .execute(&mut *conn)
                    .await
                    .with_context(|| format!("making {table} a Citus reference table"))?;
                moved.push(table);
            }
        }
        for &table in DISTRIBUTED {
            if !done.iter().any(|d| d == table) {
                tracing::info!(table, "distributing by account_id, co-located with accounts");
                let colocate = if table == DISTRIBUTED[0] {
                    "default"
                } else {
                    DISTRIBUTED[0]
                };
                sqlx::query("SELECT create_distributed_table($1, 'account_id', colocate_with => $2)")
                    .bind(table)
                    .bind(colocate)
                    .execute(&mut *conn)
                    .await
                    .with_context(|| format!("distributing {table} by account_id with Citus"))?;
                moved.push(table);
            }
        }
        for &table in BY_IMPORT {
            if !done.iter().any(|d| d == table) {
                tracing::info!(table, "distributing by import_id");
                sqlx::query("SELECT create_distributed_table($1, 'import_id', colocate_with => 'none')")
                    .bind(table)
                    .execute(&mut *conn)
                    .await
                    .with_context(|| format!("distributing {table} by import_id with Citus"))?;
                moved.push(table);
            }
        }
        // Once every table is distributed: a foreign key from a table still local would keep
        // the copy of the table it refers to.
        for table in moved {
            drop_local_copy(&mut conn, table).await?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(super::advisory::lock_key("billrun:distribute"))
        .execute(&mut *conn)
        .await;
    result
}

/// Rows a table held when it was distributed are copied into its shards and stay behind in the
/// coordinator's own table, unseen; this empties that copy.
async fn drop_local_copy(conn: &mut sqlx::PgConnection, table: &str) -> anyhow::Result<()> {
    sqlx::query("SELECT truncate_local_data_after_distributing_table($1)")
        .bind(table)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("removing the coordinator's copy of {table} after distributing it"))?;
    Ok(())
}

/// Locks a page's accounts ($1) on Citus, which refuses `FOR UPDATE` across shards: an update
/// that changes nothing takes the same row locks, in each shard in id order.
pub const LOCK_ACCOUNTS_SQL: &str = "UPDATE accounts SET balance_fen = balance_fen WHERE account_id = ANY($1)";

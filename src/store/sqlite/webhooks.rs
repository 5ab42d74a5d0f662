//! Webhook deliveries on SQLite. One writer at a time: a claim is one `BEGIN IMMEDIATE`
//! transaction that picks the due rows and leases them, so two deliverers never claim the same
//! row while its lease lasts. Lists of ids are JSON arrays (`json_each`).

use super::rows::us;
use crate::store::decode::{delivery_view, due_delivery, endpoint_health};
use crate::store::sql::webhooks::*;
use crate::store::webhooks::*;
use crate::store::StoreResult;
use chrono::{DateTime, Utc};
use sqlx::{Connection, SqliteConnection, SqlitePool};

const LIST: List = List::Json;

fn json<T: serde::Serialize>(items: &[T]) -> anyhow::Result<String> {
    Ok(serde_json::to_string(items)?)
}

/// Deliveries, for the endpoints subscribed to them, of the events whose ids are given,
/// recorded at `now`: run in the transaction that inserted the events.
pub(crate) async fn queue_events(tx: &mut SqliteConnection, ids: &[i64], now: DateTime<Utc>) -> anyhow::Result<()> {
    if !ids.is_empty() {
        sqlx::query(&enqueue_events(LIST))
            .bind(us(now))
            .bind(json(ids)?)
            .execute(tx)
            .await?;
    }
    Ok(())
}

/// Deliveries, for the endpoints subscribed to `bill.issued`, of the bills whose ids are given,
/// recorded at `now`: run in the transaction that wrote the bills.
pub(crate) async fn queue_bills(tx: &mut SqliteConnection, ids: &[&str], now: DateTime<Utc>) -> anyhow::Result<()> {
    if !ids.is_empty() {
        sqlx::query(&enqueue_bills(LIST))
            .bind(us(now))
            .bind(json(ids)?)
            .execute(tx)
            .await?;
    }
    Ok(())
}

/// `enqueue_bills` and `enqueue_events_of_bills` for a settle page's bills, through the settle
/// writer's own connection. The subscriptions are the outer loop: with none, nothing else is
/// read.
pub(crate) fn queue_page(conn: &rusqlite::Connection, bill_ids: &[String], now: i64) -> anyhow::Result<()> {
    if bill_ids.is_empty() {
        return Ok(());
    }
    let ids = json(bill_ids)?;
    conn.prepare_cached(&enqueue_bills(LIST))?
        .execute(rusqlite::params![now, ids])?;
    conn.prepare_cached(&enqueue_events_of_bills(LIST))?
        .execute(rusqlite::params![now, ids])?;
    Ok(())
}

pub(crate) async fn register(pool: &SqlitePool, endpoints: &[EndpointRecord], now: DateTime<Utc>) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for e in endpoints {
        sqlx::query(UPSERT_ENDPOINT_SQL)
            .bind(&e.name)
            .bind(&e.url)
            .bind(us(now))
            .execute(&mut *tx)
            .await?;
        let had: Vec<String> = sqlx::query_scalar(SUBSCRIPTIONS_SQL)
            .bind(&e.name)
            .fetch_all(&mut *tx)
            .await?;
        let mut wants: Vec<&str> = e.events.iter().map(|t| t.as_str()).collect();
        wants.sort_unstable();
        if had != wants {
            sqlx::query(UNSUBSCRIBE_SQL).bind(&e.name).execute(&mut *tx).await?;
            for t in wants {
                sqlx::query(SUBSCRIBE_SQL)
                    .bind(t)
                    .bind(&e.name)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn claim(
    pool: &SqlitePool,
    endpoints: &[String],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let ids: Vec<i64> = sqlx::query_scalar(&due(LIST))
        .bind(us(now))
        .bind(json(endpoints)?)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ids = json(&ids)?;
    sqlx::query(
        "UPDATE webhook_deliveries SET lease_until = $2 WHERE delivery_id IN (SELECT value FROM json_each($1))",
    )
    .bind(&ids)
    .bind(us(lease_until))
    .execute(&mut *tx)
    .await?;
    let rows = sqlx::query(&claimed(LIST)).bind(&ids).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.iter().map(due_delivery).collect::<anyhow::Result<_>>()?)
}

pub(crate) async fn record(pool: &SqlitePool, attempts: &[AttemptRecord]) -> StoreResult<()> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for a in attempts {
        let (status, next, delivered) = a.columns();
        sqlx::query(RECORD_ATTEMPT_SQL)
            .bind(us(a.at))
            .bind(a.status.map(i64::from))
            .bind(a.error.as_deref())
            .bind(status)
            .bind(us(next))
            .bind(delivered.map(us))
            .bind(a.delivery_id)
            .bind(&a.account_id)
            .execute(&mut *tx)
            .await?;
        if a.outcome == AttemptOutcome::Gone {
            sqlx::query(DISABLE_ENDPOINT_SQL)
                .bind(us(a.at))
                .bind("the receiver answered 410 Gone")
                .bind(&a.endpoint)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list(pool: &SqlitePool, f: &DeliveryFilter) -> StoreResult<Vec<DeliveryView>> {
    let rows = sqlx::query(DELIVERIES_SQL)
        .bind(f.endpoint.as_deref())
        .bind(f.status.map(|s| s.as_str()))
        .bind(i64::from(f.limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(delivery_view).collect::<anyhow::Result<_>>()?)
}

pub(crate) async fn replay(
    pool: &SqlitePool,
    endpoint: &str,
    which: &Replay,
    now: DateTime<Utc>,
) -> StoreResult<Option<u64>> {
    let (bill, event, since) = which.params();
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let known: i64 = sqlx::query_scalar(ENDPOINT_EXISTS_SQL)
        .bind(endpoint)
        .fetch_one(&mut *tx)
        .await?;
    if known == 0 {
        return Ok(None);
    }
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    if event.is_none() {
        sqlx::query(REPLAY_ADD_BILLS_SQL)
            .bind(endpoint)
            .bind(us(now))
            .bind(bill)
            .bind(us(since.unwrap_or(epoch)))
            .execute(&mut *tx)
            .await?;
    }
    if bill.is_none() {
        sqlx::query(&replay_add_events())
            .bind(endpoint)
            .bind(us(now))
            .bind(event)
            .bind(us(since.unwrap_or(epoch)))
            .execute(&mut *tx)
            .await?;
    }
    let reset = sqlx::query(REPLAY_RESET_SQL)
        .bind(us(now))
        .bind(endpoint)
        .bind(bill)
        .bind(event)
        .bind(us(since.unwrap_or(epoch)))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // Those just added are among those reset: each is counted once.
    Ok(Some(reset))
}

pub(crate) async fn enable(pool: &SqlitePool, endpoint: &str) -> StoreResult<bool> {
    let found = sqlx::query(ENABLE_ENDPOINT_SQL).bind(endpoint).execute(pool).await?;
    Ok(found.rows_affected() > 0)
}

pub(crate) async fn remove(pool: &SqlitePool, endpoint: &str) -> StoreResult<Option<u64>> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query(UNSUBSCRIBE_SQL).bind(endpoint).execute(&mut *tx).await?;
    let dropped = sqlx::query(DROP_PENDING_SQL).bind(endpoint).execute(&mut *tx).await?;
    let removed = sqlx::query(REMOVE_ENDPOINT_SQL)
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
    if removed.rows_affected() == 0 {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(dropped.rows_affected()))
}

pub(crate) async fn next(pool: &SqlitePool, endpoints: &[String]) -> StoreResult<Option<DateTime<Utc>>> {
    let t: Option<i64> = sqlx::query_scalar(&next_due(LIST))
        .bind(json(endpoints)?)
        .fetch_one(pool)
        .await?;
    Ok(t.map(super::rows::at))
}

pub(crate) async fn health(pool: &SqlitePool) -> StoreResult<Vec<EndpointHealth>> {
    let rows = sqlx::query(WEBHOOK_HEALTH_SQL).fetch_all(pool).await?;
    Ok(rows.iter().map(endpoint_health).collect::<anyhow::Result<_>>()?)
}

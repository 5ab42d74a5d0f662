//! Webhook deliveries on PostgreSQL. A claim locks the due rows it picks with
//! `FOR UPDATE SKIP LOCKED` and leases them in the same statement, so deliverers running at
//! once take different rows instead of waiting for each other or sending the same ones. Lists
//! of ids are arrays.

use crate::domain::arrears::EventKind;
use crate::domain::webhook::EventType;
use crate::store::decode::{delivery_view, due_delivery, endpoint_health};
use crate::store::sql::webhooks::*;
use crate::store::webhooks::*;
use crate::store::StoreResult;
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

const LIST: List = List::Array;

/// Deliveries, for the endpoints subscribed to them, of the events whose ids are given,
/// recorded at `now`: run in the transaction that inserted the events.
pub(crate) async fn queue_events(tx: &mut PgConnection, ids: &[i64], now: DateTime<Utc>) -> anyhow::Result<()> {
    if !ids.is_empty() {
        sqlx::query(&enqueue_events(LIST))
            .bind(now)
            .bind(ids)
            .execute(tx)
            .await?;
    }
    Ok(())
}

/// Deliveries, for the endpoints subscribed to them, of a settle page's bills (ids and
/// accounts, in step) and of the events it recorded (id, account, kind), recorded at `now`:
/// written from what the page holds, so nothing is looked up, and nothing is read at all when
/// no endpoint is subscribed.
pub(crate) async fn queue_page(
    tx: &mut PgConnection,
    bill_ids: &[String],
    accounts: &[String],
    events: &[(i64, String, String)],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if !bill_ids.is_empty() {
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, bill_id, created_at, next_attempt_at)
             SELECT s.endpoint, s.event_type, u.acct, u.bill, $1, $1
             FROM webhook_subscriptions s CROSS JOIN UNNEST($2::text[], $3::text[]) AS u(bill, acct)
             WHERE s.event_type = 'bill.issued'",
        )
        .bind(now)
        .bind(bill_ids)
        .bind(accounts)
        .execute(&mut *tx)
        .await?;
    }
    if !events.is_empty() {
        let mut ids = Vec::with_capacity(events.len());
        let mut accounts = Vec::with_capacity(events.len());
        let mut types = Vec::with_capacity(events.len());
        for (id, account, kind) in events {
            let kind = EventKind::parse(kind).with_context(|| format!("an event of kind '{kind}'"))?;
            ids.push(*id);
            accounts.push(account.as_str());
            types.push(EventType::announcing(kind).as_str());
        }
        sqlx::query(
            "INSERT INTO webhook_deliveries (endpoint, event_type, account_id, event_id, created_at, next_attempt_at)
             SELECT s.endpoint, s.event_type, u.acct, u.event, $1, $1
             FROM webhook_subscriptions s
             JOIN UNNEST($2::bigint[], $3::text[], $4::text[]) AS u(event, acct, type) ON s.event_type = u.type",
        )
        .bind(now)
        .bind(&ids)
        .bind(&accounts)
        .bind(&types)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(crate) async fn register(pool: &PgPool, endpoints: &[EndpointRecord], now: DateTime<Utc>) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for e in endpoints {
        sqlx::query(UPSERT_ENDPOINT_SQL)
            .bind(&e.name)
            .bind(&e.url)
            .bind(now)
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

/// Leases up to `limit` due deliveries to this deliverer. On one server the due rows are locked
/// with `SKIP LOCKED`, so deliverers never wait on each other. On Citus, which refuses
/// `FOR UPDATE` across shards, the due rows are picked without a lock and leased by an `UPDATE`
/// that checks again, once it holds each row, that it is still due and unleased: a row another
/// deliverer leased meanwhile is left to it.
pub(crate) async fn claim(
    pool: &PgPool,
    citus: bool,
    endpoints: &[String],
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<DueDelivery>> {
    let mut tx = pool.begin().await?;
    let sql = if citus {
        format!(
            "UPDATE webhook_deliveries w SET lease_until = $4
             WHERE w.delivery_id IN ({})
               AND w.status = 'pending' AND (w.lease_until IS NULL OR w.lease_until <= $1)
             RETURNING w.delivery_id",
            due(LIST)
        )
    } else {
        format!(
            "WITH picked AS ({} FOR UPDATE OF d SKIP LOCKED)
             UPDATE webhook_deliveries w SET lease_until = $4 FROM picked
             WHERE w.delivery_id = picked.delivery_id RETURNING w.delivery_id",
            due(LIST)
        )
    };
    let ids: Vec<i64> = sqlx::query_scalar(&sql)
        .bind(now)
        .bind(endpoints)
        .bind(i64::from(limit))
        .bind(lease_until)
        .fetch_all(&mut *tx)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query(&claimed(LIST)).bind(&ids).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows.iter().map(due_delivery).collect::<anyhow::Result<_>>()?)
}

pub(crate) async fn record(pool: &PgPool, attempts: &[AttemptRecord]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for a in attempts {
        let (status, next, delivered) = a.columns();
        sqlx::query(RECORD_ATTEMPT_SQL)
            .bind(a.at)
            .bind(a.status.map(i32::from))
            .bind(a.error.as_deref())
            .bind(status)
            .bind(next)
            .bind(delivered)
            .bind(a.delivery_id)
            .bind(&a.account_id)
            .execute(&mut *tx)
            .await?;
        if a.outcome == AttemptOutcome::Gone {
            sqlx::query(DISABLE_ENDPOINT_SQL)
                .bind(a.at)
                .bind("the receiver answered 410 Gone")
                .bind(&a.endpoint)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list(pool: &PgPool, f: &DeliveryFilter) -> StoreResult<Vec<DeliveryView>> {
    let rows = sqlx::query(DELIVERIES_SQL)
        .bind(f.endpoint.as_deref())
        .bind(f.status.map(|s| s.as_str()))
        .bind(i64::from(f.limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(delivery_view).collect::<anyhow::Result<_>>()?)
}

pub(crate) async fn replay(
    pool: &PgPool,
    endpoint: &str,
    which: &Replay,
    now: DateTime<Utc>,
) -> StoreResult<Option<u64>> {
    let (bill, event, since) = which.params();
    let since = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let mut tx = pool.begin().await?;
    let known: i64 = sqlx::query_scalar(ENDPOINT_EXISTS_SQL)
        .bind(endpoint)
        .fetch_one(&mut *tx)
        .await?;
    if known == 0 {
        return Ok(None);
    }
    if event.is_none() {
        sqlx::query(REPLAY_ADD_BILLS_SQL)
            .bind(endpoint)
            .bind(now)
            .bind(bill)
            .bind(since)
            .execute(&mut *tx)
            .await?;
    }
    if bill.is_none() {
        sqlx::query(&replay_add_events())
            .bind(endpoint)
            .bind(now)
            .bind(event)
            .bind(since)
            .execute(&mut *tx)
            .await?;
    }
    let reset = sqlx::query(REPLAY_RESET_SQL)
        .bind(now)
        .bind(endpoint)
        .bind(bill)
        .bind(event)
        .bind(since)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // Those just added are among those reset: each is counted once.
    Ok(Some(reset))
}

pub(crate) async fn enable(pool: &PgPool, endpoint: &str) -> StoreResult<bool> {
    let found = sqlx::query(ENABLE_ENDPOINT_SQL).bind(endpoint).execute(pool).await?;
    Ok(found.rows_affected() > 0)
}

pub(crate) async fn remove(pool: &PgPool, endpoint: &str) -> StoreResult<Option<u64>> {
    let mut tx = pool.begin().await?;
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

pub(crate) async fn next(pool: &PgPool, endpoints: &[String]) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(sqlx::query_scalar(&next_due(LIST))
        .bind(endpoints)
        .fetch_one(pool)
        .await?)
}

pub(crate) async fn health(pool: &PgPool) -> StoreResult<Vec<EndpointHealth>> {
    let rows = sqlx::query(WEBHOOK_HEALTH_SQL).fetch_all(pool).await?;
    Ok(rows.iter().map(endpoint_health).collect::<anyhow::Result<_>>()?)
}

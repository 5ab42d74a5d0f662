//! Sending what billrun decided: the deliveries that are due, to the endpoints of the webhooks
//! file, signed.
//!
//! A deliverer claims a batch of due deliveries (leased, so another deliverer running at the
//! same time takes other rows), sends them a few at a time, and records the batch's attempts
//! in one transaction when the last one ends. A deliverer killed mid-batch loses nothing: what it had claimed is due again
//! when the lease runs out, and is sent again with the same `webhook-id` (at least once, never
//! lost; receivers de-duplicate by the id). A run ends when nothing more is due at its clock,
//! or is left only at endpoints that failed too often in a row; what failed is retried by a
//! later run, on the schedule of `domain::webhook`.

use crate::clock::Clock;
use crate::domain::webhook::{after_attempt, Answer, Next, FAILURES_IN_A_ROW};
use crate::store::webhooks::{AttemptOutcome, AttemptRecord, DueDelivery, EndpointRecord, Notice, NoticeRef};
use crate::store::Store;
use crate::webhooks::config::{display_url, Webhooks};
use crate::webhooks::payload;
use crate::webhooks::send::{self, Signed};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::collections::{BTreeSet, HashMap};

/// Deliveries claimed at once.
const BATCH: u32 = 64;
/// Attempts in flight at once.
const PARALLEL: usize = 8;

/// What one run of the deliverer did.
#[derive(Clone, Debug, Default)]
pub struct DeliverSummary {
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub retrying: u64,
    /// Deliveries whose schedule ran out in this run.
    pub failed: u64,
    /// Endpoints that answered 410 Gone and were disabled.
    pub disabled: BTreeSet<String>,
    /// Endpoints that failed too many attempts in a row and were left for the next run.
    pub resting: BTreeSet<String>,
    /// The longest a first attempt came after its bill or event was recorded.
    pub longest_first_wait: Option<chrono::Duration>,
    /// When the earliest delivery still pending is due.
    pub next_due: Option<DateTime<Utc>>,
}

/// The endpoints of a webhooks file, as the store records them.
pub fn records(hooks: &Webhooks) -> Vec<EndpointRecord> {
    hooks
        .endpoints
        .iter()
        .map(|e| EndpointRecord {
            name: e.name.clone(),
            url: display_url(&e.url),
            events: e.events.iter().copied().collect(),
        })
        .collect()
}

/// The message of a delivery: its `webhook-id` and body.
fn message(d: &DueDelivery, currency: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let notice = match &d.notice {
        Notice::Bill(b) => NoticeRef::Bill(b.bill_id.clone()),
        Notice::Event(e) => NoticeRef::Event(e.event_id),
    };
    let body = payload::body(d.event_type, &d.account_id, d.created_at, &d.notice, currency)?;
    Ok((payload::message_id(&notice), body))
}

/// Sends every delivery due by `clock` to the endpoints of `hooks`. `currency` is the
/// database's. The `webhook-timestamp` of each attempt is the system time it is sent at
/// (`Clock::wall`), which receivers compare with their own clocks; which deliveries are due,
/// and when a failed one comes again, follow `clock`, that is `--now`.
pub async fn deliver<S: Store>(
    store: &S,
    hooks: &Webhooks,
    clock: &Clock,
    currency: &str,
) -> anyhow::Result<DeliverSummary> {
    let mut names: Vec<String> = hooks.endpoints.iter().map(|e| e.name.clone()).collect();
    let all = names.clone();
    let mut failed_in_a_row: HashMap<String, u32> = HashMap::new();
    let agent = send::agent(hooks.timeout);
    let mut summary = DeliverSummary::default();
    // A batch's attempts all end within this (each is cut off at the timeout), with room to
    // record them.
    let rounds = (BATCH as usize).div_ceil(PARALLEL) as u32;
    let lease = chrono::Duration::from_std(hooks.timeout * (rounds + 1)).unwrap_or(chrono::Duration::hours(1))
        + chrono::Duration::seconds(30);
    while !names.is_empty() {
        let now = clock.now();
        let batch = store.claim_deliveries(&names, now, now + lease, BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let sends = futures_util::stream::iter(batch.into_iter().map(|d| {
            let endpoint = hooks.endpoint(&d.endpoint).cloned();
            let agent = agent.clone();
            let currency = currency.to_owned();
            async move {
                let endpoint = endpoint.expect("claimed only for the endpoints of the file");
                let (id, body) = message(&d, &currency)?;
                let attempt = tokio::task::spawn_blocking(move || {
                    let timestamp = Clock::wall().timestamp();
                    let signed = Signed {
                        id: &id,
                        timestamp,
                        signature: endpoint.secret.sign(&id, timestamp, &body),
                    };
                    send::post(&agent, &endpoint.url, &signed, &body)
                })
                .await?;
                anyhow::Ok((d, attempt))
            }
        }))
        .buffer_unordered(PARALLEL);
        tokio::pin!(sends);
        let mut attempts = Vec::with_capacity(BATCH as usize);
        while let Some(sent) = sends.next().await {
            let (d, (answer, error)) = sent?;
            let at = clock.now();
            let attempt = d.attempts + 1;
            let next = after_attempt(attempt, &answer, at);
            if attempt == 1 {
                let waited = at - d.created_at;
                summary.longest_first_wait = Some(summary.longest_first_wait.map_or(waited, |w| w.max(waited)));
            }
            let status = match answer {
                Answer::Status(s) => Some(s),
                Answer::NoAnswer => None,
            };
            let in_a_row = failed_in_a_row.entry(d.endpoint.clone()).or_default();
            *in_a_row = if next == Next::Delivered { 0 } else { *in_a_row + 1 };
            if *in_a_row >= FAILURES_IN_A_ROW && summary.resting.insert(d.endpoint.clone()) {
                tracing::warn!(
                    endpoint = d.endpoint,
                    failures = *in_a_row,
                    "{FAILURES_IN_A_ROW} attempts in a row failed: the endpoint's other deliveries wait for the next run"
                );
            }
            let outcome = match next {
                Next::Delivered => {
                    summary.delivered += 1;
                    tracing::debug!(endpoint = d.endpoint, delivery = d.delivery_id, "delivered");
                    AttemptOutcome::Delivered
                }
                Next::RetryAt(t) => {
                    summary.retrying += 1;
                    tracing::warn!(
                        endpoint = d.endpoint,
                        delivery = d.delivery_id,
                        event_type = d.event_type.as_str(),
                        attempt,
                        error = error.as_deref().unwrap_or(""),
                        retry_at = %t,
                        "webhook attempt failed; it will be retried"
                    );
                    AttemptOutcome::RetryAt(t)
                }
                Next::Failed => {
                    summary.failed += 1;
                    tracing::error!(
                        endpoint = d.endpoint,
                        delivery = d.delivery_id,
                        event_type = d.event_type.as_str(),
                        attempt,
                        error = error.as_deref().unwrap_or(""),
                        "webhook delivery failed for good after its last attempt; `billrun webhooks replay` sends it again"
                    );
                    AttemptOutcome::Failed
                }
                Next::Gone => {
                    if summary.disabled.insert(d.endpoint.clone()) {
                        tracing::error!(
                            endpoint = d.endpoint,
                            "the receiver answered 410 Gone: endpoint disabled; `billrun webhooks enable` turns it back on"
                        );
                    }
                    AttemptOutcome::Gone
                }
            };
            attempts.push(AttemptRecord {
                delivery_id: d.delivery_id,
                account_id: d.account_id.clone(),
                endpoint: d.endpoint.clone(),
                at,
                status,
                error: error.filter(|_| next != Next::Delivered),
                outcome,
            });
        }
        // One transaction for the batch: a deliverer killed before it commits sends the batch
        // again once the lease runs out (at least once, same webhook-id).
        store.record_attempts(&attempts).await?;
        names.retain(|n| !summary.resting.contains(n) && !summary.disabled.contains(n));
    }
    summary.next_due = store.next_delivery(&all).await?;
    Ok(summary)
}

/// Delivers after a command's work, when a webhooks file is given, with amounts in `currency`
/// (the catalog's, which the store was checked to keep its balances in): a receiver that fails
/// never fails the command (its deliveries wait for their retries, and the metrics show them); only
/// a database failure is logged as an error.
pub async fn deliver_after<S: Store>(store: &S, hooks: Option<&Webhooks>, clock: &Clock, currency: &str) {
    let Some(hooks) = hooks else { return };
    match deliver(store, hooks, clock, currency).await {
        Ok(s) => log_summary(&s),
        Err(e) => tracing::error!(
            error = crate::error::describe(&e),
            "webhook delivery stopped; what is due is sent by the next run"
        ),
    }
}

/// One log line for a deliverer's run.
pub fn log_summary(s: &DeliverSummary) {
    if s.delivered + s.retrying + s.failed == 0 && s.disabled.is_empty() {
        return;
    }
    tracing::info!(
        delivered = s.delivered,
        retrying = s.retrying,
        failed = s.failed,
        disabled = s.disabled.len(),
        resting = s.resting.len(),
        longest_first_wait_ms = s.longest_first_wait.map(|w| w.num_milliseconds()),
        next_due = s.next_due.map(|t| t.to_rfc3339()),
        "webhooks delivered"
    );
}

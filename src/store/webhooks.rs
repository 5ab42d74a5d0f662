//! What the store keeps about webhooks: the endpoints billrun was given, and one delivery per
//! endpoint and bill or event, created in the transaction that recorded the bill or event.

use crate::domain::arrears::EventKind;
use crate::domain::pack_alerts::Threshold;
use crate::domain::settle::RevisionKind;
use crate::domain::webhook::EventType;
use chrono::{DateTime, Utc};

/// An endpoint as the store records it: its name, where it is (shown, never its secret) and
/// the event types it wants.
#[derive(Clone, Debug)]
pub struct EndpointRecord {
    pub name: String,
    pub url: String,
    pub events: Vec<EventType>,
}

/// A bill revision, as `bill.issued` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillNotice {
    pub bill_id: String,
    pub month: String,
    pub revision: i32,
    pub kind: RevisionKind,
    pub total_fen: i64,
    pub debited_fen: i64,
    /// The credit notes the bill carries.
    pub credited_fen: i64,
    pub balance_after_fen: i64,
    pub settled_at: DateTime<Utc>,
}

/// An arrears notice, suspension, restoration or pack alert, as `account.*` and `pack.alert` tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNotice {
    pub event_id: i64,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub bill_id: Option<String>,
    pub suspend_at: Option<DateTime<Utc>>,
    pub balance_fen: i64,
    /// A pack alert's pack and threshold.
    pub pack: Option<PackNotice>,
}

/// The pack a pack alert is about, as `pack.alert` tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackNotice {
    pub pack_id: String,
    pub api: String,
    pub threshold: Threshold,
    /// The pack's size, in calls.
    pub calls: i64,
    /// What was left of it when the alert was recorded.
    pub left: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Bill(BillNotice),
    Event(EventNotice),
}

/// What a delivery is about: a bill revision or an event, by its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoticeRef {
    Bill(String),
    Event(i64),
}

/// A delivery claimed by a deliverer, with what it announces.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub delivery_id: i64,
    pub endpoint: String,
    pub event_type: EventType,
    pub account_id: String,
    pub created_at: DateTime<Utc>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub notice: Notice,
}

/// How one attempt ended, to be recorded.
#[derive(Clone, Debug)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    /// The account the delivery is about (deliveries are kept with their account).
    pub account_id: String,
    pub endpoint: String,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    RetryAt(DateTime<Utc>),
    Failed,
    /// 410 Gone: the endpoint is disabled, and the delivery waits, pending, until it is
    /// enabled again (then it is due at once).
    Gone,
}

/// A delivery's state, for `webhooks list`.
#[derive(Clone, Debug)]
pub struct DeliveryView {
    pub delivery_id: i64,
    pub endpoint: String,
    pub event_type: EventType,
    pub account_id: String,
    pub notice: NoticeRef,
    pub created_at: DateTime<Utc>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Delivered,
            DeliveryStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Which deliveries `webhooks list` shows.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
}

/// What `webhooks replay` sends again.
#[derive(Clone, Debug)]
pub enum Replay {
    One(NoticeRef),
    Since(DateTime<Utc>),
}

/// An endpoint's deliveries, for the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    pub endpoint: String,
    pub disabled: bool,
    pub pending: u64,
    pub failed: u64,
    pub delivered: u64,
    /// When the oldest pending delivery's bill or event was recorded.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl AttemptRecord {
    /// The status, next attempt and delivery time the attempt leaves its delivery with. A
    /// delivery that is no longer pending keeps the time of its last attempt as its next one.
    pub(crate) fn columns(&self) -> (&'static str, DateTime<Utc>, Option<DateTime<Utc>>) {
        match &self.outcome {
            AttemptOutcome::Delivered => ("delivered", self.at, Some(self.at)),
            AttemptOutcome::RetryAt(t) => ("pending", *t, None),
            AttemptOutcome::Failed => ("failed", self.at, None),
            // Held with the endpoint: a suspension the gateway has not heard of must still
            // reach it once the endpoint is enabled.
            AttemptOutcome::Gone => ("pending", self.at, None),
        }
    }
}

impl Replay {
    /// The bill, the event or the time the replay names.
    pub(crate) fn params(&self) -> (Option<&str>, Option<i64>, Option<DateTime<Utc>>) {
        match self {
            Replay::One(NoticeRef::Bill(id)) => (Some(id.as_str()), None, None),
            Replay::One(NoticeRef::Event(id)) => (None, Some(*id), None),
            Replay::Since(t) => (None, None, Some(*t)),
        }
    }
}

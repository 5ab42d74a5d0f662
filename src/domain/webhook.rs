//! The rules of webhook delivery: which event types there are, which answer of a receiver
//! counts as delivered, and when a failed delivery is tried again.
//!
//! The schedule is the one the Standard Webhooks specification suggests: an attempt as soon as
//! the event is recorded, then 5 seconds, 5 minutes, 30 minutes, 2, 5, 10 and 10 hours after
//! each failure, eight attempts over 27 hours and 35 minutes. After the eighth failure the
//! delivery is failed and stays listed. A receiver answering 410 Gone asks not to be called
//! again: its endpoint is disabled. An endpoint that fails [`FAILURES_IN_A_ROW`] attempts in a
//! row is left alone for the rest of a deliverer's run. Nothing here reads a clock or the
//! network.

use super::arrears::EventKind;
use chrono::{DateTime, Duration, Utc};

/// What a receiver can be told about. New types may come; the payload of an existing one only
/// ever gains fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A bill revision was written and debited (or credited): an original or an adjustment.
    BillIssued,
    /// A bill left the balance negative: the service stops at `suspend_at` unless recharged.
    AccountArrears,
    /// The service stopped.
    AccountSuspended,
    /// A recharge brought a suspended account back to a balance ≥ 0.
    AccountRestored,
    /// A free pack passed 80% or 100% used, or an API's last prepaid pack fell under 20% left
    /// or ran out.
    PackAlert,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::BillIssued,
        EventType::AccountArrears,
        EventType::AccountSuspended,
        EventType::AccountRestored,
        EventType::PackAlert,
    ];

    /// The name receivers see in the payload's `type` and subscribe to.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BillIssued => "bill.issued",
            EventType::AccountArrears => "account.arrears",
            EventType::AccountSuspended => "account.suspended",
            EventType::AccountRestored => "account.restored",
            EventType::PackAlert => "pack.alert",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The type that announces an event of `kind`.
    pub fn announcing(kind: EventKind) -> EventType {
        match kind {
            EventKind::ArrearsNotice => EventType::AccountArrears,
            EventKind::Suspended => EventType::AccountSuspended,
            EventKind::Restored => EventType::AccountRestored,
            EventKind::PackAlert => EventType::PackAlert,
        }
    }
}

/// How long after a failed attempt the next one comes; one entry per retry.
pub const RETRY_AFTER_SECONDS: [i64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// Attempts in all before a delivery is given up: the first and every retry.
pub const MAX_ATTEMPTS: u32 = RETRY_AFTER_SECONDS.len() as u32 + 1;

/// Attempts in a row that may fail at one endpoint before a deliverer stops calling it for
/// the rest of its run: its other deliveries stay due, untouched, for the next run, so a
/// receiver that is down or hanging costs a run a few timeouts, not one per delivery, and
/// does not hold up the other endpoints' deliveries behind its own.
pub const FAILURES_IN_A_ROW: u32 = 5;

/// What came back from one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: the connection failed, was dropped or timed out.
    NoAnswer,
}

/// What happens to a delivery after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// 2xx: done.
    Delivered,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// The schedule ran out: failed, kept for `webhooks list` and `webhooks replay`.
    Failed,
    /// 410 Gone: the receiver wants no more; the endpoint is disabled.
    Gone,
}

/// The fate of a delivery whose attempt number `attempt` (1 for the first) ended with `answer`
/// at `at`. Any status other than 2xx and 410 — a redirect included: a webhook is not followed
/// elsewhere — is a failure to retry, as are timeouts and connection errors.
pub fn after_attempt(attempt: u32, answer: &Answer, at: DateTime<Utc>) -> Next {
    match answer {
        Answer::Status(s) if (200..300).contains(s) => Next::Delivered,
        Answer::Status(410) => Next::Gone,
        _ => match RETRY_AFTER_SECONDS.get(attempt.saturating_sub(1) as usize) {
            Some(&wait) if attempt >= 1 => Next::RetryAt(at + Duration::seconds(wait)),
            _ => Next::Failed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_2xx_is_delivered_and_410_disables() {
        for s in [200, 201, 204, 299] {
            assert_eq!(after_attempt(1, &Answer::Status(s), t0()), Next::Delivered);
        }
        assert_eq!(after_attempt(3, &Answer::Status(410), t0()), Next::Gone);
    }

    #[test]
    fn failures_follow_the_schedule_for_more_than_a_day_then_fail() {
        let mut at = t0();
        let mut attempt = 1;
        for answer in [
            Answer::Status(500),
            Answer::NoAnswer,
            Answer::Status(301),
            Answer::Status(404),
            Answer::Status(429),
            Answer::Status(199),
            Answer::NoAnswer,
        ] {
            match after_attempt(attempt, &answer, at) {
                Next::RetryAt(next) => at = next,
                other => panic!("attempt {attempt} ({answer:?}) ended {other:?}"),
            }
            attempt += 1;
        }
        assert_eq!(attempt, MAX_ATTEMPTS);
        assert_eq!(at - t0(), Duration::minutes(27 * 60 + 35) + Duration::seconds(5));
        assert!(at - t0() >= Duration::hours(24));
        assert_eq!(after_attempt(attempt, &Answer::Status(500), at), Next::Failed);
        assert_eq!(after_attempt(attempt, &Answer::Status(200), at), Next::Delivered);
    }

    #[test]
    fn event_types_parse_their_names_only() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("bill.paid"), None);
        assert_eq!(EventType::parse("Bill.Issued"), None);
    }
}

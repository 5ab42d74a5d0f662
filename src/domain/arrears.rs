//! Arrears, suspension and restoration (docs/rules.md, rule 7), as pure state transitions.
//!
//! After a debit leaves the balance negative the account is in arrears and its service stops
//! 24 hours after the debit, unless a recharge brings the balance to zero or above first. A
//! recharge that brings a suspended account to ≥ 0 restores it at once. The store applies
//! these transitions inside the transaction that moves the money, and records an event for
//! each change.

use chrono::{DateTime, Duration, Utc};

/// How long an account in arrears keeps its service after the debit.
pub const GRACE: Duration = Duration::hours(24);

/// What happened to an account's service, as recorded once per change for the notifier and
/// the API gateway to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The balance went negative: the service stops at `suspend_at` unless recharged first.
    ArrearsNotice,
    /// The service stopped.
    Suspended,
    /// A recharge brought a suspended account back to a balance ≥ 0: the service is back.
    Restored,
    /// A pack passed a threshold of its use (`domain::pack_alerts`).
    PackAlert,
}

impl EventKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ArrearsNotice => "arrears_notice",
            EventKind::Suspended => "suspended",
            EventKind::Restored => "restored",
            EventKind::PackAlert => "pack_alert",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<EventKind> {
        [
            EventKind::ArrearsNotice,
            EventKind::Suspended,
            EventKind::Restored,
            EventKind::PackAlert,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// The parts of an account that arrears rules read and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceState {
    pub balance_fen: i64,
    /// When service stops if the balance is still negative; `None` when not in arrears.
    pub suspend_at: Option<DateTime<Utc>>,
    pub suspended: bool,
}

/// What a debit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterDebit {
    pub state: ServiceState,
    /// The balance is negative after the debit: send an arrears notice.
    pub arrears_notice: bool,
}

/// Applies a debit of `amount_fen` (≥ 0) made at `debited_at`; `None` if the balance would
/// leave the range of a 64-bit count of fen. An account already counting down keeps its
/// earlier `suspend_at`.
pub fn debit(state: ServiceState, amount_fen: i64, debited_at: DateTime<Utc>) -> Option<AfterDebit> {
    let balance_fen = state.balance_fen.checked_sub(amount_fen)?;
    let mut next = ServiceState { balance_fen, ..state };
    let arrears_notice = balance_fen < 0;
    if arrears_notice && !state.suspended && state.suspend_at.is_none() {
        next.suspend_at = Some(debited_at + GRACE);
    }
    Some(AfterDebit {
        state: next,
        arrears_notice,
    })
}

/// What a recharge did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterRecharge {
    pub state: ServiceState,
    /// A suspended account came back: record a `restored` event.
    pub restored: bool,
}

/// Applies a recharge of `amount_fen` (> 0); `None` if the balance would leave the range of a
/// 64-bit count of fen.
pub fn recharge(state: ServiceState, amount_fen: i64) -> Option<AfterRecharge> {
    let balance_fen = state.balance_fen.checked_add(amount_fen)?;
    Some(if balance_fen >= 0 {
        AfterRecharge {
            state: ServiceState {
                balance_fen,
                suspend_at: None,
                suspended: false,
            },
            restored: state.suspended,
        }
    } else {
        AfterRecharge {
            state: ServiceState { balance_fen, ..state },
            restored: false,
        }
    })
}

/// Whether enforcement at `now` must stop the service.
pub fn due_for_suspension(state: ServiceState, now: DateTime<Utc>) -> bool {
    !state.suspended && state.balance_fen < 0 && state.suspend_at.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn open(balance_fen: i64) -> ServiceState {
        ServiceState {
            balance_fen,
            suspend_at: None,
            suspended: false,
        }
    }

    #[test]
    fn a_debit_into_the_negative_schedules_the_stop_24_hours_later() {
        let d = debit(open(100), 150, t("2026-11-01T02:00:00+08:00")).unwrap();
        assert!(d.arrears_notice);
        assert_eq!(d.state.balance_fen, -50);
        assert_eq!(d.state.suspend_at, Some(t("2026-11-02T02:00:00+08:00")));
    }

    #[test]
    fn a_debit_to_exactly_zero_is_not_arrears() {
        let d = debit(open(100), 100, t("2026-11-01T00:00:00Z")).unwrap();
        assert!(!d.arrears_notice);
        assert_eq!(d.state.suspend_at, None);
    }

    #[test]
    fn an_account_already_counting_down_keeps_its_time() {
        let earlier = ServiceState {
            balance_fen: -5,
            suspend_at: Some(t("2026-11-02T00:00:00Z")),
            suspended: false,
        };
        let d = debit(earlier, 10, t("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(d.state.suspend_at, earlier.suspend_at);
        assert!(d.arrears_notice);
    }

    #[test]
    fn enforcement_waits_for_suspend_at() {
        let s = debit(open(0), 1, t("2026-11-01T00:00:00Z")).unwrap().state;
        assert!(!due_for_suspension(s, t("2026-11-01T23:59:59Z")));
        assert!(due_for_suspension(s, t("2026-11-02T00:00:00Z")));
        let suspended = ServiceState { suspended: true, ..s };
        assert!(!due_for_suspension(suspended, t("2026-11-03T00:00:00Z")));
    }

    #[test]
    fn balances_that_would_overflow_are_refused_not_wrapped() {
        assert_eq!(recharge(open(i64::MAX - 5), 6), None);
        assert!(recharge(open(i64::MAX - 5), 5).is_some());
        assert_eq!(debit(open(i64::MIN + 5), 6, t("2026-11-01T00:00:00Z")), None);
        assert!(debit(open(i64::MIN + 5), 5, t("2026-11-01T00:00:00Z")).is_some());
    }

    #[test]
    fn recharge_restores_only_at_zero_or_above() {
        let suspended = ServiceState {
            balance_fen: -500,
            suspend_at: Some(t("2026-11-02T00:00:00Z")),
            suspended: true,
        };
        let partial = recharge(suspended, 499).unwrap();
        assert!(!partial.restored);
        assert!(partial.state.suspended);
        let full = recharge(partial.state, 1).unwrap();
        assert!(full.restored);
        assert_eq!(full.state, open(0));
        // In arrears but not yet suspended: a recharge clears the countdown, nothing to restore.
        let counting = ServiceState {
            suspended: false,
            ..suspended
        };
        let r = recharge(counting, 600).unwrap();
        assert!(!r.restored);
        assert_eq!(r.state.suspend_at, None);
    }
}

//! What a receiver gets: the `webhook-id` of a message and its JSON body.
//!
//! The body is the Standard Webhooks shape, `{"type", "timestamp", "data"}`; `data` holds every
//! field a receiver needs to act without calling billrun back. Amounts are decimal strings in
//! the currency's major unit with two decimals (`"-23.45"`), never binary floats; times are
//! RFC 3339 in UTC. A body is built from rows that never change, so every attempt of a message
//! sends the same bytes. Fields are only ever added, never renamed or removed.
//!
//! The `webhook-id` names what the message is about, so it is the same on every retry and
//! replay and for every endpoint: `bill_` and the bill revision's id, or `event_` and the
//! event's number. Characters outside `A-Z a-z 0-9 - _ .` are percent-encoded (account ids may
//! be in any script; a header is ASCII), so the id can be read back: `webhooks replay --id`.

use crate::domain::arrears::EventKind;
use crate::domain::credit::amount_due;
use crate::domain::money::{format_money, from_fen};
use crate::domain::webhook::EventType;
use crate::store::webhooks::{Notice, NoticeRef};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// The `webhook-id` of a message about `notice`.
pub fn message_id(notice: &NoticeRef) -> String {
    match notice {
        NoticeRef::Bill(id) => {
            let mut out = String::from("bill_");
            for b in id.bytes() {
                if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        }
        NoticeRef::Event(n) => format!("event_{n}"),
    }
}

/// What a `webhook-id` names, or `None` if it is not one billrun makes.
pub fn parse_message_id(id: &str) -> Option<NoticeRef> {
    if let Some(n) = id.strip_prefix("event_") {
        return n.parse().ok().filter(|n| *n > 0).map(NoticeRef::Event);
    }
    let encoded = id.strip_prefix("bill_")?.as_bytes();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(encoded.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    String::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty())
        .map(NoticeRef::Bill)
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn money(fen: i64) -> String {
    format_money(from_fen(fen))
}

#[derive(Serialize)]
struct Message<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: D,
}

#[derive(Serialize)]
struct BillIssued<'a> {
    bill_id: &'a str,
    account_id: &'a str,
    month: &'a str,
    revision: i32,
    /// `original`, `adjustment` or `credit`.
    kind: &'a str,
    /// The revision's total.
    total: String,
    /// What this revision moved: the total for an original, the difference for an adjustment
    /// (negative: a credit).
    debited: String,
    balance_after: String,
    currency: &'a str,
    settled_at: String,
    /// The credit notes the bill carries, and what it asks for after them.
    credited: String,
    due: String,
}

#[derive(Serialize)]
struct AccountArrears<'a> {
    event_id: i64,
    account_id: &'a str,
    bill_id: Option<&'a str>,
    balance: String,
    owed: String,
    currency: &'a str,
    notified_at: String,
    suspend_at: Option<String>,
}

#[derive(Serialize)]
struct AccountSuspended<'a> {
    event_id: i64,
    account_id: &'a str,
    balance: String,
    owed: String,
    currency: &'a str,
    suspend_at: Option<String>,
    suspended_at: String,
}

#[derive(Serialize)]
struct AccountRestored<'a> {
    event_id: i64,
    account_id: &'a str,
    balance: String,
    currency: &'a str,
    restored_at: String,
}

#[derive(Serialize)]
struct PackAlerted<'a> {
    event_id: i64,
    account_id: &'a str,
    api: &'a str,
    pack_id: &'a str,
    /// `free` or `prepaid`.
    pack_kind: &'a str,
    threshold: &'a str,
    /// The pack's size, and what was used and left of it when the alert was recorded.
    calls: i64,
    used: i64,
    left: i64,
    alerted_at: String,
}

/// The body of a message of `event_type` about `notice` of `account_id`, recorded at
/// `created_at`.
pub fn body(
    event_type: EventType,
    account_id: &str,
    created_at: DateTime<Utc>,
    notice: &Notice,
    currency: &str,
) -> serde_json::Result<Vec<u8>> {
    let kind = event_type.as_str();
    let timestamp = time(created_at);
    let owed = |balance: i64| money(balance.saturating_neg().max(0));
    match notice {
        Notice::Bill(b) => serde_json::to_vec(&Message {
            kind,
            timestamp,
            data: BillIssued {
                bill_id: &b.bill_id,
                account_id,
                month: &b.month,
                revision: b.revision,
                kind: b.kind.as_str(),
                total: money(b.total_fen),
                debited: money(b.debited_fen),
                balance_after: money(b.balance_after_fen),
                currency,
                settled_at: time(b.settled_at),
                credited: money(b.credited_fen),
                due: money(amount_due(b.total_fen, b.credited_fen)),
            },
        }),
        Notice::Event(e) => match e.kind {
            EventKind::ArrearsNotice => serde_json::to_vec(&Message {
                kind,
                timestamp,
                data: AccountArrears {
                    event_id: e.event_id,
                    account_id,
                    bill_id: e.bill_id.as_deref(),
                    balance: money(e.balance_fen),
                    owed: owed(e.balance_fen),
                    currency,
                    notified_at: time(e.at),
                    suspend_at: e.suspend_at.map(time),
                },
            }),
            EventKind::Suspended => serde_json::to_vec(&Message {
                kind,
                timestamp,
                data: AccountSuspended {
                    event_id: e.event_id,
                    account_id,
                    balance: money(e.balance_fen),
                    owed: owed(e.balance_fen),
                    currency,
                    suspend_at: e.suspend_at.map(time),
                    suspended_at: time(e.at),
                },
            }),
            EventKind::PackAlert => {
                let pack = e.pack.as_ref().ok_or_else(|| {
                    <serde_json::Error as serde::ser::Error>::custom(format!("pack alert {} names no pack", e.event_id))
                })?;
                serde_json::to_vec(&Message {
                    kind,
                    timestamp,
                    data: PackAlerted {
                        event_id: e.event_id,
                        account_id,
                        api: &pack.api,
                        pack_id: &pack.pack_id,
                        pack_kind: pack.threshold.pack_kind().as_str(),
                        threshold: pack.threshold.as_str(),
                        calls: pack.calls,
                        used: pack.calls - pack.left,
                        left: pack.left,
                        alerted_at: time(e.at),
                    },
                })
            }
            EventKind::Restored => serde_json::to_vec(&Message {
                kind,
                timestamp,
                data: AccountRestored {
                    event_id: e.event_id,
                    account_id,
                    balance: money(e.balance_fen),
                    currency,
                    restored_at: time(e.at),
                },
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::settle::RevisionKind;
    use crate::store::webhooks::{BillNotice, EventNotice};

    #[test]
    fn message_ids_read_back_in_any_script() {
        for notice in [
            NoticeRef::Bill("2026-10-acct-000001-r1".into()),
            NoticeRef::Bill("2026-10-客户 7%-r2".into()),
            NoticeRef::Event(42),
        ] {
            let id = message_id(&notice);
            assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id}");
            assert_eq!(parse_message_id(&id), Some(notice));
        }
        assert_eq!(message_id(&NoticeRef::Bill("2026-10-a-r1".into())), "bill_2026-10-a-r1");
        for bad in ["msg_1", "event_x", "event_0", "bill_", "bill_%G1", "bill_%E4"] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_carry_exact_amounts_and_utc_times() {
        let at: DateTime<Utc> = "2026-10-31T18:00:00Z".parse().unwrap();
        let bill = Notice::Bill(BillNotice {
            bill_id: "2026-10-a-r2".into(),
            month: "2026-10".into(),
            revision: 2,
            kind: RevisionKind::Adjustment,
            total_fen: 12_345,
            debited_fen: -50,
            credited_fen: 45,
            balance_after_fen: -2_345,
            settled_at: at,
        });
        let text = String::from_utf8(body(EventType::BillIssued, "a", at, &bill, "CNY").unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"type":"bill.issued","timestamp":"2026-10-31T18:00:00Z","data":{"bill_id":"2026-10-a-r2","account_id":"a","month":"2026-10","revision":2,"kind":"adjustment","total":"123.45","debited":"-0.50","balance_after":"-23.45","currency":"CNY","settled_at":"2026-10-31T18:00:00Z","credited":"0.45","due":"123.00"}}"#
        );
        let arrears = Notice::Event(EventNotice {
            event_id: 7,
            kind: EventKind::ArrearsNotice,
            at,
            bill_id: Some("2026-10-a-r1".into()),
            suspend_at: Some(at + chrono::Duration::hours(24)),
            balance_fen: -2_345,
            pack: None,
        });
        let v: serde_json::Value =
            serde_json::from_slice(&body(EventType::AccountArrears, "a", at, &arrears, "CNY").unwrap()).unwrap();
        assert_eq!(v["data"]["owed"], "23.45");
        assert_eq!(v["data"]["balance"], "-23.45");
        assert_eq!(v["data"]["suspend_at"], "2026-11-01T18:00:00Z");
    }
}

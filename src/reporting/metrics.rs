//! The metrics in Prometheus' text exposition format
//! (https://prometheus.io/docs/instrumenting/exposition_formats/), named and with units as
//! https://prometheus.io/docs/practices/naming/ asks: seconds since the epoch for instants,
//! seconds for durations, the currency named in a label for money. Pure: it is handed what
//! `jobs::metrics` read.

use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
use crate::store::{Health, MonthTotals, RunOutcome};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Everything the metrics say, at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metrics {
    pub now: DateTime<Utc>,
    pub health: Health,
    /// Months that have ended in the billing time zone, hold usage, and are not settled, with
    /// the instant each ended, oldest first.
    pub unsettled: Vec<(Month, DateTime<Utc>)>,
    /// The latest settled month and its totals.
    pub last_settled: Option<(Month, MonthTotals)>,
    pub currency: String,
}

/// Microseconds as seconds, exactly (six decimals when there is a fraction).
fn micros_as_seconds(micros: i64) -> String {
    let (s, us) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    if us == 0 {
        s.to_string()
    } else {
        format!("{s}.{us:06}")
    }
}

/// Seconds since the epoch, exactly.
fn seconds(t: DateTime<Utc>) -> String {
    micros_as_seconds(t.timestamp_micros())
}

/// A label value, escaped as the format asks.
fn label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// One metric family: its help, its type, and its samples (labels, value).
fn family(out: &mut String, name: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The whole exposition.
pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let by_command = |value: &dyn Fn(&crate::store::CommandRuns) -> Option<String>| -> Vec<(String, String)> {
        m.health
            .runs
            .iter()
            .filter_map(|r| value(r).map(|v| (format!("command=\"{}\"", label(&r.command)), v)))
            .collect()
    };
    family(
        &mut out,
        "billrun_last_success_timestamp_seconds",
        "When a run of the command last ended ok or with nothing to do.",
        &by_command(&|r| r.last_success.map(seconds)),
    );
    family(
        &mut out,
        "billrun_last_run_timestamp_seconds",
        "When the command's latest run started.",
        &by_command(&|r| Some(seconds(r.last_started_at))),
    );
    family(
        &mut out,
        "billrun_last_run_duration_seconds",
        "How long the command's latest run took, once it has ended.",
        &by_command(&|r| r.last_ended_at.map(|end| seconds_between(r.last_started_at, end))),
    );
    family(
        &mut out,
        "billrun_last_run_failed",
        "1 if the command's latest run failed, else 0. A refused run (a month not ended or in another zone: an operator's typo) is looked past.",
        &by_command(&|r| Some(u8::from(r.last_outcome == RunOutcome::Failed).to_string())),
    );
    family(
        &mut out,
        "billrun_months_unsettled",
        "Months that have ended in the billing time zone, hold usage, and are not settled.",
        &[(String::new(), m.unsettled.len().to_string())],
    );
    if let Some((oldest, ended)) = m.unsettled.first() {
        family(
            &mut out,
            "billrun_oldest_unsettled_month_end_timestamp_seconds",
            "When the oldest month that has ended and is not settled ended, in the billing time zone.",
            &[(format!("month=\"{oldest}\""), seconds(*ended))],
        );
    }
    let late = &m.health.late_usage;
    if !late.is_empty() {
        let by_month = |value: &dyn Fn(&crate::store::LateUsage) -> String| -> Vec<(String, String)> {
            late.iter()
                .map(|l| (format!("month=\"{}\"", l.month), value(l)))
                .collect()
        };
        family(
            &mut out,
            "billrun_late_usage_oldest_import_timestamp_seconds",
            "When the oldest import of usage waiting to be billed into the settled month was imported (the next run bills it).",
            &by_month(&|l| seconds(l.oldest_imported_at)),
        );
        family(
            &mut out,
            "billrun_late_usage_imports",
            "Imports of usage waiting to be billed into the settled month.",
            &by_month(&|l| l.imports.to_string()),
        );
        family(
            &mut out,
            "billrun_late_usage_rows",
            "Rows of the imports waiting to be billed into the settled month (whole imports: also their rows of other months).",
            &by_month(&|l| l.rows.to_string()),
        );
        family(
            &mut out,
            "billrun_late_usage_calls",
            "Calls of the imports waiting to be billed into the settled month (whole imports: also their calls of other months).",
            &by_month(&|l| l.calls.to_string()),
        );
    }
    let a = &m.health.accounts;
    family(
        &mut out,
        "billrun_accounts",
        "Accounts by status now: active, in arrears (service stops at suspend_at), suspended, not open yet.",
        &[
            ("status=\"active\"".into(), a.active.to_string()),
            ("status=\"arrears\"".into(), a.arrears.to_string()),
            ("status=\"suspended\"".into(), a.suspended.to_string()),
            ("status=\"inactive\"".into(), a.inactive.to_string()),
        ],
    );
    family(
        &mut out,
        "billrun_suspensions_overdue",
        "Accounts whose suspend_at has passed with a negative balance and that are not suspended yet.",
        &[(String::new(), m.health.overdue_suspensions.to_string())],
    );
    if let Some((month, totals)) = &m.last_settled {
        let labels = format!("month=\"{month}\",currency=\"{}\"", label(&m.currency));
        family(
            &mut out,
            "billrun_last_settled_month_billed",
            "What the latest settled month's bills add up to after credit notes, in the currency named.",
            &[(labels, format_money(from_fen(totals.total_fen)))],
        );
        family(
            &mut out,
            "billrun_last_settled_month_bills",
            "Bills of the latest settled month (one per account billed).",
            &[(format!("month=\"{month}\""), totals.bills.to_string())],
        );
    }
    let hooks = &m.health.webhooks;
    if !hooks.is_empty() {
        let by_endpoint = |value: &dyn Fn(&crate::store::webhooks::EndpointHealth) -> Option<String>| {
            hooks
                .iter()
                .filter_map(|h| value(h).map(|v| (format!("endpoint=\"{}\"", label(&h.endpoint)), v)))
                .collect::<Vec<_>>()
        };
        let mut deliveries = Vec::new();
        for h in hooks {
            for (status, n) in [("pending", h.pending), ("failed", h.failed), ("delivered", h.delivered)] {
                deliveries.push((
                    format!("endpoint=\"{}\",status=\"{status}\"", label(&h.endpoint)),
                    n.to_string(),
                ));
            }
        }
        family(
            &mut out,
            "billrun_webhook_deliveries",
            "Webhook deliveries by endpoint and status: pending (not yet answered 2xx, retries to come), failed \
             (retries ran out), delivered. A 410 leaves the endpoint's deliveries pending until it is enabled.",
            &deliveries,
        );
        family(
            &mut out,
            "billrun_webhook_oldest_pending_timestamp_seconds",
            "When the bill or event of the endpoint's oldest pending delivery was recorded.",
            &by_endpoint(&|h| h.oldest_pending.map(seconds)),
        );
        family(
            &mut out,
            "billrun_webhook_endpoint_disabled",
            "1 if the endpoint answered 410 Gone and is disabled (billrun webhooks enable NAME), else 0.",
            &by_endpoint(&|h| Some(u8::from(h.disabled).to_string())),
        );
    }
    family(
        &mut out,
        "billrun_metrics_read_timestamp_seconds",
        "The instant (--now) these metrics were read at.",
        &[(String::new(), seconds(m.now))],
    );
    out
}

/// The seconds from `start` to `end`, exactly (none if `end` is before `start`).
fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    micros_as_seconds((end - start).num_microseconds().unwrap_or(0).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_durations_are_exact_seconds() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert_eq!(seconds(t("2026-11-01T00:00:00Z")), "1793491200");
        assert_eq!(seconds(t("2026-11-01T00:00:00.25Z")), "1793491200.250000");
        assert_eq!(seconds(t("1969-12-31T23:59:59.5Z")), "-1.500000");
        assert_eq!(
            seconds_between(t("2026-11-01T00:00:00Z"), t("2026-11-01T00:01:02.5Z")),
            "62.500000"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("settle --shard 1/4"), "settle --shard 1/4");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

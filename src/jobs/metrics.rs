//! `billrun metrics`: what an on-call engineer alerts on, read from the database so that any
//! replica of the job reports the same truth. The months that have ended with usage but are
//! not settled are worked out here, in the billing time zone; the text is rendered by
//! `reporting::metrics`.

use super::Ctx;
use crate::domain::month::Month;
use crate::reporting::metrics::Metrics;
use crate::store::{Health, Store};
use std::collections::BTreeSet;

/// Reads the metrics at `--now`.
pub async fn gather<S: Store>(store: &S, ctx: &Ctx) -> anyhow::Result<Metrics> {
    let health = store.health(ctx.now).await?;
    let unsettled = unsettled(&health, ctx.current_month(), ctx.tz)
        .into_iter()
        .map(|m| (m, m.end(ctx.tz)))
        .collect();
    let last_settled = match health.settled_months.last() {
        Some(&month) => Some((month, store.month_totals(month).await?)),
        None => None,
    };
    Ok(Metrics {
        now: ctx.now,
        health,
        unsettled,
        last_settled,
        currency: ctx.currency().to_owned(),
    })
}

/// The months before `current` that some import's usage reaches into and that are not
/// settled, oldest first.
fn unsettled(health: &Health, current: Month, tz: chrono_tz::Tz) -> Vec<Month> {
    let settled: BTreeSet<Month> = health.settled_months.iter().copied().collect();
    let mut with_usage = BTreeSet::new();
    for &(first, last) in &health.import_spans {
        let mut month = Month::containing(first, tz);
        let last = Month::containing(last, tz).min(current.prev());
        while month <= last {
            with_usage.insert(month);
            month = month.next();
        }
    }
    with_usage.into_iter().filter(|m| !settled.contains(m)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StatusCounts;
    use chrono::{DateTime, Utc};
    use chrono_tz::Asia::Shanghai;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn health(spans: &[(&str, &str)], settled: &[&str]) -> Health {
        Health {
            runs: Vec::new(),
            accounts: StatusCounts::default(),
            overdue_suspensions: 0,
            import_spans: spans.iter().map(|(a, b)| (t(a), t(b))).collect(),
            settled_months: settled.iter().map(|m| m.parse().unwrap()).collect(),
            late_usage: Vec::new(),
            webhooks: Vec::new(),
        }
    }

    #[test]
    fn an_ended_month_with_usage_and_no_settlement_is_unsettled() {
        let nov: Month = "2026-11".parse().unwrap();
        // September to November in one file: September is settled, October not, November has
        // not ended.
        let h = health(
            &[("2026-09-30T10:00:00+08:00", "2026-11-02T10:00:00+08:00")],
            &["2026-09"],
        );
        assert_eq!(unsettled(&h, nov, Shanghai), ["2026-10".parse::<Month>().unwrap()]);
        // 2026-09-30T16:30Z is October in Shanghai.
        let h = health(&[("2026-09-30T16:30:00Z", "2026-09-30T17:00:00Z")], &[]);
        assert_eq!(unsettled(&h, nov, Shanghai), ["2026-10".parse::<Month>().unwrap()]);
        let h = health(
            &[("2026-10-01T00:00:00+08:00", "2026-10-31T23:00:00+08:00")],
            &["2026-10"],
        );
        assert!(unsettled(&h, nov, Shanghai).is_empty());
        assert!(unsettled(&health(&[], &[]), nov, Shanghai).is_empty());
    }
}

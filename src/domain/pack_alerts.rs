//! Pack alerts: when to tell a customer that a pack is running out (docs/rules.md, "Pack
//! alerts"), as the provider's console does: an API's free pack of the month 80% and 100% used;
//! the last of an API's prepaid packs (the one the settle takes from last) under 20% left and
//! used up. Read from the month so far (`domain::estimate`), so the figures are the ones the
//! settle will bill; each alert is recorded once per pack and threshold.

use super::estimate::AccountEstimate;
use super::packs::PackKind;
use std::collections::HashMap;

/// A point in a pack's use worth telling the customer about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Threshold {
    /// A free pack is 80% used.
    FreeMostlyUsed,
    /// A free pack is used up.
    FreeUsedUp,
    /// The last prepaid pack of an API has less than 20% left.
    PrepaidRunningLow,
    /// The last prepaid pack of an API is used up.
    PrepaidUsedUp,
}

impl Threshold {
    pub const ALL: [Threshold; 4] = [
        Threshold::FreeMostlyUsed,
        Threshold::FreeUsedUp,
        Threshold::PrepaidRunningLow,
        Threshold::PrepaidUsedUp,
    ];

    /// The name stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Threshold::FreeMostlyUsed => "free_80_percent_used",
            Threshold::FreeUsedUp => "free_used_up",
            Threshold::PrepaidRunningLow => "prepaid_under_20_percent_left",
            Threshold::PrepaidUsedUp => "prepaid_used_up",
        }
    }

    pub fn parse(name: &str) -> Option<Threshold> {
        Threshold::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The kind of pack the threshold is of.
    pub fn pack_kind(self) -> PackKind {
        match self {
            Threshold::FreeMostlyUsed | Threshold::FreeUsedUp => PackKind::Free,
            Threshold::PrepaidRunningLow | Threshold::PrepaidUsedUp => PackKind::Prepaid,
        }
    }
}

/// An alert an account's month so far calls for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackAlert {
    pub api: String,
    pub pack_id: String,
    pub threshold: Threshold,
    /// The pack's size, in calls.
    pub calls: i64,
    /// What is left of it.
    pub left: i64,
}

/// The alerts `estimate` calls for; `sizes` gives each pack's size (pack id → calls). A pack
/// past both of its thresholds gets both (the first one may not have been seen: usage often
/// arrives in one file). Packs of size 0 never alert.
pub fn alerts(estimate: &AccountEstimate, sizes: &HashMap<String, i64>) -> Vec<PackAlert> {
    let mut out = Vec::new();
    for api in &estimate.apis {
        let alert = |pack_id: &str, threshold, calls, left| PackAlert {
            api: api.line.api.clone(),
            pack_id: pack_id.to_owned(),
            threshold,
            calls,
            left,
        };
        for free in api.packs.iter().filter(|p| p.kind == PackKind::Free) {
            let size = sizes.get(&free.pack_id).copied().unwrap_or(0);
            if size <= 0 {
                continue;
            }
            let used = size - free.left;
            // used ≥ 80% of size, in integers.
            if used * 5 >= size * 4 {
                out.push(alert(&free.pack_id, Threshold::FreeMostlyUsed, size, free.left));
            }
            if free.left == 0 {
                out.push(alert(&free.pack_id, Threshold::FreeUsedUp, size, free.left));
            }
        }
        // The packs come in the order the settle takes from them: the last prepaid one is
        // reached only once the others are used up.
        if let Some(last) = api.packs.iter().rfind(|p| p.kind == PackKind::Prepaid) {
            let size = sizes.get(&last.pack_id).copied().unwrap_or(0);
            if size > 0 {
                // left < 20% of size, in integers.
                if last.left * 5 < size {
                    out.push(alert(&last.pack_id, Threshold::PrepaidRunningLow, size, last.left));
                }
                if last.left == 0 {
                    out.push(alert(&last.pack_id, Threshold::PrepaidUsedUp, size, last.left));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::bill::ApiUsage;
    use crate::domain::catalog::Catalog;
    use crate::domain::estimate::{estimate, Elapsed};
    use crate::domain::packs::PackBalance;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn pack(id: &str, kind: PackKind, remaining: i64, until: &str) -> PackBalance {
        PackBalance {
            pack_id: id.into(),
            kind,
            api: "CropImage".into(),
            remaining,
            valid_until: at(until),
            purchased_at: at("2026-09-01T00:00:00Z"),
        }
    }

    /// The alerts after `calls` of CropImage this month, with a free pack of 1000 and prepaid
    /// packs of 1000 (expiring first) and 500 (last), each with `remaining` as given.
    fn after(calls: i64, prepaid: &[(&str, i64)]) -> Vec<(String, &'static str)> {
        let v = Catalog::built_in()
            .for_month("2026-10".parse().unwrap())
            .unwrap()
            .clone();
        let mut packs = vec![pack("free", PackKind::Free, 1000, "2026-11-01T00:00:00Z")];
        let mut sizes: HashMap<String, i64> = [("free".to_string(), 1000)].into();
        for (i, (id, remaining)) in prepaid.iter().enumerate() {
            packs.push(pack(
                id,
                PackKind::Prepaid,
                *remaining,
                &format!("2027-0{}-01T00:00:00Z", i + 1),
            ));
            sizes.insert(id.to_string(), if i == 0 { 1000 } else { 500 });
        }
        let usage = [ApiUsage {
            api: "CropImage".into(),
            calls,
        }];
        let e = estimate(&v, &usage, &packs, Elapsed::new(1, 2)).unwrap();
        alerts(&e, &sizes)
            .into_iter()
            .map(|a| (a.pack_id, a.threshold.as_str()))
            .collect()
    }

    #[test]
    fn a_free_pack_alerts_at_80_and_100_percent_used() {
        assert!(after(799, &[]).is_empty());
        assert_eq!(after(800, &[]), [("free".to_string(), "free_80_percent_used")]);
        assert_eq!(
            after(1000, &[]),
            [
                ("free".to_string(), "free_80_percent_used"),
                ("free".to_string(), "free_used_up")
            ]
        );
    }

    #[test]
    fn only_the_last_prepaid_pack_alerts_under_20_percent_and_used_up() {
        let packs = [("first", 1000), ("last", 500)];
        // The free pack used up, the first prepaid pack used up: the last one is untouched.
        let at_2000 = after(2000, &packs);
        assert!(!at_2000.iter().any(|(id, _)| id.as_str() != "free"), "{at_2000:?}");
        // 401 of the last 500: 99 left, under 20% (100).
        assert!(after(2401, &packs).contains(&("last".to_string(), "prepaid_under_20_percent_left")));
        assert!(!after(2400, &packs).iter().any(|(id, _)| id.as_str() == "last"));
        assert_eq!(
            after(2500, &packs)
                .iter()
                .filter(|(id, _)| id.as_str() == "last")
                .count(),
            2,
            "under 20% and used up"
        );
        // A last pack already low from earlier months alerts with no usage of its own yet.
        assert!(
            after(0, &[("first", 0), ("last", 50)]).contains(&("last".to_string(), "prepaid_under_20_percent_left"))
        );
    }

    #[test]
    fn names_read_back() {
        for t in Threshold::ALL {
            assert_eq!(Threshold::parse(t.as_str()), Some(t));
        }
    }
}

//! Deduction order: free pack → prepaid packs → postpaid (docs/rules.md, rule 3).
//!
//! Given one API's total calls for a month and the packs that can cover that month, this takes
//! calls from the free packs first, then from the prepaid packs in the order earliest
//! `valid_until`, then earliest `purchased_at`, then `pack_id`; whatever is left is billable.
//! A pack is never taken below zero. The caller decides which packs may cover the month (free
//! packs of the month; prepaid packs whose window overlaps it) and stores the new remainders.

use chrono::{DateTime, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackKind {
    Free,
    Prepaid,
}

impl PackKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PackKind::Free => "free",
            PackKind::Prepaid => "prepaid",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<PackKind> {
        [PackKind::Free, PackKind::Prepaid]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// What is left of one pack, as read before the bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackBalance {
    pub pack_id: String,
    pub kind: PackKind,
    pub api: String,
    pub remaining: i64,
    pub valid_until: DateTime<Utc>,
    pub purchased_at: DateTime<Utc>,
}

/// Calls one bill took from one pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumption {
    pub pack_id: String,
    pub calls: i64,
}

/// How one API's month was covered.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Deduction {
    pub free_calls: i64,
    pub prepaid_calls: i64,
    pub billable_calls: i64,
    pub consumed: Vec<Consumption>,
}

/// Covers `total` calls of `api` from `packs` (any order, any APIs; only `api`'s are used),
/// lowering their `remaining` in place.
pub fn deduct(api: &str, total: i64, packs: &mut [PackBalance]) -> Deduction {
    let mut order: Vec<usize> = (0..packs.len())
        .filter(|&i| packs[i].api == api && packs[i].remaining > 0)
        .collect();
    order.sort_by(|&a, &b| {
        let (p, q) = (&packs[a], &packs[b]);
        (p.kind, p.valid_until, p.purchased_at, &p.pack_id).cmp(&(q.kind, q.valid_until, q.purchased_at, &q.pack_id))
    });
    let mut left = total.max(0);
    let mut out = Deduction::default();
    for i in order {
        if left == 0 {
            break;
        }
        let pack = &mut packs[i];
        let take = left.min(pack.remaining);
        pack.remaining -= take;
        left -= take;
        match pack.kind {
            PackKind::Free => out.free_calls += take,
            PackKind::Prepaid => out.prepaid_calls += take,
        }
        out.consumed.push(Consumption {
            pack_id: pack.pack_id.clone(),
            calls: take,
        });
    }
    out.billable_calls = left;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(day: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-10-{day:02}T00:00:00Z"))
            .unwrap()
            .with_timezone(&Utc)
    }

    fn pack(id: &str, kind: PackKind, api: &str, remaining: i64, until: u32, bought: u32) -> PackBalance {
        PackBalance {
            pack_id: id.into(),
            kind,
            api: api.into(),
            remaining,
            valid_until: at(until),
            purchased_at: at(bought),
        }
    }

    #[test]
    fn free_then_prepaid_by_expiry_purchase_and_id() {
        let mut packs = vec![
            pack("p-late", PackKind::Prepaid, "A", 100, 30, 1),
            pack("p-b", PackKind::Prepaid, "A", 100, 20, 2),
            pack("p-a", PackKind::Prepaid, "A", 100, 20, 2),
            pack("p-early-bought", PackKind::Prepaid, "A", 100, 20, 1),
            pack("free", PackKind::Free, "A", 1000, 31, 1),
            pack("other-api", PackKind::Prepaid, "B", 100, 1, 1),
        ];
        let d = deduct("A", 1250, &mut packs);
        assert_eq!((d.free_calls, d.prepaid_calls, d.billable_calls), (1000, 250, 0));
        let order: Vec<(&str, i64)> = d.consumed.iter().map(|c| (c.pack_id.as_str(), c.calls)).collect();
        assert_eq!(
            order,
            [("free", 1000), ("p-early-bought", 100), ("p-a", 100), ("p-b", 50)]
        );
        assert_eq!(packs[1].remaining, 50);
        assert_eq!(packs[0].remaining, 100);
        assert_eq!(packs[5].remaining, 100);
    }

    #[test]
    fn calls_beyond_the_packs_are_billable() {
        let mut packs = vec![pack("free", PackKind::Free, "A", 1000, 31, 1)];
        let d = deduct("A", 2_000_000, &mut packs);
        assert_eq!((d.free_calls, d.prepaid_calls, d.billable_calls), (1000, 0, 1_999_000));
        assert_eq!(packs[0].remaining, 0);
        let again = deduct("A", 10, &mut packs);
        assert_eq!(again.billable_calls, 10);
        assert!(again.consumed.is_empty());
    }

    proptest! {
        #[test]
        fn packs_are_never_over_consumed(total in 0i64..100_000, sizes in prop::collection::vec((0i64..5000, any::<bool>(), 1u32..28, 1u32..28), 0..8)) {
            let mut packs: Vec<PackBalance> = sizes.iter().enumerate().map(|(i, &(n, free, u, b))| {
                pack(&format!("p{i}"), if free { PackKind::Free } else { PackKind::Prepaid }, "A", n, u, b)
            }).collect();
            let before: Vec<i64> = packs.iter().map(|p| p.remaining).collect();
            let d = deduct("A", total, &mut packs);
            prop_assert_eq!(d.free_calls + d.prepaid_calls + d.billable_calls, total);
            for (p, b) in packs.iter().zip(&before) {
                prop_assert!(p.remaining >= 0 && p.remaining <= *b);
            }
            let taken: i64 = before.iter().sum::<i64>() - packs.iter().map(|p| p.remaining).sum::<i64>();
            prop_assert_eq!(taken, d.free_calls + d.prepaid_calls);
            prop_assert_eq!(d.consumed.iter().map(|c| c.calls).sum::<i64>(), taken);
            // Billable calls only when every pack is used up.
            if d.billable_calls > 0 {
                prop_assert!(packs.iter().all(|p| p.remaining == 0));
            }
        }
    }
}

//! A usage file's calls per account, API and month of the billing zone, summed while its rows
//! are read, for the store to add to the month's stored totals (`usage_totals`) in the import's
//! transaction.
//!
//! The sums are made by whoever reads the rows (`jobs::usage` does it on its parsing thread,
//! beside the parsing), so that the thread writing the rows into the database does nothing
//! else. They count every good row the reader produced; a store that then skips a row (its
//! event was imported before) takes it back with [`UsageTotals::take_back`]. Rows of accounts
//! that do not exist are counted too: such a file is refused, and its sums with it.

use crate::domain::month::MonthFinder;
use crate::input::usage::NewUsage;
use chrono_tz::Tz;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// The hasher of the sums' tables: account ids are checked before they get here, and the
/// keys are billrun's own numbers; foldhash is several times faster than the standard SipHash
/// on such short keys and is seeded per process.
type Fast = foldhash::fast::RandomState;

/// Account ids, each kept once, numbered in the order they were first seen: all their bytes
/// in one string, and a table of numbers (4 bytes a slot) to find one by its text.
#[derive(Default)]
struct Ids {
    bytes: String,
    /// Where each id ends in `bytes`.
    ends: Vec<usize>,
    table: HashTable<u32>,
    hasher: Fast,
}

/// Id number `n` of the ids in `bytes` that end at `ends`.
fn id_at<'a>(bytes: &'a str, ends: &[usize], n: u32) -> &'a str {
    let n = n as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] };
    &bytes[start..ends[n]]
}

impl Ids {
    fn get(&self, n: u32) -> &str {
        id_at(&self.bytes, &self.ends, n)
    }

    /// The number of `id`, given one if it is new.
    fn number(&mut self, id: &str) -> u32 {
        let hash = self.hasher.hash_one(id);
        if let Some(n) = self.table.find(hash, |&n| self.get(n) == id) {
            return *n;
        }
        let n = self.ends.len() as u32;
        self.bytes.push_str(id);
        self.ends.push(self.bytes.len());
        let Ids {
            bytes,
            ends,
            table,
            hasher,
        } = self;
        table.insert_unique(hash, n, |&m| hasher.hash_one(id_at(bytes, ends, m)));
        n
    }
}

/// A usage file's calls per account, API and month of `zone` (see the module's header).
///
/// Memory stays small at tens of millions of rows: the account ids are kept once, in one
/// string; a total is one 64-bit key (account, API and month numbers) and one count, in one
/// vector that is sorted in place at the end, found through a table of 4-byte positions.
pub struct UsageTotals {
    months: MonthFinder,
    zone: Tz,
    ids: Ids,
    apis: Vec<String>,
    /// (key, calls) in the order the keys were first seen.
    sums: Vec<(u64, i64)>,
    /// Positions in `sums`, by key.
    index: HashTable<u32>,
    hasher: Fast,
}

impl UsageTotals {
    /// No calls yet, for months of the billing zone `zone`.
    pub fn new(zone: Tz) -> UsageTotals {
        UsageTotals {
            months: MonthFinder::new(zone),
            zone,
            ids: Ids::default(),
            apis: Vec::new(),
            sums: Vec::new(),
            index: HashTable::new(),
            hasher: Fast::default(),
        }
    }

    /// An error unless the sums are of the months of `zone`, the zone the store keeps its
    /// totals for.
    pub(crate) fn check_zone(&self, zone: Tz) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.zone == zone,
            "the usage file was summed for the months of {}, not of the billing zone {}",
            self.zone.name(),
            zone.name()
        );
        Ok(())
    }

    /// Counts a good row's calls.
    pub fn add(&mut self, row: &NewUsage) {
        let key = self.key(row);
        let hash = self.hasher.hash_one(key);
        let sums = &mut self.sums;
        match self.index.find(hash, |&i| sums[i as usize].0 == key) {
            // A file whose calls overflow is refused by the store's tally; saturating keeps
            // this quiet until then.
            Some(&i) => {
                let sum = &mut sums[i as usize].1;
                *sum = sum.saturating_add(row.calls);
            }
            None => {
                sums.push((key, row.calls));
                let hasher = &self.hasher;
                self.index
                    .insert_unique(hash, (sums.len() - 1) as u32, |&i| hasher.hash_one(sums[i as usize].0));
            }
        }
    }

    /// Takes back a row counted by [`UsageTotals::add`] that the store did not keep.
    pub(crate) fn take_back(&mut self, row: &NewUsage) {
        let key = self.key(row);
        let sums = &mut self.sums;
        if let Some(&i) = self
            .index
            .find(self.hasher.hash_one(key), |&i| sums[i as usize].0 == key)
        {
            sums[i as usize].1 -= row.calls;
        }
    }

    /// A row's key: account, API and month numbers (see [`split_key`]).
    fn key(&mut self, row: &NewUsage) -> u64 {
        let account = self.ids.number(&row.account_id);
        let api = match self.apis.iter().position(|a| *a == row.api) {
            Some(i) => i,
            None => {
                self.apis.push(row.api.clone());
                self.apis.len() - 1
            }
        };
        let month = self.months.index_of(row.ts);
        (u64::from(account) << 32) | ((api as u64) << 16) | month as u64
    }

    /// The totals sorted by month, account and API: the order of the stored totals' key, so
    /// that adding them walks it once. They are sorted in place as 16-byte (key, calls) pairs.
    /// The billing zone whose months the totals are of.
    pub(crate) fn zone(&self) -> Tz {
        self.zone
    }

    pub(crate) fn into_sorted(self) -> SortedTotals {
        let UsageTotals {
            months,
            ids,
            apis,
            mut sums,
            index,
            ..
        } = self;
        drop(index);
        let months: Vec<String> = months.spans().iter().map(|s| s.month.to_string()).collect();
        // A sum whose every row was taken back adds nothing (and a stored total is never 0).
        sums.retain(|(_, calls)| *calls != 0);
        sums.sort_unstable_by(|(a, _), (b, _)| {
            let ((a_account, a_api, a_month), (b_account, b_api, b_month)) = (split_key(*a), split_key(*b));
            (&months[a_month], ids.get(a_account as u32), &apis[a_api]).cmp(&(
                &months[b_month],
                ids.get(b_account as u32),
                &apis[b_api],
            ))
        });
        SortedTotals {
            ids,
            months,
            apis,
            totals: sums,
        }
    }
}

/// A total's key as (account, API, month) numbers.
fn split_key(key: u64) -> (usize, usize, usize) {
    (
        (key >> 32) as usize,
        ((key >> 16) & 0xffff) as usize,
        (key & 0xffff) as usize,
    )
}

/// An import's totals in key order (see [`UsageTotals::into_sorted`]).
pub(crate) struct SortedTotals {
    ids: Ids,
    months: Vec<String>,
    apis: Vec<String>,
    totals: Vec<(u64, i64)>,
}

impl SortedTotals {
    /// (month, account, API, calls), in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str, &str, i64)> {
        self.totals.iter().map(|(key, calls)| {
            let (account, api, month) = split_key(*key);
            (
                self.months[month].as_str(),
                self.ids.get(account as u32),
                self.apis[api].as_str(),
                *calls,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(account: &str, api: &str, ts: &str, calls: i64) -> NewUsage {
        NewUsage {
            line: 2,
            account_id: account.into(),
            api: api.into(),
            ts: ts.parse().unwrap(),
            calls,
            event_id: None,
        }
    }

    fn sorted(totals: UsageTotals) -> Vec<(String, String, String, i64)> {
        totals
            .into_sorted()
            .iter()
            .map(|(m, a, api, c)| (m.into(), a.into(), api.into(), c))
            .collect()
    }

    #[test]
    fn sums_per_account_api_and_month_of_the_zone_in_key_order() {
        let mut totals = UsageTotals::new(chrono_tz::Asia::Shanghai);
        // Many accounts, so that the tables grow and move their entries.
        for n in (0..5000).rev() {
            let id = format!("acct-{n:05}");
            totals.add(&row(&id, "CropImage", "2026-10-05T00:00:00Z", 1));
            totals.add(&row(&id, "AssessQuality", "2026-10-05T00:00:00Z", 2));
            totals.add(&row(&id, "CropImage", "2026-10-06T00:00:00Z", 3));
        }
        // The same instant is October in UTC, November in Shanghai.
        totals.add(&row("acct-00007", "CropImage", "2026-10-31T16:00:00Z", 10));
        let got = sorted(totals);
        assert_eq!(got.len(), 10_001);
        let t = |m: &str, a: &str, api: &str, c| (m.to_string(), a.to_string(), api.to_string(), c);
        assert_eq!(got[0], t("2026-10", "acct-00000", "AssessQuality", 2));
        assert_eq!(got[1], t("2026-10", "acct-00000", "CropImage", 4));
        assert_eq!(got[9_999], t("2026-10", "acct-04999", "CropImage", 4));
        assert_eq!(got[10_000], t("2026-11", "acct-00007", "CropImage", 10));
        let mut keys = got.clone();
        keys.sort();
        assert_eq!(keys, got, "in key order");
    }

    #[test]
    fn rows_taken_back_leave_nothing_of_a_total_they_made_alone() {
        let mut totals = UsageTotals::new(chrono_tz::UTC);
        let (a, b) = (
            row("a", "CropImage", "2026-10-05T00:00:00Z", 5),
            row("b", "CropImage", "2026-10-05T00:00:00Z", 7),
        );
        totals.add(&a);
        totals.add(&a);
        totals.add(&b);
        totals.take_back(&a);
        totals.take_back(&b);
        let t = |a: &str, c| ("2026-10".to_string(), a.to_string(), "CropImage".to_string(), c);
        assert_eq!(sorted(totals), vec![t("a", 5)]);
    }
}

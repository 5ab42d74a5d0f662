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
use std::collections::HashMap;

/// The hasher of the sums' maps: account ids are checked before they get here, and the keys
/// are billrun's own numbers; foldhash is several times faster than the standard SipHash on
/// such short keys and is seeded per process.
type Fast = foldhash::fast::RandomState;

/// A usage file's calls per account, API and month of `zone` (see the module's header).
///
/// Memory stays small at tens of millions of rows: each account id is kept once, and a total
/// is one 64-bit key (account, API and month numbers) and one count. A million accounts with
/// three APIs each take about 150 MB.
pub struct UsageTotals {
    months: MonthFinder,
    zone: Tz,
    /// Account id → its number, in the order the file first named it.
    accounts: HashMap<Box<str>, u32, Fast>,
    apis: Vec<String>,
    sums: HashMap<u64, i64, Fast>,
}

impl UsageTotals {
    /// No calls yet, for months of the billing zone `zone`.
    pub fn new(zone: Tz) -> UsageTotals {
        UsageTotals {
            months: MonthFinder::new(zone),
            zone,
            accounts: HashMap::default(),
            apis: Vec::new(),
            sums: HashMap::default(),
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
        // A file whose calls overflow is refused by the store's tally; saturating keeps this
        // quiet until then.
        let sum = self.sums.entry(key).or_insert(0);
        *sum = sum.saturating_add(row.calls);
    }

    /// Takes back a row counted by [`UsageTotals::add`] that the store did not keep.
    pub(crate) fn take_back(&mut self, row: &NewUsage) {
        let key = self.key(row);
        if let Some(sum) = self.sums.get_mut(&key) {
            *sum -= row.calls;
        }
    }

    /// A row's key: account, API and month numbers (see [`split_key`]).
    fn key(&mut self, row: &NewUsage) -> u64 {
        let next = self.accounts.len() as u32;
        let account = match self.accounts.get(row.account_id.as_str()) {
            Some(n) => *n,
            None => *self.accounts.entry(row.account_id.as_str().into()).or_insert(next),
        };
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
    /// that adding them walks it once. They are sorted as 16-byte (key, calls) pairs, not as
    /// strings, and the account ids are moved, not copied.
    pub(crate) fn into_sorted(self) -> SortedTotals {
        let mut ids: Vec<Box<str>> = vec![Box::from(""); self.accounts.len()];
        for (id, n) in self.accounts {
            ids[n as usize] = id;
        }
        let months: Vec<String> = self.months.spans().iter().map(|s| s.month.to_string()).collect();
        // A sum whose every row was taken back adds nothing (and a stored total is never 0).
        let mut totals: Vec<(u64, i64)> = self.sums.into_iter().filter(|(_, calls)| *calls != 0).collect();
        let apis = self.apis;
        totals.sort_unstable_by(|(a, _), (b, _)| {
            let ((a_account, a_api, a_month), (b_account, b_api, b_month)) = (split_key(*a), split_key(*b));
            (&months[a_month], &ids[a_account], &apis[a_api]).cmp(&(&months[b_month], &ids[b_account], &apis[b_api]))
        });
        SortedTotals {
            ids,
            months,
            apis,
            totals,
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
    ids: Vec<Box<str>>,
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
                &*self.ids[account],
                self.apis[api].as_str(),
                *calls,
            )
        })
    }
}

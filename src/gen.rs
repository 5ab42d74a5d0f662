//! `billrun gen`: deterministic synthetic accounts and usage, for benchmarks and load tests.
//!
//! The same arguments always write the same files. The mix is meant to look like a real
//! provider's month:
//!
//! - most accounts are small and stay inside or near their free pack;
//! - some are medium;
//! - a few reach each higher tier (1M, 3M and 15M calls);
//! - 5% of accounts open during the month.
//!
//! Each usage row is a counter of calls. Timestamps spread across the month, including its
//! first and last second, and are written with either a `+08:00` or a `Z` offset.
//!
//! By default the rows are in time order, every account's calls interleaved, as a meter's log
//! is ([`Layout::Interleaved`]); [`Layout::Grouped`] writes each account's rows together, in
//! account order. Both layouts hold the same rows.

use crate::domain::month::Month;
use anyhow::Context;
use chrono::{Duration, SecondsFormat};
use chrono_tz::Tz;
use std::io::Write;
use std::path::Path;

const APIS: [&str; 3] = ["AssessQuality", "CropImage", "EnhanceImage"];

/// SplitMix64: small, fast and good enough for synthetic data; no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

/// An account's month: its total calls and how heavily it weighs in the rows.
fn target_calls(rng: &mut Rng) -> (i64, u64) {
    match rng.next() % 1000 {
        0 => (rng.range(15_000_000, 40_000_000), 400),    // tier 4
        1..=3 => (rng.range(3_000_000, 15_000_000), 200), // tier 3
        4..=14 => (rng.range(1_000_000, 3_000_000), 100), // tier 2
        15..=114 => (rng.range(10_000, 1_000_000), 20),   // medium
        _ => (rng.range(1, 5_000), 1),                    // small
    }
}

/// The order of the usage rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// In time order, accounts interleaved: a meter's log.
    Interleaved,
    /// Each account's rows together, accounts in order.
    Grouped,
}

/// One usage row, kept small so that a month of 30M rows can be sorted by time in memory:
/// its second in the month, its account and its line.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    offset: u32,
    account: u32,
    line: u32,
}

pub struct GenSummary {
    pub accounts: u64,
    pub rows: u64,
    pub calls: i64,
}

/// Writes `accounts.csv` and `usage.csv` into `dir`, the rows in `layout`.
pub fn generate(
    dir: &Path,
    accounts: u64,
    rows: u64,
    month: Month,
    seed: u64,
    tz: Tz,
    layout: Layout,
) -> anyhow::Result<GenSummary> {
    anyhow::ensure!(accounts > 0, "--accounts must be at least 1");
    anyhow::ensure!(
        rows >= accounts,
        "--rows must be at least --accounts (every account gets one row or more)"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (start, end) = (month.start(tz), month.end(tz));
    let seconds = (end - start).num_seconds();
    let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(std::io::BufWriter::with_capacity(1 << 20, f))
    };

    // First pass: each account's class, so rows can be shared out by weight.
    let mut rng = Rng(seed);
    let plan: Vec<(i64, u64)> = (0..accounts).map(|_| target_calls(&mut rng)).collect();
    let weight: u64 = plan.iter().map(|p| p.1).sum();
    let spare = rows - accounts;

    let mut acc = open("accounts.csv")?;
    writeln!(acc, "account_id,name,activated_at,balance")?;
    let mut usage = open("usage.csv")?;
    writeln!(usage, "account_id,api,timestamp,calls")?;
    // Interleaved: every row is drawn as for the grouped layout, kept as a `Row`, then sorted
    // by time and written; each account's calls per row and APIs are kept to rebuild it.
    let interleaved = layout == Layout::Interleaved;
    let mut pending: Vec<Row> = Vec::new();
    let mut shapes: Vec<(i64, i64, u32, u8)> = Vec::new(); // (calls, per_row, rows, apis)
    let mut zulu: Vec<u64> = Vec::new(); // one bit per row: written with a Z offset
    let mut written = 0u64;
    let mut calls_total = 0i64;
    let mut share_left = spare;
    for (i, (target, w)) in plan.iter().enumerate() {
        let id = format!("acct-{i:08}");
        let opened = if rng.next() % 20 == 0 {
            start + Duration::seconds(rng.range(0, seconds))
        } else {
            start - Duration::days(rng.range(1, 900))
        };
        let balance_fen = rng.range(0, 100_000);
        writeln!(
            acc,
            "{id},Account {i},{},{}.{:02}",
            opened.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
            balance_fen / 100,
            balance_fen % 100
        )?;
        // This account's rows: one, plus its share of the spare rows (the last account takes
        // what rounding left over).
        let extra = if i as u64 + 1 == accounts {
            share_left
        } else {
            (spare as u128 * *w as u128 / weight as u128) as u64
        };
        let extra = extra.min(share_left);
        share_left -= extra;
        let n = 1 + extra;
        let n_calls = (*target).max(n as i64);
        let per_row = n_calls / n as i64;
        let apis = 1 + (rng.next() % 3) as usize;
        if interleaved {
            shapes.push((n_calls, per_row, n as u32, apis as u8));
        }
        for r in 0..n {
            let calls = if r + 1 == n {
                n_calls - per_row * (n as i64 - 1)
            } else {
                per_row
            };
            let offset = match (i % 97, r) {
                (0, 0) => 0,           // the month's first second
                (1, 0) => seconds - 1, // its last second
                _ => rng.range(0, seconds),
            };
            let z = rng.next() % 4 == 0;
            calls_total += calls;
            if interleaved {
                let bit = written + r;
                if bit / 64 >= zulu.len() as u64 {
                    zulu.push(0);
                }
                zulu[(bit / 64) as usize] |= u64::from(z) << (bit % 64);
                pending.push(Row {
                    offset: offset as u32,
                    account: i as u32,
                    line: r as u32,
                });
                continue;
            }
            let api = APIS[(r as usize + i) % apis];
            write_row(&mut usage, &id, api, start + Duration::seconds(offset), z, tz, calls)?;
        }
        written += n;
    }
    if interleaved {
        // Where each account's rows begin in the bit set of Z offsets.
        let mut first = Vec::with_capacity(shapes.len());
        let mut at = 0u64;
        for shape in &shapes {
            first.push(at);
            at += u64::from(shape.2);
        }
        pending.sort_unstable();
        for row in pending {
            let (n_calls, per_row, n, apis) = shapes[row.account as usize];
            let calls = if row.line + 1 == n {
                n_calls - per_row * (i64::from(n) - 1)
            } else {
                per_row
            };
            let bit = first[row.account as usize] + u64::from(row.line);
            let z = zulu[(bit / 64) as usize] >> (bit % 64) & 1 == 1;
            let api = APIS[(row.line as usize + row.account as usize) % apis as usize];
            let id = format!("acct-{:08}", row.account);
            let ts = start + Duration::seconds(i64::from(row.offset));
            write_row(&mut usage, &id, api, ts, z, tz, calls)?;
        }
    }
    acc.flush()?;
    usage.flush()?;
    Ok(GenSummary {
        accounts,
        rows: written,
        calls: calls_total,
    })
}

/// One usage line; `z`: the timestamp in UTC with `Z`, else in the billing zone's offset.
fn write_row(
    out: &mut impl Write,
    id: &str,
    api: &str,
    ts: chrono::DateTime<chrono::Utc>,
    z: bool,
    tz: Tz,
    calls: i64,
) -> std::io::Result<()> {
    let stamp = if z {
        ts.to_rfc3339_opts(SecondsFormat::Secs, true)
    } else {
        ts.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true)
    };
    writeln!(out, "{id},{api},{stamp},{calls}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_writes_the_same_files_with_every_tier() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let month: Month = "2026-10".parse().unwrap();
        let sh = chrono_tz::Asia::Shanghai;
        let s = generate(a.path(), 3000, 9000, month, 42, sh, Layout::Grouped).unwrap();
        generate(b.path(), 3000, 9000, month, 42, sh, Layout::Grouped).unwrap();
        assert_eq!((s.accounts, s.rows), (3000, 9000));
        for f in ["accounts.csv", "usage.csv"] {
            assert_eq!(
                std::fs::read(a.path().join(f)).unwrap(),
                std::fs::read(b.path().join(f)).unwrap()
            );
        }
        let usage = std::fs::read_to_string(a.path().join("usage.csv")).unwrap();
        assert_eq!(usage.lines().count(), 9001);
        let mut per_account = std::collections::HashMap::<&str, i64>::new();
        for line in usage.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            *per_account.entry(f[0]).or_default() += f[3].parse::<i64>().unwrap();
        }
        assert_eq!(per_account.values().sum::<i64>(), s.calls);
        for bound in [1_000_000, 3_000_000, 15_000_000] {
            assert!(per_account.values().any(|c| *c >= bound), "no account reaches {bound}");
        }
        let small = per_account.values().filter(|c| **c < 5_000).count();
        assert!(small > 2500, "most accounts are small: {small}");
        assert!(usage.contains("2026-10-01T00:00:00+08:00") || usage.contains("2026-09-30T16:00:00Z"));
        assert!(usage.contains("2026-10-31T23:59:59+08:00") || usage.contains("2026-10-31T15:59:59Z"));
    }

    #[test]
    fn the_interleaved_layout_holds_the_grouped_rows_in_time_order() {
        let g = tempfile::tempdir().unwrap();
        let i = tempfile::tempdir().unwrap();
        let month: Month = "2026-10".parse().unwrap();
        let sh = chrono_tz::Asia::Shanghai;
        generate(g.path(), 500, 4000, month, 7, sh, Layout::Grouped).unwrap();
        generate(i.path(), 500, 4000, month, 7, sh, Layout::Interleaved).unwrap();
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read(g.path(), "accounts.csv"), read(i.path(), "accounts.csv"));
        let (grouped, interleaved) = (read(g.path(), "usage.csv"), read(i.path(), "usage.csv"));
        let mut a: Vec<&str> = grouped.lines().collect();
        let mut b: Vec<&str> = interleaved.lines().collect();
        // In time order, and accounts interleaved: far more changes of account than accounts.
        let times: Vec<chrono::DateTime<chrono::Utc>> = b[1..]
            .iter()
            .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "not in time order");
        let switches = b[1..]
            .windows(2)
            .filter(|w| w[0].split(',').next() != w[1].split(',').next())
            .count();
        assert!(switches > 3000, "accounts are not interleaved: {switches} switches");
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "the same rows in both layouts");
    }
}

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

pub struct GenSummary {
    pub accounts: u64,
    pub rows: u64,
    pub calls: i64,
}

/// Writes `accounts.csv` and `usage.csv` into `dir`.
pub fn generate(dir: &Path, accounts: u64, rows: u64, month: Month, seed: u64, tz: Tz) -> anyhow::Result<GenSummary> {
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
            let ts = start + Duration::seconds(offset);
            let stamp = if rng.next() % 4 == 0 {
                ts.to_rfc3339_opts(SecondsFormat::Secs, true)
            } else {
                ts.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true)
            };
            writeln!(usage, "{id},{},{stamp},{calls}", APIS[(r as usize + i) % apis])?;
            calls_total += calls;
        }
        written += n;
    }
    acc.flush()?;
    usage.flush()?;
    Ok(GenSummary {
        accounts,
        rows: written,
        calls: calls_total,
    })
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
        let s = generate(a.path(), 3000, 9000, month, 42, sh).unwrap();
        generate(b.path(), 3000, 9000, month, 42, sh).unwrap();
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
}

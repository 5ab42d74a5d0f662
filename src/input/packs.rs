//! The prepaid packs file: `pack_id,account_id,api,calls,valid_from,valid_until,purchased_at`.
//!
//! A pack covers calls of one API for one account while its window `[valid_from, valid_until)`
//! overlaps the month being settled.

use super::{check_account_id, check_id, parse_calls, parse_instant, RowError, Table};
use crate::domain::limits::MAX_PACK_CALLS;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};

pub const COLUMNS: [&str; 7] = [
    "pack_id",
    "account_id",
    "api",
    "calls",
    "valid_from",
    "valid_until",
    "purchased_at",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPack {
    pub line: u64,
    pub pack_id: String,
    pub account_id: String,
    pub api: String,
    pub calls: i64,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub purchased_at: DateTime<Utc>,
}

/// Reads the whole file, or every problem in it.
pub fn read(reader: impl std::io::Read, known_apis: &BTreeSet<String>) -> Result<Vec<NewPack>, Vec<RowError>> {
    let mut table = Table::open(reader, &COLUMNS)?;
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut record = csv::StringRecord::new();
    while let Some(row) = table.next_row(&mut record) {
        let (line, f) = match row {
            Ok(r) => r,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let before = problems.len();
        let mut bad = |field: &str, msg: String| problems.push(RowError::new(line, field, msg));
        let pack_id = f[0].clone();
        if let Err(e) = check_id("pack_id", &pack_id) {
            bad("pack_id", e);
        } else if pack_id.starts_with("free:") {
            bad(
                "pack_id",
                "ids starting with 'free:' are reserved for free packs".into(),
            );
        } else if let Some(first) = seen.insert(pack_id.clone(), line) {
            bad(
                "pack_id",
                format!("duplicate pack id '{pack_id}' (first on line {first})"),
            );
        }
        if let Err(e) = check_account_id(&f[1]) {
            bad("account_id", e);
        }
        if !known_apis.contains(&f[2]) {
            bad("api", format!("unknown API '{}'", super::text::shown(&f[2])));
        }
        let calls = parse_calls(&f[3], MAX_PACK_CALLS)
            .map_err(|e| bad("calls", e))
            .unwrap_or(0);
        let mut instant = |i: usize, name: &str| parse_instant(&f[i]).map_err(|e| bad(name, e)).ok();
        let from = instant(4, "valid_from");
        let until = instant(5, "valid_until");
        let bought = instant(6, "purchased_at");
        if let (Some(a), Some(b)) = (from, until) {
            if b <= a {
                bad("valid_until", "valid_until must be after valid_from".into());
            }
        }
        if problems.len() == before {
            rows.push(NewPack {
                line,
                pack_id,
                account_id: f[1].clone(),
                api: f[2].clone(),
                calls,
                valid_from: from.unwrap(),
                valid_until: until.unwrap(),
                purchased_at: bought.unwrap(),
            });
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_must_be_forward_and_ids_unique() {
        let apis: BTreeSet<String> = ["CropImage".to_string()].into();
        let text = "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
                    p1,a1,CropImage,100,2026-10-01T00:00:00+08:00,2027-01-01T00:00:00+08:00,2026-09-20T10:00:00+08:00\n\
                    p1,a1,CropImage,100,2026-10-01T00:00:00+08:00,2026-09-01T00:00:00+08:00,2026-09-20T10:00:00+08:00\n";
        let e = read(text.as_bytes(), &apis).unwrap_err();
        let got: Vec<&str> = e.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(got, ["pack_id", "valid_until"]);
        let ok = read(text.lines().take(2).collect::<Vec<_>>().join("\n").as_bytes(), &apis).unwrap();
        assert_eq!(ok[0].calls, 100);
    }
}

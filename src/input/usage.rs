//! The usage file: `account_id,api,timestamp,calls`.
//!
//! One row may stand for one call or for a counter of many. Rows are read one at a time (a
//! month can hold tens of millions of them) and handed to the store as they come.

use super::{check_account_id, parse_calls, parse_instant, RowError, Table};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

pub const COLUMNS: [&str; 4] = ["account_id", "api", "timestamp", "calls"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUsage {
    pub line: u64,
    pub account_id: String,
    pub api: String,
    pub ts: DateTime<Utc>,
    pub calls: i64,
}

/// The rows of a usage file, each checked on its own (whether the account exists is the
/// store's check).
pub struct UsageRows<R: std::io::Read> {
    table: Table<R>,
    apis: BTreeSet<String>,
    record: csv::StringRecord,
}

impl<R: std::io::Read> UsageRows<R> {
    pub fn open(reader: R, known_apis: BTreeSet<String>) -> Result<Self, Vec<RowError>> {
        Ok(UsageRows {
            table: Table::open(reader, &COLUMNS)?,
            apis: known_apis,
            record: csv::StringRecord::new(),
        })
    }

    fn check(&self, line: u64, f: Vec<String>) -> Result<NewUsage, Vec<RowError>> {
        let mut problems = Vec::new();
        let mut it = f.into_iter();
        let (id, api, ts, calls) = (
            it.next().unwrap(),
            it.next().unwrap(),
            it.next().unwrap(),
            it.next().unwrap(),
        );
        if let Err(e) = check_account_id(&id) {
            problems.push(RowError::new(line, "account_id", e));
        }
        if !self.apis.contains(&api) {
            let known: Vec<&str> = self.apis.iter().map(String::as_str).collect();
            problems.push(RowError::new(
                line,
                "api",
                format!("unknown API '{api}' (known: {})", known.join(", ")),
            ));
        }
        let ts = parse_instant(&ts).map_err(|e| problems.push(RowError::new(line, "timestamp", e)));
        let calls = parse_calls(&calls).map_err(|e| problems.push(RowError::new(line, "calls", e)));
        match (ts, calls) {
            (Ok(ts), Ok(calls)) if problems.is_empty() => Ok(NewUsage {
                line,
                account_id: id,
                api,
                ts,
                calls,
            }),
            _ => Err(problems),
        }
    }
}

impl<R: std::io::Read> Iterator for UsageRows<R> {
    type Item = Result<NewUsage, Vec<RowError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = std::mem::take(&mut self.record);
        let row = self.table.next_row(&mut record);
        self.record = record;
        Some(match row? {
            Ok((line, fields)) => self.check(line, fields),
            Err(e) => Err(vec![e]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apis() -> BTreeSet<String> {
        ["AssessQuality".to_string(), "CropImage".to_string()].into()
    }

    #[test]
    fn good_and_bad_rows() {
        let text = "account_id,api,timestamp,calls\n\
                    a1,AssessQuality,2026-10-05T09:30:00+08:00,3\n\
                    a1,Teleport,2026-10-05T09:30:00,0\n";
        let rows: Vec<_> = UsageRows::open(text.as_bytes(), apis()).unwrap().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].as_ref().unwrap().calls, 3);
        let fields: Vec<String> = rows[1].as_ref().unwrap_err().iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["api", "timestamp", "calls"]);
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let text = "calls,timestamp,api,account_id\n7,2026-10-05T09:30:00Z,CropImage,a9\n";
        let row = UsageRows::open(text.as_bytes(), apis())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!((row.account_id.as_str(), row.calls), ("a9", 7));
    }
}

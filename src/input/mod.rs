//! Reading the CSV files users give billrun: accounts, usage and prepaid packs.
//!
//! Each reader checks the header, then every row, and reports every problem it finds with its
//! line number and field, so one run tells the user everything to fix. Checks that need the
//! database (does the account exist, was the id used before) are made by the store inside the
//! import transaction, which is rolled back if anything is wrong: a rejected file writes
//! nothing.

pub mod accounts;
pub mod packs;
pub mod usage;

use chrono::{DateTime, Utc};
use std::fmt;

/// One problem in one line of an input file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// The column at fault, or empty for the whole row.
    pub field: String,
    pub message: String,
}

impl RowError {
    pub fn new(line: u64, field: &str, message: impl Into<String>) -> RowError {
        RowError {
            line,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            write!(f, "line {}: field '{}': {}", self.line, self.field, self.message)
        }
    }
}

/// A CSV reader positioned after a checked header, with the index of each required column.
pub struct Table<R: std::io::Read> {
    reader: csv::Reader<R>,
    columns: Vec<usize>,
}

impl<R: std::io::Read> Table<R> {
    /// Opens `reader`, requiring every column of `required` in the header (in any order;
    /// extra columns are ignored). A missing column is reported as a problem on line 1.
    pub fn open(reader: R, required: &[&str]) -> Result<Table<R>, Vec<RowError>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(reader);
        let headers = reader
            .headers()
            .map_err(|e| vec![RowError::new(1, "", format!("cannot read the header: {e}"))])?
            .clone();
        let names: Vec<&str> = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}'))
            .collect();
        let mut columns = Vec::new();
        let mut problems = Vec::new();
        for want in required {
            match names.iter().position(|n| n == want) {
                Some(i) => columns.push(i),
                None => problems.push(RowError::new(
                    1,
                    want,
                    format!("missing column (the header must have {})", required.join(",")),
                )),
            }
        }
        if problems.is_empty() {
            Ok(Table { reader, columns })
        } else {
            Err(problems)
        }
    }

    /// The next row as its line number and the required fields in `required` order, trimmed;
    /// `Err` for a row the CSV reader cannot read.
    pub fn next_row(&mut self, record: &mut csv::StringRecord) -> Option<Result<(u64, Vec<String>), RowError>> {
        match self.reader.read_record(record) {
            Ok(false) => None,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let fields = self
                    .columns
                    .iter()
                    .map(|&i| record.get(i).unwrap_or("").trim().to_owned())
                    .collect();
                Some(Ok((line, fields)))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                Some(Err(RowError::new(line, "", format!("unreadable CSV row: {e}"))))
            }
        }
    }
}

/// Parses an RFC 3339 timestamp that carries an explicit offset (`Z` or `+08:00`).
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    // Kept to the microsecond, the precision both databases store, so that no backend rounds an
    // instant across a month boundary.
    DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| DateTime::from_timestamp_micros(t.timestamp_micros()))
        .ok_or_else(|| format!("'{text}' is not an RFC 3339 timestamp with an offset (like 2026-10-05T09:30:00+08:00)"))
}

/// Parses a strictly positive whole number of calls.
pub fn parse_calls(text: &str) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a positive whole number"));
    }
    match text.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(format!("'{text}' must be greater than zero")),
        Err(_) => Err(format!("'{text}' is too large")),
    }
}

/// Checks an account id: non-empty, at most 128 characters, no control characters.
pub fn check_account_id(text: &str) -> Result<(), String> {
    if text.is_empty() {
        Err("account_id is empty".into())
    } else if text.chars().count() > 128 {
        Err("account_id is longer than 128 characters".into())
    } else if text.chars().any(char::is_control) {
        Err("account_id contains control characters".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_need_an_offset() {
        assert!(parse_instant("2026-10-05T09:30:00+08:00").is_ok());
        assert!(parse_instant("2026-10-05T01:30:00Z").is_ok());
        assert!(parse_instant("2026-10-05T09:30:00").is_err());
        assert!(parse_instant("2026-10-05").is_err());
        // Sub-microsecond digits are cut, never rounded into the next month.
        let t = parse_instant("2026-09-30T15:59:59.9999999Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-09-30T15:59:59.999999+00:00");
    }

    #[test]
    fn calls_are_positive_integers() {
        assert_eq!(parse_calls("42"), Ok(42));
        for bad in ["0", "-1", "1.5", "", "1e3", "99999999999999999999"] {
            assert!(parse_calls(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_columns_are_named() {
        let e = Table::open("account_id,api\n".as_bytes(), &["account_id", "api", "calls"])
            .err()
            .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "calls");
        assert_eq!(e[0].line, 1);
    }
}

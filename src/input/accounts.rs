//! The accounts file: `account_id,name,activated_at,balance`.
//!
//! `activated_at` is an RFC 3339 timestamp or empty ("service not opened"); `balance` is the
//! opening balance with at most two decimals, and may be negative, up to
//! [`MAX_AMOUNT_FEN`] either way. Ids and names follow `input::text`.

use super::{check_account_id, check_name, parse_instant_in, RowError, Table};
use crate::domain::limits::MAX_AMOUNT_FEN;
use crate::domain::money::{format_money, from_fen, parse_cny, to_fen};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

pub const COLUMNS: [&str; 4] = ["account_id", "name", "activated_at", "balance"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub line: u64,
    pub account_id: String,
    pub name: String,
    pub activated_at: Option<DateTime<Utc>>,
    pub balance_fen: i64,
}

/// Reads the whole file, or every problem in it.
pub fn read(reader: impl std::io::Read, assume: Option<chrono_tz::Tz>) -> Result<Vec<NewAccount>, Vec<RowError>> {
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
        let [id, name, activated, balance] = [&f[0], &f[1], &f[2], &f[3]];
        if let Err(e) = check_account_id(id) {
            problems.push(RowError::new(line, "account_id", e));
        } else if let Some(first) = seen.insert(id.clone(), line) {
            problems.push(RowError::new(
                line,
                "account_id",
                format!("duplicate account id '{id}' (first on line {first})"),
            ));
        }
        if let Err(e) = check_name(name) {
            problems.push(RowError::new(line, "name", e));
        }
        let activated_at = if activated.is_empty() {
            None
        } else {
            parse_instant_in(activated, assume)
                .map_err(|e| problems.push(RowError::new(line, "activated_at", e)))
                .ok()
        };
        let balance_fen = match parse_cny(balance) {
            Ok(d) => match to_fen(d) {
                Some(fen) if fen.unsigned_abs() <= MAX_AMOUNT_FEN.unsigned_abs() => fen,
                _ => {
                    problems.push(RowError::new(
                        line,
                        "balance",
                        format!(
                            "'{balance}' is beyond ±{}, the largest opening balance billrun takes",
                            format_money(from_fen(MAX_AMOUNT_FEN))
                        ),
                    ));
                    0
                }
            },
            Err(e) => {
                problems.push(RowError::new(line, "balance", e));
                0
            }
        };
        if problems.len() == before {
            rows.push(NewAccount {
                line,
                account_id: id.clone(),
                name: name.clone(),
                activated_at,
                balance_fen,
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
    fn reads_good_rows() {
        let rows = read(
            "account_id,name,activated_at,balance\na1,Acme,2026-10-01T00:00:00+08:00,100.50\na2,Beta,,-3\n".as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].balance_fen, 10050);
        assert_eq!(rows[1].activated_at, None);
        assert_eq!(rows[1].balance_fen, -300);
        assert_eq!(rows[1].line, 3);
    }

    #[test]
    fn reports_every_bad_line() {
        let text = "account_id,name,activated_at,balance\n\
                    a1,A,2026-10-01T00:00:00,1\n\
                    a2,B,,1.2.3\n\
                    a1,C,,0\n\
                    ,D,,0\n\
                    a6,E\u{1b}]0;pwned\u{7},,0\n\
                    a7,F,,-10000000000000.01\n\
                    a8\u{200b},G,,0\n\
                    a9,H,,-92233720368547758.08\n\
                    a10,I,,92233720368547758.08\n";
        let problems = read(text.as_bytes(), None).unwrap_err();
        let got: Vec<(u64, &str)> = problems.iter().map(|p| (p.line, p.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "activated_at"),
                (3, "balance"),
                (4, "account_id"),
                (5, "account_id"),
                (6, "name"),
                (7, "balance"),
                (8, "account_id"),
                (9, "balance"),
                (10, "balance")
            ]
        );
        assert!(problems[2]
            .message
            .contains("duplicate account id 'a1' (first on line 2)"));
    }
}

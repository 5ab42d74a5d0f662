//! The usage file: `account_id,api,timestamp,calls`.
//!
//! One row may stand for one call or for a counter of many. Rows are read one at a time (a
//! month can hold tens of millions of them) and handed to the store as they come.
//!
//! A timestamp must fall where it can be billed: not before the first month the catalog
//! prices, and not after `--now` by more than [`CLOCK_AHEAD`] (a meter reports calls that have
//! happened; a row from the future is a meter whose clock or zone is wrong, and a row in year
//! 9999 could never be settled).
//!
//! While the rows are read, the file is fingerprinted twice: the SHA-256 of its bytes, and a
//! digest of its rows as billrun reads them ([`RowsDigest`]). The second makes "the same file
//! twice is refused" mean the same rows: a copy saved with other line endings, other quoting,
//! a byte-order mark, its columns in another order or its rows in another order has the same
//! rows digest.

use super::{check_account_id, parse_calls, parse_instant, RowError, Table};
use crate::domain::limits::MAX_ROW_CALLS;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub const COLUMNS: [&str; 4] = ["account_id", "api", "timestamp", "calls"];

/// How far after `--now` a usage timestamp may be: clocks of meters and of the machine
/// importing drift a little.
pub const CLOCK_AHEAD: Duration = Duration::minutes(5);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUsage {
    pub line: u64,
    pub account_id: String,
    pub api: String,
    pub ts: DateTime<Utc>,
    pub calls: i64,
}

/// The instants a usage timestamp may take, `[earliest, latest]`.
#[derive(Clone, Copy, Debug)]
pub struct TimeBounds {
    /// The start of the first month the catalog prices, in the billing time zone.
    pub earliest: DateTime<Utc>,
    /// `--now` plus [`CLOCK_AHEAD`].
    pub latest: DateTime<Utc>,
}

impl TimeBounds {
    /// What is wrong with `ts`, if anything.
    fn problem(&self, ts: DateTime<Utc>, text: &str) -> Option<String> {
        if ts < self.earliest {
            Some(format!(
                "'{text}' is before {}, the start of the first month the catalog prices",
                self.earliest.to_rfc3339()
            ))
        } else if ts > self.latest {
            Some(format!(
                "'{text}' is in the future: after --now ({}) by more than {} minutes; a meter reports calls that have happened",
                (self.latest - CLOCK_AHEAD).to_rfc3339(),
                CLOCK_AHEAD.num_minutes()
            ))
        } else {
            None
        }
    }
}

/// The two fingerprints of a usage file read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// SHA-256 of the file's bytes, in hex.
    pub sha256: String,
    /// [`RowsDigest`] of its rows, in hex.
    pub rows: String,
}

/// A digest of a multiset of usage rows: the same rows give the same digest whatever their
/// order and whatever bytes wrote them. Each row is hashed (SHA-256 of its account, API,
/// instant in microseconds and calls, separated by a byte no id may hold), the hashes are
/// added as 256-bit numbers, and the sum and the number of rows are hashed once more.
#[derive(Clone, Debug, Default)]
pub struct RowsDigest {
    sum: [u64; 4],
    rows: u64,
}

impl RowsDigest {
    pub fn add(&mut self, row: &NewUsage) {
        let mut h = Sha256::new();
        h.update(row.account_id.as_bytes());
        h.update([0x1f]);
        h.update(row.api.as_bytes());
        h.update([0x1f]);
        h.update(row.ts.timestamp_micros().to_le_bytes());
        h.update([0x1f]);
        h.update(row.calls.to_le_bytes());
        let hash = h.finalize();
        let mut carry = 0u64;
        for (i, limb) in self.sum.iter_mut().enumerate() {
            let word = u64::from_le_bytes(hash[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            let (s1, c1) = limb.overflowing_add(word);
            let (s2, c2) = s1.overflowing_add(carry);
            *limb = s2;
            carry = u64::from(c1) + u64::from(c2);
        }
        self.rows += 1;
    }

    pub fn hex(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"billrun usage rows v1");
        h.update(self.rows.to_le_bytes());
        for limb in self.sum {
            h.update(limb.to_le_bytes());
        }
        hex(&h.finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Passes a file through while hashing its bytes.
pub struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: Sha256::new(),
        }
    }

    /// The SHA-256 of what was read so far, in hex.
    pub fn sha256(&self) -> String {
        hex(&self.hash.clone().finalize())
    }
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The rows of a usage file, each checked on its own (whether the account exists is the
/// store's check).
pub struct UsageRows<R: std::io::Read> {
    table: Table<Hashing<R>>,
    apis: BTreeSet<String>,
    bounds: TimeBounds,
    record: csv::StringRecord,
    digest: RowsDigest,
    ended: bool,
}

impl<R: std::io::Read> UsageRows<R> {
    pub fn open(reader: R, known_apis: BTreeSet<String>, bounds: TimeBounds) -> Result<Self, Vec<RowError>> {
        Ok(UsageRows {
            table: Table::open(Hashing::new(reader), &COLUMNS)?,
            apis: known_apis,
            bounds,
            record: csv::StringRecord::new(),
            digest: RowsDigest::default(),
            ended: false,
        })
    }

    /// The file's fingerprints, once every row has been read.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.ended.then(|| Fingerprint {
            sha256: self.table.source().sha256(),
            rows: self.digest.hex(),
        })
    }

    fn check(&self, line: u64, f: Vec<String>) -> Result<NewUsage, Vec<RowError>> {
        let mut problems = Vec::new();
        let [id, api, ts_text, calls]: [String; 4] = f.try_into().expect("four required columns");
        if let Err(e) = check_account_id(&id) {
            problems.push(RowError::new(line, "account_id", e));
        }
        if !self.apis.contains(&api) {
            let known: Vec<&str> = self.apis.iter().map(String::as_str).collect();
            problems.push(RowError::new(
                line,
                "api",
                format!(
                    "unknown API '{}' (known: {})",
                    super::text::shown(&api),
                    known.join(", ")
                ),
            ));
        }
        let ts = parse_instant(&ts_text)
            .and_then(|ts| self.bounds.problem(ts, &ts_text).map_or(Ok(ts), Err))
            .map_err(|e| problems.push(RowError::new(line, "timestamp", e)));
        let calls = parse_calls(&calls, MAX_ROW_CALLS).map_err(|e| problems.push(RowError::new(line, "calls", e)));
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
        let Some(row) = row else {
            self.ended = true;
            return None;
        };
        Some(match row {
            Ok((line, fields)) => self.check(line, fields).inspect(|r| self.digest.add(r)),
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

    fn bounds() -> TimeBounds {
        TimeBounds {
            earliest: "2023-11-30T16:00:00Z".parse().unwrap(),
            latest: "2026-11-01T00:05:00Z".parse().unwrap(),
        }
    }

    fn read(text: &str) -> (Vec<Result<NewUsage, Vec<RowError>>>, Option<Fingerprint>) {
        let mut rows = UsageRows::open(text.as_bytes(), apis(), bounds()).unwrap();
        let read: Vec<_> = rows.by_ref().collect();
        (read, rows.fingerprint())
    }

    #[test]
    fn good_and_bad_rows() {
        let text = "account_id,api,timestamp,calls\n\
                    a1,AssessQuality,2026-10-05T09:30:00+08:00,3\n\
                    a1,Teleport,2026-10-05T09:30:00,0\n";
        let (rows, _) = read(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].as_ref().unwrap().calls, 3);
        let fields: Vec<String> = rows[1].as_ref().unwrap_err().iter().map(|e| e.field.clone()).collect();
        assert_eq!(fields, ["api", "timestamp", "calls"]);
    }

    #[test]
    fn columns_may_come_in_any_order() {
        let text = "calls,timestamp,api,account_id\n7,2026-10-05T09:30:00Z,CropImage,a9\n";
        let (rows, _) = read(text);
        let row = rows[0].as_ref().unwrap();
        assert_eq!((row.account_id.as_str(), row.calls), ("a9", 7));
    }

    #[test]
    fn timestamps_that_could_never_be_settled_are_refused() {
        for ts in [
            "0000-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z",
            "9999-12-31T00:00:00Z",
            "2023-11-30T15:59:59Z",
            "2026-11-01T00:05:01Z",
        ] {
            let (rows, _) = read(&format!("account_id,api,timestamp,calls\na1,CropImage,{ts},1\n"));
            let e = rows[0].as_ref().unwrap_err();
            assert_eq!(e[0].field, "timestamp", "{ts}: {e:?}");
        }
        let (rows, _) = read("account_id,api,timestamp,calls\na1,CropImage,2026-11-01T00:05:00Z,1\n");
        assert!(rows[0].is_ok());
    }

    #[test]
    fn a_leap_second_stays_in_its_month() {
        let (rows, _) = read("account_id,api,timestamp,calls\na1,CropImage,2026-10-31T23:59:60+08:00,1\n");
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row.ts.to_rfc3339(), "2026-10-31T15:59:59.999999+00:00");
    }

    #[test]
    fn the_same_rows_have_the_same_digest_whatever_bytes_carry_them() {
        let plain = "account_id,api,timestamp,calls\na1,CropImage,2026-10-05T09:30:00+08:00,3\na2,AssessQuality,2026-10-06T00:00:00Z,5\n";
        let variants = [
            plain.replace('\n', "\r\n"),
            format!("\u{feff}{plain}"),
            "account_id,api,timestamp,calls\n\"a1\",\"CropImage\",\"2026-10-05T09:30:00+08:00\",\"3\"\na2,AssessQuality,2026-10-06T00:00:00Z,5\n".into(),
            "calls,account_id,api,timestamp,note\n5,a2,AssessQuality,2026-10-06T08:00:00+08:00,x\n3,a1,CropImage,2026-10-05T01:30:00Z,y\n".into(),
        ];
        let (_, original) = read(plain);
        let original = original.unwrap();
        for v in &variants {
            let (_, f) = read(v);
            let f = f.unwrap();
            assert_eq!(f.rows, original.rows, "{v:?}");
            assert_ne!(f.sha256, original.sha256, "{v:?}");
        }
        let (_, more) = read(&format!("{plain}a2,AssessQuality,2026-10-06T00:00:00Z,5\n"));
        assert_ne!(more.unwrap().rows, original.rows, "a row twice is not the row once");
        let (_, other) = read(&plain.replace(",5\n", ",6\n"));
        assert_ne!(other.unwrap().rows, original.rows);
    }
}

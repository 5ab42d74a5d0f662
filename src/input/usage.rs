//! The usage file: `account_id,api,timestamp,calls`, and optionally `event_id`.
//!
//! One row may stand for one call or for a counter of many. Rows are read one at a time (a
//! month can hold tens of millions of them) and handed to the store as they come. The file
//! may be CSV or NDJSON, compressed with gzip or not (`input::stream`); the same checks apply
//! to either.
//!
//! A timestamp must fall where it can be billed: not before the first month the catalog
//! prices, and not after `--now` by more than [`CLOCK_AHEAD`] (a meter reports calls that have
//! happened; a row from the future is a meter whose clock or zone is wrong, and a row in year
//! 9999 could never be settled).
//!
//! `event_id`, when a row has one, names the metered event the row reports: a row whose event
//! was imported before for the same account is not billed again (the store's check). A CSV
//! cell left empty, or a JSON field absent or null, means the row has none.
//!
//! While the rows are read, the file is fingerprinted twice: the SHA-256 of its content (after
//! decompression; an import takes it from the tap that keeps the content, `input::stored`, and
//! tells the reader to skip it, [`UsageRows::skip_content_hash`]), and a digest of its rows as
//! billrun reads them ([`RowsDigest`]). The second
//! makes "the same file twice is refused" mean the same rows: a copy saved with other line
//! endings, other quoting, a byte-order mark, its columns in another order, its rows in another
//! order, compressed, or written as NDJSON has the same rows digest.

use super::ndjson::{JsonLines, JsonRow};
use super::stream::{Bytes, Format};
use super::{check_account_id, check_id, parse_calls, parse_instant_in, RowError, Table};
use crate::domain::limits::MAX_ROW_CALLS;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::BufReader;

pub const COLUMNS: [&str; 4] = ["account_id", "api", "timestamp", "calls"];

/// Columns a usage file may have besides [`COLUMNS`].
pub const OPTIONAL: [&str; 1] = ["event_id"];

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
    /// The metered event the row reports, if the meter names it.
    pub event_id: Option<String>,
}

impl NewUsage {
    /// The row, borrowing its fields.
    pub fn as_ref(&self) -> UsageRef<'_> {
        UsageRef {
            line: self.line,
            account_id: &self.account_id,
            api: &self.api,
            ts: self.ts,
            calls: self.calls,
            event_id: self.event_id.as_deref(),
        }
    }
}

/// A usage row whose fields are borrowed from where it was read (`input::plain_csv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageRef<'a> {
    pub line: u64,
    pub account_id: &'a str,
    pub api: &'a str,
    pub ts: DateTime<Utc>,
    pub calls: i64,
    pub event_id: Option<&'a str>,
}

/// The instants a usage timestamp may take, `[earliest, latest]`.
#[derive(Clone, Copy, Debug)]
pub struct TimeBounds {
    /// The start of the first month the catalog prices, in the billing time zone.
    pub earliest: DateTime<Utc>,
    /// `--now` plus [`CLOCK_AHEAD`].
    pub latest: DateTime<Utc>,
    /// The zone a timestamp without an offset is read in (`--assume-tz`); `None`: refused.
    pub assume: Option<chrono_tz::Tz>,
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
/// instant in microseconds and calls, and its event id if it has one, separated by a byte no id
/// may hold), the hashes are added as 256-bit numbers, and the sum and the number of rows are
/// hashed once more. A row without an event id hashes as it did before event ids existed.
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
        if let Some(event) = &row.event_id {
            h.update([0x1e]);
            h.update(event.as_bytes());
        }
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
    /// `None`: content read back, whose digest is checked elsewhere.
    hash: Option<Sha256>,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hash: Some(Sha256::new()),
        }
    }

    /// The SHA-256 of what was read so far, in hex.
    pub fn sha256(&self) -> String {
        hex(&self.hash.clone().unwrap_or_default().finalize())
    }
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hash) = &mut self.hash {
            hash.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The fields of one row as read, before they are checked; `None` where the row lacks a
/// required field (already reported).
struct RawRow {
    account_id: Option<String>,
    api: Option<String>,
    timestamp: Option<String>,
    calls: Option<String>,
    event_id: Option<String>,
}

/// A row's line and fields as read, with the problems found reading them; or the problem
/// that kept the row from being read at all.
type RawRead = Result<(u64, RawRow, Vec<RowError>), RowError>;

/// The content, hashed as it is read, by the format's own reader.
enum Lines {
    Csv {
        table: Table<Hashing<Bytes>>,
        record: csv::StringRecord,
    },
    Ndjson(JsonLines<BufReader<Hashing<Bytes>>>),
}

/// The rows of a usage file, each checked on its own (whether the account exists, and whether
/// its event was imported before, are the store's checks).
pub struct UsageRows {
    lines: Lines,
    apis: BTreeSet<String>,
    bounds: TimeBounds,
    digest: RowsDigest,
    ended: bool,
    event_ids: bool,
    /// Content an import kept, read back (`input::replay`): its rows were checked when it was
    /// imported, so neither the catalog's APIs nor the instants allowed then are asked again,
    /// and it is not fingerprinted.
    read_back: bool,
}

impl UsageRows {
    /// Reads `content` (already decompressed) as `format`. A CSV header missing a column is
    /// refused here.
    pub fn open(
        content: Bytes,
        format: Format,
        known_apis: BTreeSet<String>,
        bounds: TimeBounds,
    ) -> Result<Self, Vec<RowError>> {
        let hashing = Hashing::new(content);
        let (lines, event_ids) = match format {
            Format::Csv => {
                let table = Table::open_with(hashing, &COLUMNS, &OPTIONAL)?;
                let event_ids = table.has_optional(COLUMNS.len(), 0);
                let record = csv::StringRecord::new();
                (Lines::Csv { table, record }, event_ids)
            }
            Format::Ndjson => (
                Lines::Ndjson(JsonLines::new(BufReader::with_capacity(1 << 16, hashing))),
                true,
            ),
        };
        Ok(UsageRows {
            lines,
            apis: known_apis,
            bounds,
            digest: RowsDigest::default(),
            ended: false,
            event_ids,
            read_back: false,
        })
    }

    /// Reads content an import kept (`input::stored`) as that import read it.
    pub fn read_back(content: Bytes, reading: super::stored::Reading) -> Result<Self, Vec<RowError>> {
        let bounds = TimeBounds {
            earliest: DateTime::<Utc>::MIN_UTC,
            latest: DateTime::<Utc>::MAX_UTC,
            assume: reading.assume_tz,
        };
        let mut rows = UsageRows::open(content, reading.format, BTreeSet::new(), bounds)?;
        rows.read_back = true;
        rows.skip_content_hash();
        Ok(rows)
    }

    /// Leaves the content's SHA-256 to whoever else reads the same bytes (the tap that keeps
    /// them, `input::stored`): [`UsageRows::fingerprint`]'s `sha256` is then that of nothing.
    pub fn skip_content_hash(&mut self) {
        match &mut self.lines {
            Lines::Csv { table, .. } => table.source_mut().hash = None,
            Lines::Ndjson(lines) => lines.source_mut().get_mut().hash = None,
        }
    }

    /// Whether rows may carry event ids: a CSV file with an `event_id` column, or NDJSON.
    pub fn may_have_event_ids(&self) -> bool {
        self.event_ids
    }

    /// The file's fingerprints, once every row has been read.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        let hashing = match &self.lines {
            Lines::Csv { table, .. } => table.source(),
            Lines::Ndjson(lines) => lines.source().get_ref(),
        };
        self.ended.then(|| Fingerprint {
            sha256: hashing.sha256(),
            rows: self.digest.hex(),
        })
    }

    /// The next row's line and fields as read, with the problems found reading them, or the
    /// problem that kept the row from being read at all.
    fn next_raw(&mut self) -> Option<RawRead> {
        match &mut self.lines {
            Lines::Csv { table, record } => {
                let row = table.next_row(record)?;
                Some(row.map(|(line, f)| {
                    let [id, api, ts, calls, event]: [String; 5] = f.try_into().expect("five columns");
                    let raw = RawRow {
                        account_id: Some(id),
                        api: Some(api),
                        timestamp: Some(ts),
                        calls: Some(calls),
                        event_id: Some(event).filter(|e| !e.is_empty()),
                    };
                    (line, raw, Vec::new())
                }))
            }
            Lines::Ndjson(lines) => Some(lines.next_row()?.map(json_fields)),
        }
    }

    fn check(&self, line: u64, raw: RawRow, mut problems: Vec<RowError>) -> Result<NewUsage, Vec<RowError>> {
        let id = raw.account_id.filter(|id| {
            let problem = check_account_id(id).err();
            problem
                .map(|e| problems.push(RowError::new(line, "account_id", e)))
                .is_none()
        });
        let api = raw.api.filter(|api| {
            if self.read_back || self.apis.contains(api) {
                return true;
            }
            let known: Vec<&str> = self.apis.iter().map(String::as_str).collect();
            problems.push(RowError::new(
                line,
                "api",
                format!(
                    "unknown API '{}' (known: {})",
                    super::text::shown(api),
                    known.join(", ")
                ),
            ));
            false
        });
        let ts = raw.timestamp.and_then(|text| {
            parse_instant_in(&text, self.bounds.assume)
                .and_then(|ts| self.bounds.problem(ts, &text).map_or(Ok(ts), Err))
                .map_err(|e| problems.push(RowError::new(line, "timestamp", e)))
                .ok()
        });
        let calls = raw.calls.and_then(|text| {
            parse_calls(&text, MAX_ROW_CALLS)
                .map_err(|e| problems.push(RowError::new(line, "calls", e)))
                .ok()
        });
        let event_id = raw.event_id.filter(|event| {
            let problem = check_id("event_id", event).err();
            problem
                .map(|e| problems.push(RowError::new(line, "event_id", e)))
                .is_none()
        });
        match (id, api, ts, calls) {
            (Some(account_id), Some(api), Some(ts), Some(calls)) if problems.is_empty() => Ok(NewUsage {
                line,
                account_id,
                api,
                ts,
                calls,
                event_id,
            }),
            _ => Err(problems),
        }
    }
}

/// An NDJSON object's fields, with what is wrong with their presence or type: every required
/// one must be there; `calls` may be a number or a string of digits, the others strings.
fn json_fields(row: JsonRow) -> (u64, RawRow, Vec<RowError>) {
    let line = row.line();
    let mut problems = Vec::new();
    let mut required = |name: &str, value: Result<Option<String>, RowError>| match value {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            problems.push(RowError::new(line, name, "the field is missing (every row needs it)"));
            None
        }
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let raw = RawRow {
        account_id: required("account_id", row.string("account_id")),
        api: required("api", row.string("api")),
        timestamp: required("timestamp", row.string("timestamp")),
        calls: required("calls", row.text("calls")),
        event_id: match row.string("event_id") {
            Ok(e) => e,
            Err(e) => {
                problems.push(e);
                None
            }
        },
    };
    let mut raw = raw;
    if raw.event_id.as_deref() == Some("") {
        raw.event_id = None;
        problems.push(RowError::new(
            line,
            "event_id",
            "event_id is empty (leave the field out, or null, for a row without one)",
        ));
    }
    (line, raw, problems)
}

impl Iterator for UsageRows {
    type Item = Result<NewUsage, Vec<RowError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(row) = self.next_raw() else {
            self.ended = true;
            return None;
        };
        Some(match row {
            Ok((line, raw, problems)) => self.check(line, raw, problems).inspect(|r| {
                if !self.read_back {
                    self.digest.add(r)
                }
            }),
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
            assume: None,
            earliest: "2023-11-30T16:00:00Z".parse().unwrap(),
            latest: "2026-11-01T00:05:00Z".parse().unwrap(),
        }
    }

    fn read(text: &str) -> (Vec<Result<NewUsage, Vec<RowError>>>, Option<Fingerprint>) {
        read_as(text, Format::Csv)
    }

    fn read_as(text: &str, format: Format) -> (Vec<Result<NewUsage, Vec<RowError>>>, Option<Fingerprint>) {
        let content = Box::new(std::io::Cursor::new(text.to_owned().into_bytes()));
        let mut rows = UsageRows::open(content, format, apis(), bounds()).ok().unwrap();
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

    #[test]
    fn ndjson_rows_are_the_csv_rows_with_the_same_digest() {
        let csv = "account_id,api,timestamp,calls,event_id\n\
                   a1,CropImage,2026-10-05T09:30:00+08:00,3,\n\
                   a2,AssessQuality,2026-10-06T00:00:00Z,5,ev-9\n";
        let json = "{\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T09:30:00+08:00\",\"calls\":3}\n\
                    {\"calls\":\"5\",\"event_id\":\"ev-9\",\"api\":\"AssessQuality\",\"timestamp\":\"2026-10-06T00:00:00Z\",\"account_id\":\"a2\",\"meter\":{\"v\":2}}\n";
        let (from_csv, f_csv) = read(csv);
        let (from_json, f_json) = read_as(json, Format::Ndjson);
        let ok = |rows: Vec<Result<NewUsage, Vec<RowError>>>| -> Vec<NewUsage> {
            rows.into_iter()
                .map(|r| {
                    let mut r = r.unwrap();
                    r.line = 0;
                    r
                })
                .collect()
        };
        let (from_csv, from_json) = (ok(from_csv), ok(from_json));
        assert_eq!(from_csv, from_json);
        assert_eq!(from_csv[0].event_id, None, "an empty cell is no event id");
        assert_eq!(from_csv[1].event_id.as_deref(), Some("ev-9"));
        assert_eq!(f_csv.unwrap().rows, f_json.unwrap().rows);
    }

    #[test]
    fn an_event_id_makes_another_row() {
        let plain = "account_id,api,timestamp,calls\na1,CropImage,2026-10-05T09:30:00Z,3\n";
        let (_, without) = read(plain);
        let (_, empty) = read("account_id,api,timestamp,calls,event_id\na1,CropImage,2026-10-05T09:30:00Z,3,\n");
        let (_, with) = read("account_id,api,timestamp,calls,event_id\na1,CropImage,2026-10-05T09:30:00Z,3,e1\n");
        assert_eq!(without.as_ref().unwrap().rows, empty.unwrap().rows);
        assert_ne!(without.unwrap().rows, with.unwrap().rows);
    }

    #[test]
    fn bad_ndjson_fields_are_each_named() {
        let json = "{\"account_id\":7,\"api\":\"Teleport\",\"calls\":1.5,\"event_id\":\"\"}\n\
                    {\"account_id\":\"a1\",\"api\":\"CropImage\",\"timestamp\":\"2026-10-05T09:30:00Z\",\"calls\":[1]}\n\
                    not json\n";
        let (rows, _) = read_as(json, Format::Ndjson);
        let fields = |i: usize| -> Vec<(u64, String)> {
            let mut f: Vec<_> = rows[i]
                .as_ref()
                .unwrap_err()
                .iter()
                .map(|e| (e.line, e.field.clone()))
                .collect();
            f.sort();
            f
        };
        let named = |line: u64, names: &[&str]| -> Vec<(u64, String)> {
            let mut f: Vec<_> = names.iter().map(|n| (line, n.to_string())).collect();
            f.sort();
            f
        };
        assert_eq!(
            fields(0),
            named(1, &["account_id", "api", "calls", "event_id", "timestamp"])
        );
        assert_eq!(fields(1), named(2, &["calls"]));
        assert_eq!(fields(2), named(3, &["(line)"]));
    }
}

//! Reading the CSV files users give billrun: accounts, usage and prepaid packs.
//!
//! Each reader checks the header, then every row, and reports every problem it finds with its
//! line number and field, so one run tells the user everything to fix. Checks that need the
//! database (does the account exist, was the id used before) are made by the store inside the
//! import transaction, which is rolled back if anything is wrong: a rejected file writes
//! nothing.

pub mod accounts;
pub mod archived;
pub mod ndjson;
pub mod packs;
pub mod plain_csv;
#[cfg(test)]
mod props;
pub mod replay;
pub mod stored;
pub mod stream;
pub mod text;
pub mod usage;

pub use text::{check_account_id, check_id, check_name};

use crate::domain::limits::MAX_LINE_BYTES;
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
    reader: csv::Reader<LineLimit<R>>,
    headers: Vec<String>,
    /// Where each required, then each optional, column is; `None`: an optional one is absent.
    columns: Vec<Option<usize>>,
}

impl<R: std::io::Read> Table<R> {
    /// Opens `reader`, requiring every column of `required` in the header (in any order;
    /// extra columns are ignored). A missing column, or a required column named twice (which
    /// copy would count?), is reported as a problem on line 1. Lines longer than
    /// [`MAX_LINE_BYTES`] end the reading with a problem on that line.
    pub fn open(reader: R, required: &[&str]) -> Result<Table<R>, Vec<RowError>> {
        Table::open_with(reader, required, &[])
    }

    /// As [`Table::open`], with columns of `optional` that the header may have (once at most).
    /// [`Table::next_row`] gives their fields after the required ones, empty where the header
    /// lacks the column.
    pub fn open_with(reader: R, required: &[&str], optional: &[&str]) -> Result<Table<R>, Vec<RowError>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(LineLimit::new(reader));
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| vec![csv_problem(&e, &[])])?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = h.trim();
                if i == 0 { h.trim_start_matches('\u{feff}') } else { h }.to_owned()
            })
            .collect();
        let mut columns = Vec::new();
        let mut problems = Vec::new();
        for (n, want) in required.iter().chain(optional).enumerate() {
            let at: Vec<usize> = (0..headers.len()).filter(|&i| headers[i] == *want).collect();
            match at.as_slice() {
                [i] => columns.push(Some(*i)),
                [] if n >= required.len() => columns.push(None),
                [] => problems.push(RowError::new(
                    1,
                    want,
                    format!("missing column (the header must have {})", required.join(",")),
                )),
                several => problems.push(RowError::new(
                    1,
                    want,
                    format!(
                        "the column appears {} times (columns {}); it must appear once",
                        several.len(),
                        several
                            .iter()
                            .map(|i| (i + 1).to_string())
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )),
            }
        }
        if problems.is_empty() {
            Ok(Table {
                reader,
                headers,
                columns,
            })
        } else {
            Err(problems)
        }
    }

    /// The reader the file is read from.
    pub fn source(&self) -> &R {
        &self.reader.get_ref().inner
    }

    pub fn source_mut(&mut self) -> &mut R {
        &mut self.reader.get_mut().inner
    }

    /// Whether the header has optional column `k` (0 for the first of `optional`).
    pub fn has_optional(&self, required: usize, k: usize) -> bool {
        self.columns.get(required + k).is_some_and(Option::is_some)
    }

    /// The next row as its line number and the required fields in `required` order, trimmed;
    /// `Err` for a row the CSV reader cannot read. After a line too long to read, there is no
    /// next row: where the next one starts is unknown.
    pub fn next_row(&mut self, record: &mut csv::StringRecord) -> Option<Result<(u64, Vec<String>), RowError>> {
        if self.reader.get_ref().failed {
            return None;
        }
        match self.reader.read_record(record) {
            Ok(false) => None,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(1);
                let fields = self
                    .columns
                    .iter()
                    .map(|&i| i.and_then(|i| record.get(i)).unwrap_or("").trim().to_owned())
                    .collect();
                Some(Ok((line, fields)))
            }
            Err(e) => Some(Err(csv_problem(&e, &self.headers))),
        }
    }
}

/// A problem the CSV reader found, with its line and the column it concerns: the first
/// missing column of a short row, the first extra one of a long row, the field that is not
/// UTF-8.
fn csv_problem(e: &csv::Error, headers: &[String]) -> RowError {
    let line = e.position().map(|p| p.line()).unwrap_or(1).max(1);
    let column = |i: usize| {
        headers
            .get(i)
            .filter(|h| !h.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("column {}", i + 1))
    };
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            let (expected, len) = (*expected_len as usize, *len as usize);
            let field = if len < expected {
                column(len)
            } else {
                format!("column {}", expected + 1)
            };
            RowError::new(
                line,
                &field,
                format!("the row has {len} fields, the header has {expected}"),
            )
        }
        csv::ErrorKind::Utf8 { err, .. } => RowError::new(line, &column(err.field()), NOT_UTF8),
        csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            RowError::new(line_of(io).unwrap_or(line), "(line)", io.to_string())
        }
        _ => RowError::new(line, "(line)", format!("unreadable CSV: {e}")),
    }
}

/// What a file that is not UTF-8 is told: most such files were saved by Excel or a Chinese
/// system in GBK.
pub const NOT_UTF8: &str = "not valid UTF-8 text: the file is in another encoding (GBK, as Excel saves \"CSV\" on a \
                            Chinese system?); save it as \"CSV UTF-8\", or convert it (iconv -f GBK -t UTF-8)";

/// The line number [`LineLimit`] put in its error, if this is one of its errors.
fn line_of(e: &std::io::Error) -> Option<u64> {
    e.get_ref()?.downcast_ref::<LineTooLong>().map(|l| l.line)
}

/// A line longer than [`MAX_LINE_BYTES`].
#[derive(Debug)]
struct LineTooLong {
    line: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the line is longer than {MAX_LINE_BYTES} bytes")
    }
}
impl std::error::Error for LineTooLong {}

/// Passes a file through, failing once a line grows past [`MAX_LINE_BYTES`]: the CSV reader
/// would otherwise hold a whole gigabyte-long field in memory before anything could refuse it.
///
/// It also turns CRLF line ends (as Excel saves) into LF: the CSV reader ends a record at the
/// CR and counts the line at the LF, so every record of a CRLF file was placed on the line
/// before its own.
pub struct LineLimit<R> {
    inner: R,
    /// Lines seen so far, counting the one being read (1-based).
    line: u64,
    /// Bytes of the current line read so far.
    run: usize,
    failed: bool,
    /// A CR ended the last read: whether an LF follows is known at the next.
    held_cr: bool,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> LineLimit<R> {
        LineLimit {
            inner,
            line: 1,
            run: 0,
            failed: false,
            held_cr: false,
        }
    }
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed {
            return Ok(0);
        }
        // Reads of at most the limit, so that no line can hide inside one read.
        let cap = buf.len().min(MAX_LINE_BYTES);
        if cap < 2 {
            return self.inner.read(&mut buf[..cap]);
        }
        let n = loop {
            let start = usize::from(self.held_cr);
            if self.held_cr {
                buf[0] = b'\r';
                self.held_cr = false;
            }
            let read = self.inner.read(&mut buf[start..cap])?;
            let end = start + read;
            // CR LF becomes LF; a CR at the end of a read waits for the next (unless the input
            // ended). Most files have no CR: their bytes stay where they are.
            let Some(first_cr) = memchr::memchr(b'\r', &buf[..end]) else {
                break end;
            };
            let mut kept = first_cr;
            for i in first_cr..end {
                let b = buf[i];
                if b == b'\r' && i + 1 < end && buf[i + 1] == b'\n' {
                    continue;
                }
                if b == b'\r' && i + 1 == end && read > 0 {
                    self.held_cr = true;
                    continue;
                }
                buf[kept] = b;
                kept += 1;
            }
            if kept > 0 || read == 0 {
                break kept;
            }
        };
        let chunk = &buf[..n];
        let first = memchr::memchr(b'\n', chunk);
        let too_long = match first {
            None => self.run + n > MAX_LINE_BYTES,
            Some(i) => self.run + i > MAX_LINE_BYTES,
        };
        if too_long {
            self.failed = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                LineTooLong { line: self.line },
            ));
        }
        if let Some(first) = first {
            let last = memchr::memrchr(b'\n', chunk).unwrap_or(first);
            self.line += memchr::memchr_iter(b'\n', chunk).count() as u64;
            self.run = n - last - 1;
        } else {
            self.run += n;
        }
        Ok(n)
    }
}

/// Parses an RFC 3339 timestamp that carries an explicit offset (`Z` or `+08:00`).
///
/// Kept to the microsecond, the precision both databases store, so that no backend rounds an
/// instant across a month boundary. A leap second (`23:59:60`) is kept as the last
/// microsecond of its minute, `23:59:59.999999`: it belongs to the minute, and so to the day and
/// month, its meter wrote it in, not to the first second of the next one.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    parse_instant_in(text, None)
}

/// As [`parse_instant`]; with `assume`, a timestamp written without an offset
/// (`2026-10-05T09:30:00`, or `2026-10-05 09:30:00` as databases and spreadsheets write it) is
/// read as the wall-clock time of that zone. A wall-clock time that a clock change skips, or
/// passes twice, is refused: which instant it means is not clear.
pub fn parse_instant_in(text: &str, assume: Option<chrono_tz::Tz>) -> Result<DateTime<Utc>, String> {
    if let Some(t) = whole_seconds_rfc3339(text.as_bytes()) {
        return Ok(t);
    }
    let bad = || match assume {
        None => format!(
            "'{text}' is not an RFC 3339 timestamp with an offset (like 2026-10-05T09:30:00+08:00; \
             --assume-tz ZONE reads timestamps without one)"
        ),
        Some(zone) => format!(
            "'{text}' is neither an RFC 3339 timestamp nor a date and time (like 2026-10-05 09:30:00, read in {zone})"
        ),
    };
    let t = match (DateTime::parse_from_rfc3339(text), assume) {
        (Ok(t), _) => t,
        (Err(_), None) => return Err(bad()),
        (Err(_), Some(zone)) => {
            use chrono::TimeZone;
            let naive = [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
            .ok_or_else(bad)?;
            match zone.from_local_datetime(&naive) {
                chrono::LocalResult::Single(t) => t.fixed_offset(),
                chrono::LocalResult::Ambiguous(..) => {
                    return Err(format!(
                        "'{text}' happens twice in {zone} (the clocks went back): give it an offset"
                    ))
                }
                chrono::LocalResult::None => {
                    return Err(format!(
                        "'{text}' does not happen in {zone} (the clocks went forward): give it an offset"
                    ))
                }
            }
        }
    };
    let micros = t
        .timestamp()
        .checked_mul(1_000_000)
        .and_then(|s| s.checked_add(i64::from(t.timestamp_subsec_micros().min(999_999))))
        .ok_or_else(bad)?;
    DateTime::from_timestamp_micros(micros).ok_or_else(bad)
}

/// The shape meters write most, `2026-10-05T09:30:00Z` or `…+08:00` (whole seconds, an upper-case
/// `T` and `Z`), read without chrono's general parser, to the same instant; `None` for any
/// other shape, a leap second or a date that does not exist (the general parser decides).
fn whole_seconds_rfc3339(text: &[u8]) -> Option<DateTime<Utc>> {
    let offset = match (text.len(), text.get(19)) {
        (20, Some(b'Z')) => 0,
        (25, Some(&sign @ (b'+' | b'-'))) if text[22] == b':' => {
            let (h, m) = (digits(&text[20..22])?, digits(&text[23..25])?);
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = i64::from(h * 3600 + m * 60);
            if sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };
    if [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
        .iter()
        .any(|&(i, c)| text[i] != c)
    {
        return None;
    }
    let field = |at: usize| digits(&text[at..at + 2]);
    let (year, second) = (digits(&text[..4])?, field(17)?);
    if second > 59 {
        return None;
    }
    let local = chrono::NaiveDate::from_ymd_opt(year as i32, field(5)?, field(8)?)?.and_hms_opt(
        field(11)?,
        field(14)?,
        second,
    )?;
    DateTime::from_timestamp(local.and_utc().timestamp() - offset, 0)
}

/// The number ASCII digits write (`None` if a byte is not a digit).
fn digits(bytes: &[u8]) -> Option<u32> {
    bytes
        .iter()
        .try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

/// Parses a strictly positive whole number of calls, at most `max`.
pub fn parse_calls(text: &str, max: i64) -> Result<i64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a positive whole number"));
    }
    match text.parse::<i64>() {
        Ok(n) if n > max => Err(format!("'{text}' is more than {max} calls, the most one row may count")),
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(format!("'{text}' must be greater than zero")),
        Err(_) => Err(format!("'{text}' is more than {max} calls, the most one row may count")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `step` bytes per read, as a slow pipe may.
    struct Chunks(Vec<u8>, usize, usize);
    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.2.min(buf.len()).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn crlf_becomes_lf_wherever_the_reads_split_it() {
        let text = b"a,b\r\n1,2\r\r\n\"x\r\ny\"\r\nlast\r".to_vec();
        for step in 1..=text.len() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut LineLimit::new(Chunks(text.clone(), 0, step)), &mut out).unwrap();
            assert_eq!(out, b"a,b\n1,2\r\n\"x\ny\"\nlast\r", "{step} bytes a read");
        }
    }

    #[test]
    fn timestamps_need_an_offset() {
        assert!(parse_instant("2026-10-05T09:30:00+08:00").is_ok());
        assert!(parse_instant("2026-10-05T01:30:00Z").is_ok());
        assert!(parse_instant("2026-10-05T09:30:00").is_err());
        assert!(parse_instant("2026-10-05").is_err());
        // A zone assumed for a time written without an offset.
        let shanghai = Some(chrono_tz::Asia::Shanghai);
        for text in ["2026-10-05T09:30:00", "2026-10-05 09:30:00", "2026-10-05 09:30"] {
            assert_eq!(
                parse_instant_in(text, shanghai).unwrap(),
                parse_instant("2026-10-05T01:30:00Z").unwrap(),
                "{text}"
            );
        }
        assert_eq!(
            parse_instant_in("2026-10-05 09:30:00.25", shanghai).unwrap(),
            parse_instant("2026-10-05T01:30:00.25Z").unwrap()
        );
        // An offset given still counts; a time a clock change skips or repeats is refused.
        assert_eq!(
            parse_instant_in("2026-10-05T09:30:00Z", shanghai).unwrap(),
            parse_instant("2026-10-05T09:30:00Z").unwrap()
        );
        let berlin = Some(chrono_tz::Europe::Berlin);
        assert!(parse_instant_in("2026-03-29 02:30:00", berlin)
            .unwrap_err()
            .contains("does not happen"));
        assert!(parse_instant_in("2026-10-25 02:30:00", berlin)
            .unwrap_err()
            .contains("happens twice"));
        assert!(parse_instant_in("2026-10-05", shanghai).is_err());
        // Sub-microsecond digits are cut, never rounded into the next month.
        let t = parse_instant("2026-09-30T15:59:59.9999999Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-09-30T15:59:59.999999+00:00");
    }

    proptest::proptest! {
        /// Timestamps of the shape read without chrono's parser are the instant chrono reads.
        #[test]
        fn whole_second_timestamps_read_as_chrono_reads_them(
            text in "[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](Z|[+-][0-2][0-9]:[0-6][0-9])",
        ) {
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.with_timezone(&Utc));
            let fast = whole_seconds_rfc3339(text.as_bytes());
            // Where the fast reading declines (a leap second, an odd offset), chrono decides.
            if fast.is_some() || !text.contains(":60") {
                proptest::prop_assert_eq!(fast, chrono, "{}", text);
            }
            proptest::prop_assert_eq!(parse_instant(&text).ok(), chrono.map(|t| {
                DateTime::from_timestamp_micros(t.timestamp_micros().min(t.timestamp() * 1_000_000 + 999_999)).unwrap()
            }), "{}", text);
        }
    }

    #[test]
    fn calls_are_positive_integers() {
        assert_eq!(parse_calls("42", 100), Ok(42));
        assert_eq!(parse_calls("100", 100), Ok(100));
        for bad in [
            "0",
            "-1",
            "1.5",
            "",
            "1e3",
            "101",
            "9223372036854775807",
            "99999999999999999999",
        ] {
            assert!(parse_calls(bad, 100).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_leap_second_is_the_last_microsecond_of_its_minute() {
        let t = parse_instant("2026-10-31T23:59:60+08:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-10-31T15:59:59.999999+00:00");
        assert!(
            parse_instant("0000-01-01T00:00:00Z").is_ok(),
            "bounds are the usage reader's"
        );
    }

    #[test]
    fn a_required_column_named_twice_is_refused() {
        let e = Table::open(
            "calls,account_id,api,calls\n".as_bytes(),
            &["account_id", "api", "calls"],
        )
        .err()
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].line, e[0].field.as_str()), (1, "calls"));
        assert!(e[0].message.contains("columns 1 and 4"), "{}", e[0].message);
    }

    #[test]
    fn an_overlong_line_ends_the_reading_with_its_line_number() {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let text = format!("id,name\na,b\nc,{long}\nd,e\n");
        let mut t = Table::open(text.as_bytes(), &["id", "name"]).ok().unwrap();
        let mut rec = csv::StringRecord::new();
        assert!(t.next_row(&mut rec).unwrap().is_ok());
        let e = t.next_row(&mut rec).unwrap().unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("longer than"), "{e}");
        assert!(t.next_row(&mut rec).is_none());
    }

    #[test]
    fn short_and_long_rows_name_the_column() {
        let mut t = Table::open("id,name,extra\na,b\nc,d,e,f\n".as_bytes(), &["id", "name"])
            .ok()
            .unwrap();
        let mut rec = csv::StringRecord::new();
        let short = t.next_row(&mut rec).unwrap().unwrap_err();
        assert_eq!((short.line, short.field.as_str()), (2, "extra"));
        let long = t.next_row(&mut rec).unwrap().unwrap_err();
        assert_eq!((long.line, long.field.as_str()), (3, "column 4"));
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

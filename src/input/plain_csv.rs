//! The usual CSV usage file read fast: plain lines, split at their commas, with no field
//! copied.
//!
//! Why it exists: reading an import's kept content back (`input::replay`) is most of what
//! `verify` spends, and a meter writes plain lines. The rows given are exactly those the
//! general reader (`input::usage::UsageRows`, on the `csv` crate) gives for the same lines.
//! At the first line that is not plain (a quote, a carriage return other than the one before
//! its line feed, a line over [`MAX_LINE_BYTES`], another number of fields than the header's,
//! bytes that are not UTF-8, a field that does not pass the row checks), the rest of the
//! content, from that line on, goes to the general reader ([`Rest`]), which reads it and names
//! any problem as it always did. A property test (`input::replay`'s `plain_tests`) holds the two
//! readers to the same rows and problems on content of each of those kinds.

use super::stream::Bytes;
use super::usage::{UsageRef, COLUMNS, OPTIONAL};
use super::{check_account_id, check_id, parse_calls, parse_instant_in, Table};
use crate::domain::limits::{MAX_LINE_BYTES, MAX_ROW_CALLS};
use chrono_tz::Tz;
use std::io::{Cursor, Read};

/// Bytes asked of the content at a time.
const READ_BYTES: usize = 1 << 20;

/// No column of the usage file.
const IGNORED: u8 = u8::MAX;

/// A CSV usage file past its header, read line by line while its lines are plain.
pub struct PlainCsv {
    input: Bytes,
    /// The header line as read, with its line end.
    header: Vec<u8>,
    buf: Vec<u8>,
    /// Where the next line starts in `buf`.
    at: usize,
    /// Empty lines read since the last row (their bytes are let go).
    empty: u64,
    /// The number of the next row as the general reader numbers it: the line after the row
    /// before (the header is line 1), which is the row's own line unless empty lines come
    /// between.
    line: u64,
    /// The input has no more bytes.
    ended: bool,
    /// For each field of a line, which of the usage file's columns (`COLUMNS`, then
    /// `OPTIONAL`) it is, or [`IGNORED`].
    slots: Vec<u8>,
    assume: Option<Tz>,
}

/// How content opened: plain, or for the general reader from its first byte.
pub enum Opened {
    Plain(PlainCsv),
    General(Bytes),
}

/// Content the general reader takes over: its header line, then the rest from the first line
/// that is not plain. A row the general reader numbers `n` is line `n + offset` of the content.
pub struct Rest {
    pub content: Bytes,
    pub offset: u64,
}

impl PlainCsv {
    /// Reads the header line of `content`: plain if the header is, and names every column
    /// once; else the content, whole, for the general reader. `assume` is the zone of
    /// timestamps without an offset (`--assume-tz`).
    pub fn open(mut input: Bytes, assume: Option<Tz>) -> std::io::Result<Opened> {
        let mut buf = Vec::with_capacity(READ_BYTES);
        let mut ended = false;
        let header_end = loop {
            if let Some(i) = memchr::memchr(b'\n', &buf) {
                break Some(i + 1);
            }
            if ended || buf.len() > MAX_LINE_BYTES {
                break None;
            }
            ended = fill(&mut input, &mut buf)?;
        };
        let general =
            |buf: Vec<u8>, input: Bytes| -> Opened { Opened::General(Box::new(Cursor::new(buf).chain(input))) };
        let Some(header_end) = header_end else {
            return Ok(general(buf, input));
        };
        let header = &buf[..header_end];
        let text = strip_cr(&header[..header_end - 1]);
        if text.len() > MAX_LINE_BYTES || text.iter().any(|&b| b == b'"' || b == b'\r') {
            return Ok(general(buf, input));
        }
        let Ok(table) = Table::open_with(Cursor::new(header.to_vec()), &COLUMNS, &OPTIONAL) else {
            return Ok(general(buf, input));
        };
        let mut slots = vec![IGNORED; table.headers.len()];
        for (k, at) in table.columns.iter().enumerate() {
            if let Some(i) = at {
                slots[*i] = k as u8;
            }
        }
        Ok(Opened::Plain(PlainCsv {
            input,
            header: header.to_vec(),
            buf,
            at: header_end,
            empty: 0,
            line: 2,
            ended,
            slots,
            assume,
        }))
    }

    /// Hands each row to `each` while the lines are plain; then what is left, if anything,
    /// for the general reader. Stops at the first error `each` gives, or the content's.
    pub fn run(mut self, each: &mut dyn FnMut(UsageRef<'_>) -> Result<(), String>) -> Result<Option<Rest>, String> {
        loop {
            let (end, next) = match memchr::memchr(b'\n', &self.buf[self.at..]) {
                Some(i) => (self.at + i, self.at + i + 1),
                None if self.buf.len() - self.at > MAX_LINE_BYTES => return Ok(Some(self.into_rest())),
                None if !self.ended => {
                    self.buf.drain(..self.at);
                    self.at = 0;
                    self.ended = fill(&mut self.input, &mut self.buf).map_err(|e| e.to_string())?;
                    continue;
                }
                None if self.at == self.buf.len() => return Ok(None),
                None => (self.buf.len(), self.buf.len()),
            };
            let bytes = strip_cr(&self.buf[self.at..end]);
            // An empty line is no row: the general reader counts it as the next row's line.
            if bytes.is_empty() {
                self.empty += 1;
                self.at = next;
                continue;
            }
            // Without the CR before a line feed, as the general reader measures it (a last line
            // without a line feed, CR and all, was measured above).
            if bytes.len() > MAX_LINE_BYTES {
                return Ok(Some(self.into_rest()));
            }
            match row(bytes, self.line, &self.slots, self.assume) {
                Some(row) => each(row)?,
                None => return Ok(Some(self.into_rest())),
            }
            self.line += self.empty + 1;
            self.empty = 0;
            self.at = next;
        }
    }

    /// The general reader's content from the next row's text on, after the header and as many
    /// empty lines as were read since the last row (so that it numbers the lines alike); for a
    /// reader not yet run, everything after the header.
    pub fn into_rest(self) -> Rest {
        let PlainCsv {
            input,
            header,
            mut buf,
            at,
            empty,
            line,
            ..
        } = self;
        buf.drain(..at);
        let empty_lines = std::io::repeat(b'\n').take(empty);
        Rest {
            content: Box::new(
                Cursor::new(header)
                    .chain(empty_lines)
                    .chain(Cursor::new(buf))
                    .chain(input),
            ),
            offset: line - 2,
        }
    }
}

/// Adds up to [`READ_BYTES`] from `input` to `buf`; whether the input has ended.
fn fill(input: &mut Bytes, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let start = buf.len();
    buf.resize(start + READ_BYTES, 0);
    let n = loop {
        match input.read(&mut buf[start..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    buf.truncate(start + *n.as_ref().unwrap_or(&0));
    Ok(n? == 0)
}

/// A line without the carriage return before its line feed (CRLF, as Excel saves).
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A plain line's row, as the general reader reads it back; `None` for a line that is not
/// plain or whose row does not pass the checks (the general reader says why).
fn row<'a>(bytes: &'a [u8], line: u64, slots: &[u8], assume: Option<Tz>) -> Option<UsageRef<'a>> {
    if memchr::memchr2(b'"', b'\r', bytes).is_some() {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut fields = [""; COLUMNS.len() + OPTIONAL.len()];
    let mut start = 0;
    // A comma is one byte of UTF-8, never inside a character's bytes: the fields are cut at them.
    for (n, end) in memchr::memchr_iter(b',', bytes).chain([bytes.len()]).enumerate() {
        let slot = *slots.get(n)?;
        if slot != IGNORED {
            fields[slot as usize] = text[start..end].trim();
        }
        if end == bytes.len() && n + 1 != slots.len() {
            return None;
        }
        start = end + 1;
    }
    let [account_id, api, ts, calls, event_id] = fields;
    check_account_id(account_id).ok()?;
    let event_id = if event_id.is_empty() {
        None
    } else {
        check_id("event_id", event_id).ok()?;
        Some(event_id)
    };
    Some(UsageRef {
        line,
        account_id,
        api,
        ts: parse_instant_in(ts, assume).ok()?,
        calls: parse_calls(calls, MAX_ROW_CALLS).ok()?,
        event_id,
    })
}

//! Reading an import's kept content (`input::stored`) back as the rows it imported.
//!
//! An import keeps what it received, byte for byte; the rows it counted are those bytes read
//! as it read them ([`Reading`]), less the lines it skipped: rows whose event an account
//! already had (from an earlier import, or from an earlier line of the same file). The lines
//! skipped are recorded with the import ([`SkippedLines`]), so that reading the content back
//! gives exactly the rows whose calls the month's totals hold: `verify` recomputes every total
//! from the kept bytes this way.
//!
//! The content arrives a chunk at a time ([`ChunkBytes`]), from the database, on the thread
//! that parses it; memory stays at a few chunks whatever the import's size.

use super::plain_csv::{Opened, PlainCsv};
use super::stored::Reading;
use super::stream::{Bytes, Format};
use super::usage::{NewUsage, UsageRef, UsageRows};
use super::RowError;
use crate::domain::month::{Month, MonthFinder};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Read;

/// The lines of a file an import skipped, as ranges, stored compactly with the import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkippedLines {
    /// `[first, last]`, in order, not touching.
    ranges: Vec<(u64, u64)>,
}

impl SkippedLines {
    /// The lines `lines` (any order, repeats allowed).
    pub fn of(lines: impl IntoIterator<Item = u64>) -> SkippedLines {
        let mut lines: Vec<u64> = lines.into_iter().collect();
        lines.sort_unstable();
        lines.dedup();
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for line in lines {
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == line => *last = line,
                _ => ranges.push((line, line)),
            }
        }
        SkippedLines { ranges }
    }

    /// As stored: each range as two LEB128 numbers (its distance from the end of the one
    /// before, its length less one), compressed with zstd. `None` when there is no line.
    pub fn encode(&self) -> Option<Vec<u8>> {
        if self.ranges.is_empty() {
            return None;
        }
        let mut raw = Vec::new();
        let mut end = 0u64;
        for &(first, last) in &self.ranges {
            leb128(&mut raw, first - end);
            leb128(&mut raw, last - first);
            end = last;
        }
        Some(zstd::bulk::compress(&raw, 3).expect("zstd compresses in memory"))
    }

    /// What [`SkippedLines::encode`] wrote (`None`: no line).
    pub fn decode(stored: Option<&[u8]>) -> Result<SkippedLines, String> {
        let Some(stored) = stored else {
            return Ok(SkippedLines::default());
        };
        let raw = zstd::stream::decode_all(stored).map_err(|e| format!("the skipped lines do not decompress: {e}"))?;
        let mut at = 0;
        let mut end = 0u64;
        let mut ranges = Vec::new();
        let bad = || "the skipped lines are not as billrun writes them".to_string();
        while at < raw.len() {
            let gap = read_leb128(&raw, &mut at).ok_or_else(bad)?;
            let len = read_leb128(&raw, &mut at).ok_or_else(bad)?;
            let first = end.checked_add(gap).ok_or_else(bad)?;
            let last = first.checked_add(len).ok_or_else(bad)?;
            ranges.push((first, last));
            end = last;
        }
        Ok(SkippedLines { ranges })
    }

    /// Whether `line` is skipped, for lines asked in increasing order (`from` is the caller's
    /// place in the ranges).
    pub(crate) fn skips(&self, line: u64, from: &mut usize) -> bool {
        while let Some(&(_, last)) = self.ranges.get(*from) {
            if last >= line {
                break;
            }
            *from += 1;
        }
        self.ranges.get(*from).is_some_and(|&(first, _)| first <= line)
    }
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb128(raw: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *raw.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// The bytes of chunks handed over one at a time, as one stream: the parser's input. The
/// stream ends when the sending side is dropped.
pub struct ChunkBytes {
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl ChunkBytes {
    /// A stream, and where to send its chunks (a few may wait, so that fetching and parsing
    /// overlap).
    pub fn channel() -> (std::sync::mpsc::SyncSender<Vec<u8>>, ChunkBytes) {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        (
            tx,
            ChunkBytes {
                chunks: rx,
                current: std::io::Cursor::new(Vec::new()),
            },
        )
    }
}

impl Read for ChunkBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.chunks.recv() {
                Ok(next) => self.current = std::io::Cursor::new(next),
                Err(_) => return Ok(0),
            }
        }
    }
}

/// The rows an import counted, read back from its content: every row of `content` read as
/// `reading` says, but the lines in `skipped`. A row that no longer reads is an error, named
/// by its line. [`ReadBack::each`] reads plain CSV lines without the general reader
/// (`input::plain_csv`); the iterator reads every row with it.
pub struct ReadBack {
    source: Source,
    reading: Reading,
    skipped: SkippedLines,
    at: usize,
}

enum Source {
    /// CSV content whose header is plain, not yet read.
    Plain(PlainCsv),
    /// The general reader; the rows it numbers `n` are line `n + offset`.
    General { rows: Box<UsageRows>, offset: u64 },
    /// Between the two, for a moment.
    Taken,
}

impl ReadBack {
    pub fn open(
        content: impl Read + Send + 'static,
        reading: Reading,
        skipped: SkippedLines,
    ) -> Result<ReadBack, String> {
        let content: Bytes = Box::new(content);
        let source = match reading.format {
            Format::Csv => match PlainCsv::open(content, reading.assume_tz).map_err(|e| e.to_string())? {
                Opened::Plain(plain) => Source::Plain(plain),
                Opened::General(content) => general(content, reading, 0)?,
            },
            Format::Ndjson => general(content, reading, 0)?,
        };
        Ok(ReadBack {
            source,
            reading,
            skipped,
            at: 0,
        })
    }

    /// Hands every row to `each`, in the order of the content; stops at the first error,
    /// `each`'s or a row's that no longer reads.
    pub fn each(mut self, mut each: impl FnMut(UsageRef<'_>) -> Result<(), String>) -> Result<(), String> {
        if let Source::Plain(plain) = self.source {
            let (skipped, at) = (&self.skipped, &mut self.at);
            let rest = plain.run(&mut |row| {
                if skipped.skips(row.line, at) {
                    Ok(())
                } else {
                    each(row)
                }
            })?;
            let Some(rest) = rest else {
                return Ok(());
            };
            self.source = general(rest.content, self.reading, rest.offset)?;
        }
        for row in self {
            each(row?.as_ref())?;
        }
        Ok(())
    }
}

/// The general reader of `content`, whose rows are numbered `offset` lines on.
fn general(content: Bytes, reading: Reading, offset: u64) -> Result<Source, String> {
    let rows = UsageRows::read_back(content, reading).map_err(|p| problems(&p, offset))?;
    Ok(Source::General {
        rows: Box::new(rows),
        offset,
    })
}

impl Iterator for ReadBack {
    type Item = Result<NewUsage, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (rows, offset) = match &mut self.source {
                Source::General { rows, offset } => (rows, *offset),
                Source::Plain(_) => {
                    let Source::Plain(plain) = std::mem::replace(&mut self.source, Source::Taken) else {
                        unreachable!()
                    };
                    let rest = plain.into_rest();
                    self.source = match general(rest.content, self.reading, rest.offset) {
                        Ok(source) => source,
                        Err(e) => return Some(Err(e)),
                    };
                    continue;
                }
                Source::Taken => return None,
            };
            match rows.next()? {
                Ok(mut row) => {
                    row.line += offset;
                    if !self.skipped.skips(row.line, &mut self.at) {
                        return Some(Ok(row));
                    }
                }
                Err(p) => return Some(Err(problems(&p, offset))),
            }
        }
    }
}

/// Sums held in memory at once by one share of a [`MonthSums`] reading (each about 60 bytes):
/// with more totals than this, content is read back in several shares.
pub const SUMS_PER_SHARE: u64 = 2_000_000;

/// How many shares `totals` sums take.
pub fn shares_for(totals: u64, per_share: u64) -> u64 {
    totals.div_ceil(per_share.max(1)).max(1)
}

/// Calls summed per month (of one zone), API and account, from rows read back, for the
/// accounts of one share of the hashes of their ids: reading a large month in several shares
/// holds only one share's sums in memory at a time.
pub struct MonthSums {
    /// Per account: (month number << 16 | API number, calls), a few entries each.
    calls: HashMap<Box<str>, Vec<(u32, i64)>, foldhash::fast::RandomState>,
    apis: Vec<String>,
    months: MonthFinder,
    /// Only rows of this month count, if given.
    only: Option<Month>,
    share: u64,
    shares: u64,
}

impl MonthSums {
    /// Sums of the months of `zone`, for the accounts whose share (of `shares`) is `share`.
    pub fn new(zone: Tz, only: Option<Month>, share: u64, shares: u64) -> MonthSums {
        MonthSums {
            calls: HashMap::default(),
            apis: Vec::new(),
            months: MonthFinder::new(zone),
            only,
            share,
            shares: shares.max(1),
        }
    }

    /// Whether `account`'s sums are these.
    pub fn counts(&self, account: &str) -> bool {
        self.shares == 1 || share_of(account, self.shares) == self.share
    }

    /// Adds a row, if its account and month are counted here; an error if a sum would pass
    /// what 64 bits can count.
    pub fn add(&mut self, row: UsageRef<'_>) -> Result<(), String> {
        if !self.counts(row.account_id) {
            return Ok(());
        }
        let m = self.months.index_of(row.ts);
        if self.only.is_some_and(|only| self.months.spans()[m].month != only) {
            return Ok(());
        }
        let api = match self.apis.iter().position(|a| a == row.api) {
            Some(i) => i,
            None => {
                self.apis.push(row.api.to_owned());
                self.apis.len() - 1
            }
        };
        let key = (m as u32) << 16 | api as u32;
        let Some(sums) = self.calls.get_mut(row.account_id) else {
            self.calls.insert(row.account_id.into(), vec![(key, row.calls)]);
            return Ok(());
        };
        match sums.iter_mut().find(|(k, _)| *k == key) {
            Some((_, sum)) => {
                *sum = sum
                    .checked_add(row.calls)
                    .ok_or_else(|| "a total passes what 64 bits can count".to_string())?
            }
            None => sums.push((key, row.calls)),
        }
        Ok(())
    }

    /// Adds every row `rows` reads back.
    pub fn add_all(&mut self, rows: ReadBack) -> Result<(), String> {
        rows.each(|row| self.add(row))
    }

    /// Takes the sum of `account`'s calls of `api` in `month` out (0 if there is none).
    pub fn take(&mut self, month: &str, account: &str, api: &str) -> i64 {
        let Ok(month) = month.parse::<Month>() else {
            return 0;
        };
        let Some(m) = self.months.spans().iter().position(|s| s.month == month) else {
            return 0;
        };
        let Some(a) = self.apis.iter().position(|x| x == api) else {
            return 0;
        };
        let key = (m as u32) << 16 | a as u32;
        let Some(sums) = self.calls.get_mut(account) else {
            return 0;
        };
        match sums.iter().position(|(k, _)| *k == key) {
            Some(i) => sums.swap_remove(i).1,
            None => 0,
        }
    }

    /// The sums, sorted by month, account and API. Each account's id is moved, not copied:
    /// a share of a large month sorted takes 16 bytes a sum more than its sums did.
    pub fn into_sorted(self) -> SortedSums {
        let months: Vec<String> = self.months.spans().iter().map(|s| s.month.to_string()).collect();
        let mut accounts = Vec::with_capacity(self.calls.len());
        let mut sums = Vec::new();
        for (account, calls) in self.calls {
            let n = accounts.len() as u32;
            accounts.push(account);
            sums.extend(calls.into_iter().map(|(key, calls)| (n, key, calls)));
        }
        let apis = self.apis;
        sums.sort_unstable_by(|(a, a_key, _), (b, b_key, _)| {
            let (a_month, a_api) = (&months[(a_key >> 16) as usize], &apis[(a_key & 0xffff) as usize]);
            let (b_month, b_api) = (&months[(b_key >> 16) as usize], &apis[(b_key & 0xffff) as usize]);
            (a_month, &accounts[*a as usize], a_api).cmp(&(b_month, &accounts[*b as usize], b_api))
        });
        SortedSums {
            months,
            apis,
            accounts,
            sums,
        }
    }
}

/// [`MonthSums`] sorted by month, account and API.
pub struct SortedSums {
    months: Vec<String>,
    apis: Vec<String>,
    accounts: Vec<Box<str>>,
    /// (account number, month number << 16 | API number, calls).
    sums: Vec<(u32, u32, i64)>,
}

impl SortedSums {
    /// (month, account, API, calls), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &str, i64)> + '_ {
        self.sums.iter().map(|&(account, key, calls)| {
            (
                self.months[(key >> 16) as usize].as_str(),
                &*self.accounts[account as usize],
                self.apis[(key & 0xffff) as usize].as_str(),
                calls,
            )
        })
    }
}

/// Calls summed per account and API over one period (`[start, end)`), from rows read back,
/// for the accounts of one share of the hashes of their ids.
pub struct PeriodSums {
    pub calls: HashMap<(String, String), i64>,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    share: u64,
    shares: u64,
}

impl PeriodSums {
    pub fn new(
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        share: u64,
        shares: u64,
    ) -> PeriodSums {
        PeriodSums {
            calls: HashMap::new(),
            start,
            end,
            share,
            shares: shares.max(1),
        }
    }

    /// Adds every row `rows` reads back that falls in the period, of an account of the share.
    pub fn add_all(&mut self, rows: ReadBack) -> Result<(), String> {
        rows.each(|row| {
            if row.ts < self.start || row.ts >= self.end {
                return Ok(());
            }
            if self.shares > 1 && share_of(row.account_id, self.shares) != self.share {
                return Ok(());
            }
            let sum = self
                .calls
                .entry((row.account_id.to_owned(), row.api.to_owned()))
                .or_insert(0);
            *sum = sum
                .checked_add(row.calls)
                .ok_or_else(|| "a total passes what 64 bits can count".to_string())?;
            Ok(())
        })
    }
}

/// Which of `shares` shares `account` falls in.
pub fn share_of(account: &str, shares: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    account.hash(&mut h);
    h.finish() % shares
}

/// Reads the content of one import back into `sums` (see [`read_back_with`]).
pub fn sum_content(
    sums: MonthSums,
    reading: Reading,
    skipped: SkippedLines,
    chunk: impl FnMut(i64) -> anyhow::Result<Option<Vec<u8>>>,
) -> anyhow::Result<Result<MonthSums, String>> {
    read_back_with(reading, skipped, chunk, move |rows| {
        let mut sums = sums;
        sums.add_all(rows).map(|()| sums)
    })
}

/// Reads the content of one import back: the chunks' content comes from `chunk` (0, 1, 2…
/// until it gives `None`), on this thread, while `consume` reads the rows on a thread of its
/// own. Returns what `consume` made of them, or what kept the content from reading back.
pub fn read_back_with<T: Send + 'static>(
    reading: Reading,
    skipped: SkippedLines,
    mut chunk: impl FnMut(i64) -> anyhow::Result<Option<Vec<u8>>>,
    consume: impl FnOnce(ReadBack) -> Result<T, String> + Send + 'static,
) -> anyhow::Result<Result<T, String>> {
    let (feed, bytes) = ChunkBytes::channel();
    let parser = std::thread::Builder::new()
        .name("usage-read-back".into())
        .spawn(move || consume(ReadBack::open(bytes, reading, skipped)?))?;
    let mut seq = 0;
    let fed = loop {
        match chunk(seq) {
            Ok(Some(raw)) => {
                if feed.send(raw).is_err() {
                    break Ok(()); // the parser stopped: it says why
                }
                seq += 1;
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(feed);
    let parsed = parser
        .join()
        .map_err(|_| anyhow::anyhow!("reading usage content back stopped (the parsing thread failed)"))?;
    fed?;
    Ok(parsed)
}

/// Row problems, one after another, their lines moved `offset` on.
fn problems(p: &[RowError], offset: u64) -> String {
    p.iter()
        .map(|e| {
            let mut e = e.clone();
            e.line += offset;
            e.to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::stored::{unpack, KeepTap};
    use crate::input::stream::Format;

    #[test]
    fn skipped_lines_round_trip_as_ranges() {
        for lines in [
            vec![],
            vec![2],
            vec![5, 3, 4, 4, 9, 1_000_000, 1_000_001, u64::MAX - 1],
            (2..100_000).collect(),
        ] {
            let s = SkippedLines::of(lines.iter().copied());
            let back = SkippedLines::decode(s.encode().as_deref()).unwrap();
            assert_eq!(back, s);
            let mut want: Vec<u64> = lines.clone();
            want.sort();
            want.dedup();
            assert_eq!(
                back.ranges.iter().map(|(a, b)| b - a + 1).sum::<u64>(),
                want.len() as u64
            );
            let mut at = 0;
            let asked: Vec<u64> = (0..20)
                .chain(want.iter().copied())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for line in asked {
                assert_eq!(
                    back.skips(line, &mut at),
                    want.binary_search(&line).is_ok(),
                    "line {line}"
                );
            }
        }
        // A whole file skipped but its last row: one range, a few bytes.
        assert!(SkippedLines::of(2..3_000_002).encode().unwrap().len() < 32);
        assert!(SkippedLines::decode(Some(b"not zstd")).is_err());
    }

    #[test]
    fn content_reads_back_as_its_rows_less_the_skipped_lines() {
        let text = "account_id,api,timestamp,calls,event_id\n\
                    a1,Anything,2026-10-05 09:30:00,3,e1\n\
                    a2,CropImage,2026-10-05T09:31:00Z,4,\n\
                    a1,Anything,2026-10-05 09:30:00,3,e1\n";
        let reading = Reading {
            format: Format::Csv,
            assume_tz: Some(chrono_tz::Asia::Shanghai),
        };
        let (mut tap, kept) = KeepTap::new(text.as_bytes(), reading);
        std::io::copy(&mut tap, &mut std::io::sink()).unwrap();
        let (tx, content) = ChunkBytes::channel();
        let chunks = kept.take();
        std::thread::spawn(move || {
            for c in chunks {
                tx.send(unpack(&c).unwrap()).unwrap();
            }
        });
        let rows: Vec<NewUsage> = ReadBack::open(content, reading, SkippedLines::of([4]))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[0].calls), (2, 3));
        assert_eq!(
            rows[0].ts,
            "2026-10-05T01:30:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap()
        );
        assert_eq!(rows[1].account_id, "a2");
        // Without the zone it was imported with, the first row no longer reads.
        let plain = Reading {
            assume_tz: None,
            ..reading
        };
        let back: Vec<_> = ReadBack::open(
            std::io::Cursor::new(text.as_bytes().to_vec()),
            plain,
            SkippedLines::default(),
        )
        .unwrap()
        .collect();
        assert!(back[0].as_ref().unwrap_err().contains("line 2"), "{:?}", back[0]);
    }
}

/// The plain reader (`input::plain_csv`) held to the general one, through [`ReadBack`].
#[cfg(test)]
mod plain_tests {
    use super::{ReadBack, SkippedLines};
    use crate::input::plain_csv::{Opened, PlainCsv};
    use crate::input::stored::Reading;
    use crate::input::stream::Format;
    use crate::input::usage::UsageRows;
    use proptest::prelude::*;

    /// What a reading gives: each row (line, account, API, instant, calls, event), or the
    /// problem that stopped it.
    type Read = Vec<Result<(u64, String, String, i64, i64, Option<String>), String>>;

    fn reading(assume: bool) -> Reading {
        Reading {
            format: Format::Csv,
            assume_tz: assume.then_some(chrono_tz::Asia::Shanghai),
        }
    }

    /// Through the plain reader, as far as it goes, then the general one.
    fn plain(bytes: &[u8], r: Reading, skipped: &SkippedLines) -> Read {
        let mut out = Vec::new();
        let back = ReadBack::open(std::io::Cursor::new(bytes.to_vec()), r, skipped.clone());
        let ended = back.and_then(|b| {
            b.each(|row| {
                out.push(Ok((
                    row.line,
                    row.account_id.to_owned(),
                    row.api.to_owned(),
                    row.ts.timestamp_micros(),
                    row.calls,
                    row.event_id.map(str::to_owned),
                )));
                Ok(())
            })
        });
        if let Err(e) = ended {
            out.push(Err(e));
        }
        out
    }

    /// Through the general reader (`UsageRows`, on the `csv` crate) alone.
    fn general(bytes: &[u8], r: Reading, skipped: &SkippedLines) -> Read {
        let joined = |p: Vec<crate::input::RowError>| p.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        let mut out = Vec::new();
        match UsageRows::read_back(Box::new(std::io::Cursor::new(bytes.to_vec())), r) {
            Err(p) => out.push(Err(joined(p))),
            Ok(rows) => {
                let mut at = 0;
                for row in rows {
                    match row {
                        Ok(u) if skipped.skips(u.line, &mut at) => {}
                        Ok(u) => out.push(Ok((
                            u.line,
                            u.account_id,
                            u.api,
                            u.ts.timestamp_micros(),
                            u.calls,
                            u.event_id,
                        ))),
                        Err(p) => {
                            out.push(Err(joined(p)));
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    fn header() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("account_id,api,timestamp,calls".to_owned()),
            Just("account_id,api,timestamp,calls,event_id".to_owned()),
            Just("\u{feff}calls, timestamp ,note,event_id,api,account_id".to_owned()),
            Just("\"account_id\",api,timestamp,calls".to_owned()),
            Just("account_id,api,timestamp".to_owned()),
            Just("account_id,api,timestamp,calls,calls".to_owned()),
            Just(String::new()),
        ]
    }

    /// One field, as the header names them: mostly good, some that no check passes.
    fn field(column: &str) -> BoxedStrategy<String> {
        let good: BoxedStrategy<String> = match column {
            "account_id" => "acct-[0-9]{1,3}".boxed(),
            "api" => prop_oneof![Just("CropImage".to_owned()), Just("AssessQuality".to_owned())].boxed(),
            "timestamp" => prop_oneof![
                Just("2026-10-05T09:30:00Z".to_owned()),
                Just("2026-10-31T23:59:60+08:00".to_owned()),
                Just("2026-10-05 09:30:00".to_owned()),
                Just("2026-10-05T09:30:00.123456789-03:30".to_owned()),
            ]
            .boxed(),
            "calls" => "[1-9][0-9]{0,3}".boxed(),
            "event_id" => prop_oneof![Just(String::new()), "ev-[0-9]{1,4}"].boxed(),
            _ => "[a-z ]{0,4}".boxed(),
        };
        prop_oneof![
            12 => good,
            1 => Just(" acct-7 ".to_owned()),
            1 => Just(String::new()),
            1 => Just("0".to_owned()),
            1 => Just("\"quoted, with comma\"".to_owned()),
            1 => Just("\"line\nbreak\"".to_owned()),
            1 => Just("lone\rcr".to_owned()),
            1 => Just("a\u{200b}".to_owned()),
            1 => Just("9999999999999999999999".to_owned()),
        ]
        .boxed()
    }

    /// A usage file: one of the headers, then lines of fields for its columns (sometimes one
    /// too few or too many, sometimes empty, sometimes bytes that are not UTF-8), with LF or
    /// CRLF ends, the last one maybe missing.
    fn file() -> impl Strategy<Value = (Vec<u8>, bool)> {
        header().prop_flat_map(|header| {
            let columns: Vec<String> = header
                .trim_start_matches('\u{feff}')
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .collect();
            let line = prop_oneof![
                20 => columns.iter().map(|c| field(c)).collect::<Vec<_>>().prop_map(|f| f.join(",").into_bytes()),
                1 => Just(Vec::new()),
                1 => Just(b"acct-1,CropImage".to_vec()),
                1 => Just(b"acct-1,CropImage,2026-10-05T09:30:00Z,3,e,x,y".to_vec()),
                1 => Just(b"acct-\xff,CropImage,2026-10-05T09:30:00Z,3".to_vec()),
            ];
            (
                Just(header),
                prop::collection::vec(line, 0..40),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
                .prop_map(|(header, lines, crlf, last_end, assume)| {
                    let end: &[u8] = if crlf { b"\r\n" } else { b"\n" };
                    let mut bytes = header.into_bytes();
                    bytes.extend_from_slice(end);
                    for (i, line) in lines.iter().enumerate() {
                        bytes.extend_from_slice(line);
                        if i + 1 < lines.len() || last_end {
                            bytes.extend_from_slice(end);
                        }
                    }
                    (bytes, assume)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn plain_lines_read_as_the_general_reader_reads_them(
            (bytes, assume) in file(),
            skipped in prop::collection::vec(2u64..45, 0..6),
        ) {
            let (r, skipped) = (reading(assume), SkippedLines::of(skipped));
            prop_assert_eq!(plain(&bytes, r, &skipped), general(&bytes, r, &skipped), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn a_file_of_plain_lines_is_read_without_the_general_reader() {
        let text = "account_id,api,timestamp,calls\r\nacct-1,CropImage,2026-10-05T09:30:00Z,3\r\n\r\nacct-2, AssessQuality ,2026-10-05T09:31:00+08:00,4";
        let bytes = text.as_bytes().to_vec();
        let Ok(Opened::Plain(plain)) = PlainCsv::open(Box::new(std::io::Cursor::new(bytes.clone())), None) else {
            panic!("a plain header");
        };
        let mut rows = Vec::new();
        let rest = plain
            .run(&mut |row| {
                rows.push((row.line, row.api.to_owned(), row.calls));
                Ok(())
            })
            .unwrap();
        assert!(rest.is_none(), "no line handed over");
        // The general reader does not count the empty line.
        assert_eq!(rows, [(2, "CropImage".into(), 3), (3, "AssessQuality".into(), 4)]);
        assert_eq!(
            plain_rows(&bytes),
            general(&bytes, reading(false), &SkippedLines::default())
        );
    }

    #[test]
    fn a_quoted_line_hands_the_rest_over_with_its_line_numbers() {
        let text = "account_id,api,timestamp,calls,note\n\
                    acct-1,CropImage,2026-10-05T09:30:00Z,3,\n\
                    acct-2,CropImage,2026-10-05T09:30:00Z,4,\"two\nlines\"\n\
                    acct-3,CropImage,2026-10-05T09:30:00Z,5,\n\
                    acct-4,CropImage,2026-10-05T09:30:00Z,0,\n";
        let bytes = text.as_bytes();
        let Ok(Opened::Plain(plain)) = PlainCsv::open(Box::new(std::io::Cursor::new(bytes.to_vec())), None) else {
            panic!("a plain header");
        };
        let rest = plain.run(&mut |_| Ok(())).unwrap().expect("handed over at the quote");
        assert_eq!(rest.offset, 1, "line 3 is the general reader's line 2");
        let read = plain_rows(bytes);
        assert_eq!(read, general(bytes, reading(false), &SkippedLines::default()));
        let lines: Vec<u64> = read.iter().filter_map(|r| r.as_ref().ok().map(|r| r.0)).collect();
        assert_eq!(lines, [2, 3, 5]);
        let last = read.last().unwrap().as_ref().unwrap_err();
        assert!(last.contains("line 6"), "{last}");
    }

    #[test]
    fn lines_at_the_length_limit_and_runs_of_empty_lines_read_as_the_general_reader_reads_them() {
        use crate::domain::limits::MAX_LINE_BYTES;
        let header = "account_id,api,timestamp,calls,note\n";
        let row = "acct-1,CropImage,2026-10-05T09:30:00Z,3,";
        let padded = format!("{row}{}", "x".repeat(MAX_LINE_BYTES - row.len()));
        // A line of the limit's length is a row before CR LF; with a CR that ends the content,
        // one byte too long.
        for text in [
            format!("{header}{padded}\r\n{row}\n"),
            format!("{header}{padded}\r"),
            format!("{header}{padded}x\n"),
            // A few megabytes of empty lines between rows, then a line the general reader takes.
            format!(
                "{header}{row}\n{}{row}\n\r\n\n{row}\"q\"\n{row}\n",
                "\r\n".repeat(3 << 20)
            ),
        ] {
            let read = plain_rows(text.as_bytes());
            assert_eq!(read, general(text.as_bytes(), reading(false), &SkippedLines::default()));
            assert!(!read.is_empty());
        }
    }

    fn plain_rows(bytes: &[u8]) -> Read {
        plain(bytes, reading(false), &SkippedLines::default())
    }
}

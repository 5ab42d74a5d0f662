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

use super::stored::Reading;
use super::usage::{NewUsage, UsageRows};
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
    fn skips(&self, line: u64, from: &mut usize) -> bool {
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
/// by its line.
pub struct ReadBack {
    rows: UsageRows,
    skipped: SkippedLines,
    at: usize,
}

impl ReadBack {
    pub fn open(
        content: impl Read + Send + 'static,
        reading: Reading,
        skipped: SkippedLines,
    ) -> Result<ReadBack, String> {
        let rows = UsageRows::read_back(Box::new(content), reading).map_err(|p| problems(&p))?;
        Ok(ReadBack { rows, skipped, at: 0 })
    }
}

impl Iterator for ReadBack {
    type Item = Result<NewUsage, String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.rows.next()? {
                Ok(row) if self.skipped.skips(row.line, &mut self.at) => continue,
                Ok(row) => return Some(Ok(row)),
                Err(p) => return Some(Err(problems(&p))),
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
    calls: HashMap<(u16, u16, String), i64>,
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
            calls: HashMap::new(),
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
    pub fn add(&mut self, row: NewUsage) -> Result<(), String> {
        if !self.counts(&row.account_id) {
            return Ok(());
        }
        let m = self.months.index_of(row.ts);
        if self.only.is_some_and(|only| self.months.spans()[m].month != only) {
            return Ok(());
        }
        let api = match self.apis.iter().position(|a| *a == row.api) {
            Some(i) => i,
            None => {
                self.apis.push(row.api);
                self.apis.len() - 1
            }
        };
        let sum = self.calls.entry((m as u16, api as u16, row.account_id)).or_insert(0);
        *sum = sum
            .checked_add(row.calls)
            .ok_or_else(|| "a total passes what 64 bits can count".to_string())?;
        Ok(())
    }

    /// Adds every row `rows` reads back.
    pub fn add_all(&mut self, rows: ReadBack) -> Result<(), String> {
        for row in rows {
            self.add(row?)?;
        }
        Ok(())
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
        self.calls
            .remove(&(m as u16, a as u16, account.to_owned()))
            .unwrap_or(0)
    }

    /// The sums, as (month, account, API, calls), sorted.
    pub fn into_sorted(self) -> Vec<(String, String, String, i64)> {
        let months: Vec<String> = self.months.spans().iter().map(|s| s.month.to_string()).collect();
        let mut out: Vec<_> = self
            .calls
            .into_iter()
            .map(|((m, a, account), calls)| {
                (
                    months[m as usize].clone(),
                    account,
                    self.apis[a as usize].clone(),
                    calls,
                )
            })
            .collect();
        out.sort();
        out
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
        for row in rows {
            let row = row?;
            if row.ts < self.start || row.ts >= self.end {
                continue;
            }
            if self.shares > 1 && share_of(&row.account_id, self.shares) != self.share {
                continue;
            }
            let sum = self.calls.entry((row.account_id, row.api)).or_insert(0);
            *sum = sum
                .checked_add(row.calls)
                .ok_or_else(|| "a total passes what 64 bits can count".to_string())?;
        }
        Ok(())
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

fn problems(p: &[RowError]) -> String {
    p.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
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

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

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many lines.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a + 1).sum()
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
            assert_eq!(back.count(), want.len() as u64);
            let mut at = 0;
            let asked: Vec<u64> = (0..20)
                .chain(want.iter().copied())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for line in asked {
                assert_eq!(back.skips(line, &mut at), want.contains(&line), "line {line}");
            }
        }
        // A whole file skipped but its last row: one range, a few bytes.
        assert!(SkippedLines::of(2..30_000_002).encode().unwrap().len() < 32);
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

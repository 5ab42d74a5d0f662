//! What an import keeps of its input: the bytes as the meter sent them (after gzip decoding),
//! compressed with zstd in chunks, stored in the import's own transaction.
//!
//! Why keep them: the usage rows are summed into the month's totals as they are imported, and
//! the bytes are the proof behind those totals. A chunk holds [`CHUNK_BYTES`] of content (the
//! last one less), compressed on its own as one zstd frame at [`ZSTD_LEVEL`], so that a chunk
//! can be read back without the ones before it and memory stays flat whatever the file's size.
//! Chunks are cut at a fixed length, not at line ends: they are read back in order.
//!
//! [`KeepTap`] sits between the decompressed stream and the parser, on the parsing thread, and
//! hands the bytes to a thread of its own, which hashes them, compresses them and puts the
//! finished chunks in a [`Kept`] handle that the import drains as it writes; once the stream
//! has ended (the tap waits for that thread then), the handle also holds the content's SHA-256
//! and length, the import's name for its content and what `verify` checks the stored chunks
//! against.

use super::stream::Format;
use chrono_tz::Tz;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Content bytes per chunk.
pub const CHUNK_BYTES: usize = 4 << 20;

/// zstd's level: its fastest standard one, which keeps compressing well ahead of the parser.
pub const ZSTD_LEVEL: i32 = 1;

/// One chunk of an import's content, compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredChunk {
    /// 0, 1, 2… in the order of the content.
    pub seq: i64,
    /// The length of the content it holds.
    pub raw_bytes: i64,
    /// A zstd frame.
    pub data: Vec<u8>,
}

/// How an import's content is read back: as what format, and in which zone a timestamp
/// without an offset is (`--assume-tz`), as the import read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub format: Format,
    pub assume_tz: Option<Tz>,
}

impl Reading {
    /// As the database records it: the format's key (`Format::key`) and the zone's name.
    pub fn from_stored(format: &str, assume_tz: Option<&str>) -> Result<Reading, String> {
        Ok(Reading {
            format: Format::from_key(format).ok_or_else(|| format!("unknown content format '{format}'"))?,
            assume_tz: assume_tz
                .map(|z| z.parse().map_err(|e| format!("assume_tz '{z}': {e}")))
                .transpose()?,
        })
    }
}

/// What the whole content was, once read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// Lower-case hex.
    pub sha256: String,
    pub bytes: i64,
    pub chunks: i64,
    pub reading: Reading,
}

#[derive(Default)]
struct Shared {
    ready: Vec<StoredChunk>,
    content: Option<Content>,
}

/// The chunks a [`KeepTap`] has finished, taken by the import as it goes.
#[derive(Clone, Default)]
pub struct Kept(Arc<Mutex<Shared>>);

impl Kept {
    /// The chunks finished since the last call.
    pub fn take(&self) -> Vec<StoredChunk> {
        std::mem::take(&mut self.lock().ready)
    }

    /// Once the content has been read to its end: its digest, length and chunk count.
    pub fn content(&self) -> Option<Content> {
        self.lock().content.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves nothing half-updated that matters here.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cuts content into chunks and compresses them, as it arrives.
pub struct Chunker {
    reading: Reading,
    pending: Vec<u8>,
    seq: i64,
    bytes: i64,
    hasher: Sha256,
}

impl Chunker {
    /// Content that is read as `reading` says.
    pub fn new(reading: Reading) -> Chunker {
        Chunker {
            reading,
            pending: Vec::with_capacity(CHUNK_BYTES),
            seq: 0,
            bytes: 0,
            hasher: Sha256::new(),
        }
    }

    /// Adds the next bytes; gives the chunks they finished.
    pub fn push(&mut self, bytes: &[u8]) -> std::io::Result<Vec<StoredChunk>> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as i64;
        self.pending.extend_from_slice(bytes);
        let mut done = Vec::new();
        while self.pending.len() >= CHUNK_BYTES {
            done.push(self.seal(CHUNK_BYTES)?);
        }
        Ok(done)
    }

    /// The content has ended: its last chunk, if any bytes wait, and what the whole was.
    pub fn finish(mut self) -> std::io::Result<(Option<StoredChunk>, Content)> {
        let last = (!self.pending.is_empty())
            .then(|| self.seal(self.pending.len()))
            .transpose()?;
        let sha256 = format!("{:x}", std::mem::take(&mut self.hasher).finalize());
        let content = Content {
            sha256,
            bytes: self.bytes,
            chunks: self.seq,
            reading: self.reading,
        };
        Ok((last, content))
    }

    /// Compresses the first `n` pending bytes into the next chunk.
    fn seal(&mut self, n: usize) -> std::io::Result<StoredChunk> {
        let data = zstd::bulk::compress(&self.pending[..n], ZSTD_LEVEL)?;
        self.pending.drain(..n);
        let chunk = StoredChunk {
            seq: self.seq,
            raw_bytes: n as i64,
            data,
        };
        self.seq += 1;
        Ok(chunk)
    }
}

/// Bytes handed to the compressing thread at a time.
const HANDED_BYTES: usize = 1 << 20;

/// Passes a stream through, keeping a compressed copy of it in chunks. The copy is hashed and
/// compressed on a thread of its own ("usage-keep"), beside the parser that reads the stream;
/// once the stream has ended, the read that says so waits for that thread to finish, so that
/// the content is known when the parser is done.
pub struct KeepTap<R> {
    inner: R,
    /// Bytes read and not yet handed over.
    pending: Vec<u8>,
    /// To the compressing thread; `None` once the stream has ended.
    to_keep: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    keeper: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl<R: Read> KeepTap<R> {
    /// `inner` is read as `reading` says.
    pub fn new(inner: R, reading: Reading) -> (KeepTap<R>, Kept) {
        let kept = Kept::default();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let shared = kept.clone();
        // A thread that cannot be started leaves the content unkept: the tap's first hand-over
        // fails, and the import with it. The stream's end is an empty hand-over; a tap dropped
        // before it (a file refused midway) leaves the content unknown, not empty.
        let keeper = std::thread::Builder::new()
            .name("usage-keep".into())
            .spawn(move || {
                let mut chunker = Chunker::new(reading);
                for bytes in rx {
                    if bytes.is_empty() {
                        let (last, content) = chunker.finish()?;
                        let mut kept = shared.lock();
                        kept.ready.extend(last);
                        kept.content = Some(content);
                        break;
                    }
                    let done = chunker.push(&bytes)?;
                    shared.lock().ready.extend(done);
                }
                Ok(())
            })
            .ok();
        let tap = KeepTap {
            inner,
            pending: Vec::with_capacity(HANDED_BYTES),
            to_keep: Some(tx),
            keeper,
        };
        (tap, kept)
    }

    /// Hands the pending bytes to the compressing thread.
    fn hand_over(&mut self) -> std::io::Result<()> {
        let bytes = std::mem::replace(&mut self.pending, Vec::with_capacity(HANDED_BYTES));
        self.send(bytes)
    }

    /// Sends `bytes` to the compressing thread (none: the stream has ended).
    fn send(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let sent = self.to_keep.as_ref().is_some_and(|tx| tx.send(bytes).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.keeper_failed())
        }
    }

    /// Why the compressing thread stopped taking bytes.
    fn keeper_failed(&mut self) -> std::io::Error {
        self.wait_for_keeper()
            .err()
            .unwrap_or_else(|| std::io::Error::other("keeping the usage content stopped early"))
    }

    /// Closes the hand-over and waits for the compressing thread: what stopped it, if
    /// anything.
    fn wait_for_keeper(&mut self) -> std::io::Result<()> {
        self.to_keep = None;
        match self.keeper.take().map(std::thread::JoinHandle::join) {
            Some(Ok(done)) => done,
            _ => Err(std::io::Error::other(
                "keeping the usage content stopped (its thread failed)",
            )),
        }
    }
}

impl<R: Read> Read for KeepTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if self.to_keep.is_some() {
                self.pending.extend_from_slice(&buf[..n]);
                if self.pending.len() >= HANDED_BYTES {
                    self.hand_over()?;
                }
            }
        } else if self.to_keep.is_some() {
            // The end: the last bytes, the end itself, then wait for the thread to finish the
            // content.
            if !self.pending.is_empty() {
                let bytes = std::mem::take(&mut self.pending);
                self.send(bytes)?;
            }
            self.send(Vec::new())?;
            self.wait_for_keeper()?;
        }
        Ok(n)
    }
}

/// Content rebuilt from rows an import stored before its content was kept: a CSV file of
/// them, in the order of their lines, that reads back as the same rows (`billrun migrate`).
pub struct Rebuilt {
    chunker: Chunker,
    line: String,
}

impl Rebuilt {
    /// The header; then [`Rebuilt::row`] for each row.
    pub fn new() -> (Rebuilt, Vec<StoredChunk>) {
        let reading = Reading {
            format: Format::Csv,
            assume_tz: None,
        };
        let mut chunker = Chunker::new(reading);
        let header = chunker
            .push(b"account_id,api,timestamp,calls,event_id\n")
            .expect("a header fits a chunk");
        (
            Rebuilt {
                chunker,
                line: String::new(),
            },
            header,
        )
    }

    /// The next row; the chunks it finished. An id with a comma or a quote is quoted (RFC
    /// 4180); none holds a line break (`input::text::check_id`).
    pub fn row(
        &mut self,
        account_id: &str,
        api: &str,
        ts: chrono::DateTime<chrono::Utc>,
        calls: i64,
        event_id: Option<&str>,
    ) -> std::io::Result<Vec<StoredChunk>> {
        use std::fmt::Write;
        self.line.clear();
        let ts = ts.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let _ = writeln!(
            self.line,
            "{},{},{ts},{calls},{}",
            csv_field(account_id),
            csv_field(api),
            csv_field(event_id.unwrap_or(""))
        );
        self.chunker.push(self.line.as_bytes())
    }

    pub fn finish(self) -> std::io::Result<(Option<StoredChunk>, Content)> {
        self.chunker.finish()
    }
}

/// `text` as a CSV field: quoted if it holds a comma or a quote.
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// A stored chunk's content, checked against the length it was stored with.
pub fn unpack(chunk: &StoredChunk) -> Result<Vec<u8>, String> {
    let raw = zstd::bulk::decompress(&chunk.data, chunk.raw_bytes.max(0) as usize)
        .map_err(|e| format!("chunk {} does not decompress: {e}", chunk.seq))?;
    if raw.len() as i64 != chunk.raw_bytes {
        return Err(format!(
            "chunk {} holds {} bytes, and was stored as {}",
            chunk.seq,
            raw.len(),
            chunk.raw_bytes
        ));
    }
    Ok(raw)
}

/// What a stored import's chunks, read in order, say of its content.
#[derive(Default)]
pub struct ContentCheck {
    hasher: Sha256,
    bytes: i64,
    next_seq: i64,
    problem: Option<String>,
}

impl ContentCheck {
    /// Adds the next chunk (in `seq` order); gives back its content, if it could be read.
    pub fn add(&mut self, chunk: &StoredChunk) -> Option<Vec<u8>> {
        if self.problem.is_some() {
            return None;
        }
        if chunk.seq != self.next_seq {
            self.problem = Some(format!("chunk {} is missing", self.next_seq));
            return None;
        }
        self.next_seq += 1;
        match unpack(chunk) {
            Ok(raw) => {
                self.hasher.update(&raw);
                self.bytes += raw.len() as i64;
                Some(raw)
            }
            Err(e) => {
                self.problem = Some(e);
                None
            }
        }
    }

    /// Whether a problem was found in the chunks read so far.
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// Chunk `seq`, the next one, is not stored.
    pub fn missing(&mut self, seq: i64) {
        self.problem.get_or_insert_with(|| format!("chunk {seq} is missing"));
    }

    /// The next chunk could not be read: `problem` says why.
    pub fn broken(&mut self, problem: String) {
        self.problem.get_or_insert(problem);
    }

    /// What is wrong with the content read, against what the import recorded (`None`: nothing).
    pub fn problem(self, recorded: &Content) -> Option<String> {
        if let Some(p) = self.problem {
            return Some(p);
        }
        if self.next_seq != recorded.chunks {
            return Some(format!("{} chunks stored, {} recorded", self.next_seq, recorded.chunks));
        }
        let sha256 = format!("{:x}", self.hasher.finalize());
        if self.bytes != recorded.bytes || sha256 != recorded.sha256 {
            return Some(format!(
                "its stored content ({} bytes, SHA-256 {sha256}) is not what was imported ({} bytes, SHA-256 {})",
                self.bytes, recorded.bytes, recorded.sha256
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Content of `n` bytes that compresses somewhat, as usage lines do.
    fn content(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"acct-0001,CropImage,2026-10-01T00:00:00Z,17\n"[i % 44] ^ (i / 4096 % 3) as u8)
            .collect()
    }

    fn kept(bytes: &[u8], read_size: usize) -> (Vec<StoredChunk>, Content) {
        let csv = Reading {
            format: Format::Csv,
            assume_tz: None,
        };
        let (mut tap, kept) = KeepTap::new(bytes, csv);
        let mut buf = vec![0; read_size];
        let mut chunks = Vec::new();
        let mut seen = Vec::new();
        loop {
            let n = tap.read(&mut buf).unwrap();
            chunks.extend(kept.take());
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        // A reader may look past the end more than once.
        assert_eq!(tap.read(&mut buf).unwrap(), 0);
        assert_eq!(seen, bytes, "the tap passes the stream through unchanged");
        chunks.extend(kept.take());
        (chunks, kept.content().expect("the content once read to its end"))
    }

    #[test]
    fn the_chunks_give_back_the_content_byte_for_byte_and_its_digest() {
        for n in [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 17] {
            let bytes = content(n);
            let (chunks, whole) = kept(&bytes, 64 << 10);
            assert_eq!(chunks.len() as i64, whole.chunks);
            assert_eq!(chunks.len(), n.div_ceil(CHUNK_BYTES));
            let back: Vec<u8> = chunks.iter().flat_map(|c| unpack(c).unwrap()).collect();
            assert_eq!(back, bytes);
            assert_eq!(whole.bytes, n as i64);
            assert_eq!(whole.sha256, format!("{:x}", Sha256::digest(&bytes)));
            let mut check = ContentCheck::default();
            chunks.iter().for_each(|c| {
                check.add(c);
            });
            assert_eq!(check.problem(&whole), None);
            if n > 1000 {
                assert!(chunks.iter().map(|c| c.data.len()).sum::<usize>() < n / 4, "compressed");
            }
        }
    }

    #[test]
    fn a_changed_byte_a_missing_chunk_or_a_wrong_length_is_found() {
        let bytes = content(2 * CHUNK_BYTES + 5);
        let (chunks, whole) = kept(&bytes, 8 << 10);
        let check = |chunks: &[StoredChunk]| {
            let mut c = ContentCheck::default();
            chunks.iter().for_each(|x| {
                c.add(x);
            });
            c.problem(&whole)
        };
        // A byte of the compressed data: zstd's own checksum or the digest finds it.
        for at in [0, 10, chunks[1].data.len() / 2, chunks[1].data.len() - 1] {
            let mut bad = chunks.clone();
            bad[1].data[at] ^= 0x01;
            assert!(check(&bad).is_some(), "byte {at} changed");
        }
        assert!(check(&chunks[..2]).unwrap().contains("2 chunks stored, 3 recorded"));
        assert!(check(&[chunks[0].clone(), chunks[2].clone()])
            .unwrap()
            .contains("chunk 1 is missing"));
        let mut short = chunks.clone();
        short[2].raw_bytes -= 1;
        assert!(check(&short).is_some());
        // The same content under another digest is not what was imported.
        let other = Content {
            sha256: "0".repeat(64),
            ..whole.clone()
        };
        let mut c = ContentCheck::default();
        chunks.iter().for_each(|x| {
            c.add(x);
        });
        assert!(c.problem(&other).unwrap().contains("is not what was imported"));
    }
}

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
//! hands finished chunks to a [`Kept`] handle that the import drains as it writes; once the
//! stream has ended, the handle also holds the content's SHA-256 and length, which `verify`
//! checks the stored chunks against.

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

/// What the whole content was, once read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    /// Lower-case hex.
    pub sha256: String,
    pub bytes: i64,
    pub chunks: i64,
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

/// Passes a stream through, keeping a compressed copy of it in chunks.
pub struct KeepTap<R> {
    inner: R,
    pending: Vec<u8>,
    seq: i64,
    bytes: i64,
    hasher: Sha256,
    kept: Kept,
    ended: bool,
}

impl<R: Read> KeepTap<R> {
    pub fn new(inner: R) -> (KeepTap<R>, Kept) {
        let kept = Kept::default();
        let tap = KeepTap {
            inner,
            pending: Vec::with_capacity(CHUNK_BYTES),
            seq: 0,
            bytes: 0,
            hasher: Sha256::new(),
            kept: kept.clone(),
            ended: false,
        };
        (tap, kept)
    }

    /// Compresses the first `n` pending bytes into the next chunk.
    fn seal(&mut self, n: usize) -> std::io::Result<()> {
        let data = zstd::bulk::compress(&self.pending[..n], ZSTD_LEVEL)?;
        self.pending.drain(..n);
        let chunk = StoredChunk {
            seq: self.seq,
            raw_bytes: n as i64,
            data,
        };
        self.seq += 1;
        self.kept.lock().ready.push(chunk);
        Ok(())
    }
}

impl<R: Read> Read for KeepTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.ended {
            return Ok(n);
        }
        if n == 0 {
            self.ended = true;
            if !self.pending.is_empty() {
                self.seal(self.pending.len())?;
            }
            let sha256 = format!("{:x}", std::mem::take(&mut self.hasher).finalize());
            self.kept.lock().content = Some(Content {
                sha256,
                bytes: self.bytes,
                chunks: self.seq,
            });
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.bytes += n as i64;
        self.pending.extend_from_slice(&buf[..n]);
        while self.pending.len() >= CHUNK_BYTES {
            self.seal(CHUNK_BYTES)?;
        }
        Ok(n)
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
    /// Adds the next chunk (in `seq` order).
    pub fn add(&mut self, chunk: &StoredChunk) {
        if self.problem.is_some() {
            return;
        }
        if chunk.seq != self.next_seq {
            self.problem = Some(format!("chunk {} is missing", self.next_seq));
            return;
        }
        self.next_seq += 1;
        match unpack(chunk) {
            Ok(raw) => {
                self.hasher.update(&raw);
                self.bytes += raw.len() as i64;
            }
            Err(e) => self.problem = Some(e),
        }
    }

    /// Chunk `seq`, the next one, is not stored.
    pub fn missing(&mut self, seq: i64) {
        self.problem.get_or_insert_with(|| format!("chunk {seq} is missing"));
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
        let (mut tap, kept) = KeepTap::new(bytes);
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
            chunks.iter().for_each(|c| check.add(c));
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
            chunks.iter().for_each(|x| c.add(x));
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
        chunks.iter().for_each(|x| c.add(x));
        assert!(c.problem(&other).unwrap().contains("is not what was imported"));
    }
}

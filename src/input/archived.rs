//! The files `billrun archive` moves an import's kept content to, and that `restore-usage` and
//! `verify --archive` read back: the proof behind a settled month, kept outside the database.
//!
//! Each import archived is three files in the archive directory, named for the import
//! (`usage-000042`):
//!
//! - `usage-000042.csv.zst` (or `.ndjson.zst`): the import's stored chunks, one after another.
//!   Each chunk is a zstd frame, so the file is one zstd stream whose content is the import's
//!   content byte for byte (`zstd -d` gives back what the meter sent, after gzip decoding);
//! - `usage-000042.totals.csv`: `month,account_id,api,calls`, what its rows add up to in the
//!   billing zone (all its rows but the lines it skipped as repeated events);
//! - `usage-000042.manifest.json` ([`Manifest`]): what the import was, how its rows are read
//!   back, where each chunk ends in the stream, and the SHA-256 of the other two files.
//!
//! A file is written under a temporary name, flushed to disk and only then renamed, the
//! manifest last: a manifest names files that are whole. Written again, the content file is
//! the same bytes (the chunks as stored); the totals file holds the same rows, in runs that
//! depend on how many passes it took, and the manifest says when it was written.

use crate::input::stored::StoredChunk;
use crate::input::stream::Format;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What [`Manifest::kind`] says.
pub const KIND: &str = "billrun usage archive";

/// The manifest's layout version.
pub const VERSION: u32 = 1;

/// The manifest of one archived import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`KIND`].
    pub kind: String,
    /// [`VERSION`].
    pub version: u32,
    pub import_id: i64,
    /// The file it was imported from, as recorded.
    pub file_name: String,
    /// The SHA-256 the import was recorded with (of the file as given: gzip-compressed, if it was).
    pub imported_sha256: String,
    pub rows: i64,
    pub calls: i64,
    /// Taken back (`usage retract`): its rows count nowhere.
    pub retracted: bool,
    /// The content: SHA-256 and length once decompressed, and how its rows are read back.
    pub content_sha256: String,
    pub content_bytes: i64,
    /// `csv` or `ndjson`.
    pub content_format: String,
    /// The zone a timestamp without an offset was read in (`--assume-tz`).
    pub assume_tz: Option<String>,
    /// The lines skipped as events an account already had (`input::replay::SkippedLines`),
    /// base64.
    pub skipped_lines: Option<String>,
    /// The zstd stream.
    pub data: FileEntry,
    /// The chunks of the stream, in order.
    pub chunks: Vec<ChunkEntry>,
    /// The totals file.
    pub totals: FileEntry,
    /// The billing zone of the months below and in the totals file.
    pub zone: String,
    /// Its calls in each month.
    pub calls_by_month: BTreeMap<String, i64>,
    /// RFC 3339.
    pub archived_at: String,
}

/// A file beside the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// One chunk: its length in the stream (a zstd frame) and of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub bytes: u64,
    pub raw_bytes: i64,
}

/// The name every file of import `import_id` starts with.
pub fn stem(import_id: i64) -> String {
    format!("usage-{import_id:06}")
}

/// The manifest's path for import `import_id` in `dir`.
pub fn manifest_path(dir: &Path, import_id: i64) -> PathBuf {
    dir.join(format!("{}.manifest.json", stem(import_id)))
}

/// The stream's name for import `import_id` of `format`.
pub fn data_name(import_id: i64, format: Format) -> String {
    format!("{}.{}.zst", stem(import_id), format.key())
}

/// The totals file's name for import `import_id`.
pub fn totals_name(import_id: i64) -> String {
    format!("{}.totals.csv", stem(import_id))
}

/// Reads the manifest of import `import_id` in `dir`; `None` if there is none.
pub fn read_manifest(dir: &Path, import_id: i64) -> anyhow::Result<Option<Manifest>> {
    let path = manifest_path(dir, import_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    };
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| crate::error::input_error(format!("{}: not a usage archive manifest: {e}", path.display())))?;
    if manifest.kind != KIND || manifest.version != VERSION || manifest.import_id != import_id {
        return Err(crate::error::input_error(format!(
            "{}: a manifest of {} version {} for import #{}, not of a billrun usage archive (version {VERSION}) for import #{import_id}",
            path.display(),
            manifest.kind,
            manifest.version,
            manifest.import_id
        )));
    }
    Ok(Some(manifest))
}

/// A file being written under a temporary name in its directory, counted and hashed as it goes.
pub struct NewFile {
    dir: PathBuf,
    name: String,
    /// Removed if the file is dropped before it is finished (an error on the way).
    temp: PathBuf,
    finished: bool,
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl NewFile {
    /// Starts file `name` in `dir`, under a temporary name of its own until [`NewFile::finish`]
    /// (`.name.PID-N.partial`, made new: two runs writing the same file never write into one).
    pub fn create(dir: &Path, name: &str) -> std::io::Result<NewFile> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.{}-{n}.partial", std::process::id()));
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        Ok(NewFile {
            dir: dir.to_owned(),
            name: name.to_owned(),
            out: BufWriter::new(file),
            temp,
            finished: false,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Where its bytes are while it is written (readable there once flushed, `Write::flush`).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes it to disk and gives it its name (replacing a file of that name, which a run
    /// interrupted earlier left); the directory entry is flushed by [`sync_dir`].
    pub fn finish(mut self) -> std::io::Result<FileEntry> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        std::fs::rename(&self.temp, self.dir.join(&self.name))?;
        self.finished = true;
        Ok(FileEntry {
            name: std::mem::take(&mut self.name),
            bytes: self.bytes,
            sha256: format!("{:x}", std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.finished {
            std::fs::remove_file(&self.temp).ok();
        }
    }
}

impl Write for NewFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Flushes `dir`'s entries (the renames) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes the manifest under its name, whole or not at all.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let name = format!("{}.manifest.json", stem(manifest.import_id));
    let mut file = NewFile::create(dir, &name)?;
    serde_json::to_writer_pretty(&mut file, manifest)?;
    file.write_all(b"\n")?;
    file.finish()?;
    sync_dir(dir)?;
    Ok(())
}

/// The chunks of an archived import's stream, read back in order as the manifest cuts it;
/// once they are all read, [`ArchivedChunks::problem`] says whether the file is the one the
/// manifest (and the database) name.
pub struct ArchivedChunks {
    path: PathBuf,
    file: std::io::BufReader<File>,
    chunks: Vec<ChunkEntry>,
    seq: i64,
    hasher: Sha256,
}

impl ArchivedChunks {
    /// The stream the manifest names, in `dir`; or what keeps it from being read.
    pub fn open(dir: &Path, manifest: &Manifest) -> Result<ArchivedChunks, String> {
        Self::open_file(&dir.join(&manifest.data.name), &manifest.chunks)
    }

    /// The stream at `path`, cut as `chunks` say; or what keeps it from being read.
    pub fn open_file(path: &Path, chunks: &[ChunkEntry]) -> Result<ArchivedChunks, String> {
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Ok(ArchivedChunks {
            path: path.to_owned(),
            file: std::io::BufReader::with_capacity(1 << 20, file),
            chunks: chunks.to_owned(),
            seq: 0,
            hasher: Sha256::new(),
        })
    }

    /// The next chunk, `None` after the last; or what keeps it from being read (the file ends
    /// too soon, a disk error).
    pub fn next_chunk(&mut self) -> Result<Option<StoredChunk>, String> {
        let Some(&entry) = self.chunks.get(self.seq as usize) else {
            return Ok(None);
        };
        let mut data = vec![0; entry.bytes as usize];
        self.file.read_exact(&mut data).map_err(|e| {
            format!(
                "{}: chunk {} ({} bytes) cannot be read: {e}",
                self.path.display(),
                self.seq,
                entry.bytes
            )
        })?;
        self.hasher.update(&data);
        let chunk = StoredChunk {
            seq: self.seq,
            raw_bytes: entry.raw_bytes,
            data,
        };
        self.seq += 1;
        Ok(Some(chunk))
    }

    /// After the last chunk: what is wrong with the file against the SHA-256 it should have
    /// (`None`: nothing).
    pub fn problem(mut self, sha256: &str) -> Option<String> {
        let mut rest = Vec::new();
        if let Err(e) = self.file.read_to_end(&mut rest) {
            return Some(format!("{}: {e}", self.path.display()));
        }
        self.hasher.update(&rest);
        let found = format!("{:x}", self.hasher.finalize());
        if !rest.is_empty() {
            Some(format!(
                "{}: {} bytes more than its chunks",
                self.path.display(),
                rest.len()
            ))
        } else if found != sha256 {
            Some(format!(
                "{}: SHA-256 {found}, and the archive recorded {sha256}",
                self.path.display()
            ))
        } else {
            None
        }
    }
}

/// What is wrong with the file `entry` names in `dir` (its length and SHA-256), if anything.
pub fn file_problem(dir: &Path, entry: &FileEntry) -> Option<String> {
    let path = dir.join(&entry.name);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return Some(format!("cannot open {}: {e}", path.display())),
    };
    let mut hasher = Sha256::new();
    let bytes = match std::io::copy(&mut file, &mut hasher) {
        Ok(n) => n,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    let sha256 = format!("{:x}", hasher.finalize());
    (bytes != entry.bytes || sha256 != entry.sha256).then(|| {
        format!(
            "{}: {bytes} bytes of SHA-256 {sha256}, and its manifest says {} bytes of SHA-256 {}",
            path.display(),
            entry.bytes,
            entry.sha256
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::stored::{unpack, Chunker, Reading};

    #[test]
    fn the_stream_is_one_zstd_stream_of_the_content_and_cuts_back_into_the_same_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..(9u32 << 20) / 16)
            .flat_map(|i| format!("a{},x,{}\n", i % 97, i % 13).into_bytes())
            .collect();
        let mut chunker = Chunker::new(Reading {
            format: Format::Csv,
            assume_tz: None,
        });
        let mut chunks = chunker.push(&content).unwrap();
        let (last, _) = chunker.finish().unwrap();
        chunks.extend(last);
        assert!(chunks.len() >= 2);
        let mut file = NewFile::create(dir.path(), "s.csv.zst").unwrap();
        let mut entries = Vec::new();
        for c in &chunks {
            file.write_all(&c.data).unwrap();
            entries.push(ChunkEntry {
                bytes: c.data.len() as u64,
                raw_bytes: c.raw_bytes,
            });
        }
        let entry = file.finish().unwrap();
        // An independent reader of the whole stream: zstd's own streaming decoder.
        let whole = zstd::stream::decode_all(File::open(dir.path().join("s.csv.zst")).unwrap()).unwrap();
        assert_eq!(whole, content);
        let mut back = ArchivedChunks::open_file(&dir.path().join("s.csv.zst"), &entries).unwrap();
        let mut again = Vec::new();
        while let Some(c) = back.next_chunk().unwrap() {
            unpack(&c).unwrap();
            again.push(c);
        }
        assert_eq!(again, chunks);
        assert_eq!(back.problem(&entry.sha256), None);
        assert_eq!(file_problem(dir.path(), &entry), None);
        let back = ArchivedChunks::open_file(&dir.path().join("s.csv.zst"), &entries[..1]).unwrap();
        assert!(back.problem(&entry.sha256).unwrap().contains("bytes more"));
        // Cut short: the last chunk cannot be read, and the file is not the one recorded.
        let whole = std::fs::read(dir.path().join("s.csv.zst")).unwrap();
        std::fs::write(dir.path().join("s.csv.zst"), &whole[..whole.len() - 1]).unwrap();
        let mut back = ArchivedChunks::open_file(&dir.path().join("s.csv.zst"), &entries).unwrap();
        let problem = loop {
            match back.next_chunk() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a file cut short read to its end"),
                Err(problem) => break problem,
            }
        };
        assert!(problem.contains("cannot be read"), "{problem}");
        assert!(file_problem(dir.path(), &entry).unwrap().contains("its manifest says"));
    }
}

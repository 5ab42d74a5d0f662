//! Usage import: a whole file or nothing, never the same rows twice.
//!
//! The file may be standard input (`-`), gzip-compressed or not, CSV or NDJSON; it is read
//! once, as it arrives.

use super::{open_input, Ctx};
use crate::error::{input_error, RejectedFile};
use crate::input::stored::{Content, KeepTap, Kept, Reading, StoredChunk};
use crate::input::stream::{self, Bytes, Format};
use crate::input::usage::{Fingerprint, NewUsage, TimeBounds, UsageRows, CLOCK_AHEAD};
use crate::input::{check_id, RowError};
use crate::progress::Progress;
use crate::store::repeats::{row_hash, RowHashes};
use crate::store::{RetractOutcome, Retraction, Store, StoreError, UsageImported, UsageSource, UsageTotals};
use chrono_tz::Tz;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Parsed = Result<NewUsage, Vec<RowError>>;

/// Rows parsed per message between the parsing thread and the import.
const PARSED_BATCH: usize = 1024;

/// What the parsing thread sends: rows, then `End` with the file's fingerprints and its sums
/// once the file is read to its end.
enum ParsedMsg {
    Rows(Vec<Parsed>),
    End(Option<Fingerprint>, Box<UsageTotals>, Box<RowHashes>),
}

/// How an import takes its input: what the sender says it sent (`--expect-rows`,
/// `--expect-sha256`; the input is refused whole unless it holds that), and whether usage of
/// accounts not open yet (`--allow-unopened`) or of rows that repeat earlier imports'
/// (`--allow-repeats`) is taken as it is.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    pub expect_rows: Option<u64>,
    /// Lower-case hex, of the bytes as received.
    pub expect_sha256: Option<String>,
    pub allow_unopened: bool,
    pub allow_repeats: bool,
    /// The zone timestamps without an offset are read in (`--assume-tz`).
    pub assume_tz: Option<Tz>,
    /// The import this file replaces (`--replaces`), retracted in the same transaction.
    pub replaces: Option<RetractAsk>,
}

/// An import an operator takes back, as asked.
#[derive(Clone, Debug)]
pub struct RetractAsk {
    pub import_id: i64,
    pub reason: String,
    pub by: Option<String>,
}

/// The longest retraction reason kept.
const MAX_REASON_CHARS: usize = 500;

impl RetractAsk {
    /// The retraction the store is asked for, once what the operator typed is checked.
    fn checked(&self) -> anyhow::Result<Retraction> {
        if self.import_id <= 0 {
            return Err(input_error(format!(
                "import id: {} is not one (ids start at 1)",
                self.import_id
            )));
        }
        if let Some(by) = &self.by {
            check_id("by", by).map_err(input_error)?;
        }
        let reason = self.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
            return Err(input_error(format!(
                "reason: give why, in 1 to {MAX_REASON_CHARS} characters on one line"
            )));
        }
        Ok(Retraction {
            import_id: self.import_id,
            reason: reason.to_owned(),
            by: self.by.clone(),
        })
    }
}

/// Takes import `ask.import_id` back at `ctx.now` (see `Store::retract_import`).
pub async fn retract<S: Store>(store: &S, ctx: &Ctx, ask: &RetractAsk) -> anyhow::Result<RetractOutcome> {
    Ok(store.retract_import(&ask.checked()?, ctx.now).await?)
}

/// The expectations, with the digest of the bytes read once they are all read.
struct Expected {
    rows: Option<u64>,
    sha256: Option<(String, Arc<std::sync::OnceLock<String>>)>,
}

impl Expected {
    /// What the input that ended after `rows` rows fails to be, if anything.
    fn problem(&self, rows: u64) -> Option<String> {
        if let Some(n) = self.rows.filter(|&n| n != rows) {
            return Some(format!(
                "the input holds {rows} usage rows, and --expect-rows says {n}: it was cut short or is not what \
                 was sent; nothing was imported"
            ));
        }
        let (expected, seen) = self.sha256.as_ref()?;
        match seen.get() {
            Some(seen) if seen == expected => None,
            Some(seen) => Some(format!(
                "the input's SHA-256 is {seen}, and --expect-sha256 says {expected}: it was cut short or is not \
                 what was sent; nothing was imported"
            )),
            None => Some("the input was not read to its end, so its SHA-256 is unknown".into()),
        }
    }
}

/// The rows of a file parsed, checked and summed per account, API and month
/// ([`UsageTotals`]) on a thread of their own, a few batches ahead of the import, so that
/// reading the file and writing to the database use both cores. The import sees an ordinary
/// iterator. Should the thread stop without reaching the end of the file (a panic),
/// the iterator ends with a bad row, so the file is rejected rather than imported in part.
struct ParsedAhead {
    rx: std::sync::mpsc::Receiver<ParsedMsg>,
    batch: std::vec::IntoIter<Parsed>,
    ended: bool,
    fingerprint: Option<Fingerprint>,
    totals: Option<UsageTotals>,
    /// The hashes of the rows without an event id, once the file is read.
    hashes: Option<RowHashes>,
    event_ids: bool,
    /// Bytes of the file read so far, and where to show them.
    read: Option<(Arc<AtomicU64>, Progress)>,
    /// Rows handed out so far (good or bad), and what the sender said it sent.
    seen: u64,
    expected: Option<Expected>,
    allow_unopened: bool,
    allow_repeats: bool,
    /// The chunks of the content the parsing thread has read, kept as received.
    kept: Option<Kept>,
}

/// Passes a file through, counting the bytes read (for the import's progress).
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A source of rows the parsing thread reads: the rows, then the fingerprints.
trait Source: Iterator<Item = Parsed> + Send + 'static {
    fn fingerprint(&self) -> Option<Fingerprint>;
    fn may_have_event_ids(&self) -> bool;
}

impl Source for UsageRows {
    fn fingerprint(&self) -> Option<Fingerprint> {
        UsageRows::fingerprint(self)
    }
    fn may_have_event_ids(&self) -> bool {
        UsageRows::may_have_event_ids(self)
    }
}

/// `rows` read on a thread of their own; their sums are of the months of `zone`.
fn parsed_ahead(mut rows: impl Source, zone: Tz) -> ParsedAhead {
    let event_ids = rows.may_have_event_ids();
    let (tx, rx) = std::sync::mpsc::sync_channel::<ParsedMsg>(8);
    // Named so that `scripts/thread-stats` and `perf` tell it from the importing thread. A
    // thread that could not be started drops `tx`: the rows end with the error below.
    let _ = std::thread::Builder::new().name("usage-parse".into()).spawn(move || {
        let mut totals = UsageTotals::new(zone);
        let mut hashes = RowHashes::default();
        loop {
            let batch: Vec<Parsed> = rows.by_ref().take(PARSED_BATCH).collect();
            for row in batch.iter().flatten() {
                totals.add(row);
                if row.event_id.is_none() {
                    hashes.add(row_hash(
                        &row.account_id,
                        &row.api,
                        row.ts.timestamp_micros(),
                        row.calls,
                    ));
                }
            }
            let last = batch.len() < PARSED_BATCH;
            // A send fails only when the import stopped reading (a rejected file): stop too.
            if !batch.is_empty() && tx.send(ParsedMsg::Rows(batch)).is_err() {
                return;
            }
            if last {
                break;
            }
        }
        let _ = tx.send(ParsedMsg::End(rows.fingerprint(), Box::new(totals), Box::new(hashes)));
    });
    ParsedAhead {
        rx,
        batch: Vec::new().into_iter(),
        ended: false,
        fingerprint: None,
        totals: None,
        hashes: None,
        event_ids,
        read: None,
        seen: 0,
        expected: None,
        allow_unopened: false,
        allow_repeats: false,
        kept: None,
    }
}

impl Iterator for ParsedAhead {
    type Item = Parsed;

    fn next(&mut self) -> Option<Parsed> {
        loop {
            if let Some(row) = self.batch.next() {
                self.seen += 1;
                return Some(row);
            }
            if self.ended {
                return None;
            }
            if let Some((read, progress)) = &mut self.read {
                progress.set(read.load(Ordering::Relaxed));
            }
            match self.rx.recv() {
                Ok(ParsedMsg::Rows(rows)) => self.batch = rows.into_iter(),
                Ok(ParsedMsg::End(fingerprint, totals, hashes)) => {
                    self.ended = true;
                    self.fingerprint = fingerprint;
                    self.totals = Some(*totals);
                    self.hashes = Some(*hashes);
                    // An input that is not what its sender said it sent ends with a bad row:
                    // refused whole.
                    if let Some(problem) = self.expected.as_ref().and_then(|e| e.problem(self.seen)) {
                        return Some(Err(vec![RowError::new(1, "(file)", problem)]));
                    }
                }
                Err(_) => {
                    self.ended = true;
                    return Some(Err(vec![RowError::new(
                        1,
                        "(file)",
                        "reading the file stopped before its end (the parsing thread failed)",
                    )]));
                }
            }
        }
    }
}

impl UsageSource for ParsedAhead {
    fn fingerprint(&self) -> Option<Fingerprint> {
        let mut fingerprint = self.fingerprint.clone()?;
        // The content's SHA-256 is computed once, by the tap that keeps the content.
        if let Some(kept) = &self.kept {
            fingerprint.sha256 = kept.content()?.sha256;
        }
        Some(fingerprint)
    }
    fn may_have_event_ids(&self) -> bool {
        self.event_ids
    }
    fn totals(&mut self) -> Option<UsageTotals> {
        self.totals.take()
    }
    fn accepts_unopened(&self) -> bool {
        self.allow_unopened
    }
    fn row_hashes(&mut self) -> Option<RowHashes> {
        self.hashes.take()
    }
    fn accepts_repeats(&self) -> bool {
        self.allow_repeats
    }
    fn take_chunks(&mut self) -> Vec<StoredChunk> {
        self.kept.as_ref().map(Kept::take).unwrap_or_default()
    }
    fn content(&self) -> Option<Content> {
        // Only once the parsing thread has read the content to its end and said so.
        self.fingerprint.as_ref()?;
        self.kept.as_ref().and_then(Kept::content)
    }
}

/// The instants a usage row may carry at `--now` (see `input::usage`).
pub fn time_bounds(ctx: &Ctx, assume: Option<Tz>) -> anyhow::Result<TimeBounds> {
    let first = ctx
        .catalog
        .first_month()
        .ok_or_else(|| input_error("the catalog has no version"))?;
    Ok(TimeBounds {
        earliest: first.start(ctx.tz),
        latest: ctx.now + CLOCK_AHEAD,
        assume,
    })
}

/// Standard input, read to its end into a temporary file (removed at once: it goes when the
/// import closes it), before the import begins: the database's write lock (SQLite's) is never
/// held while a sender pauses, so a recharge or a settle never waits on a slow pipe.
fn spool_stdin() -> anyhow::Result<std::fs::File> {
    use std::io::Seek;
    let dir = std::env::temp_dir();
    let path = dir.join(format!(".billrun-stdin-{}", std::process::id()));
    let cannot = |e: std::io::Error| {
        input_error(format!(
            "cannot keep standard input in {} while it arrives: {e} (set TMPDIR to a directory billrun may write)",
            dir.display()
        ))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(cannot)?;
    let _ = std::fs::remove_file(&path);
    std::io::copy(&mut std::io::stdin().lock(), &mut file).map_err(cannot)?;
    file.rewind().map_err(cannot)?;
    Ok(file)
}

/// The name standard input goes by in messages and in the import's record.
pub const STDIN_NAME: &str = "<stdin>";

/// Imports the usage in `path` (`-`: standard input), as `format` or, if `None`, as its
/// content says (`input::stream`).
pub async fn import<S: Store>(
    store: &S,
    ctx: &Ctx,
    path: &Path,
    format: Option<Format>,
    options: ImportOptions,
) -> anyhow::Result<UsageImported> {
    let replaces = options.replaces.as_ref().map(RetractAsk::checked).transpose()?;
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        STDIN_NAME.to_owned()
    } else {
        path.display().to_string()
    };
    let rejected = |problems: Vec<RowError>, total: u64| anyhow::Error::new(RejectedFile::new(&name, problems, total));
    let (raw, size): (Bytes, Option<u64>) = if stdin {
        let spooled = spool_stdin()?;
        let size = spooled.metadata().ok().map(|m| m.len()).filter(|n| *n > 0);
        (Box::new(spooled), size)
    } else {
        let file = open_input(path)?;
        let size = file.metadata().ok().map(|m| m.len()).filter(|n| *n > 0);
        (Box::new(file), size)
    };
    let read = Arc::new(AtomicU64::new(0));
    let counted = Counted {
        inner: raw,
        read: read.clone(),
    };
    let (raw, sha256): (Bytes, _) = match options.expect_sha256 {
        Some(hex) => {
            let (tap, digest) = stream::Sha256Tap::new(counted);
            (Box::new(tap), Some((hex, digest)))
        }
        None => (Box::new(counted), None),
    };
    let raw = Box::new(std::io::BufReader::with_capacity(1 << 20, raw));
    let mut opened =
        stream::open(raw, format).map_err(|e| rejected(vec![RowError::new(1, "(file)", e.to_string())], 1))?;
    // A pipe's sender may die mid-row; a file on disk is whole as it is (an editor may leave
    // its last line without a newline).
    if stdin {
        opened.content = stream::whole_lines(opened.content);
    }
    // What is parsed is kept, compressed, with the import (`input::stored`).
    let reading = Reading {
        format: opened.format,
        assume_tz: options.assume_tz,
    };
    let (content, kept) = KeepTap::new(opened.content, reading);
    opened.content = Box::new(content);
    tracing::info!(
        file = %name,
        format = opened.format.name(),
        gzip = opened.gzip,
        "reading usage"
    );
    let mut rows = UsageRows::open(
        opened.content,
        opened.format,
        ctx.catalog.known_apis(),
        time_bounds(ctx, options.assume_tz)?,
    )
    .map_err(|p| {
        let n = p.len() as u64;
        rejected(p, n)
    })?;
    rows.skip_content_hash();
    let mut rows = parsed_ahead(rows, ctx.tz);
    rows.read = Some((read, ctx.progress(format!("importing {name}"), "bytes", size)));
    rows.allow_unopened = options.allow_unopened;
    rows.allow_repeats = options.allow_repeats;
    rows.kept = Some(kept);
    rows.expected = Some(Expected {
        rows: options.expect_rows,
        sha256,
    });
    let imported = store
        .import_usage(&name, &mut rows, ctx.now, ctx.tz, replaces.as_ref())
        .await;
    if let Some((_, progress)) = rows.read.take() {
        progress.finish();
    }
    match imported {
        Ok(done) => Ok(done),
        Err(StoreError::AlreadyImported {
            import_id,
            file_name,
            imported_at,
        }) => Err(input_error(format!(
            "{name}: these usage rows were already imported (import #{import_id}, from {file_name}, at {}); \
             importing them again would bill their calls twice",
            ctx.local(imported_at)
        ))),
        Err(StoreError::Rejected { problems, total }) => Err(rejected(problems, total)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(line: u64) -> Parsed {
        Ok(NewUsage {
            line,
            account_id: "a".into(),
            api: "CropImage".into(),
            ts: "2026-10-01T00:00:00Z".parse().unwrap(),
            calls: 1,
            event_id: None,
        })
    }

    /// Rows from an iterator, with a fixed fingerprint once they are exhausted.
    struct Rows<I>(I, bool);

    impl<I: Iterator<Item = Parsed>> Iterator for Rows<I> {
        type Item = Parsed;
        fn next(&mut self) -> Option<Parsed> {
            let next = self.0.next();
            self.1 |= next.is_none();
            next
        }
    }

    impl<I: Iterator<Item = Parsed> + Send + 'static> Source for Rows<I> {
        fn may_have_event_ids(&self) -> bool {
            false
        }
        fn fingerprint(&self) -> Option<Fingerprint> {
            self.1.then(|| Fingerprint {
                sha256: "bytes".into(),
                rows: "rows".into(),
            })
        }
    }

    #[test]
    fn rows_parsed_ahead_arrive_all_and_in_order_then_the_fingerprint() {
        for n in [0, 1, PARSED_BATCH as u64, 5000] {
            let mut rows = parsed_ahead(Rows((2..2 + n).map(row), false), chrono_tz::UTC);
            let lines: Vec<u64> = rows.by_ref().map(|r| r.unwrap().line).collect();
            assert_eq!(lines, (2..2 + n).collect::<Vec<_>>());
            assert_eq!(UsageSource::fingerprint(&rows).unwrap().rows, "rows");
            let totals = rows.totals().expect("the sums, once the rows are read");
            let sums: Vec<(String, String, String, i64)> = totals
                .into_sorted()
                .iter()
                .map(|(m, a, api, c)| (m.into(), a.into(), api.into(), c))
                .collect();
            let expected = (n > 0).then(|| ("2026-10".into(), "a".into(), "CropImage".into(), n as i64));
            assert_eq!(sums, expected.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_parser_that_dies_mid_file_ends_the_rows_with_a_bad_one() {
        let rows = (2..5002).map(|line| {
            if line == 3000 {
                panic!("the parser fails (expected by this test)");
            }
            row(line)
        });
        let mut ahead = parsed_ahead(Rows(rows, false), chrono_tz::UTC);
        let seen: Vec<Parsed> = ahead.by_ref().collect();
        assert!(UsageSource::fingerprint(&ahead).is_none());
        assert!(ahead.totals().is_none(), "no sums of a file not read to its end");
        let last = seen.last().unwrap();
        assert!(last.is_err(), "the file must not look complete");
        assert!(seen.len() < 3000);
        assert!(seen[..seen.len() - 1].iter().all(|r| r.is_ok()));
    }
}

//! `verify`'s two checks of the usage imports, from what they kept (`input::stored`):
//!
//! - each import's kept content is, byte for byte, what it received (its SHA-256, length and
//!   chunk count as recorded when it was imported);
//! - each month's usage totals, which settle reads, are the sum of the rows the imports that
//!   count (not retracted) kept: their content read back as they read it, less the lines they
//!   skipped (`input::replay`).
//!
//! Both read every chunk from the database, one at a time, and the rows are parsed on a thread
//! of their own while the next chunk is fetched. The content of an archived import
//! (`jobs::archive`) is read from the archive's files when `verify --archive DIR` names them
//! (and the file checked against the SHA-256 the database recorded); without them, each month
//! it reaches is checked as a whole: its totals add up to the calls of the imports still kept
//! plus the calls recorded of the archived ones when they were archived. The recomputed totals are held in memory, at
//! most [`TOTALS_PER_PASS`] of them at a time: with more totals stored than that, the content
//! is read in several passes, each for the accounts of one share of a hash of the account id,
//! so that memory stays bounded whatever the month's size.

use crate::domain::month::Month;
use crate::input::archived::{file_problem, read_manifest, ArchivedChunks};
use crate::input::replay::{shares_for, ChunkBytes, MonthSums, ReadBack, SkippedLines};
use crate::input::stored::{unpack, Content, ContentCheck, StoredChunk};
use crate::store::sql::verify::MAX_PER_CHECK;
use crate::store::{Store, StoredImport, StoredTotal};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::path::Path;

/// What [`STORED_CHECK`]'s check makes sure of.
pub const STORED_CHECK: &str = "each usage import's stored content is, byte for byte, what was imported";

/// What the recount makes sure of.
pub const TOTALS_CHECK: &str =
    "each month's usage totals, which settle reads, are the sum of the rows its imports kept, read back";

/// Recomputed totals held in memory at once.
pub const TOTALS_PER_PASS: u64 = crate::input::replay::SUMS_PER_SHARE;

/// One pass's state, handed to the parsing thread for each import and back.
struct Pass {
    zone: Tz,
    /// Only rows of this month count (`verify --month`).
    only: Option<Month>,
    sums: MonthSums,
}

/// Both checks, as [`STORED_CHECK`] and [`TOTALS_CHECK`]: of every import's content, and of
/// `month`'s totals (`None`: every month's), holding at most `per_pass` recomputed totals at
/// a time (`verify` holds [`TOTALS_PER_PASS`]); archived imports read from `archive`, if given.
pub async fn recount<S: Store>(
    store: &S,
    month: Option<Month>,
    per_pass: u64,
    archive: Option<&Path>,
) -> anyhow::Result<(Found, Found)> {
    let started = std::time::Instant::now();
    let mut stored = Found::new(STORED_CHECK);
    let mut totals = Found::new(TOTALS_CHECK);
    let mut imports = store.stored_imports().await?;
    let zone = store.usage_totals_zone().await?;
    let shares = shares_for(store.count_usage_totals(month).await?, per_pass);
    // Archived imports not read back (no archive given, or its files for them are missing or
    // damaged, which is a breach named once): the months they reach are checked whole.
    let mut whole = WholeMonths::default();
    imports.retain(|import| {
        let Some(archived) = &import.archived else {
            return true;
        };
        if let Some(dir) = archive {
            match Source::of(import, Some(dir)) {
                Ok(_) => return true,
                Err(problem) => stored.add(format!(
                    "import #{} ({}): {problem}",
                    import.import_id, import.file_name
                )),
            }
        }
        if !import.retracted {
            for (m, calls) in &archived.calls {
                if month.map_or(true, |only| only.to_string() == *m) {
                    whole.archived.entry(m.clone()).or_default().2 += calls;
                }
            }
        }
        false
    });
    for share in 0..shares {
        let mut pass = zone.map(|zone| Pass {
            zone,
            only: month,
            sums: MonthSums::new(zone, month, share, shares),
        });
        for import in &imports {
            let name = format!("import #{} ({})", import.import_id, import.file_name);
            let Some(content) = &import.content else {
                if share == 0 {
                    stored.add(format!(
                        "{name}: its content is not kept in a form that reads back (`billrun migrate` rebuilds it)"
                    ));
                }
                continue;
            };
            // Every import's chunks are checked once, in the first pass; those that count are
            // read back in every pass.
            let check = share == 0;
            let (unreadable, chunks) = match pass.take_if(|p| !import.retracted && reaches(import, p)) {
                Some(p) => {
                    let add = |p: &mut Pass, rows| p.sums.add_all(rows);
                    let (p, unreadable, chunks) = read_back(store, archive, import, content, check, p, add).await?;
                    pass = Some(p);
                    (unreadable, chunks)
                }
                None if check => (None, read_chunks(store, archive, import, content, true, None).await?),
                None => (None, None),
            };
            if let Some(problem) = unreadable {
                totals.add(format!(
                    "{name}: its kept content does not read back as the rows it counted: {problem}"
                ));
            }
            if let Some(problem) = chunks {
                stored.add(format!("{name}: {problem}"));
            }
        }
        if let Some(pass) = pass {
            compare(store, month, pass, &mut whole, &mut totals).await?;
        }
    }
    whole.check(&mut totals);
    tracing::debug!(
        check = TOTALS_CHECK,
        passes = shares,
        millis = started.elapsed().as_millis() as u64,
        "checked"
    );
    Ok((stored, totals))
}

/// Whether `import`'s rows reach the month the pass counts.
fn reaches(import: &StoredImport, pass: &Pass) -> bool {
    match (pass.only, import.span) {
        (Some(m), Some((first, last))) => first < m.end(pass.zone) && last >= m.start(pass.zone),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Reads `import`'s kept content back into `state` with `add`, on a thread of its own fed the
/// chunks as they are read (with `check`, compared with what the import recorded), from the
/// database or, archived, from `archive`. Returns the state, what kept the rows from reading
/// back, and what is wrong with the chunks.
pub(super) async fn read_back<S: Store, T: Send + 'static>(
    store: &S,
    archive: Option<&Path>,
    import: &StoredImport,
    content: &Content,
    check: bool,
    mut state: T,
    add: impl FnOnce(&mut T, ReadBack) -> Result<(), String> + Send + 'static,
) -> anyhow::Result<(T, Option<String>, Option<String>)> {
    let (feed, bytes) = ChunkBytes::channel();
    let (reading, skipped) = (content.reading, import.skipped_lines.clone());
    let parser = tokio::task::spawn_blocking(move || {
        let problem = SkippedLines::decode(skipped.as_deref())
            .and_then(|skipped| ReadBack::open(bytes, reading, skipped))
            .and_then(|rows| add(&mut state, rows))
            .err();
        (state, problem)
    });
    let chunks = read_chunks(store, archive, import, content, check, Some(feed)).await;
    let (state, unreadable) = parser.await?;
    Ok((state, unreadable, chunks?))
}

/// Where an import's chunks are read from.
enum Source {
    Stored,
    /// The archive's content file, and the SHA-256 the database recorded of it.
    Archived(Box<ArchivedChunks>, String),
}

impl Source {
    /// `import`'s chunks: from the archive in `archive` if it is archived, else from the
    /// database; or what keeps them from being read.
    fn of(import: &StoredImport, archive: Option<&Path>) -> Result<Source, String> {
        let (Some(archived), Some(dir)) = (&import.archived, archive) else {
            return Ok(Source::Stored);
        };
        let manifest = match read_manifest(dir, import.import_id) {
            Ok(Some(manifest)) => manifest,
            Ok(None) => return Err(format!("archived, and {} holds no archive of it", dir.display())),
            Err(e) => return Err(format!("{e:#}")),
        };
        if manifest.data.sha256 != archived.sha256 {
            return Err(format!(
                "archived as a content file of SHA-256 {}, and the one {} names is {}",
                archived.sha256, manifest.data.name, manifest.data.sha256
            ));
        }
        // Both files whole before anything is read: a damaged one is named once, and the
        // months of the import are then checked whole rather than row by row.
        if let Some(problem) = file_problem(dir, &manifest.data).or_else(|| file_problem(dir, &manifest.totals)) {
            return Err(problem);
        }
        ArchivedChunks::open(dir, &manifest).map(|file| Source::Archived(Box::new(file), archived.sha256.clone()))
    }

    /// The next chunk (`None`: no more), or what keeps it from being read.
    async fn chunk<S: Store>(
        &mut self,
        store: &S,
        import_id: i64,
        seq: i64,
    ) -> anyhow::Result<Result<Option<StoredChunk>, String>> {
        match self {
            Source::Stored => Ok(Ok(store.stored_chunk(import_id, seq).await?)),
            Source::Archived(file, _) => Ok(file.next_chunk()),
        }
    }

    /// Once every chunk was read: what is wrong with the archive's file, if it is one.
    fn problem(self) -> Option<String> {
        match self {
            Source::Stored => None,
            Source::Archived(file, sha256) => file.problem(&sha256),
        }
    }
}

/// Reads `import`'s chunks in order (from `archive` if it is archived), handing each one's
/// content to `feed` while it takes them; with `check`, compares them with what the import
/// recorded, and returns what is wrong.
async fn read_chunks<S: Store>(
    store: &S,
    archive: Option<&Path>,
    import: &StoredImport,
    content: &Content,
    check: bool,
    mut feed: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
) -> anyhow::Result<Option<String>> {
    let mut source = match Source::of(import, archive) {
        Ok(source) => source,
        Err(problem) => return Ok(Some(problem)),
    };
    let mut bytes_check = ContentCheck::default();
    let mut whole = true;
    for seq in 0..content.chunks {
        let chunk: StoredChunk = match source.chunk(store, import.import_id, seq).await? {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                bytes_check.missing(seq);
                break;
            }
            Err(problem) => {
                bytes_check.broken(problem);
                break;
            }
        };
        let raw = if check {
            bytes_check.add(&chunk)
        } else {
            unpack(&chunk).ok()
        };
        // What could not be read ends the content there; the parser says what that did.
        let Some(raw) = raw else {
            whole = false;
            break;
        };
        if let Some(tx) = feed.clone() {
            // A parser that stopped (content that no longer reads) takes no more.
            if tokio::task::spawn_blocking(move || tx.send(raw)).await?.is_err() {
                feed = None;
            }
        }
        if feed.is_none() && !check {
            whole = false;
            break;
        }
    }
    if !check {
        return Ok(None);
    }
    let file = if whole { source.problem() } else { None };
    Ok(bytes_check.problem(content).or(file))
}

/// The months reached by archived imports that are not read back, checked whole.
#[derive(Default)]
struct WholeMonths {
    /// Per month: its totals' calls, the calls read back of the imports still kept, and the
    /// calls recorded of the archived ones.
    archived: BTreeMap<String, (i64, i64, i64)>,
}

impl WholeMonths {
    /// Adds a total and what was read back for it, if its month is checked whole.
    fn add(&mut self, month: &str, total: i64, counted: i64) -> bool {
        match self.archived.get_mut(month) {
            Some(m) => {
                m.0 += total;
                m.1 += counted;
                true
            }
            None => false,
        }
    }

    fn check(self, found: &mut Found) {
        for (month, (total, kept, archived)) in self.archived {
            if total != kept + archived {
                found.add(format!(
                    "{month}: {total} calls in the month's totals, and its imports have {} ({kept} read back, \
                     {archived} recorded of its archived imports)",
                    kept + archived
                ));
            }
        }
    }
}

/// Compares the pass's sums with the stored totals of its accounts (a month reached by an
/// archived import not read back: added to `whole`).
async fn compare<S: Store>(
    store: &S,
    month: Option<Month>,
    pass: Pass,
    whole: &mut WholeMonths,
    found: &mut Found,
) -> anyhow::Result<()> {
    let mut sums = pass.sums;
    let mut breach = |account: &str, month: &str, api: &str, counted: i64, kept: i64| {
        found.add(format!(
            "account {account}, {month}, {api}: {counted} calls in its imports' kept usage, {kept} in the month's totals"
        ));
    };
    store
        .usage_totals(month, &mut |t: StoredTotal| {
            if !sums.counts(&t.account_id) {
                return;
            }
            let counted = sums.take(&t.month, &t.account_id, &t.api);
            if whole.add(&t.month, t.calls, counted) {
                return;
            }
            if counted != t.calls {
                breach(&t.account_id, &t.month, &t.api, counted, t.calls);
            }
        })
        .await?;
    for (month, account, api, calls) in sums.into_sorted().iter() {
        if calls != 0 && !whole.add(month, 0, calls) {
            breach(account, month, api, calls, 0);
        }
    }
    Ok(())
}

/// A check's breaches as they are found: how many, and the first [`MAX_PER_CHECK`] named.
#[derive(Clone, Debug)]
pub struct Found {
    pub what: &'static str,
    pub breaches: u64,
    pub examples: Vec<String>,
}

impl Found {
    pub fn new(what: &'static str) -> Found {
        Found {
            what,
            breaches: 0,
            examples: Vec::new(),
        }
    }

    pub fn add(&mut self, breach: String) {
        self.breaches += 1;
        if self.examples.len() < MAX_PER_CHECK {
            self.examples.push(breach);
        }
    }
}

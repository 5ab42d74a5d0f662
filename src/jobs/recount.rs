//! `verify`'s two checks of the usage imports, from what they kept (`input::stored`):
//!
//! - each import's kept content is, byte for byte, what it received (its SHA-256, length and
//!   chunk count as recorded when it was imported);
//! - each month's usage totals, which settle reads, are the sum of the rows the imports that
//!   count (not retracted) kept: their content read back as they read it, less the lines they
//!   skipped (`input::replay`).
//!
//! Both read every chunk from the database, one at a time, and the rows are parsed on a thread
//! of their own while the next chunk is fetched. The recomputed totals are held in memory, at
//! most [`TOTALS_PER_PASS`] of them at a time: with more totals stored than that, the content
//! is read in several passes, each for the accounts of one share of a hash of the account id,
//! so that memory stays bounded whatever the month's size.

use crate::domain::month::Month;
use crate::input::replay::{shares_for, ChunkBytes, MonthSums, ReadBack, SkippedLines};
use crate::input::stored::{unpack, Content, ContentCheck, StoredChunk};
use crate::store::sql::verify::MAX_PER_CHECK;
use crate::store::{Store, StoredImport, StoredTotal};
use chrono_tz::Tz;

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
/// a time (`verify` holds [`TOTALS_PER_PASS`]).
pub async fn recount<S: Store>(store: &S, month: Option<Month>, per_pass: u64) -> anyhow::Result<(Found, Found)> {
    let started = std::time::Instant::now();
    let mut stored = Found::new(STORED_CHECK);
    let mut totals = Found::new(TOTALS_CHECK);
    let imports = store.stored_imports().await?;
    let zone = store.usage_totals_zone().await?;
    let shares = shares_for(store.count_usage_totals(month).await?, per_pass);
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
                    let (p, unreadable, chunks) = read_back(store, import, content, check, p, add).await?;
                    pass = Some(p);
                    (unreadable, chunks)
                }
                None if check => (None, read_chunks(store, import, content, true, None).await?),
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
            compare(store, month, pass, &mut totals).await?;
        }
    }
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
/// chunks as they are read (with `check`, compared with what the import recorded). Returns the
/// state, what kept the rows from reading back, and what is wrong with the chunks.
pub(super) async fn read_back<S: Store, T: Send + 'static>(
    store: &S,
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
    let chunks = read_chunks(store, import, content, check, Some(feed)).await;
    let (state, unreadable) = parser.await?;
    Ok((state, unreadable, chunks?))
}

/// Reads `import`'s chunks in order, handing each one's content to `feed` while it takes them;
/// with `check`, compares them with what the import recorded, and returns what is wrong.
async fn read_chunks<S: Store>(
    store: &S,
    import: &StoredImport,
    content: &Content,
    check: bool,
    mut feed: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
) -> anyhow::Result<Option<String>> {
    let mut bytes_check = ContentCheck::default();
    for seq in 0..content.chunks {
        let Some(chunk): Option<StoredChunk> = store.stored_chunk(import.import_id, seq).await? else {
            bytes_check.missing(seq);
            break;
        };
        let raw = if check {
            bytes_check.add(&chunk)
        } else {
            unpack(&chunk).ok()
        };
        // What could not be read ends the content there; the parser says what that did.
        let Some(raw) = raw else { break };
        if let Some(tx) = feed.clone() {
            // A parser that stopped (content that no longer reads) takes no more.
            if tokio::task::spawn_blocking(move || tx.send(raw)).await?.is_err() {
                feed = None;
            }
        }
        if feed.is_none() && !check {
            break;
        }
    }
    Ok(if check { bytes_check.problem(content) } else { None })
}

/// Compares the pass's sums with the stored totals of its accounts.
async fn compare<S: Store>(store: &S, month: Option<Month>, pass: Pass, found: &mut Found) -> anyhow::Result<()> {
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
            if counted != t.calls {
                breach(&t.account_id, &t.month, &t.api, counted, t.calls);
            }
        })
        .await?;
    for (month, account, api, calls) in sums.into_sorted() {
        if calls != 0 {
            breach(&account, &month, &api, calls, 0);
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

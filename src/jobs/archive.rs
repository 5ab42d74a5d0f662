//! `billrun archive` and `billrun restore-usage`: old months' raw usage leaves the database
//! without losing the proof behind their bills, and comes back byte for byte.
//!
//! `archive --before M --dir DIR` takes every import whose rows all fall in months before M,
//! each of them settled through it (no late usage or retraction waiting to be billed) in the
//! zone the month's totals are kept for, and for each one, in import order: writes its stored
//! chunks, its totals and its manifest to DIR (`input::archived`), checking the chunks against
//! what the import recorded as they are copied, then records it as archived and drops its
//! chunks in one transaction. Bills, lines, ledger, totals, events and the per-event keys stay.
//! A month that is not settled, or has usage waiting for the next run, is refused before
//! anything is written. Killed at any instant, each import is either still whole in the
//! database (its files, if written, are written again the same) or archived with its files
//! whole: run it again to finish.
//!
//! `restore-usage --dir DIR` reads each archived import's files back, checks them against the
//! SHA-256 the database recorded and the content the import recorded, and writes its chunks
//! back in one transaction per import.

use super::Ctx;
use crate::domain::month::Month;
use crate::error::input_error;
use crate::input::archived::{
    data_name, read_manifest, sync_dir, totals_name, write_manifest, ArchivedChunks, ChunkEntry, Manifest, NewFile,
    KIND, VERSION,
};
use crate::input::replay::{read_back_with, shares_for, MonthSums, SkippedLines, SUMS_PER_SHARE};
use crate::input::stored::{unpack, Content, ContentCheck, StoredChunk};
use crate::store::{Archived, Store, StoredImport};
use base64::Engine;
use chrono::SecondsFormat;
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// What an archive did.
#[derive(Debug, Default)]
pub struct ArchiveReport {
    /// The imports archived now, with the files' bytes.
    pub archived: Vec<(i64, String, u64)>,
    /// Imports archived before.
    pub already: u64,
    /// Imports left in the database, each with why.
    pub kept: Vec<(i64, String, String)>,
}

/// `billrun archive --before before --dir dir`.
pub async fn archive<S: Store>(store: &S, ctx: &Ctx, before: Month, dir: &Path) -> anyhow::Result<ArchiveReport> {
    std::fs::create_dir_all(dir)
        .map_err(|e| input_error(format!("cannot make the archive directory {}: {e}", dir.display())))?;
    let zone = store.usage_totals_zone().await?.unwrap_or(ctx.tz);
    let imports = store.stored_imports().await?;
    let mut report = ArchiveReport::default();
    let mut todo = Vec::new();
    let settled = store.settled_months(None).await?;
    let late = store.late_usage().await?;
    let cut = before.start(zone);
    for import in imports {
        if import.archived.is_some() {
            report.already += 1;
            continue;
        }
        let kept = |why: String| (import.import_id, import.file_name.clone(), why);
        let (Some(content), Some((first, last))) = (&import.content, import.span) else {
            let why = if import.content.is_none() {
                "its content is not kept in a form that reads back (`billrun migrate` rebuilds it)"
            } else {
                "it has no rows"
            };
            report.kept.push(kept(why.into()));
            continue;
        };
        if last >= cut {
            let month = Month::containing(last, zone);
            report.kept.push(kept(format!("it has rows in {month}")));
            continue;
        }
        for span in Month::spanning(first, last, zone) {
            let month = span.month.to_string();
            let refused = |why: String| {
                input_error(format!(
                    "month {month} cannot be archived: {why} (import #{}, {}, has rows in it); nothing was archived",
                    import.import_id, import.file_name
                ))
            };
            let Some(sm) = settled.iter().find(|s| s.month == month) else {
                return Err(refused("it is not settled".into()));
            };
            if sm.tz.as_deref().is_some_and(|tz| tz != zone.name()) {
                return Err(refused(format!(
                    "it was settled in {}, and the month's totals are kept for {}",
                    sm.tz.as_deref().unwrap_or_default(),
                    zone.name()
                )));
            }
            let waiting = import.import_id > sm.through_import
                || import.record_id.is_some_and(|r| r > sm.through_import)
                || late.iter().any(|l| l.month == span.month);
            if waiting {
                return Err(refused(
                    "it has usage or a retraction waiting for the next run to bill it (`billrun run`)".into(),
                ));
            }
        }
        todo.push((import.clone(), content.clone()));
    }
    let totals_kept = store.count_usage_totals(None).await?;
    for (import, content) in todo {
        let shares = shares_for((import.rows.max(1) as u64).min(totals_kept.max(1)), SUMS_PER_SHARE);
        let (manifest, bytes) = write_files(store, ctx, &import, &content, zone, shares, dir).await?;
        let archived = Archived {
            at: ctx.now,
            sha256: manifest.data.sha256.clone(),
            calls: manifest.calls_by_month.clone(),
        };
        if store.archive_import(import.import_id, &archived).await? {
            tracing::info!(import = import.import_id, file = %import.file_name, bytes, "archived");
            report.archived.push((import.import_id, import.file_name, bytes));
        } else {
            report.already += 1;
        }
    }
    Ok(report)
}

/// Writes `import`'s files to `dir`: its chunks copied from the database and checked against
/// `content`, its totals read back from the copy in `shares` passes, and its manifest last.
/// Returns the manifest and the bytes written.
async fn write_files<S: Store>(
    store: &S,
    ctx: &Ctx,
    import: &StoredImport,
    content: &Content,
    zone: Tz,
    shares: u64,
    dir: &Path,
) -> anyhow::Result<(Manifest, u64)> {
    let id = import.import_id;
    let damaged = |problem: String| {
        anyhow::anyhow!(
            "usage import #{id} ({}): its kept content is damaged ({problem}); it was not archived (`billrun verify` names it)",
            import.file_name
        )
    };
    let mut data = NewFile::create(dir, &data_name(id, content.reading.format))?;
    let mut check = ContentCheck::default();
    let mut chunks = Vec::new();
    for seq in 0..content.chunks {
        let Some(chunk) = store.stored_chunk(id, seq).await? else {
            check.missing(seq);
            break;
        };
        if check.add(&chunk).is_none() {
            break;
        }
        data.write_all(&chunk.data)?;
        chunks.push(ChunkEntry {
            bytes: chunk.data.len() as u64,
            raw_bytes: chunk.raw_bytes,
        });
    }
    if let Some(problem) = check.problem(content) {
        return Err(damaged(problem));
    }
    data.flush()?;
    let copy = data.temp_path().to_owned();
    let mut totals = NewFile::create(dir, &totals_name(id))?;
    let mut calls_by_month: BTreeMap<String, i64> = BTreeMap::new();
    {
        let mut out = csv::Writer::from_writer(&mut totals);
        out.write_record(["month", "account_id", "api", "calls"])?;
        for share in 0..shares {
            let mut file = ArchivedChunks::open_file(&copy, &chunks)?;
            let next = |_seq: i64| -> anyhow::Result<Option<Vec<u8>>> {
                file.next_chunk()?
                    .map(|c: StoredChunk| unpack(&c).map_err(anyhow::Error::msg))
                    .transpose()
            };
            let skipped = SkippedLines::decode(import.skipped_lines.as_deref()).map_err(damaged)?;
            let sums = MonthSums::new(zone, None, share, shares);
            let sums = read_back_with(content.reading, skipped, next, move |rows| {
                let mut sums = sums;
                sums.add_all(rows).map(|()| sums)
            })?
            .map_err(damaged)?;
            for (month, account, api, calls) in sums.into_sorted() {
                *calls_by_month.entry(month.clone()).or_default() += calls;
                out.write_record([month, account, api, calls.to_string()])?;
            }
        }
        out.flush()?;
    }
    let read_back: i64 = calls_by_month.values().sum();
    if read_back != import.calls {
        return Err(damaged(format!(
            "its rows read back as {read_back} calls, and it recorded {}",
            import.calls
        )));
    }
    let data = data.finish()?;
    let totals = totals.finish()?;
    sync_dir(dir)?;
    let bytes = data.bytes + totals.bytes;
    let manifest = Manifest {
        kind: KIND.into(),
        version: VERSION,
        import_id: id,
        file_name: import.file_name.clone(),
        imported_sha256: import.sha256.clone(),
        rows: import.rows,
        calls: import.calls,
        retracted: import.retracted,
        content_sha256: content.sha256.clone(),
        content_bytes: content.bytes,
        content_format: content.reading.format.key().into(),
        assume_tz: content.reading.assume_tz.map(|z| z.name().to_owned()),
        skipped_lines: import
            .skipped_lines
            .as_ref()
            .map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
        data,
        chunks,
        totals,
        zone: zone.name().into(),
        calls_by_month,
        archived_at: ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    write_manifest(dir, &manifest)?;
    Ok((manifest, bytes))
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// The imports whose content is back in the database.
    pub restored: Vec<(i64, String)>,
    /// Archived imports the directory holds no archive of.
    pub missing: Vec<(i64, String)>,
}

/// `billrun restore-usage --dir dir` (of one import, if `only`).
pub async fn restore<S: Store>(store: &S, dir: &Path, only: Option<i64>) -> anyhow::Result<RestoreReport> {
    if !dir.is_dir() {
        return Err(input_error(format!("{} is not a directory", dir.display())));
    }
    let mut report = RestoreReport::default();
    let imports = store.stored_imports().await?;
    if let Some(id) = only {
        if !imports.iter().any(|i| i.import_id == id) {
            return Err(crate::store::StoreError::UnknownImport(id).into());
        }
    }
    for import in imports {
        if only.is_some_and(|id| id != import.import_id) {
            continue;
        }
        let (Some(archived), Some(content)) = (&import.archived, &import.content) else {
            continue;
        };
        let Some(manifest) = read_manifest(dir, import.import_id)? else {
            report.missing.push((import.import_id, import.file_name.clone()));
            continue;
        };
        let name = |what: String| {
            input_error(format!(
                "usage import #{} ({}): {what}; nothing of it was restored",
                import.import_id, import.file_name
            ))
        };
        if manifest.data.sha256 != archived.sha256 {
            return Err(name(format!(
                "{} in {} is not the file it was archived as (SHA-256 {}, recorded {})",
                manifest.data.name,
                dir.display(),
                manifest.data.sha256,
                archived.sha256
            )));
        }
        let mut file = Some(ArchivedChunks::open(dir, &manifest)?);
        let mut check = Some(ContentCheck::default());
        let sha256 = archived.sha256.clone();
        let mut next = || -> anyhow::Result<Option<StoredChunk>> {
            let (Some(f), Some(c)) = (file.as_mut(), check.as_mut()) else {
                return Ok(None);
            };
            if let Some(chunk) = f.next_chunk()? {
                if c.add(&chunk).is_none() || c.failed() {
                    let problem = check.take().and_then(|c| c.problem(content)).unwrap_or_default();
                    return Err(name(problem));
                }
                return Ok(Some(chunk));
            }
            // The last chunk was read: the file and the content must be whole before the
            // transaction commits.
            let problem = file.take().map(|f| f.problem(&sha256)).transpose()?.flatten();
            let problem = problem.or_else(|| check.take().and_then(|c| c.problem(content)));
            match problem {
                Some(p) => Err(name(p)),
                None => Ok(None),
            }
        };
        if store.restore_import(import.import_id, &mut next).await? {
            tracing::info!(import = import.import_id, file = %import.file_name, "restored");
            report.restored.push((import.import_id, import.file_name.clone()));
        }
    }
    Ok(report)
}

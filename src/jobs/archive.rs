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
//! anything is written. What was checked is checked again inside the transaction that archives
//! each import, holding imports, retractions and settles off: an import changed meanwhile is
//! not archived (exit 4, run it again). Killed at any instant, each import is either still
//! whole in the database (files it left are written again) or archived with its files whole:
//! run it again to finish.
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
use crate::store::{ArchiveState, Archived, LateUsage, SettledMonth, Store, StoredImport};
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

/// Whether an import may be archived now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Archive,
    /// It stays in the database, and the others go on: why.
    Keep(String),
    /// Nothing may be archived: why.
    Refuse(String),
}

/// Whether `import` may be archived before `before`, its months being those of `zone` (the
/// zone of the totals), given the settled months and the late usage waiting. Every month its
/// rows reach must be settled in `zone` through it, with nothing waiting for the next run
/// (usage, or its own retraction), and so must every settled month whose period its rows reach
/// (a month settled in another zone is read from the rows by `verify`).
fn verdict(import: &StoredImport, before: Month, zone: Tz, settled: &[SettledMonth], late: &[LateUsage]) -> Verdict {
    let (Some(_), Some((first, last))) = (&import.content, import.span) else {
        return Verdict::Keep(if import.content.is_none() {
            "its content is not kept in a form that reads back (`billrun migrate` rebuilds it)".into()
        } else {
            "it has no rows".into()
        });
    };
    if last >= before.start(zone) {
        return Verdict::Keep(format!("it has rows in {}", Month::containing(last, zone)));
    }
    let refuse = |month: &str, why: String| {
        Verdict::Refuse(format!(
            "month {month} cannot be archived: {why} (import #{}, {}, has rows in it)",
            import.import_id, import.file_name
        ))
    };
    let in_zone = |sm: &SettledMonth| sm.tz.as_deref() == Some(zone.name());
    let other_zone = |sm: &SettledMonth| {
        format!(
            "it was settled in {}, and the month's totals are kept for {}",
            sm.tz.as_deref().unwrap_or("a zone not recorded"),
            zone.name()
        )
    };
    for span in Month::spanning(first, last, zone) {
        let month = span.month.to_string();
        match settled.iter().find(|s| s.month == month) {
            None => return refuse(&month, "it is not settled".into()),
            Some(sm) if !in_zone(sm) => return refuse(&month, other_zone(sm)),
            Some(_) => {}
        }
        if late.iter().any(|l| l.month == span.month) {
            return refuse(
                &month,
                "it has late usage waiting for the next run to bill it (`billrun run`)".into(),
            );
        }
    }
    for sm in settled.iter().filter(|s| s.start <= last && first < s.end) {
        if !in_zone(sm) {
            return refuse(&sm.month, other_zone(sm));
        }
        if import.import_id > sm.through_import || import.record_id.is_some_and(|r| r > sm.through_import) {
            return refuse(
                &sm.month,
                "its usage or a retraction is waiting for the next run to bill it (`billrun run`)".into(),
            );
        }
    }
    Verdict::Archive
}

/// `billrun archive --before before --dir dir`.
pub async fn archive<S: Store>(store: &S, ctx: &Ctx, before: Month, dir: &Path) -> anyhow::Result<ArchiveReport> {
    let Some(zone) = store.usage_totals_zone().await? else {
        return Err(input_error(
            "no month's usage totals are kept yet (no month was settled): nothing can be archived",
        ));
    };
    let imports = store.stored_imports().await?;
    let settled = store.settled_months(None).await?;
    let late = store.late_usage().await?;
    let mut report = ArchiveReport::default();
    let mut todo = Vec::new();
    for import in imports {
        if import.archived.is_some() {
            report.already += 1;
            continue;
        }
        match verdict(&import, before, zone, &settled, &late) {
            Verdict::Archive => todo.push(import),
            Verdict::Keep(why) => report.kept.push((import.import_id, import.file_name, why)),
            Verdict::Refuse(why) => return Err(input_error(format!("{why}; nothing was archived"))),
        }
    }
    if todo.is_empty() {
        return Ok(report);
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| input_error(format!("cannot make the archive directory {}: {e}", dir.display())))?;
    for import in todo {
        // Each pass holds at most SUMS_PER_SHARE of the import's totals; it has no more than
        // the months it reaches have.
        let mut totals_bound = 0;
        for month in months_of(&import, zone) {
            totals_bound += store.count_usage_totals(Some(month)).await?;
        }
        let shares = shares_for((import.rows.max(1) as u64).min(totals_bound.max(1)), SUMS_PER_SHARE);
        let (manifest, bytes) = write_files(store, ctx, &import, zone, shares, dir).await?;
        let archived = Archived {
            at: ctx.now,
            sha256: manifest.data.sha256.clone(),
            calls: manifest.calls_by_month.clone(),
        };
        let id = import.import_id;
        let recheck = |state: &ArchiveState| {
            if state.zone != Some(zone) {
                return Err(format!(
                    "the month's totals were built again for {} meanwhile",
                    state.zone.map_or("no zone", |z| z.name())
                ));
            }
            match state.imports.iter().find(|i| i.import_id == id) {
                Some(now) if now.retracted != import.retracted => Err("it was retracted meanwhile".into()),
                Some(now) => match verdict(now, before, zone, &state.settled, &state.late) {
                    Verdict::Archive => Ok(()),
                    Verdict::Keep(why) | Verdict::Refuse(why) => Err(why),
                },
                None => Err("it is no longer listed".into()),
            }
        };
        if store.archive_import(id, &archived, &recheck).await? {
            tracing::info!(import = id, file = %import.file_name, bytes, "archived");
            report.archived.push((id, import.file_name, bytes));
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
    zone: Tz,
    shares: u64,
    dir: &Path,
) -> anyhow::Result<(Manifest, u64)> {
    let id = import.import_id;
    let damaged = |problem: String| {
        input_error(format!(
            "usage import #{id} ({}): its kept content is damaged ({problem}); it was not archived, and nothing \
             of it was written to the archive (`billrun verify` names it)",
            import.file_name
        ))
    };
    let Some(content) = &import.content else {
        return Err(damaged("it keeps no content that reads back".into()));
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
            let mut file = ArchivedChunks::open_file(&copy, &chunks).map_err(anyhow::Error::msg)?;
            let next = |_seq: i64| -> anyhow::Result<Option<Vec<u8>>> {
                file.next_chunk()
                    .and_then(|c| c.map(|c: StoredChunk| unpack(&c)).transpose())
                    .map_err(anyhow::Error::msg)
            };
            let skipped = SkippedLines::decode(import.skipped_lines.as_deref()).map_err(damaged)?;
            let sums = MonthSums::new(zone, None, share, shares);
            let sums = read_back_with(content.reading, skipped, next, move |rows| {
                let mut sums = sums;
                sums.add_all(rows).map(|()| sums)
            })?
            .map_err(damaged)?;
            for (month, account, api, calls) in sums.into_sorted().iter() {
                *calls_by_month.entry(month.to_owned()).or_default() += calls;
                out.write_record([month, account, api, &calls.to_string()])?;
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

/// The months of `zone` an import's rows reach.
fn months_of(import: &StoredImport, zone: Tz) -> Vec<Month> {
    import
        .span
        .map(|(first, last)| {
            Month::spanning(first, last, zone)
                .into_iter()
                .map(|s| s.month)
                .collect()
        })
        .unwrap_or_default()
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// The imports whose content is back in the database.
    pub restored: Vec<(i64, String)>,
    /// Archived imports not restored, each with why: DIR holds no archive of it, or a damaged
    /// one.
    pub failed: Vec<(i64, String, String)>,
}

/// `billrun restore-usage --dir dir` (of one import, if `only`): every archived import whose
/// files are whole, each in its own transaction; those whose files are missing or damaged are
/// listed, and nothing of them is written.
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
        match restore_one(store, dir, &import, archived, content).await? {
            Ok(true) => {
                tracing::info!(import = import.import_id, file = %import.file_name, "restored");
                report.restored.push((import.import_id, import.file_name.clone()));
            }
            Ok(false) => {}
            Err(why) => report.failed.push((import.import_id, import.file_name.clone(), why)),
        }
    }
    Ok(report)
}

/// Restores one archived import from `dir`: whether it was restored (false: it no longer was
/// archived), or what keeps its files from being restored.
async fn restore_one<S: Store>(
    store: &S,
    dir: &Path,
    import: &StoredImport,
    archived: &Archived,
    content: &Content,
) -> anyhow::Result<Result<bool, String>> {
    let manifest = match read_manifest(dir, import.import_id) {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Ok(Err(format!("{} holds no archive of it", dir.display()))),
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    if manifest.data.sha256 != archived.sha256 {
        return Ok(Err(format!(
            "{} is not the file it was archived as (SHA-256 {}, recorded {})",
            manifest.data.name, manifest.data.sha256, archived.sha256
        )));
    }
    let file = match ArchivedChunks::open(dir, &manifest) {
        Ok(file) => file,
        Err(problem) => return Ok(Err(problem)),
    };
    // What was wrong with the files, once read: the transaction is then rolled back.
    let problem = std::sync::Mutex::new(None::<String>);
    let (mut file, mut check) = (Some(file), Some(ContentCheck::default()));
    let mut next = || -> anyhow::Result<Option<StoredChunk>> {
        let (Some(f), Some(c)) = (file.as_mut(), check.as_mut()) else {
            return Ok(None);
        };
        let found = match f.next_chunk() {
            Ok(Some(chunk)) if c.add(&chunk).is_some() => return Ok(Some(chunk)),
            Ok(Some(_)) => check.take().and_then(|c| c.problem(content)),
            // The last chunk was read: the file and the content must be whole before the
            // transaction commits.
            Ok(None) => file
                .take()
                .and_then(|f| f.problem(&archived.sha256))
                .or_else(|| check.take().and_then(|c| c.problem(content))),
            Err(problem) => Some(problem),
        };
        match found {
            None => Ok(None),
            Some(p) => {
                *problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
                Err(anyhow::anyhow!(p))
            }
        }
    };
    let restored = store.restore_import(import.import_id, &mut next).await;
    if let Some(p) = problem.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Ok(Err(p));
    }
    Ok(Ok(restored?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::stored::Reading;
    use crate::input::stream::Format;
    use chrono::{DateTime, Utc};

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn month(m: &str) -> Month {
        m.parse().unwrap()
    }

    /// Import #5 with rows from `first` to `last`.
    fn import(first: &str, last: &str) -> StoredImport {
        StoredImport {
            import_id: 5,
            file_name: "u.csv".into(),
            sha256: String::new(),
            rows: 10,
            calls: 100,
            content: Some(Content {
                sha256: String::new(),
                bytes: 1,
                chunks: 1,
                reading: Reading {
                    format: Format::Csv,
                    assume_tz: None,
                },
            }),
            skipped_lines: None,
            span: Some((at(first), at(last))),
            retracted: false,
            record_id: None,
            archived: None,
        }
    }

    /// `m` settled in `tz` through import `through`.
    fn settled(m: &str, tz: Option<Tz>, through: i64) -> SettledMonth {
        let zone = tz.unwrap_or(SHANGHAI);
        SettledMonth {
            month: m.into(),
            start: month(m).start(zone),
            end: month(m).end(zone),
            through_import: through,
            tz: tz.map(|z| z.name().into()),
        }
    }

    fn refused(v: Verdict, what: &str) {
        match v {
            Verdict::Refuse(why) => assert!(why.contains(what), "{why}"),
            other => panic!("{other:?}, not refused for {what}"),
        }
    }

    #[test]
    fn an_import_is_archived_only_when_every_month_its_rows_reach_is_settled_through_it_in_the_totals_zone() {
        let sep_oct = import("2026-09-20T10:00:00+08:00", "2026-10-03T10:00:00+08:00");
        let both = [
            settled("2026-09", Some(SHANGHAI), 5),
            settled("2026-10", Some(SHANGHAI), 7),
        ];
        let v = |i: &StoredImport, before: &str, s: &[SettledMonth], late: &[LateUsage]| {
            verdict(i, month(before), SHANGHAI, s, late)
        };
        assert_eq!(v(&sep_oct, "2026-11", &both, &[]), Verdict::Archive);
        // Rows in the month given, or after it, keep it.
        assert_eq!(
            v(&sep_oct, "2026-10", &both, &[]),
            Verdict::Keep("it has rows in 2026-10".into())
        );
        // A month not settled; settled before the import came (late usage); its own
        // retraction not yet billed; late usage of another import waiting.
        refused(
            v(&sep_oct, "2026-11", &both[..1], &[]),
            "2026-10 cannot be archived: it is not settled",
        );
        refused(
            v(
                &sep_oct,
                "2026-11",
                &[settled("2026-09", Some(SHANGHAI), 4), both[1].clone()],
                &[],
            ),
            "2026-09 cannot be archived: its usage or a retraction is waiting",
        );
        let retracted = StoredImport {
            retracted: true,
            record_id: Some(6),
            ..sep_oct.clone()
        };
        refused(
            v(&retracted, "2026-11", &both, &[]),
            "2026-09 cannot be archived: its usage or a retraction",
        );
        assert_eq!(
            v(
                &retracted,
                "2026-11",
                &[
                    settled("2026-09", Some(SHANGHAI), 6),
                    settled("2026-10", Some(SHANGHAI), 6)
                ],
                &[]
            ),
            Verdict::Archive
        );
        let late = LateUsage {
            month: month("2026-10"),
            imports: 1,
            rows: 1,
            calls: 1,
            oldest_imported_at: at("2026-11-02T00:00:00Z"),
        };
        refused(
            v(&sep_oct, "2026-11", &both, &[late]),
            "2026-10 cannot be archived: it has late usage",
        );
        // A month settled in another zone or before zones were recorded: verify reads its
        // rows back. Its period counts, not its name: a row of Shanghai's 1 October at 05:00
        // is in UTC's September.
        refused(
            v(
                &sep_oct,
                "2026-11",
                &[settled("2026-09", None, 5), both[1].clone()],
                &[],
            ),
            "2026-09 cannot be archived: it was settled in a zone not recorded",
        );
        // October settled in UTC only: rows of Shanghai's first hours of October fall in no
        // period settled, though a month of their name is.
        let first_hours = import("2026-10-01T01:00:00+08:00", "2026-10-01T02:00:00+08:00");
        refused(
            v(
                &first_hours,
                "2026-11",
                &[settled("2026-10", Some(chrono_tz::UTC), 9)],
                &[],
            ),
            "2026-10 cannot be archived: it was settled in UTC",
        );
        let early_oct = import("2026-10-01T05:00:00+08:00", "2026-10-01T06:00:00+08:00");
        let utc_sep = settled("2026-09", Some(chrono_tz::UTC), 9);
        refused(
            v(&early_oct, "2026-11", &[utc_sep, both[1].clone()], &[]),
            "2026-09 cannot be archived: it was settled in UTC",
        );
        assert_eq!(v(&early_oct, "2026-11", &both, &[]), Verdict::Archive);
    }
}

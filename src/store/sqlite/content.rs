//! An import's kept content on SQLite (`usage_chunks`, `input::stored`): its chunks written and
//! read back, and, for `billrun migrate`, the content of imports made before it was kept in a
//! form that reads back (`input::replay`) rebuilt from their rows (`input::stored::Rebuilt`), in
//! one transaction: every such import gets its content, or none does.
//!
//! `usage` has no index on the import, so the rows of every such import are read in one pass,
//! sorted by import and line (on disk: a month is tens of millions of rows).

use super::conn::open;
use super::rows::at;
use crate::input::stored::{unpack, Content, Rebuilt, StoredChunk};
use crate::store::common::CountedImport;
use crate::store::sql::{DROP_CHUNKS_SQL, KEEP_CHUNK_SQL, KEEP_CONTENT_SQL, STORED_CHUNK_SQL, UNREADABLE_IMPORTS_SQL};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;

/// Rebuilds the content of every import whose content does not read back; returns how many.
pub fn rebuild_content(file: &Path) -> anyhow::Result<u64> {
    let mut conn = open(file, false)?;
    conn.pragma_update(None, "temp_store", "FILE")?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Once the rows are gone (migration 0020), there is nothing to rebuild from.
    let rows_kept: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'usage')",
        [],
        |r| r.get(0),
    )?;
    if !rows_kept {
        return Ok(0);
    }
    let imports: Vec<i64> = tx
        .prepare(UNREADABLE_IMPORTS_SQL)?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if imports.is_empty() {
        return Ok(0);
    }
    tracing::info!(
        imports = imports.len(),
        "keeping the content of earlier imports, rebuilt from their rows"
    );
    let mut rows = tx.prepare(
        "SELECT import_id, account_id, api, ts, calls, event_id FROM (
             SELECT import_id, source_line, account_id, api, ts, calls, event_id FROM usage
             UNION ALL
             SELECT import_id, source_line, account_id, api, ts, calls, event_id FROM retracted_usage)
         WHERE import_id IN (SELECT import_id FROM usage_imports WHERE retracts IS NULL AND content_format IS NULL)
         ORDER BY import_id, source_line",
    )?;
    let mut found = rows.query_map([], |r| {
        Ok(Row {
            import_id: r.get(0)?,
            account_id: r.get(1)?,
            api: r.get(2)?,
            ts: r.get(3)?,
            calls: r.get(4)?,
            event_id: r.get(5)?,
        })
    })?;
    let mut row = found.next().transpose()?;
    for &import_id in &imports {
        tx.execute(DROP_CHUNKS_SQL, [import_id])?;
        let (mut rebuilt, header) = Rebuilt::new();
        keep(&tx, import_id, header)?;
        while let Some(r) = row.take_if(|r| r.import_id == import_id) {
            let done = rebuilt.row(&r.account_id, &r.api, at(r.ts), r.calls, r.event_id.as_deref())?;
            keep(&tx, import_id, done)?;
            row = found.next().transpose()?;
        }
        let (last, content) = rebuilt.finish()?;
        keep(&tx, import_id, last.into_iter().collect())?;
        record(&tx, import_id, &content, None)?;
    }
    drop(found);
    drop(rows);
    tx.commit()?;
    Ok(imports.len() as u64)
}

/// A row of an import, as stored.
struct Row {
    import_id: i64,
    account_id: String,
    api: String,
    ts: i64,
    calls: i64,
    event_id: Option<String>,
}

/// Records what import `import_id`'s whole content is and how it reads back, with the lines it
/// skipped as duplicate events (`skipped`, encoded).
pub(crate) fn record(
    conn: &Connection,
    import_id: i64,
    content: &Content,
    skipped: Option<Vec<u8>>,
) -> rusqlite::Result<()> {
    conn.execute(
        KEEP_CONTENT_SQL,
        params![
            content.sha256,
            content.bytes,
            content.chunks,
            content.reading.format.key(),
            content.reading.assume_tz.map(|z| z.name()),
            skipped,
            import_id
        ],
    )?;
    Ok(())
}

/// Writes chunks of import `import_id`'s content.
pub(crate) fn keep(conn: &Connection, import_id: i64, chunks: Vec<StoredChunk>) -> rusqlite::Result<()> {
    let mut keep = conn.prepare_cached(KEEP_CHUNK_SQL)?;
    for c in chunks {
        keep.execute(params![import_id, c.seq, c.raw_bytes, c.data])?;
    }
    Ok(())
}

/// The content of chunk `seq` of `import`, `None` past its last.
pub(crate) fn read_chunk(conn: &Connection, import: &CountedImport, seq: i64) -> anyhow::Result<Option<Vec<u8>>> {
    if seq >= import.chunks {
        return Ok(None);
    }
    let chunk = conn
        .prepare_cached(STORED_CHUNK_SQL)?
        .query_row(params![import.import_id, seq], |r| {
            Ok(StoredChunk {
                seq: r.get(0)?,
                raw_bytes: r.get(1)?,
                data: r.get(2)?,
            })
        })
        .optional()?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "usage import #{}: chunk {seq} of its kept content is missing",
                import.import_id
            )
        })?;
    Ok(Some(unpack(&chunk).map_err(|e| {
        anyhow::anyhow!("usage import #{}: {e}", import.import_id)
    })?))
}

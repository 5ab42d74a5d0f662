//! An import's kept content on PostgreSQL (`usage_chunks`, `input::stored`): its chunks written
//! and read back in the caller's transaction, and, for `billrun migrate`, the content of
//! imports made before it was kept in a form that reads back (`input::replay`) rebuilt from
//! their rows (`input::stored::Rebuilt`), an import per transaction (one that is done is not
//! done again). The rows are read through a cursor, a batch at a time, so that the chunks are
//! written between batches on the same connection and memory stays flat whatever the import's
//! size.

use super::advisory::LOCK_IMPORTS_SQL;
use crate::input::replay::{ChunkBytes, ReadBack};
use crate::input::stored::{unpack, Content, Rebuilt, StoredChunk};
use crate::store::common::CountedImport;
use crate::store::decode::stored_chunk;
use crate::store::sql::{DROP_CHUNKS_SQL, KEEP_CHUNK_SQL, KEEP_CONTENT_SQL, STORED_CHUNK_SQL, UNREADABLE_IMPORTS_SQL};
use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

/// A row as the cursor gives it: line, account, API, instant, calls, event id.
type StoredRow = (i64, String, String, DateTime<Utc>, i64, Option<String>);

/// Rows per fetch from the cursor.
const BATCH: i64 = 10_000;

/// Rebuilds the content of every import whose content does not read back; returns how many.
pub async fn rebuild_content(pool: &PgPool) -> anyhow::Result<u64> {
    // Once the rows are gone (migration 0020), there is nothing to rebuild from.
    let rows_kept: bool = sqlx::query_scalar("SELECT to_regclass('usage') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !rows_kept {
        return Ok(0);
    }
    let imports: Vec<i64> = sqlx::query_scalar(UNREADABLE_IMPORTS_SQL).fetch_all(pool).await?;
    if !imports.is_empty() {
        tracing::info!(
            imports = imports.len(),
            "keeping the content of earlier imports, rebuilt from their rows"
        );
    }
    let mut done = 0;
    for import_id in imports {
        let mut tx = pool.begin().await?;
        // Imports and retractions wait; one that rebuilt it meanwhile is not done again.
        sqlx::query(LOCK_IMPORTS_SQL).execute(&mut *tx).await?;
        let waiting: Option<i64> =
            sqlx::query_scalar("SELECT import_id FROM usage_imports WHERE import_id = $1 AND content_format IS NULL")
                .bind(import_id)
                .fetch_optional(&mut *tx)
                .await?;
        if waiting.is_none() {
            continue;
        }
        rebuild(&mut tx, import_id).await?;
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}

async fn rebuild(tx: &mut PgConnection, import_id: i64) -> anyhow::Result<()> {
    sqlx::query(DROP_CHUNKS_SQL).bind(import_id).execute(&mut *tx).await?;
    sqlx::query(
        "DECLARE import_rows NO SCROLL CURSOR FOR
         SELECT source_line, account_id, api, ts, calls, event_id FROM usage WHERE import_id = $1
         UNION ALL
         SELECT source_line, account_id, api, ts, calls, event_id FROM retracted_usage WHERE import_id = $1
         ORDER BY source_line",
    )
    .bind(import_id)
    .execute(&mut *tx)
    .await?;
    let (mut rebuilt, header) = Rebuilt::new();
    keep_chunks(tx, import_id, header).await?;
    loop {
        let rows: Vec<StoredRow> = sqlx::query_as(&format!("FETCH {BATCH} FROM import_rows"))
            .fetch_all(&mut *tx)
            .await?;
        let mut chunks = Vec::new();
        for (_, account_id, api, ts, calls, event_id) in &rows {
            chunks.extend(rebuilt.row(account_id, api, *ts, *calls, event_id.as_deref())?);
        }
        keep_chunks(tx, import_id, chunks).await?;
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    sqlx::query("CLOSE import_rows").execute(&mut *tx).await?;
    let (last, content) = rebuilt.finish()?;
    keep_chunks(tx, import_id, last.into_iter().collect()).await?;
    record(tx, import_id, &content, None).await
}

/// Records what import `import_id`'s whole content is and how it reads back, with the lines it
/// skipped as duplicate events (`skipped`, encoded).
pub(crate) async fn record(
    tx: &mut PgConnection,
    import_id: i64,
    content: &Content,
    skipped: Option<Vec<u8>>,
) -> anyhow::Result<()> {
    sqlx::query(KEEP_CONTENT_SQL)
        .bind(&content.sha256)
        .bind(content.bytes)
        .bind(content.chunks)
        .bind(content.reading.format.key())
        .bind(content.reading.assume_tz.map(|z| z.name()))
        .bind(skipped)
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Writes chunks of an import's content (`input::stored`).
pub(crate) async fn keep_chunks(tx: &mut PgConnection, import_id: i64, chunks: Vec<StoredChunk>) -> anyhow::Result<()> {
    for c in chunks {
        sqlx::query(KEEP_CHUNK_SQL)
            .bind(import_id)
            .bind(c.seq)
            .bind(c.raw_bytes)
            .bind(c.data)
            .execute(&mut *tx)
            .await
            .context("writing the usage file's content")?;
    }
    Ok(())
}

/// Reads `import`'s kept content back: its chunks read in this transaction, one at a time,
/// while `consume` reads the rows on a thread of its own. Returns what `consume` made of them,
/// or what kept the content from reading back.
pub async fn read_import<T: Send + 'static>(
    conn: &mut PgConnection,
    import: &CountedImport,
    consume: impl FnOnce(ReadBack) -> Result<T, String> + Send + 'static,
) -> anyhow::Result<Result<T, String>> {
    let (feed, bytes) = ChunkBytes::channel();
    let (reading, skipped) = (import.reading, import.skipped.clone());
    let parser = tokio::task::spawn_blocking(move || consume(ReadBack::open(bytes, reading, skipped)?));
    for seq in 0..import.chunks {
        let row = sqlx::query(STORED_CHUNK_SQL)
            .bind(import.import_id)
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "usage import #{}: chunk {seq} of its kept content is missing",
                    import.import_id
                )
            })?;
        let raw =
            unpack(&stored_chunk(&row)?).map_err(|e| anyhow::anyhow!("usage import #{}: {e}", import.import_id))?;
        let to = feed.clone();
        if tokio::task::spawn_blocking(move || to.send(raw)).await?.is_err() {
            break; // the parser stopped: it says why
        }
    }
    drop(feed);
    Ok(parser.await?)
}

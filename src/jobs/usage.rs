//! Usage import: a whole file or nothing, never the same file twice.

use super::{open_input, Ctx};
use crate::error::{input_error, RejectedFile};
use crate::input::usage::{NewUsage, UsageRows};
use crate::input::RowError;
use crate::store::{SourceFile, Store, UsageImported, UsageRejected};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// The SHA-256 of a file's content, read in blocks.
fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut f = open_input(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| input_error(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

type Parsed = Result<NewUsage, Vec<RowError>>;

/// Rows parsed per message between the parsing thread and the import.
const PARSED_BATCH: usize = 1024;

/// What the parsing thread sends: rows, then `End` once the file is read to its end.
enum ParsedMsg {
    Rows(Vec<Parsed>),
    End,
}

/// Parses and checks the file's rows on a thread of their own, a few batches ahead of the
/// import, so that reading CSV and writing to the database use both cores. The import sees an
/// ordinary iterator. Should the thread stop without reaching the end of the file (a panic),
/// the iterator ends with a bad row, so the file is rejected rather than imported in part.
fn parsed_ahead(rows: impl Iterator<Item = Parsed> + Send + 'static) -> impl Iterator<Item = Parsed> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<ParsedMsg>(8);
    std::thread::spawn(move || {
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            // A send fails only when the import stopped reading (a rejected file): stop too.
            if tx
                .send(ParsedMsg::Rows(rows.by_ref().take(PARSED_BATCH).collect()))
                .is_err()
            {
                return;
            }
        }
        let _ = tx.send(ParsedMsg::End);
    });
    let mut batch = Vec::new().into_iter();
    let mut ended = false;
    std::iter::from_fn(move || loop {
        if let Some(row) = batch.next() {
            return Some(row);
        }
        if ended {
            return None;
        }
        match rx.recv() {
            Ok(ParsedMsg::Rows(rows)) => batch = rows.into_iter(),
            Ok(ParsedMsg::End) => ended = true,
            Err(_) => {
                ended = true;
                return Some(Err(vec![RowError::new(
                    0,
                    "",
                    "reading the file stopped before its end (the parsing thread failed)",
                )]));
            }
        }
    })
}

pub async fn import<S: Store>(store: &S, ctx: &Ctx, path: &Path) -> anyhow::Result<UsageImported> {
    let name = path.display().to_string();
    let rejected = |problems: Vec<RowError>| {
        anyhow::Error::new(RejectedFile {
            file: name.clone(),
            problems,
        })
    };
    let source = SourceFile {
        name: name.clone(),
        sha256: sha256_of(path)?,
    };
    let reader = std::io::BufReader::with_capacity(1 << 20, open_input(path)?);
    let rows = UsageRows::open(reader, ctx.catalog.known_apis()).map_err(rejected)?;
    let mut rows = parsed_ahead(rows);
    match store.import_usage(&source, &mut rows, ctx.now).await? {
        Ok(done) => Ok(done),
        Err(UsageRejected::AlreadyImported {
            import_id,
            file_name,
            imported_at,
        }) => Err(input_error(format!(
            "{name}: this exact file was already imported (import #{import_id}, from {file_name}, at {}); \
             importing it again would bill its calls twice",
            ctx.local(imported_at)
        ))),
        Err(UsageRejected::BadRows { mut problems, total }) => {
            let listed = problems.len() as u64;
            if total > listed {
                problems.push(RowError::new(
                    0,
                    "",
                    format!("... and {} more bad rows not listed", total - listed),
                ));
            }
            Err(rejected(problems))
        }
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
        })
    }

    #[test]
    fn rows_parsed_ahead_arrive_all_and_in_order() {
        let lines: Vec<u64> = parsed_ahead((2..5002).map(row)).map(|r| r.unwrap().line).collect();
        assert_eq!(lines, (2..5002).collect::<Vec<_>>());
    }

    #[test]
    fn a_parser_that_dies_mid_file_ends_the_rows_with_a_bad_one() {
        let rows = (2..5002).map(|line| {
            if line == 3000 {
                panic!("the parser fails (expected by this test)");
            }
            row(line)
        });
        let seen: Vec<Parsed> = parsed_ahead(rows).collect();
        let last = seen.last().unwrap();
        assert!(last.is_err(), "the file must not look complete");
        assert!(seen.len() < 3000);
        assert!(seen[..seen.len() - 1].iter().all(|r| r.is_ok()));
    }
}

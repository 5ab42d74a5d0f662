//! Usage import: a whole file or nothing, never the same file twice.

use super::{open_input, Ctx};
use crate::error::{input_error, RejectedFile};
use crate::input::usage::UsageRows;
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
    let mut rows = UsageRows::open(reader, ctx.catalog.known_apis()).map_err(rejected)?;
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

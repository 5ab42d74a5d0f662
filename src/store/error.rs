//! What a store method answers when it does not do what it was asked: the port's own error,
//! in the port's terms. An unknown account is an error here, not an outcome to check for; a
//! refused file says which rows and why; everything else (the database failed, stored data
//! broke an invariant) keeps its cause chain, which `crate::error` maps to an exit code.

use crate::input::text::shown;
use crate::input::RowError;
use chrono::{DateTime, Utc};

/// Why a store method did not do what it was asked.
#[derive(Debug)]
pub enum StoreError {
    /// No account has this id.
    UnknownAccount(String),
    /// A file's rows were refused and nothing of it was written: the first problems (at most
    /// `crate::error::MAX_LISTED`, in line order) and how many there were in all.
    Rejected { problems: Vec<RowError>, total: u64 },
    /// The same usage rows were imported before (the same bytes, or the same rows written
    /// otherwise): nothing was written.
    AlreadyImported {
        import_id: i64,
        file_name: String,
        imported_at: DateTime<Utc>,
    },
    /// No usage import has this id, or it is the record of a retraction, which cannot itself be
    /// retracted.
    UnknownImport(i64),
    /// Anything else: the database failed, or what it holds broke an invariant.
    Failed(anyhow::Error),
}

/// What every store method returns.
pub type StoreResult<T> = Result<T, StoreError>;

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Failed(e) => write!(f, "{e:#}"),
            StoreError::UnknownAccount(id) => write!(f, "unknown account '{}'", shown(id)),
            StoreError::UnknownImport(id) => write!(
                f,
                "no usage import #{id} (`billrun usage imports` lists them; a retraction's own record cannot be retracted)"
            ),
            StoreError::Rejected { total, .. } => write!(f, "{total} rows refused; nothing was written"),
            StoreError::AlreadyImported {
                import_id, file_name, ..
            } => write!(
                f,
                "these rows were imported before, as import #{import_id} ({file_name})"
            ),
        }
    }
}

impl StoreError {
    /// Rows refused, all of them listed.
    pub fn rejected(problems: Vec<RowError>) -> StoreError {
        let total = problems.len() as u64;
        StoreError::Rejected { problems, total }
    }
}

impl From<anyhow::Error> for StoreError {
    fn from(e: anyhow::Error) -> StoreError {
        StoreError::Failed(e)
    }
}

/// The drivers' and libraries' own errors, kept whole as the cause of a failure.
macro_rules! failed_from {
    ($($error:ty),+ $(,)?) => {$(
        impl From<$error> for StoreError {
            fn from(e: $error) -> StoreError {
                StoreError::Failed(anyhow::Error::new(e))
            }
        }
    )+};
}

failed_from!(
    sqlx::Error,
    sqlx::migrate::MigrateError,
    rusqlite::Error,
    serde_json::Error,
    std::io::Error
);

/// Into the errors the jobs return: a failure as itself, with its chain; the others as input
/// errors (exit 3). A job that can say more (the file's name, what to do) matches them first.
impl From<StoreError> for anyhow::Error {
    fn from(e: StoreError) -> anyhow::Error {
        match e {
            StoreError::Failed(e) => e,
            StoreError::UnknownAccount(id) => crate::error::input_error(format!("unknown account '{}'", shown(&id))),
            e @ StoreError::UnknownImport(_) => crate::error::input_error(e.to_string()),
            StoreError::Rejected { problems, total } => {
                anyhow::Error::new(crate::error::RejectedFile::new("(input)", problems, total))
            }
            StoreError::AlreadyImported {
                import_id, file_name, ..
            } => crate::error::input_error(format!(
                "these rows were imported before, as import #{import_id} ({file_name})"
            )),
        }
    }
}

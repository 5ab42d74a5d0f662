//! The one place where failures become exit codes.
//!
//! Code below the CLI returns `anyhow::Error`s; the ones an operator can act on carry one of
//! the typed causes here. `exit_code` looks for them in the chain:
//!
//! | code | meaning | what to do |
//! |---|---|---|
//! | 0 | success, or nothing to do | — |
//! | 1 | unexpected failure (a bug) | report it |
//! | 2 | command-line usage error (clap) | fix the command |
//! | 3 | bad input or configuration: a rejected file, an unknown account, a month not ended | fix the input; do not retry as is |
//! | 4 | busy: another run holds what this one needs, or a stop signal ended the run | retry later |
//! | 5 | database unavailable or transient database failure | retry later |
//! | 6 | `verify` found a breach of the books | investigate; the breaches are listed |

use crate::input::RowError;
use std::fmt;

pub const EXIT_OK: u8 = 0;
pub const EXIT_BUG: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_INPUT: u8 = 3;
pub const EXIT_BUSY: u8 = 4;
pub const EXIT_DATABASE: u8 = 5;
pub const EXIT_BREACH: u8 = 6;

/// `billrun verify` found breaches of the books.
#[derive(Debug)]
pub struct BooksBreached(pub u64);

impl fmt::Display for BooksBreached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verify found {} breach(es) of the books (listed above)", self.0)
    }
}
impl std::error::Error for BooksBreached {}

/// Input or configuration the user must fix; retrying the same command cannot help.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for InputError {}

/// A whole file refused: every bad line, and nothing written.
#[derive(Debug)]
pub struct RejectedFile {
    pub file: String,
    pub problems: Vec<RowError>,
}

impl fmt::Display for RejectedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: rejected, nothing was written ({n} problem{}):",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {}:{p}", self.file)?;
        }
        Ok(())
    }
}
impl std::error::Error for RejectedFile {}

/// Another run holds what this one needs.
#[derive(Debug)]
pub struct Busy(pub String);

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Busy {}

/// A stop signal (SIGTERM, SIGINT) ended the run before it finished; a later run finishes it.
#[derive(Debug)]
pub struct Stopped;

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "stopped by a signal before finishing; nothing half-written is kept, and the next run finishes the work",
        )
    }
}
impl std::error::Error for Stopped {}

/// Shorthand for returning an [`InputError`].
pub fn input_error(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(msg.into()))
}

/// Maps an error to its exit code by looking for typed causes along the chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<InputError>() || cause.is::<RejectedFile>() {
            return EXIT_INPUT;
        }
        if cause.is::<BooksBreached>() {
            return EXIT_BREACH;
        }
        if cause.is::<Busy>() || cause.is::<Stopped>() {
            return EXIT_BUSY;
        }
        if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
            return match db {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => EXIT_DATABASE,
                sqlx::Error::Database(e) if is_transient(e.as_ref()) => EXIT_DATABASE,
                _ => EXIT_BUG,
            };
        }
    }
    EXIT_BUG
}

/// SQLite's busy/locked codes and PostgreSQL's serialization, deadlock and connection
/// classes are worth a retry.
fn is_transient(e: &dyn sqlx::error::DatabaseError) -> bool {
    let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
    matches!(
        code.as_str(),
        "5" | "6" | "261" | "517" | "40001" | "40P01" | "57P01" | "57P03"
    ) || code.starts_with("08")
        || code == "14"
}

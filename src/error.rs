//! The one place where failures become exit codes.
//!
//! Code below the CLI returns `anyhow::Error`s; the ones an operator can act on carry one of
//! the typed causes here. `exit_code` looks for them in the chain.
//!
//! The codes, what they mean and what an operator does about each are documented once, in
//! docs/operations.md ("Exit codes").

use crate::input::RowError;
use std::fmt;

/// Success, or nothing to do.
pub const EXIT_OK: u8 = 0;
/// An unexpected failure: a bug.
pub const EXIT_BUG: u8 = 1;
/// A command-line usage error.
pub const EXIT_USAGE: u8 = 2;
/// Bad input or configuration: retrying the same command cannot help.
pub const EXIT_INPUT: u8 = 3;
/// Busy: another run holds what this one needs, or a stop signal ended the run.
pub const EXIT_BUSY: u8 = 4;
/// The database, or another service billrun needs (a Pushgateway), is unavailable, or failed
/// in a way that may pass.
pub const EXIT_DATABASE: u8 = 5;
/// `verify` found a breach of the books.
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

/// A service billrun needs, other than the database, did not answer as it should (a
/// Pushgateway): retry later.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Unavailable {}

/// How many problems a rejected file lists; the rest are counted.
pub const MAX_LISTED: usize = 1000;

/// A whole file refused: its bad lines (the first [`MAX_LISTED`] of them), how many problems
/// there were in all, and nothing written.
#[derive(Debug)]
pub struct RejectedFile {
    pub file: String,
    pub problems: Vec<RowError>,
    pub total: u64,
}

impl RejectedFile {
    /// A rejection of `file` for `problems`, of `total` problems in all (at least as many).
    pub fn new(file: &str, mut problems: Vec<RowError>, total: u64) -> RejectedFile {
        problems.truncate(MAX_LISTED);
        let total = total.max(problems.len() as u64);
        RejectedFile {
            file: file.to_owned(),
            problems,
            total,
        }
    }

    /// Problems found but not listed.
    pub fn unlisted(&self) -> u64 {
        self.total - self.problems.len() as u64
    }
}

impl fmt::Display for RejectedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.total;
        let plural = if n == 1 { "" } else { "s" };
        match self.unlisted() {
            0 => writeln!(f, "{}: rejected, nothing was written ({n} problem{plural}):", self.file)?,
            _ => writeln!(
                f,
                "{}: rejected, nothing was written ({n} problem{plural}; the first {} are listed):",
                self.file,
                self.problems.len()
            )?,
        }
        for p in &self.problems {
            writeln!(f, "  {}:{p}", self.file)?;
        }
        if self.unlisted() > 0 {
            writeln!(f, "  … and {} more problems, not listed", self.unlisted())?;
        }
        Ok(())
    }
}
impl std::error::Error for RejectedFile {}

/// The command asked for what cannot be done, and did nothing: a month that has not ended, a
/// month with no catalog version. An operator's typo, not a failure of the job: the run is
/// recorded as `refused` (exit 3), which pages nobody.
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}

/// Whether `err` is a [`Refused`] request.
pub fn is_refused(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.is::<Refused>())
}

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

/// The error and its causes in one line of text, each cause once: a cause whose text the error
/// before it already carries (as database errors repeat their message) is not said twice.
pub fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(text.trim_end()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What a panic's payload says.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The error for a job that panicked: a bug (exit 1). The one panic that is not a bug is the
/// standard library's `println!` failing to write to standard output: the reader went away
/// (a closed pipe, see [`is_closed_pipe`]) or the disk behind it is full.
pub fn panicked(payload: &(dyn std::any::Any + Send)) -> anyhow::Error {
    let message = panic_message(payload);
    match message.strip_prefix("failed printing to stdout: ") {
        Some(cause) if cause.contains("Broken pipe") => {
            anyhow::Error::new(std::io::Error::new(std::io::ErrorKind::BrokenPipe, cause.to_owned()))
        }
        Some(cause) => input_error(format!("cannot write to standard output: {cause}")),
        None => anyhow::anyhow!("billrun panicked: {message}; this is a bug, please report it"),
    }
}

/// Whether the database refused for want of a privilege (PostgreSQL's 42501).
pub fn is_permission_denied(err: &anyhow::Error) -> bool {
    err.chain().any(|c| match c.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(db)) => db.code().as_deref() == Some("42501"),
        _ => false,
    })
}

/// Whether a panic is `println!` meeting a closed pipe: not worth a log line.
pub fn is_closed_pipe_panic(message: &str) -> bool {
    message.starts_with("failed printing to stdout: ") && message.contains("Broken pipe")
}

/// Whether the command ended because whoever read its output stopped reading (`billrun accounts
/// list | head`). As ripgrep and cargo do, billrun then ends quietly, with success: the reader
/// has what it wanted.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        let io =
            c.downcast_ref::<std::io::Error>()
                .or_else(|| match c.downcast_ref::<csv::Error>().map(csv::Error::kind) {
                    Some(csv::ErrorKind::Io(io)) => Some(io),
                    _ => None,
                });
        io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints a command line that could not be parsed as one JSON line like the log lines (exit 2).
pub fn report_usage(err: &clap::Error) -> u8 {
    let text = err.to_string();
    // The first paragraph, on one line: "the following required arguments were not provided:
    // --month <YYYY-MM>".
    let message = text
        .trim_start()
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_owned();
    let line = serde_json::json!({
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": "ERROR",
        "fields": {"message": message, "exit_code": EXIT_USAGE, "usage": text.trim_end()},
        "target": "billrun",
    });
    eprintln!("{line}");
    EXIT_USAGE
}

/// Prints the error that ends the process on standard error, in the log format, and returns
/// its exit code. As JSON it is one object shaped like the log lines, with the exit code and,
/// for a rejected file, every listed problem as an object of its own.
pub fn report(err: &anyhow::Error, format: crate::cli::LogFormat) -> u8 {
    if is_closed_pipe(err) {
        return EXIT_OK;
    }
    let code = exit_code(err);
    let rejected = err.chain().find_map(|c| c.downcast_ref::<RejectedFile>());
    match format {
        crate::cli::LogFormat::Text => eprintln!("billrun: error: {}", describe(err).trim_end()),
        crate::cli::LogFormat::Json => {
            let mut fields = serde_json::json!({
                "message": match rejected {
                    Some(r) => r.to_string().lines().next().unwrap_or_default().trim_end_matches(':').to_owned(),
                    None => describe(err),
                },
                "exit_code": code,
            });
            if let Some(r) = rejected {
                fields["file"] = r.file.clone().into();
                fields["problems_total"] = r.total.into();
                fields["problems"] = r
                    .problems
                    .iter()
                    .map(|p| serde_json::json!({"line": p.line, "field": p.field, "message": p.message}))
                    .collect();
            }
            let line = serde_json::json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "level": "ERROR",
                "fields": fields,
                "target": "billrun",
            });
            eprintln!("{line}");
        }
    }
    code
}

/// Maps an error to its exit code by looking for typed causes along the chain.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<InputError>() || cause.is::<RejectedFile>() || cause.is::<Refused>() {
            return EXIT_INPUT;
        }
        if cause.is::<BooksBreached>() {
            return EXIT_BREACH;
        }
        if cause.is::<Busy>() || cause.is::<Stopped>() {
            return EXIT_BUSY;
        }
        if cause.is::<Unavailable>() {
            return EXIT_DATABASE;
        }
        if let Some(db) = cause.downcast_ref::<sqlx::Error>() {
            return match db {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => EXIT_DATABASE,
                // A connection lost during the handshake is the network's; a certificate the
                // URL's `sslmode` refuses, or a server without TLS under `require`, is the
                // configuration's, and retrying cannot help.
                sqlx::Error::Tls(e) => {
                    let first: &(dyn std::error::Error + 'static) = e.as_ref();
                    if std::iter::successors(Some(first), |s| s.source()).any(|s| s.is::<std::io::Error>()) {
                        EXIT_DATABASE
                    } else {
                        EXIT_INPUT
                    }
                }
                sqlx::Error::Configuration(_) => EXIT_INPUT,
                sqlx::Error::Database(e) => {
                    let code = e.code().map(|c| c.into_owned()).unwrap_or_default();
                    if e.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                        code.parse().map(sqlite_exit).unwrap_or(EXIT_BUG)
                    } else {
                        postgres_exit(&code)
                    }
                }
                _ => EXIT_BUG,
            };
        }
        if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>() {
            return sqlite_exit(e.extended_code);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io_exit(io);
        }
        // The CSV writer's errors do not expose the I/O error inside them as their source.
        if let Some(csv::ErrorKind::Io(io)) = cause.downcast_ref::<csv::Error>().map(csv::Error::kind) {
            return io_exit(io);
        }
    }
    EXIT_BUG
}

/// SQLite's result codes (the primary code is the low byte of the extended one).
fn sqlite_exit(extended: i32) -> u8 {
    match extended & 0xff {
        // BUSY, LOCKED: another connection holds the lock. IOERR, FULL, NOMEM, PROTOCOL: the
        // disk or the machine, which may recover (a disk with room again).
        5 | 6 | 7 | 10 | 13 | 15 => EXIT_DATABASE,
        // READONLY, CORRUPT, CANTOPEN, AUTH, NOTADB, PERM: the file or its directory is not one
        // billrun can use as it is; an operator must fix it.
        3 | 8 | 11 | 14 | 23 | 26 => EXIT_INPUT,
        _ => EXIT_BUG,
    }
}

/// PostgreSQL's SQLSTATE codes.
fn postgres_exit(code: &str) -> u8 {
    match code {
        // Serialization failure, deadlock, shutdown, recovery, lost or refused connection,
        // insufficient resources (disk full, out of memory, too many connections).
        "40001" | "40P01" | "57P01" | "57P02" | "57P03" => EXIT_DATABASE,
        c if c.starts_with("08") || c.starts_with("53") => EXIT_DATABASE,
        // Wrong password or role, missing database, missing privilege, read-only server.
        c if c.starts_with("28") => EXIT_INPUT,
        "3D000" | "42501" | "25006" => EXIT_INPUT,
        _ => EXIT_BUG,
    }
}

/// I/O outside the database: the files billrun reads and writes.
fn io_exit(e: &std::io::Error) -> u8 {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound | PermissionDenied | AlreadyExists | InvalidInput | InvalidData | IsADirectory | NotADirectory
        | ReadOnlyFilesystem | StorageFull | FileTooLarge | BrokenPipe => EXIT_INPUT,
        _ => match raw_os_error(e) {
            // EBADF: a closed standard output, or one opened only for reading.
            Some(9) => EXIT_INPUT,
            _ => EXIT_BUG,
        },
    }
}

/// The system's error code of `e`, or of the I/O error it wraps.
fn raw_os_error(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        let mut cause = e.get_ref().and_then(|inner| inner.source());
        while let Some(c) = cause {
            if let Some(code) = c
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
            {
                return Some(code);
            }
            cause = c.source();
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_errors_of_sqlite_are_configuration_or_retry() {
        for (code, exit) in [(8, EXIT_INPUT), (26, EXIT_INPUT), (14, EXIT_INPUT), (11, EXIT_INPUT)] {
            assert_eq!(sqlite_exit(code), exit, "{code}");
        }
        for code in [5, 261, 517, 6, 13, 10, 3338] {
            assert_eq!(sqlite_exit(code), EXIT_DATABASE, "{code}");
        }
        assert_eq!(sqlite_exit(19), EXIT_BUG, "a constraint violation is a bug");
    }

    #[test]
    fn postgres_codes() {
        for code in ["28P01", "28000", "3D000", "42501"] {
            assert_eq!(postgres_exit(code), EXIT_INPUT, "{code}");
        }
        for code in ["08006", "53100", "57P01", "40001"] {
            assert_eq!(postgres_exit(code), EXIT_DATABASE, "{code}");
        }
        assert_eq!(postgres_exit("23505"), EXIT_BUG);
    }

    #[test]
    fn a_long_list_of_problems_is_cut_and_counted() {
        let problems: Vec<RowError> = (2..5002).map(|l| RowError::new(l, "calls", "bad")).collect();
        let r = RejectedFile::new("u.csv", problems, 5000);
        let text = r.to_string();
        assert!(text.starts_with("u.csv: rejected, nothing was written (5000 problems; the first 1000 are listed):"));
        assert_eq!(text.lines().filter(|l| l.starts_with("  u.csv:line ")).count(), 1000);
        assert!(text.ends_with("  … and 4000 more problems, not listed\n"), "{text}");
        assert!(!text.contains("line 0"));
    }
}

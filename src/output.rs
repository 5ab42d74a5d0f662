//! Where billrun's results go: lists on standard output as an aligned table, CSV or JSON, and
//! documents (exports, the report) to standard output or to a file.
//!
//! - A regular file (or a path not there yet) is written whole: under a temporary name beside
//!   it, then renamed into place, so a reader never sees half an export. Through a symbolic
//!   link, the file the link points to is the one replaced; the link stays.
//! - Anything else that is not a directory (a FIFO, a device such as `/dev/stdout`) is written
//!   through, as a shell's `>` would: it is never replaced by a regular file.
//! - A directory is refused, and leaves nothing behind.
//! - Standard output is written through a handle of its own, so that a closed standard output
//!   or a full disk behind it is an error, not output silently lost.
//!
//! Write errors name what could not be written, and keep their kind, which `error` maps to an
//! exit code.
//!
//! Text meant for a terminal (tables, `bills show`) has its control characters shown as
//! escapes ([`terminal_safe`]): a name cannot retitle or clear the operator's terminal. CSV
//! lists neutralise spreadsheet formulas as the exports do.

use crate::cli::Format;
use crate::error::input_error;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use unicode_width::UnicodeWidthStr;

/// A document being written: to standard output, through a special file, or to a regular
/// file that appears whole when [`Destination::finish`] commits it.
pub struct Destination {
    name: String,
    out: BufWriter<File>,
    /// The temporary file and the target it is renamed to, for a regular file.
    rename: Option<(PathBuf, PathBuf)>,
}

impl Destination {
    /// Standard output, or the file at `path`.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Destination> {
        match path {
            None => Destination::stdout(),
            Some(p) => Destination::file(p),
        }
    }

    /// Standard output, through a duplicate of its descriptor: the standard library's own
    /// handle quietly drops what is written to a closed standard output.
    pub fn stdout() -> anyhow::Result<Destination> {
        use std::os::fd::AsFd;
        if stdout_was_closed() {
            return Err(input_error(
                "cannot write to standard output: it was closed when billrun started (give --out FILE, or leave \
                 standard output open)",
            ));
        }
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| input_error(format!("cannot write to standard output: {e} (is it closed?)")))?;
        Ok(Destination {
            name: "standard output".into(),
            out: BufWriter::with_capacity(1 << 16, File::from(fd)),
            rename: None,
        })
    }

    /// The file at `path` (see the module header for what kinds of file are written how).
    pub fn file(path: &Path) -> anyhow::Result<Destination> {
        let name = path.display().to_string();
        let cannot = |e: std::io::Error| input_error(format!("cannot write {name}: {e}"));
        let target = resolve_links(path).map_err(cannot)?;
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => Err(input_error(format!(
                "cannot write {name}: it is a directory; --out names the file to write"
            ))),
            Ok(m) if !m.is_file() => {
                let file = std::fs::OpenOptions::new().write(true).open(&target).map_err(cannot)?;
                Ok(Destination {
                    name,
                    out: BufWriter::with_capacity(1 << 16, file),
                    rename: None,
                })
            }
            _ => {
                let file_name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = target.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
                let file = File::create(&tmp).map_err(cannot)?;
                Ok(Destination {
                    name,
                    out: BufWriter::with_capacity(1 << 16, file),
                    rename: Some((tmp, target)),
                })
            }
        }
    }

    /// Flushes everything and, for a regular file, moves it into place.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        if let Some((tmp, target)) = self.rename.take() {
            let cannot = |e: std::io::Error| input_error(format!("cannot write {}: {e}", self.name));
            let result = self
                .out
                .get_ref()
                .sync_all()
                .and_then(|()| std::fs::rename(&tmp, &target));
            if let Err(e) = result {
                let _ = std::fs::remove_file(&tmp);
                return Err(cannot(e));
            }
        }
        Ok(())
    }

    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(
            e.kind(),
            CannotWrite {
                name: self.name.clone(),
                source: e,
            },
        )
    }
}

/// A write that failed, naming what was being written; the system's error stays its source,
/// so that its code decides the exit code.
#[derive(Debug)]
struct CannotWrite {
    name: String,
    source: std::io::Error,
}

impl std::fmt::Display for CannotWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write {}", self.name)
    }
}

impl std::error::Error for CannotWrite {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf).map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
}

impl Drop for Destination {
    /// A document dropped before [`Destination::finish`] leaves no temporary file behind.
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.rename {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Whether standard output was closed when the process started. The standard library then
/// opens `/dev/null` in its place, for reading and writing, so that nothing else takes the
/// descriptor; whatever is written there is lost. A shell's `> /dev/null` opens it for writing
/// only. (Linux, through `/proc`; elsewhere this says no.)
fn stdout_was_closed() -> bool {
    let Ok(target) = std::fs::read_link("/proc/self/fd/1") else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/fdinfo/1") else {
        return false;
    };
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok());
    // O_ACCMODE = 3, O_RDWR = 2.
    target == Path::new("/dev/null") && flags.is_some_and(|f| f & 3 == 2)
}

/// `path` with its symbolic links followed, as far as they lead: a link to a file not there
/// yet resolves to that file's path.
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// `text` with its control characters, bidirectional controls and line separators written as
/// `\u{…}` escapes, for a terminal.
pub fn terminal_safe(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match needs_escape(c) {
            true => format!("\\u{{{:04x}}}", c as u32),
            false => c.to_string(),
        })
        .collect()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Neutralises a free-text cell a spreadsheet would run as a formula (OWASP: a leading
/// `= + - @`, tab or carriage return gets a `'` in front).
pub fn text_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// Writes rows of string cells under fixed headers in one of the three formats.
pub struct ListWriter<W: Write> {
    format: Format,
    headers: Vec<&'static str>,
    /// Which columns hold numbers, never neutralised as formulas (`-12.00` stays a number).
    numeric: Vec<bool>,
    out: W,
    table_rows: Vec<Vec<String>>,
    json_count: usize,
}

impl<W: Write> ListWriter<W> {
    /// A list with these `headers`, of which `numeric` name the columns holding numbers.
    pub fn new(
        format: Format,
        headers: &[&'static str],
        numeric: &[&str],
        mut out: W,
    ) -> anyhow::Result<ListWriter<W>> {
        match format {
            Format::Csv => out.write_all(&csv_line(headers.iter().map(|h| h.to_string()))?)?,
            Format::Json => out.write_all(b"[")?,
            Format::Table => {}
        }
        Ok(ListWriter {
            format,
            headers: headers.to_vec(),
            numeric: headers.iter().map(|h| numeric.contains(h)).collect(),
            out,
            table_rows: Vec::new(),
            json_count: 0,
        })
    }

    pub fn row(&mut self, cells: Vec<String>) -> anyhow::Result<()> {
        match self.format {
            Format::Csv => {
                let cells = cells
                    .into_iter()
                    .zip(&self.numeric)
                    .map(|(c, numeric)| if *numeric { c } else { text_cell(&c) });
                let line = csv_line(cells)?;
                self.out.write_all(&line)?;
            }
            Format::Table => self.table_rows.push(cells.iter().map(|c| terminal_safe(c)).collect()),
            Format::Json => {
                let obj: serde_json::Map<String, serde_json::Value> = self
                    .headers
                    .iter()
                    .zip(cells)
                    .map(|(h, c)| {
                        (
                            h.to_string(),
                            if c.is_empty() {
                                serde_json::Value::Null
                            } else {
                                c.into()
                            },
                        )
                    })
                    .collect();
                let sep = if self.json_count == 0 { "\n  " } else { ",\n  " };
                self.out.write_all(sep.as_bytes())?;
                serde_json::to_writer(&mut self.out, &obj)?;
                self.json_count += 1;
            }
        }
        Ok(())
    }

    /// Writes what is left (a table's rows, JSON's closing bracket) and flushes.
    pub fn finish(mut self) -> anyhow::Result<W> {
        match self.format {
            Format::Csv => {}
            Format::Json => self
                .out
                .write_all(if self.json_count == 0 { b"]\n" } else { b"\n]\n" })?,
            Format::Table => {
                // Display width, so that Chinese names (two columns per character) line up.
                let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
                for r in &self.table_rows {
                    for (w, c) in widths.iter_mut().zip(r) {
                        *w = (*w).max(c.width());
                    }
                }
                let line = |cells: Vec<&str>| {
                    let padded: Vec<String> = cells
                        .iter()
                        .zip(&widths)
                        .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.width())))
                        .collect();
                    format!("{}\n", padded.join("  ").trim_end())
                };
                self.out.write_all(line(self.headers.clone()).as_bytes())?;
                for r in &self.table_rows {
                    self.out
                        .write_all(line(r.iter().map(String::as_str).collect()).as_bytes())?;
                }
            }
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One CSV record, quoted as the `csv` crate quotes.
fn csv_line(cells: impl IntoIterator<Item = String>) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(cells.into_iter().collect::<Vec<_>>())?;
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Prints bill lines as an aligned table: calls, free, prepaid, billable, tier, price, amount.
pub fn print_bill_lines(lines: &[&crate::store::ExportLine]) {
    println!(
        "  {:<14} {:>10} {:>8} {:>8} {:>10} {:>4} {:>10} {:>12}",
        "api", "calls", "free", "prepaid", "billable", "tier", "unit price", "amount"
    );
    for l in lines {
        println!(
            "  {:<14} {:>10} {:>8} {:>8} {:>10} {:>4} {:>10} {:>12}",
            l.api,
            l.total_calls,
            l.free_calls,
            l.prepaid_calls,
            l.billable_calls,
            l.tier,
            l.unit_price.normalize(),
            crate::domain::money::format_money(l.amount)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_reach_a_terminal_as_escapes() {
        assert_eq!(terminal_safe("Acme 示例"), "Acme 示例");
        assert_eq!(terminal_safe("a\u{1b}]0;x\u{7}b"), "a\\u{001b}]0;x\\u{0007}b");
        assert_eq!(terminal_safe("x\u{202e}y\nz"), "x\\u{202e}y\\u{000a}z");
    }

    #[test]
    fn csv_lists_neutralise_formulas_in_text_columns_only() {
        let mut w = ListWriter::new(Format::Csv, &["name", "balance"], &["balance"], Vec::new()).unwrap();
        w.row(vec!["=HYPERLINK(\"x\")".into(), "-12.00".into()]).unwrap();
        w.row(vec!["-cmd".into(), "3.00".into()]).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(text, "name,balance\n\"'=HYPERLINK(\"\"x\"\")\",-12.00\n'-cmd,3.00\n");
    }

    #[test]
    fn tables_escape_what_would_drive_the_terminal() {
        let mut w = ListWriter::new(Format::Table, &["name"], &[], Vec::new()).unwrap();
        w.row(vec!["Evil\u{1b}[2J".into()]).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(!text.contains('\u{1b}'));
        assert!(text.contains("Evil\\u{001b}[2J"));
    }

    #[test]
    fn a_directory_is_refused_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let e = Destination::file(dir.path()).err().unwrap();
        assert!(format!("{e}").contains("is a directory"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.csv");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        let mut d = Destination::file(&link).unwrap();
        d.write_all(b"new").unwrap();
        d.finish().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );
    }

    #[test]
    fn a_document_dropped_unfinished_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("bills.csv");
        std::fs::write(&target, "old").unwrap();
        let mut d = Destination::file(&target).unwrap();
        d.write_all(b"half").unwrap();
        drop(d);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

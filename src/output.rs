//! Lists on standard output as an aligned table, CSV or JSON, and CSV files written whole.
//!
//! CSV and JSON are streamed row by row; a table needs every row to size its columns.
//! Files are written to a temporary name beside the target and renamed into place, so a
//! reader never sees half an export.

use crate::cli::Format;
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use unicode_width::UnicodeWidthStr;

/// Writes rows of string cells under fixed headers in one of the three formats.
pub struct ListWriter<W: Write> {
    format: Format,
    headers: Vec<&'static str>,
    out: W,
    csv: Option<csv::Writer<W>>,
    table_rows: Vec<Vec<String>>,
    json_count: usize,
}

impl<W: Write> ListWriter<W> {
    pub fn new(format: Format, headers: &[&'static str], out: W) -> anyhow::Result<ListWriter<W>>
    where
        W: Clone,
    {
        let mut w = ListWriter {
            format,
            headers: headers.to_vec(),
            out: out.clone(),
            csv: None,
            table_rows: Vec::new(),
            json_count: 0,
        };
        match format {
            Format::Csv => {
                let mut c = csv::Writer::from_writer(out);
                c.write_record(headers)?;
                w.csv = Some(c);
            }
            Format::Json => w.out.write_all(b"[")?,
            Format::Table => {}
        }
        Ok(w)
    }

    pub fn row(&mut self, cells: Vec<String>) -> anyhow::Result<()> {
        match self.format {
            Format::Csv => self.csv.as_mut().expect("csv writer").write_record(&cells)?,
            Format::Table => self.table_rows.push(cells),
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

    pub fn finish(mut self) -> anyhow::Result<()> {
        match self.format {
            Format::Csv => self.csv.take().expect("csv writer").flush()?,
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
        Ok(())
    }
}

/// Standard output as a cloneable writer for [`ListWriter`].
#[derive(Clone)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// A file written under a temporary name and moved into place by [`AtomicFile::commit`];
/// dropped without commit, it leaves nothing behind.
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> anyhow::Result<AtomicFile> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = target.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        // A path that cannot be written is the caller's to fix (exit 3), named as they gave it.
        let file = std::fs::File::create(&tmp)
            .map_err(|e| crate::error::input_error(format!("cannot write {}: {e}", target.display())))?;
        Ok(AtomicFile {
            tmp,
            target: target.to_owned(),
            file: Some(std::io::BufWriter::new(file)),
        })
    }

    pub fn writer(&mut self) -> &mut std::io::BufWriter<std::fs::File> {
        self.file.as_mut().expect("open file")
    }

    pub fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().expect("open file");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&self.tmp, &self.target)
            .with_context(|| format!("cannot move the export into place at {}", self.target.display()))?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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

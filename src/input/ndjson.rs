//! NDJSON: one JSON object per line, as log shippers write them.
//!
//! Each line is read on its own (at most [`MAX_LINE_BYTES`], like a CSV line) and its fields
//! are taken by name; fields a reader does not ask for are ignored, as extra CSV columns are.
//! Blank lines are skipped. Problems name the line (1-based, counting every line) and the
//! field, as for CSV.

use super::RowError;
use crate::domain::limits::MAX_LINE_BYTES;
use serde_json::{Map, Value};
use std::io::BufRead;

/// The lines of an NDJSON stream, each parsed as an object.
pub struct JsonLines<R: BufRead> {
    reader: R,
    line: u64,
    buf: Vec<u8>,
    /// A line too long or unreadable ended the reading: where the next one starts is unknown.
    failed: bool,
}

/// One line's fields, looked up by name.
pub struct JsonRow {
    line: u64,
    fields: Map<String, Value>,
}

impl JsonRow {
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Field `name` as text: a JSON string, or a number written as it was (`calls` may come
    /// either way). `Ok(None)` when the field is absent or null.
    pub fn text(&self, name: &str) -> Result<Option<String>, RowError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(RowError::new(
                self.line,
                name,
                format!("must be a string or a number, not {}", kind(other)),
            )),
        }
    }

    /// Field `name` as a string: a number is refused (ids and timestamps are text).
    pub fn string(&self, name: &str) -> Result<Option<String>, RowError> {
        match self.fields.get(name) {
            Some(Value::Number(n)) => Err(RowError::new(
                self.line,
                name,
                format!("must be a string, not the number {n}"),
            )),
            _ => self.text(name),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<R: BufRead> JsonLines<R> {
    pub fn new(reader: R) -> JsonLines<R> {
        JsonLines {
            reader,
            line: 0,
            buf: Vec::new(),
            failed: false,
        }
    }

    pub fn source(&self) -> &R {
        &self.reader
    }

    pub fn source_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next object with its line number; `Err` for a line that is not one.
    pub fn next_row(&mut self) -> Option<Result<JsonRow, RowError>> {
        loop {
            if self.failed {
                return None;
            }
            self.line += 1;
            let line = self.line;
            match read_line(&mut self.reader, &mut self.buf) {
                Ok(Read::End) => return None,
                Ok(Read::TooLong) => {
                    self.failed = true;
                    return Some(Err(RowError::new(
                        line,
                        "(line)",
                        format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                    )));
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(RowError::new(line, "(line)", e.to_string())));
                }
                Ok(Read::Line) => {}
            }
            let mut text: &[u8] = &self.buf;
            if line == 1 {
                text = text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text);
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(parse(line, text));
        }
    }
}

fn parse(line: u64, text: &[u8]) -> Result<JsonRow, RowError> {
    match serde_json::from_slice::<Line>(text) {
        Ok(Line::Object(fields)) => Ok(JsonRow { line, fields }),
        Ok(Line::Other(kind)) => Err(RowError::new(
            line,
            "(line)",
            format!("each line must be one JSON object, not {kind}"),
        )),
        Err(_) if std::str::from_utf8(text).is_err() => Err(RowError::new(line, "(line)", super::NOT_UTF8)),
        Err(e) => {
            // serde_json's message ends with where in the text it stopped; the line is ours.
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            if let Some(name) = message.strip_prefix(GIVEN_TWICE) {
                return Err(RowError::new(
                    line,
                    name,
                    "is given twice in the object: which value counts is not clear, so the row is refused",
                ));
            }
            Err(RowError::new(
                line,
                "(line)",
                format!("not a JSON object: {message} at column {}", e.column()),
            ))
        }
    }
}

/// What a line holds: an object whose every key is given once, or another JSON value (its
/// kind, for the message). serde_json's own `Map` keeps the last of a key given twice, which
/// would bill whichever `calls` a shipper happened to write last.
enum Line {
    Object(Map<String, Value>),
    Other(&'static str),
}

/// The start of the error for a key given twice; the key follows.
const GIVEN_TWICE: &str = "key given twice: ";

impl<'de> serde::Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Line, D::Error> {
        d.deserialize_any(LineVisitor)
    }
}

struct LineVisitor;

impl<'de> serde::de::Visitor<'de> for LineVisitor {
    type Value = Line;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Line, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{GIVEN_TWICE}{key}")));
            }
            let value: Value = map.next_value()?;
            fields.insert(key, value);
        }
        Ok(Line::Object(fields))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Line, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Line::Other("an array"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Line, E> {
        Ok(Line::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }
    // A line that is a bare number is refused as not an object; its value is never read (a
    // `calls` field written as a float is refused where the fields are read, never rounded).
    fn visit_f64<E>(self, _: f64) -> Result<Line, E> {
        Ok(Line::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Line, E> {
        Ok(Line::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<Line, E> {
        Ok(Line::Other("null"))
    }
}

enum Read {
    Line,
    End,
    TooLong,
}

/// Reads one line into `buf`, without its `\n` or `\r\n`, refusing one longer than
/// [`MAX_LINE_BYTES`] before holding it in memory.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Read> {
    buf.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(if buf.is_empty() { Read::End } else { Read::Line });
        }
        let (take, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        if buf.len() + take > MAX_LINE_BYTES {
            return Ok(Read::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(take + usize::from(ends));
        if ends {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Read::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Result<JsonRow, RowError>> {
        let mut lines = JsonLines::new(text.as_bytes());
        std::iter::from_fn(|| lines.next_row()).collect()
    }

    #[test]
    fn objects_by_line_with_blank_lines_skipped() {
        let r = rows("\u{feff}{\"a\":\"x\",\"n\":5}\r\n\n  \n{\"a\":\"y\",\"n\":\"6\",\"extra\":[1]}");
        assert_eq!(r.len(), 2);
        let (first, second) = (r[0].as_ref().unwrap(), r[1].as_ref().unwrap());
        assert_eq!((first.line, second.line), (1, 4));
        assert_eq!(first.text("n").unwrap().as_deref(), Some("5"));
        assert_eq!(second.text("n").unwrap().as_deref(), Some("6"));
        assert_eq!(second.string("a").unwrap().as_deref(), Some("y"));
        assert_eq!(second.text("missing").unwrap(), None);
    }

    #[test]
    fn what_is_not_an_object_names_its_line() {
        let r = rows("{\"a\":1}\n[1,2]\n{\"a\":\n{\"a\":1,\"a\":2}\n{\"a\":true}\n");
        let e = r[1].as_ref().err().unwrap();
        assert_eq!((e.line, e.field.as_str()), (2, "(line)"));
        assert!(e.message.contains("an array"), "{e}");
        let e = r[2].as_ref().err().unwrap();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("column"), "{e}");
        // A key given twice is refused, naming it: which value would count is not clear.
        let e = r[3].as_ref().err().unwrap();
        assert_eq!((e.line, e.field.as_str()), (4, "a"));
        assert!(e.message.contains("given twice"), "{e}");
        let wrong = r[4].as_ref().unwrap().text("a").unwrap_err();
        assert_eq!((wrong.line, wrong.field.as_str()), (5, "a"));
        assert!(
            r[0].as_ref().unwrap().string("a").is_err(),
            "a number where text belongs"
        );
    }

    /// The only floating point here classifies a line that is not an object: a number in a field
    /// is handed on as the text JSON wrote, so `calls` written as a float (800.0, 1e3) is refused
    /// by the whole-number reader, never rounded into a count that is billed.
    #[test]
    fn a_float_is_never_a_count() {
        let r = rows("{\"calls\":800.0}\n{\"calls\":1e3}\n{\"calls\":800}\n3.5\n");
        let calls = |i: usize| r[i].as_ref().unwrap().text("calls").unwrap().unwrap();
        assert!(crate::input::parse_calls(&calls(0), i64::MAX).is_err(), "{}", calls(0));
        assert!(crate::input::parse_calls(&calls(1), i64::MAX).is_err(), "{}", calls(1));
        assert_eq!(crate::input::parse_calls(&calls(2), i64::MAX), Ok(800));
        assert!(r[3].as_ref().err().unwrap().message.contains("not a number"));
    }

    #[test]
    fn an_overlong_line_ends_the_reading() {
        let text = format!("{{}}\n{{\"a\":\"{}\"}}\n{{}}\n", "x".repeat(MAX_LINE_BYTES));
        let r = rows(&text);
        assert_eq!(r.len(), 2);
        let e = r[1].as_ref().err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("longer than"), "{e}");
    }
}

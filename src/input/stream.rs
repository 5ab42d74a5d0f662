//! How usage arrives: from a file or a pipe, gzip-compressed or not, as CSV or as NDJSON.
//!
//! Meters and log shippers send usage as they please: `zcat`-able archives, a pipe from
//! `kafkacat`, a compressed upload. billrun reads the bytes once, in one pass (a pipe cannot be
//! read twice): it looks at their first two bytes for gzip's magic number and decompresses if
//! it is there (concatenated gzip members, as `cat a.gz b.gz` or a rotating shipper writes, are
//! one stream); then at the first character of the content: `{` is NDJSON, anything else CSV.
//! A format given on the command line overrides the guess.
//!
//! Gzip's own check (a CRC and the length of every member) is verified at the end of each
//! member, so a damaged or cut-short archive is an error, never a shorter file.

use flate2::read::MultiGzDecoder;
use std::io::{Cursor, Read};

/// Bytes from anywhere, for a parsing thread of their own.
pub type Bytes = Box<dyn Read + Send>;

/// The two shapes a usage file may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A header line, then one row per line (RFC 4180).
    Csv,
    /// One JSON object per line, with the same fields as the CSV's columns.
    Ndjson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Ndjson => "NDJSON",
        }
    }
}

/// The content of a usage stream, decompressed, with its format.
pub struct Opened {
    pub content: Bytes,
    pub format: Format,
    pub gzip: bool,
}

/// How many bytes of the content are looked at to tell NDJSON from CSV.
const SNIFF: usize = 4096;

/// Opens `raw`: decompresses it if it is gzip, and takes its format from `format` or, if
/// `None`, from its first character that is not white space or a byte-order mark.
pub fn open(raw: Bytes, format: Option<Format>) -> std::io::Result<Opened> {
    let (magic, raw) = peek(raw, 2)?;
    let gzip = magic == [0x1f, 0x8b];
    let decompressed: Bytes = if gzip {
        Box::new(Gunzip(MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    };
    let (head, content) = peek(decompressed, SNIFF)?;
    let format = format.unwrap_or_else(|| sniff(&head));
    Ok(Opened {
        content: Box::new(content),
        format,
        gzip,
    })
}

/// NDJSON if the first character that is not white space or a byte-order mark is `{`.
fn sniff(head: &[u8]) -> Format {
    let head = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(head);
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    }
}

/// A stream whose first bytes were read ahead, put back in front of the rest.
type Peeked<R> = std::io::Chain<Cursor<Vec<u8>>, R>;

/// Reads up to `n` bytes of `r` (fewer only at its end) and gives them back with a reader of
/// the whole stream, those bytes included.
fn peek<R: Read>(mut r: R, n: usize) -> std::io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = Vec::with_capacity(n);
    (&mut r).take(n as u64).read_to_end(&mut head)?;
    Ok((head.clone(), Cursor::new(head).chain(r)))
}

/// A gzip decoder whose errors say that the archive is at fault.
struct Gunzip<R: Read>(MultiGzDecoder<R>);

impl<R: Read> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the gzip data is damaged or cut short ({e})"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A reader that hands out one byte per read, as a slow pipe may.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1 == self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    fn read_all(raw: Vec<u8>, format: Option<Format>) -> std::io::Result<(String, Format, bool)> {
        let mut o = open(Box::new(Trickle(raw, 0)), format)?;
        let mut text = String::new();
        o.content.read_to_string(&mut text)?;
        Ok((text, o.format, o.gzip))
    }

    #[test]
    fn formats_are_told_apart_by_their_first_character() {
        let csv = "account_id,api,timestamp,calls\n";
        let json = "\u{feff}\n  {\"account_id\":\"a\"}\n";
        assert_eq!(read_all(csv.into(), None).unwrap(), (csv.into(), Format::Csv, false));
        assert_eq!(
            read_all(json.into(), None).unwrap(),
            (json.into(), Format::Ndjson, false)
        );
        assert_eq!(read_all(Vec::new(), None).unwrap(), (String::new(), Format::Csv, false));
        assert_eq!(read_all(json.into(), Some(Format::Csv)).unwrap().1, Format::Csv);
    }

    #[test]
    fn gzip_is_decompressed_whole_and_members_follow_each_other() {
        let (a, b) = ("{\"x\":1}\n".repeat(5000), "{\"y\":2}\n".repeat(3));
        let mut both = gz(a.as_bytes());
        both.extend(gz(b.as_bytes()));
        let (text, format, gzip) = read_all(both, None).unwrap();
        assert_eq!((text, format, gzip), (format!("{a}{b}"), Format::Ndjson, true));
    }

    #[test]
    fn a_damaged_or_cut_short_archive_is_an_error_not_a_shorter_file() {
        let whole = gz("account_id,api,timestamp,calls\n".repeat(2000).as_bytes());
        for cut in [whole.len() - 1, whole.len() - 8, whole.len() / 2, 12] {
            let e = read_all(whole[..cut].to_vec(), None).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "cut at {cut}: {e}");
            assert!(e.to_string().contains("gzip"), "{e}");
        }
        let mut flipped = whole.clone();
        let at = flipped.len() - 6;
        flipped[at] ^= 0xff; // in the length the trailer records
        assert!(read_all(flipped, None).is_err());
    }
}

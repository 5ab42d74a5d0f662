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
//! member, so a damaged or cut-short archive is an error, never a shorter file. A plain stream
//! has no such check: a stream whose sender died mid-row ends without a newline, and
//! [`whole_lines`] makes that an error too. A stream cut exactly at a line's end cannot be told
//! from a whole one by its bytes: the sender says what it sends ([`Sha256Tap`], a row count)
//! or names its events.

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

    /// As the database records it with an import.
    pub fn key(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// What [`Format::key`] wrote.
    pub fn from_key(key: &str) -> Option<Format> {
        [Format::Csv, Format::Ndjson].into_iter().find(|f| f.key() == key)
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

/// `content`, failing at its end if its last line has no newline: the sender was cut off
/// mid-row, and the rows read so far must not be taken for the whole.
pub fn whole_lines(content: Bytes) -> Bytes {
    Box::new(WholeLines {
        inner: content,
        last: None,
    })
}

struct WholeLines<R> {
    inner: R,
    /// The last byte read, if any was.
    last: Option<u8>,
}

impl<R: Read> Read for WholeLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
        } else if !buf.is_empty() && self.last.is_some_and(|b| b != b'\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the input ends in the middle of a line (its last line has no newline): the sender was cut off \
                 mid-row; nothing was imported, send it again whole",
            ));
        }
        Ok(n)
    }
}

/// Passes bytes through, computing their SHA-256; once the end is read, the digest (lower-case
/// hex) is in the handle [`Sha256Tap::new`] gave.
pub struct Sha256Tap<R> {
    inner: R,
    hasher: Option<sha2::Sha256>,
    digest: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl<R: Read> Sha256Tap<R> {
    pub fn new(inner: R) -> (Sha256Tap<R>, std::sync::Arc<std::sync::OnceLock<String>>) {
        use sha2::Digest;
        let digest = std::sync::Arc::new(std::sync::OnceLock::new());
        let tap = Sha256Tap {
            inner,
            hasher: Some(sha2::Sha256::new()),
            digest: digest.clone(),
        };
        (tap, digest)
    }
}

impl<R: Read> Read for Sha256Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
        } else if !buf.is_empty() {
            if let Some(h) = self.hasher.take() {
                let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                let _ = self.digest.set(hex);
            }
        }
        Ok(n)
    }
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
    fn a_stream_cut_mid_line_is_an_error_and_a_whole_one_passes() {
        let read = |bytes: &[u8]| {
            let mut text = String::new();
            whole_lines(Box::new(Trickle(bytes.to_vec(), 0)))
                .read_to_string(&mut text)
                .map(|_| text)
        };
        assert_eq!(read(b"a,b\n1,2\n").unwrap(), "a,b\n1,2\n");
        assert_eq!(read(b"").unwrap(), "");
        let e = read(b"a,b\n1,2").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("ends in the middle of a line"), "{e}");
    }

    #[test]
    fn the_tap_gives_the_sha256_of_what_passed_once_it_is_read_to_the_end() {
        let (mut tap, digest) = Sha256Tap::new(Trickle(b"abc".to_vec(), 0));
        let mut buf = [0u8; 2];
        assert_eq!(tap.read(&mut buf).unwrap(), 1);
        assert!(digest.get().is_none(), "not before the end");
        std::io::copy(&mut tap, &mut std::io::sink()).unwrap();
        // FIPS 180-2's example: SHA-256("abc").
        assert_eq!(
            digest.get().unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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

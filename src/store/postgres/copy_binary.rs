//! PostgreSQL's binary `COPY` format, for the usage import and its totals: no text to format
//! on our side and none to parse on the server's (a timestamp in text costs the server more
//! than the row's insert). Only the types the import sends are here.
//!
//! Format (PostgreSQL manual, "COPY", Binary Format): an 11-byte signature, a 4-byte flags
//! field and a 4-byte header-extension length; then per tuple a 16-bit field count and, per
//! field, a 32-bit byte length followed by the value in the type's binary send format; then a
//! 16-bit −1 trailer. All integers are big-endian.

use chrono::{DateTime, Utc};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Bytes of binary `COPY` data sent per message.
pub const COPY_BUFFER: usize = 1 << 20;

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01T00:00:00Z.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// A growing chunk of binary `COPY` data. The header goes in front of the first chunk only.
pub struct Buffer {
    bytes: Vec<u8>,
    limit: usize,
}

impl Buffer {
    /// Starts the stream (signature and header); `limit` is the chunk size `is_full` checks.
    pub fn new(limit: usize) -> Buffer {
        let mut bytes = Vec::with_capacity(limit + 4096);
        bytes.extend_from_slice(SIGNATURE);
        bytes.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
        bytes.extend_from_slice(&0i32.to_be_bytes()); // no header extension
        Buffer { bytes, limit }
    }

    /// Starts a tuple of `fields` fields.
    pub fn tuple(&mut self, fields: i16) {
        self.bytes.extend_from_slice(&fields.to_be_bytes());
    }

    pub fn text(&mut self, s: &str) {
        self.bytes.extend_from_slice(&(s.len() as i32).to_be_bytes());
        self.bytes.extend_from_slice(s.as_bytes());
    }

    /// A text field, or NULL.
    pub fn text_or_null(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.bytes.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    pub fn int8(&mut self, v: i64) {
        self.bytes.extend_from_slice(&8i32.to_be_bytes());
        self.bytes.extend_from_slice(&v.to_be_bytes());
    }

    /// A `timestamptz`: microseconds since 2000-01-01 UTC.
    pub fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.int8(t.timestamp_micros() - PG_EPOCH_US);
    }

    pub fn is_full(&self) -> bool {
        self.bytes.len() >= self.limit
    }

    /// The data so far, leaving the buffer empty for the next chunk.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.bytes, Vec::with_capacity(self.limit + 4096))
    }

    /// The rest of the data with the trailer that ends the stream.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&(-1i16).to_be_bytes());
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tuple_and_trailer_are_laid_out_as_postgres_reads_them() {
        let mut b = Buffer::new(1 << 10);
        b.tuple(2);
        b.text("ab");
        b.timestamptz("2000-01-01T00:00:01Z".parse().unwrap());
        let bytes = b.finish();
        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        want.extend([0, 2]);
        want.extend([0, 0, 0, 2, b'a', b'b']);
        want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40]); // 1,000,000 µs
        want.extend([0xff, 0xff]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn instants_before_2000_are_negative() {
        let mut b = Buffer::new(1 << 10);
        let header = b.bytes.len();
        b.timestamptz("1999-12-31T23:59:59Z".parse().unwrap());
        assert_eq!(&b.bytes[header + 4..], &(-1_000_000i64).to_be_bytes());
    }
}

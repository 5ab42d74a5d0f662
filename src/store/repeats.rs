//! Rows sent twice without event ids: a sketch of each import's rows, small on disk, that tells
//! how many rows of a new file repeat rows of an earlier one.
//!
//! A row without an `event_id` cannot be told from another with the same account, API,
//! instant and calls, and a meter may well send two such rows. But a file whose rows are, in a
//! good share, rows of an earlier import (a nightly "month so far" export imported on top of
//! the previous night's) would bill those rows twice. Each import keeps a Bloom filter of its
//! rows' hashes: of every row if it has few ([`FULL_ROWS`] at most), else of the rows whose
//! hash falls in a fixed 1 in [`SAMPLE`] (the same rows in every file, since the hash decides),
//! which estimates the share as well and keeps a 30M-row month's sketch at about 2 MB. A new
//! file is compared with the imports whose rows span the same time; only the share matters,
//! so a filter's false positives (about 1%) are far below the share that refuses a file.
//!
//! Rows that carry an `event_id` are de-duplicated by it, exactly, and never sketched.

/// Rows a file may have and still be sketched whole.
pub const FULL_ROWS: u64 = 65_536;

/// A large file's sketch holds 1 row hash in `SAMPLE`.
pub const SAMPLE: u64 = 16;

/// The share of a file's rows (without event ids) that may repeat rows of earlier imports
/// before it is refused: 5%, far above a filter's false positives and below any file sent
/// twice in part.
pub const REFUSED_SHARE_PERCENT: u64 = 5;

/// Bits of filter per row hash kept, and hash functions: about 1% false positives.
const BITS_PER_KEY: u64 = 10;
const HASHES: u32 = 7;

/// The hash of a row without an event id: FNV-1a (64 bits) over its account, API, instant (µs)
/// and calls, each field ended by a zero byte. Stable across versions: sketches are stored.
pub fn row_hash(account_id: &str, api: &str, ts_micros: i64, calls: i64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes.iter().chain(&[0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(account_id.as_bytes());
    eat(api.as_bytes());
    eat(&ts_micros.to_le_bytes());
    eat(&calls.to_le_bytes());
    // FNV's low bits mix poorly: a final avalanche (splitmix64's) before bits are taken.
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether a large file's sketch keeps `hash`.
fn sampled(hash: u64) -> bool {
    hash % SAMPLE == 0
}

/// The row hashes of a file as it is read: all of them while there are few, then only the
/// sampled ones.
#[derive(Debug, Default)]
pub struct RowHashes {
    rows: u64,
    all: Vec<u64>,
    sampled: Vec<u64>,
}

impl RowHashes {
    pub fn add(&mut self, hash: u64) {
        self.rows += 1;
        if self.rows <= FULL_ROWS {
            self.all.push(hash);
        } else if !self.all.is_empty() {
            self.all.clear();
            self.all.shrink_to_fit();
        }
        if sampled(hash) {
            self.sampled.push(hash);
        }
    }

    /// Rows hashed (rows without an event id).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether every row's hash is kept.
    fn full(&self) -> bool {
        self.rows <= FULL_ROWS
    }

    /// The sketch to store for this file.
    pub fn sketch(&self) -> Sketch {
        let (full, keys) = if self.full() {
            (true, &self.all)
        } else {
            (false, &self.sampled)
        };
        let mut sketch = Sketch::empty(full, self.rows, keys.len() as u64);
        for &k in keys {
            sketch.insert(k);
        }
        sketch
    }

    /// How many of this file's rows repeat rows of the import `earlier` sketches, estimated:
    /// exactly counted (but for false positives) when both are whole, else from the sampled
    /// rows, scaled.
    pub fn repeats_of(&self, earlier: &Sketch) -> u64 {
        if self.full() && earlier.full {
            return self.all.iter().filter(|&&h| earlier.contains(h)).count() as u64;
        }
        // One side keeps only the sampled rows: compare those, and scale.
        let keys: &[u64] = if self.full() { &self.all } else { &self.sampled };
        let hits = keys.iter().filter(|&&h| sampled(h) && earlier.contains(h)).count() as u64;
        (hits * SAMPLE).min(self.rows)
    }
}

/// A Bloom filter of an import's row hashes, as stored: whole (every row) or sampled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sketch {
    /// Every row's hash is in it (else only the sampled rows').
    pub full: bool,
    /// Rows of the import without an event id.
    pub rows: u64,
    pub bits: Vec<u8>,
}

impl Sketch {
    fn empty(full: bool, rows: u64, keys: u64) -> Sketch {
        let bytes = (keys * BITS_PER_KEY).div_ceil(8).max(8);
        Sketch {
            full,
            rows,
            bits: vec![0; bytes as usize],
        }
    }

    fn insert(&mut self, hash: u64) {
        for p in positions(hash, self.bits.len()) {
            self.bits[p / 8] |= 1 << (p % 8);
        }
    }

    pub fn contains(&self, hash: u64) -> bool {
        positions(hash, self.bits.len()).all(|p| self.bits[p / 8] & (1 << (p % 8)) != 0)
    }
}

/// The bit positions of `hash` in a filter of `bytes` bytes (double hashing from its two
/// halves).
fn positions(hash: u64, bytes: usize) -> impl Iterator<Item = usize> {
    let m = bytes as u64 * 8;
    let (a, b) = (hash & 0xffff_ffff, (hash >> 32) | 1);
    (0..u64::from(HASHES)).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % m) as usize)
}

/// Whether `repeated` rows out of `rows` is more than the share that refuses a file.
pub fn too_many(repeated: u64, rows: u64) -> bool {
    rows > 0 && repeated * 100 > rows * REFUSED_SHARE_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(range: std::ops::Range<i64>) -> RowHashes {
        let mut h = RowHashes::default();
        for i in range {
            h.add(row_hash("acct", "CropImage", i * 1_000_000, 5));
        }
        h
    }

    #[test]
    fn a_row_hash_depends_on_every_field() {
        let base = row_hash("a", "CropImage", 1, 5);
        assert_ne!(base, row_hash("b", "CropImage", 1, 5));
        assert_ne!(base, row_hash("a", "EnhanceImage", 1, 5));
        assert_ne!(base, row_hash("a", "CropImage", 2, 5));
        assert_ne!(base, row_hash("a", "CropImage", 1, 6));
        // Fields are ended, so that one cannot spill into the next.
        assert_ne!(row_hash("ab", "c", 1, 5), row_hash("a", "bc", 1, 5));
        assert_eq!(base, row_hash("a", "CropImage", 1, 5), "the same row, the same hash");
    }

    #[test]
    fn repeats_are_counted_between_small_files_and_estimated_with_large_ones() {
        // Small files: yesterday's 1000 rows and today's 1000 rows sent with them.
        let yesterday = hashes(0..1000).sketch();
        let month_so_far = hashes(0..2000);
        let found = month_so_far.repeats_of(&yesterday);
        assert!((1000..=1030).contains(&found), "{found}");
        assert!(too_many(found, month_so_far.rows()));
        let today_only = hashes(1000..2000);
        let stray = today_only.repeats_of(&yesterday);
        assert!(!too_many(stray, today_only.rows()), "false positives alone: {stray}");
        // Large files: the estimate from the sampled rows is near the truth.
        let big_yesterday = hashes(0..400_000).sketch();
        assert!(!big_yesterday.full);
        assert!(
            big_yesterday.bits.len() < 400_000 / 16 * 2,
            "about 10 bits a sampled row"
        );
        let big_month = hashes(0..800_000);
        let found = big_month.repeats_of(&big_yesterday);
        assert!((360_000..=440_000).contains(&found), "{found}");
        let big_today = hashes(400_000..800_000);
        assert!(!too_many(big_today.repeats_of(&big_yesterday), big_today.rows()));
        // A small file against a large one, and a large one against a small one.
        let small_repeat = hashes(100_000..160_000);
        let found = small_repeat.repeats_of(&big_yesterday);
        assert!((50_000..=70_000).contains(&found), "{found}");
        let found = big_month.repeats_of(&hashes(0..60_000).sketch());
        assert!((50_000..=70_000).contains(&found), "{found}");
    }
}

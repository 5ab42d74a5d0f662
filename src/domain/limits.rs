//! The largest numbers billrun takes in, chosen so that the sums it makes of them fit in the
//! 64-bit integers both databases keep.
//!
//! Bounds are checked where input enters (a file's row, a recharge on the command line), with
//! an error naming the file, line and field. Everything computed from them afterwards (a
//! month's calls, a balance after many recharges) is still checked arithmetic: a sum that
//! would not fit is an error that names what overflowed, never a wrapped number or a panic.

/// The most calls one usage row may count. A meter reporting a counter for a whole month at a
/// million calls a second reaches 2.7 × 10¹²; a row above 10¹³ is a meter's bug. At this bound
/// an account would need 900,000 such rows in one month and API before its month's total left
/// the range of a 64-bit count.
pub const MAX_ROW_CALLS: i64 = 10_000_000_000_000;

/// The most calls a prepaid pack may hold (the same bound as a usage row).
pub const MAX_PACK_CALLS: i64 = MAX_ROW_CALLS;

/// The largest amount of money a single input may carry, in fen: an opening balance (either
/// sign) or a recharge. 10¹⁵ fen is ten trillion in the currency; a balance can then take
/// 9,000 such movements before it would leave the range of a 64-bit count of fen.
pub const MAX_AMOUNT_FEN: i64 = 1_000_000_000_000_000;

/// The longest text billrun keeps for an id (account, pack, payment reference), in characters.
pub const MAX_ID_CHARS: usize = 128;

/// The longest display name billrun keeps, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// The longest line an input file may have, in bytes: far beyond any real row, short enough
/// that a file with one enormous field is refused before it fills the memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

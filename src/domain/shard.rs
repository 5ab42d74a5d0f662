//! Shards: a stable split of the accounts, so that N workers can settle one month together
//! (a Kubernetes Indexed Job gives each its `JOB_COMPLETION_INDEX`).
//!
//! An account belongs to shard `fnv1a64(account_id) mod N`. FNV-1a is fixed by its definition,
//! so the split is the same on every machine, in every version of billrun, and whatever the
//! database.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Every account: the unsharded run.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn index(self) -> u32 {
        self.index
    }

    pub fn count(self) -> u32 {
        self.count
    }

    pub fn is_all(self) -> bool {
        self.count == 1
    }

    /// Whether `account_id` belongs to this shard.
    pub fn contains(self, account_id: &str) -> bool {
        self.count == 1 || (fnv1a64(account_id.as_bytes()) % u64::from(self.count)) as u32 == self.index
    }
}

/// 64-bit FNV-1a.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a shard; expected K/N with 0 <= K < N, like 2/4");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count || count > 4096 {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_account_is_in_exactly_one_shard_and_the_split_is_even() {
        let shards: Vec<Shard> = (0..4).map(|k| format!("{k}/4").parse().unwrap()).collect();
        let mut sizes = [0usize; 4];
        for i in 0..10_000 {
            let id = format!("acct-{i:05}");
            let owners: Vec<usize> = (0..4).filter(|&k| shards[k].contains(&id)).collect();
            assert_eq!(owners.len(), 1, "{id}");
            sizes[owners[0]] += 1;
            assert!(Shard::ALL.contains(&id));
        }
        assert!(sizes.iter().all(|&n| (2200..2800).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn the_hash_is_fnv1a_and_stable() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in ["4/4", "1/0", "-1/4", "a/b", "2", "1/5000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?}");
        }
    }
}

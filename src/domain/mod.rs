//! The pure heart of billrun: everything about money, tiers, packs and months.
//!
//! Nothing in here touches a database, a file or the clock. Every function takes what it needs
//! as arguments and returns a value, so the rules finance checks can be unit- and
//! property-tested on their own (see docs/rules.md, rules 1–5).

pub mod arrears;
pub mod bill;
pub mod catalog;
pub mod credit;
pub mod estimate;
pub mod limits;
pub mod money;
pub mod month;
pub mod pack_alerts;
pub mod packs;
pub mod pricing;
pub mod settle;
pub mod shard;
pub mod webhook;

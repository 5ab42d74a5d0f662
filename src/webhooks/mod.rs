//! Webhooks: telling the systems that act on billrun's decisions (the customer notifier, the
//! API gateway) what was decided, as the Standard Webhooks specification describes
//! (https://www.standardwebhooks.com).
//!
//! `config` reads the webhooks file, `sign` signs, `payload` builds what a receiver gets and
//! `send` makes one HTTP attempt. When to try and what an answer means are rules, in
//! `domain::webhook`; the deliveries themselves are rows of the store, and the job that sends
//! them is `jobs::webhooks`.

pub mod config;
pub mod payload;
pub mod send;
pub mod sign;

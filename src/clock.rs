//! The clock, as an input. `main` builds it once from `--now` (or the system clock) and hands
//! it down. Commands read it once, at their start. The daemon reads it at each wake-up. With
//! `--now`, time starts at that instant and advances with the process's monotonic clock, so a
//! daemon can be tested against any moment.

use chrono::{DateTime, Utc};
use std::time::Instant;

#[derive(Clone, Debug)]
pub enum Clock {
    /// The system clock.
    System,
    /// `base` at `started`, advancing with the monotonic clock.
    From { base: DateTime<Utc>, started: Instant },
}

impl Clock {
    pub fn starting_at(base: Option<DateTime<Utc>>) -> Clock {
        match base {
            Some(base) => Clock::From {
                base,
                started: Instant::now(),
            },
            None => Clock::System,
        }
    }

    /// The time now, to the microsecond (what both databases store).
    pub fn now(&self) -> DateTime<Utc> {
        let t = match self {
            Clock::System => Utc::now(),
            Clock::From { base, started } => {
                *base + chrono::Duration::from_std(started.elapsed()).unwrap_or(chrono::Duration::zero())
            }
        };
        DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    }

    /// The system's time, whatever `--now` says: only for what another machine compares with
    /// its own clock, such as a webhook's `webhook-timestamp`, which a receiver refuses when it is
    /// more than a few minutes off. Nothing billrun decides depends on it.
    pub fn wall() -> DateTime<Utc> {
        Utc::now()
    }

    /// The time a command runs at: `--now` exactly when it was given, else the system time.
    pub fn start(&self) -> DateTime<Utc> {
        match self {
            Clock::System => self.now(),
            Clock::From { base, .. } => *base,
        }
    }
}

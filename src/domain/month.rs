//! Billing months and their bounds in the billing time zone (docs/rules.md, rule 1).
//!
//! A month is `[1st 00:00, next 1st 00:00)` in the billing time zone; usage timestamps carry
//! their own offset and are compared as instants, so `2026-09-30T16:00:00Z` is October in
//! `Asia/Shanghai`. The zone is an argument, never the process's or the server's zone.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// A calendar month, written `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

/// The first instant an account opened at `opened` may have usage: the start of its opening
/// month in `tz` (usage earlier on the opening day, or earlier in the opening month, is billed:
/// that month is the account's first). An account never opened (`None`) may have none. An
/// import refuses other usage unless told to take it as it is.
pub fn usage_allowed_from(opened: Option<DateTime<Utc>>, tz: Tz) -> Option<DateTime<Utc>> {
    opened.map(|t| Month::containing(t, tz).start(tz))
}

impl Month {
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((1..=12).contains(&month) && (1..=9999).contains(&year)).then_some(Month { year, month })
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The first instant of the month in `tz`. Where local midnight on the 1st does not exist
    /// (a daylight-saving jump at midnight), the month starts at the first local time that does.
    pub fn start(self, tz: Tz) -> DateTime<Utc> {
        let date = NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month");
        (0..24)
            .find_map(|hour| {
                let local = date.and_hms_opt(hour, 0, 0).expect("valid hour");
                tz.from_local_datetime(&local).earliest()
            })
            .expect("every day has a valid local hour")
            .with_timezone(&Utc)
    }

    /// The first instant after the month in `tz` (exclusive upper bound).
    pub fn end(self, tz: Tz) -> DateTime<Utc> {
        self.next().start(tz)
    }

    /// The month that contains `instant` in `tz`.
    pub fn containing(instant: DateTime<Utc>, tz: Tz) -> Month {
        let local = instant.with_timezone(&tz);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }
}

/// A month with its bounds in a time zone, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonthSpan {
    pub month: Month,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Month {
    /// The month with its bounds in `tz`.
    pub fn span(self, tz: Tz) -> MonthSpan {
        MonthSpan {
            month: self,
            start: self.start(tz),
            end: self.end(tz),
        }
    }

    /// Every month from the one containing `first` to the one containing `last`, in `tz`.
    pub fn spanning(first: DateTime<Utc>, last: DateTime<Utc>, tz: Tz) -> Vec<MonthSpan> {
        let (mut m, to) = (Month::containing(first, tz), Month::containing(last, tz));
        let mut spans = Vec::new();
        while m <= to {
            spans.push(m.span(tz));
            m = m.next();
        }
        spans
    }
}

/// Tells which month instants fall in, in one time zone, remembering the months it has seen:
/// a usage file mostly stays within one or two, so most instants are placed by comparing them
/// with the bounds of the month of the instant before.
#[derive(Clone, Debug)]
pub struct MonthFinder {
    tz: Tz,
    spans: Vec<MonthSpan>,
    last: usize,
}

impl MonthFinder {
    pub fn new(tz: Tz) -> MonthFinder {
        MonthFinder {
            tz,
            spans: Vec::new(),
            last: 0,
        }
    }

    /// The index, in [`MonthFinder::spans`], of the month containing `instant`.
    pub fn index_of(&mut self, instant: DateTime<Utc>) -> usize {
        let inside = |s: &MonthSpan| s.start <= instant && instant < s.end;
        if self.spans.get(self.last).is_some_and(inside) {
            return self.last;
        }
        self.last = match self.spans.iter().position(inside) {
            Some(i) => i,
            None => {
                self.spans.push(Month::containing(instant, self.tz).span(self.tz));
                self.spans.len() - 1
            }
        };
        self.last
    }

    /// The months seen, in the order they were first seen.
    pub fn spans(&self) -> &[MonthSpan] {
        &self.spans
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a month; expected YYYY-MM, like 2026-10");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Month::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_finder_places_every_instant_in_the_month_that_contains_it() {
        for tz in [chrono_tz::Asia::Shanghai, chrono_tz::America::New_York, chrono_tz::UTC] {
            let mut finder = MonthFinder::new(tz);
            let mut t = utc("2026-01-31T23:30:00Z");
            // Back and forth across month ends and a daylight-saving change.
            for step in 0..400i64 {
                t += chrono::Duration::minutes(if step % 3 == 0 { -1_000 } else { 3_700 });
                let i = finder.index_of(t);
                let span = finder.spans()[i];
                assert_eq!(span.month, Month::containing(t, tz), "{t} in {tz}");
                assert!(span.start <= t && t < span.end);
            }
            let months: Vec<Month> = finder.spans().iter().map(|s| s.month).collect();
            let spanning: Vec<Month> = Month::spanning(months[0].start(tz), t, tz)
                .iter()
                .map(|s| s.month)
                .collect();
            assert_eq!(months, spanning, "first seen in time order here");
        }
    }

    #[test]
    fn shanghai_october_starts_at_utc_16_00_on_sept_30() {
        let oct: Month = "2026-10".parse().unwrap();
        assert_eq!(oct.start(chrono_tz::Asia::Shanghai), utc("2026-09-30T16:00:00Z"));
        assert_eq!(oct.end(chrono_tz::Asia::Shanghai), utc("2026-10-31T16:00:00Z"));
    }

    #[test]
    fn instants_belong_to_the_month_of_the_billing_zone() {
        let sh = chrono_tz::Asia::Shanghai;
        assert_eq!(
            Month::containing(utc("2026-09-30T16:00:00Z"), sh).to_string(),
            "2026-10"
        );
        assert_eq!(
            Month::containing(utc("2026-09-30T15:59:59Z"), sh).to_string(),
            "2026-09"
        );
        assert_eq!(
            Month::containing(utc("2026-09-30T16:00:00Z"), chrono_tz::UTC).to_string(),
            "2026-09"
        );
    }

    #[test]
    fn months_wrap_around_years() {
        let dec: Month = "2025-12".parse().unwrap();
        assert_eq!(dec.next().to_string(), "2026-01");
        assert_eq!(dec.next().prev(), dec);
        assert_eq!(dec.next().to_string(), "2026-01");
        assert_eq!("2026-01".parse::<Month>().unwrap().prev(), dec);
    }

    #[test]
    fn month_parsing_is_strict() {
        for bad in ["2026-13", "2026-00", "2026-1", "26-10", "2026/10", "2026-10-01", ""] {
            assert!(bad.parse::<Month>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_midnight_daylight_saving_gap_starts_the_month_at_the_first_real_hour() {
        // America/Havana jumps from 00:00 to 01:00 on some dates; pick a zone-agnostic check:
        // the start is always a local time on the 1st.
        let tz = chrono_tz::America::Havana;
        for m in 1..=12 {
            let month = Month::new(2026, m).unwrap();
            let local = month.start(tz).with_timezone(&tz);
            assert_eq!((local.month(), local.day()), (m, 1));
        }
    }
}

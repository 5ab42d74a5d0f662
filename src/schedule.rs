//! Cron schedules for the daemon and `billrun schedule`, in the billing time zone.
//!
//! Accepts the 5-field crontab form used by cron and Kubernetes
//! (`minute hour day-of-month month day-of-week`), the 6-field form with seconds first, and
//! the `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` shorthands. The `cron` crate
//! underneath counts weekdays from 1 = Sunday. billrun keeps crontab's meaning instead
//! (0 or 7 = Sunday, 1 = Monday, …) and translates. It also keeps crontab's rule that when both
//! day-of-month and day-of-week are restricted, a day matching either one runs.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// Every hour on the hour: `run` does only what is due, so the month is settled at 02:00 on the
/// 1st (with the default `--settle-after`) and late usage billed within the hour it arrives.
pub const DEFAULT: &str = "0 * * * *";

#[derive(Clone, Debug)]
pub struct Schedule {
    expression: String,
    /// One schedule, or two whose union is crontab's day-of-month OR day-of-week.
    parts: Vec<cron::Schedule>,
}

impl Schedule {
    /// The first scheduled instant strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.parts
            .iter()
            .filter_map(|p| p.after(&local).next())
            .min()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `count` instants after `after`.
    pub fn upcoming(&self, mut after: DateTime<Utc>, tz: Tz, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            match self.next_after(after, tz) {
                Some(t) => {
                    out.push(t);
                    after = t;
                }
                None => break,
            }
        }
        out
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Refuses a schedule that never fires after `after` (a date no month has, like February
    /// 30th): a daemon on it would sleep forever.
    pub fn check_fires(&self, after: DateTime<Utc>, tz: Tz) -> Result<(), String> {
        match self.next_after(after, tz) {
            Some(_) => Ok(()),
            None => Err(format!(
                "schedule '{}' never fires: no date matches it (is it a day the month never has?)",
                self.expression
            )),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(expression: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| format!("schedule '{expression}': {why}");
        let text = expression.trim();
        let parts = if text.starts_with('@') {
            if text == "@reboot" {
                return Err(bad("@reboot is not a time; use a schedule".into()));
            }
            vec![cron::Schedule::from_str(text).map_err(|e| bad(e.to_string()))?]
        } else {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let mut six: Vec<String> = match fields.len() {
                5 => std::iter::once("0")
                    .chain(fields.iter().copied())
                    .map(str::to_owned)
                    .collect(),
                6 => fields.iter().map(|f| (*f).to_owned()).collect(),
                n => {
                    return Err(bad(format!(
                        "has {n} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)"
                    )))
                }
            };
            for (i, field) in six.iter().enumerate().take(5) {
                check_field(FIELDS[i], field).map_err(bad)?;
            }
            six[5] = crontab_weekdays(&six[5]).map_err(bad)?;
            let any = |f: &str| f == "*" || f == "?";
            let variants: Vec<Vec<String>> = if !any(&six[3]) && !any(&six[5]) {
                let mut by_day = six.clone();
                by_day[5] = "*".into();
                let mut by_weekday = six;
                by_weekday[3] = "*".into();
                vec![by_day, by_weekday]
            } else {
                vec![six]
            };
            variants
                .iter()
                .map(|v| cron::Schedule::from_str(&v.join(" ")).map_err(|e| bad(e.to_string())))
                .collect::<Result<_, _>>()?
        };
        Ok(Schedule {
            expression: text.to_owned(),
            parts,
        })
    }
}

/// The first five fields of the 6-field form: name, lowest and highest value.
const FIELDS: [(&str, u32, u32); 5] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
];

/// Checks that every number in a field (`5`, `1-3`, `*/15`, `10-50/5`, lists of them) is in the
/// field's range, and names the field and the range if not. Names (`JAN`) pass through.
fn check_field((name, lo, hi): (&str, u32, u32), field: &str) -> Result<(), String> {
    for token in field.split(',') {
        let (base, step) = match token.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (token, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(n) if n >= 1 => {}
                _ => {
                    return Err(format!(
                        "{name} field '{field}': the step '{step}' must be a whole number from 1"
                    ))
                }
            }
        }
        if base == "*" || base == "?" || base.chars().any(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let (a, b) = base.split_once('-').unwrap_or((base, base));
        for n in [a, b] {
            match n.parse::<u32>() {
                Ok(v) if (lo..=hi).contains(&v) => {}
                Ok(v) => return Err(format!("{name} {v} is out of range ({lo}-{hi})")),
                Err(_) => return Err(format!("{name} field '{field}' is not a number, a range or a list")),
            }
        }
        if a.parse::<u32>().ok() > b.parse::<u32>().ok() {
            return Err(format!("{name} range '{base}' runs backwards"));
        }
    }
    Ok(())
}

/// Rewrites a crontab day-of-week field (0–7, 0 and 7 = Sunday) in the `cron` crate's numbering
/// (1–7, 1 = Sunday). Names (`MON-FRI`) mean the same in both and pass through.
fn crontab_weekdays(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" {
        return Ok(field.to_owned());
    }
    let mut out = Vec::new();
    for token in field.split(',') {
        if token.chars().any(|c| c.is_ascii_alphabetic()) {
            out.push(token.to_owned());
            continue;
        }
        let (base, step) = match token.split_once('/') {
            Some((b, s)) => (
                b,
                s.parse::<usize>()
                    .map_err(|_| format!("bad step in day-of-week '{token}'"))?,
            ),
            None => (token, 1),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|n| *n <= 7)
                .ok_or(format!("bad day-of-week '{token}' (0-7)"))
        };
        let (lo, hi) = match base {
            "*" | "?" => (0, 6),
            _ => match base.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if token.contains('/') => (num(base)?, 6),
                None => (num(base)?, num(base)?),
            },
        };
        if lo > hi || step == 0 {
            return Err(format!("bad day-of-week '{token}'"));
        }
        out.extend((lo..=hi).step_by(step).map(|d| (d % 7 + 1).to_string()));
    }
    Ok(out.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str) -> String {
        let s: Schedule = expr.parse().unwrap();
        s.next_after(t(after), chrono_tz::Asia::Shanghai)
            .unwrap()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .to_rfc3339()
    }

    #[test]
    fn the_default_wakes_every_hour_on_the_hour_in_the_billing_zone() {
        let s: Schedule = DEFAULT.parse().unwrap();
        let times: Vec<String> = s
            .upcoming(t("2026-10-31T22:30:00+08:00"), chrono_tz::Asia::Kolkata, 4)
            .iter()
            .map(|t| t.with_timezone(&chrono_tz::Asia::Kolkata).to_rfc3339())
            .collect();
        // 22:30 in Shanghai is 20:00 in Kolkata, 5:30 ahead of UTC: the next hours are its own,
        // not UTC's.
        assert_eq!(
            times,
            [
                "2026-10-31T21:00:00+05:30",
                "2026-10-31T22:00:00+05:30",
                "2026-10-31T23:00:00+05:30",
                "2026-11-01T00:00:00+05:30"
            ]
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        assert_eq!(
            next("*/10 * * * * *", "2026-11-01T02:00:01+08:00"),
            "2026-11-01T02:00:10+08:00"
        );
    }

    #[test]
    fn weekdays_count_like_crontab() {
        // 2026-11-01 is a Sunday.
        assert_eq!(
            next("0 9 * * 1", "2026-11-01T00:00:00+08:00"),
            "2026-11-02T09:00:00+08:00"
        );
        assert_eq!(
            next("0 9 * * 0", "2026-11-02T00:00:00+08:00"),
            "2026-11-08T09:00:00+08:00"
        );
        assert_eq!(
            next("0 9 * * 7", "2026-11-02T00:00:00+08:00"),
            "2026-11-08T09:00:00+08:00"
        );
        assert_eq!(
            next("0 9 * * 5-7", "2026-11-02T00:00:00+08:00"),
            "2026-11-06T09:00:00+08:00"
        );
        assert_eq!(
            next("0 9 * * MON-FRI", "2026-11-01T00:00:00+08:00"),
            "2026-11-02T09:00:00+08:00"
        );
    }

    #[test]
    fn day_of_month_or_day_of_week_when_both_are_set() {
        // The 15th, or any Monday: after Sunday Nov 1st the next is Monday Nov 2nd.
        assert_eq!(
            next("0 0 15 * 1", "2026-11-01T12:00:00+08:00"),
            "2026-11-02T00:00:00+08:00"
        );
        assert_eq!(
            next("0 0 15 * 1", "2026-11-14T12:00:00+08:00"),
            "2026-11-15T00:00:00+08:00"
        );
    }

    #[test]
    fn shorthands_work_and_bad_expressions_are_refused() {
        assert_eq!(
            next("@monthly", "2026-11-01T12:00:00+08:00"),
            "2026-12-01T00:00:00+08:00"
        );
        for bad in [
            "",
            "0 2 1-3 *",
            "0 2 1-3 * * * *",
            "61 2 * * *",
            "0 2 1-3 * 8",
            "@reboot",
            "0 2 32 * *",
            "x y z a b",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn out_of_range_fields_are_named_with_their_range() {
        for (expr, says) in [
            ("0 25 * * *", "hour 25 is out of range (0-23)"),
            ("60 2 * * *", "minute 60 is out of range (0-59)"),
            ("0 2 0 * *", "day-of-month 0 is out of range (1-31)"),
            ("0 2 1-32 * *", "day-of-month 32 is out of range (1-31)"),
            ("0 2 * 13 *", "month 13 is out of range (1-12)"),
            ("0 2 3-1 * *", "day-of-month range '3-1' runs backwards"),
            ("*/0 2 * * *", "must be a whole number from 1"),
        ] {
            let e = expr.parse::<Schedule>().unwrap_err();
            assert!(e.contains(says), "{expr}: {e}");
        }
        assert!("0 23 31 DEC *".parse::<Schedule>().is_ok());
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        let s: Schedule = "0 2 30 2 *".parse().unwrap();
        let e = s
            .check_fires(t("2026-11-01T00:00:00Z"), chrono_tz::Asia::Shanghai)
            .unwrap_err();
        assert!(e.contains("never fires"), "{e}");
        let leap: Schedule = "0 2 29 2 *".parse().unwrap();
        assert!(leap
            .check_fires(t("2026-11-01T00:00:00Z"), chrono_tz::Asia::Shanghai)
            .is_ok());
    }
}

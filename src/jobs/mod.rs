//! The jobs: import, grant, settle, enforce, export, report. Each is idempotent or refuses to do
//! harm twice, and each takes the clock and the time zone from [`Ctx`] rather than reading them.

pub mod accounts;
pub mod export;
pub mod report;
pub mod run;
pub mod settle;
pub mod summary;
pub mod usage;
pub mod verify;

use crate::domain::catalog::Catalog;
use crate::domain::month::Month;
use crate::error::input_error;
use crate::store::FreeGrant;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use std::path::Path;

/// What every job runs under: the clock, the billing time zone and the catalog.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub catalog: Catalog,
    /// Draw progress bars for long steps (standard error is a terminal).
    pub progress: bool,
    /// Accounts settled per transaction.
    pub page_size: usize,
}

impl Ctx {
    /// The free packs of `month` under the catalog version in force for it.
    pub fn free_grant(&self, month: Month) -> anyhow::Result<FreeGrant> {
        let version = self.catalog.for_month(month).ok_or_else(|| {
            input_error(format!(
                "the catalog has no version in force for {month} (the earliest takes effect later)"
            ))
        })?;
        Ok(FreeGrant::new(month, month.start(self.tz), month.end(self.tz), version))
    }

    /// A progress counter for a long step, or a hidden one when progress is off.
    pub fn progress_bar(&self, message: String) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {msg}: {human_pos} [{elapsed}, {per_sec}]")
        {
            bar.set_style(style);
        }
        bar.set_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }

    /// The currency the catalog prices in, which the database's balances are kept in too
    /// (checked when the store is opened).
    pub fn currency(&self) -> &str {
        self.catalog.currency()
    }

    /// The month that contains `--now` in the billing time zone.
    pub fn current_month(&self) -> Month {
        Month::containing(self.now, self.tz)
    }

    /// An instant as RFC 3339 in the billing time zone.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// Opens an input file with its name in the error.
pub fn open_input(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| input_error(format!("cannot read {}: {e}", path.display())))
}

//! Records each job run in the database (`billrun runs list`) and logs one summary line for it.

use crate::domain::month::Month;
use crate::error::{exit_code, Stopped, EXIT_BUSY};
use crate::jobs::run::RunSummary;
use crate::jobs::settle::SettleSummary;
use crate::jobs::Ctx;
use crate::store::{RunEnd, Store};
use std::future::Future;
use std::time::Instant;

/// What a finished job reports for its run record.
pub trait Counted {
    fn month(&self) -> Option<Month>;
    fn billed(&self) -> (u64, i64);
    fn suspended(&self) -> u64;
    fn did_something(&self) -> bool;
}

impl Counted for SettleSummary {
    fn month(&self) -> Option<Month> {
        Some(self.month)
    }
    fn billed(&self) -> (u64, i64) {
        (self.billed_now, self.billed_now_fen)
    }
    fn suspended(&self) -> u64 {
        0
    }
    fn did_something(&self) -> bool {
        self.billed_now > 0 || self.packs_granted > 0
    }
}

impl Counted for RunSummary {
    fn month(&self) -> Option<Month> {
        self.settled.as_ref().map(|s| s.month)
    }
    fn billed(&self) -> (u64, i64) {
        self.settled
            .iter()
            .chain(&self.late_usage)
            .fold((0, 0), |(n, fen), s| (n + s.billed_now, fen + s.billed_now_fen))
    }
    fn suspended(&self) -> u64 {
        self.suspended.len() as u64
    }
    fn did_something(&self) -> bool {
        RunSummary::did_something(self)
    }
}

impl Counted for Vec<String> {
    fn month(&self) -> Option<Month> {
        None
    }
    fn billed(&self) -> (u64, i64) {
        (0, 0)
    }
    fn suspended(&self) -> u64 {
        self.len() as u64
    }
    fn did_something(&self) -> bool {
        !self.is_empty()
    }
}

/// Runs `job`, recording its start, end and outcome, and logging one line about it. If `stop`
/// completes first, the job is abandoned and its open transaction rolled back. The run is then
/// recorded as `stopped`, and a later run finishes the work.
pub async fn recorded<S: Store, T: Counted>(
    store: &S,
    ctx: &Ctx,
    command: &str,
    month: Option<Month>,
    job: impl Future<Output = anyhow::Result<T>>,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let run_id = store.run_started(command, month, ctx.now).await?;
    let result = tokio::select! {
        r = job => r,
        _ = stop => Err(anyhow::Error::new(Stopped)),
    };
    let ended_at = ctx.now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    let mut end = RunEnd {
        ended_at,
        month: month.map(|m| m.to_string()),
        ..RunEnd::default()
    };
    match &result {
        Ok(done) => {
            end.outcome = if done.did_something() { "ok" } else { "nothing-to-do" };
            end.month = done.month().or(month).map(|m| m.to_string());
            (end.accounts_billed, end.billed_fen) = done.billed();
            end.suspended = done.suspended();
        }
        Err(e) if e.is::<Stopped>() => {
            end.outcome = "stopped";
            end.message = e.to_string();
        }
        Err(e) => {
            end.outcome = if exit_code(e) == EXIT_BUSY { "busy" } else { "failed" };
            end.message = format!("{e:#}");
        }
    }
    // A stopped job's abandoned transaction may still be rolling back on another connection
    // (see the SQLite store's `run_ended` for one that nothing would roll back). The update is
    // idempotent, so it is tried again.
    for attempt in 1..=5 {
        match store.run_ended(run_id, &end).await {
            Ok(()) => break,
            Err(e) if attempt < 5 => {
                tracing::debug!(
                    run_id,
                    attempt,
                    error = format!("{e:#}"),
                    "recording the end of the run again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => tracing::warn!(run_id, error = format!("{e:#}"), "could not record the end of the run"),
        }
    }
    tracing::info!(
        run_id,
        command,
        month = end.month.as_deref().unwrap_or(""),
        outcome = end.outcome,
        accounts_billed = end.accounts_billed,
        billed = %crate::domain::money::format_money(crate::domain::money::from_fen(end.billed_fen)),
        suspended = end.suspended,
        millis = started.elapsed().as_millis() as u64,
        error = end.message.as_str(),
        "run finished"
    );
    result
}

/// SIGTERM and SIGINT, caught from the moment [`StopSignal::install`] runs: from then on they
/// no longer kill the process, they end the job in hand cleanly through [`StopSignal::wait`].
pub struct StopSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignal {
    pub fn install() -> anyhow::Result<StopSignal> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(StopSignal {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignal {})
    }

    /// Completes when a stop signal arrives.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

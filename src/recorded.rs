//! Records each job run in the database (`billrun runs list`) and logs one summary line for it.

use crate::domain::month::Month;
use crate::error::{exit_code, is_refused, Stopped, EXIT_BUSY};
use crate::jobs::run::RunSummary;
use crate::jobs::settle::SettleSummary;
use crate::jobs::Ctx;
use crate::store::{RunEnd, RunOutcome, Store};
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
    // A job that panics is a failed run, recorded as one, not a run left `running` forever.
    let job = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(job));
    let result = tokio::select! {
        r = job => r.unwrap_or_else(|payload| Err(crate::error::panicked(payload.as_ref()))),
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
            end.outcome = if done.did_something() {
                RunOutcome::Ok
            } else {
                RunOutcome::NothingToDo
            };
            end.month = done.month().or(month).map(|m| m.to_string());
            (end.accounts_billed, end.billed_fen) = done.billed();
            end.suspended = done.suspended();
        }
        Err(e) if e.is::<Stopped>() => {
            end.outcome = RunOutcome::Stopped;
            end.message = e.to_string();
        }
        Err(e) => {
            end.outcome = if is_refused(e) {
                RunOutcome::Refused
            } else if exit_code(e) == EXIT_BUSY {
                RunOutcome::Busy
            } else {
                RunOutcome::Failed
            };
            end.message = crate::error::describe(e);
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
    // Success at INFO, a run that must be retried or was refused at WARN, a failure at ERROR: a
    // failure looks like one to whatever watches the log's levels.
    let millis = started.elapsed().as_millis() as u64;
    let billed = crate::domain::money::format_money(crate::domain::money::from_fen(end.billed_fen));
    let month = end.month.as_deref().unwrap_or("");
    macro_rules! finished {
        ($level:ident) => {
            tracing::$level!(
                run_id,
                command,
                month,
                outcome = end.outcome.as_str(),
                accounts_billed = end.accounts_billed,
                billed = %billed,
                suspended = end.suspended,
                millis,
                error = end.message.as_str(),
                "run finished"
            )
        };
    }
    match end.outcome {
        RunOutcome::Ok | RunOutcome::NothingToDo => finished!(info),
        RunOutcome::Busy | RunOutcome::Stopped | RunOutcome::Refused => finished!(warn),
        RunOutcome::Running | RunOutcome::Failed => finished!(error),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::Catalog;
    use crate::store::sqlite::SqliteStore;

    /// A job that panics ends as an error (a bug, exit 1), and its run reads as failed with
    /// the panic's message: not `running` forever.
    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_job_is_recorded_as_a_failed_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::connect(&format!("sqlite://{}", dir.path().join("r.db").display()), true)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let ctx = Ctx {
            now: "2026-11-01T00:00:00Z".parse().unwrap(),
            tz: chrono_tz::Asia::Shanghai,
            catalog: Catalog::built_in(),
            progress: false,
            page_size: 10,
            settle_after: chrono::Duration::zero(),
        };
        let job = async {
            if ctx.page_size == 10 {
                panic!("an overflow (expected by this test)");
            }
            Ok(Vec::<String>::new())
        };
        let e = recorded(&store, &ctx, "enforce", None, job, std::future::pending())
            .await
            .unwrap_err();
        assert_eq!(exit_code(&e), crate::error::EXIT_BUG);
        assert!(e.to_string().contains("an overflow (expected by this test)"), "{e}");
        let runs = store.runs(1).await.unwrap();
        assert_eq!(runs[0].outcome, crate::store::RunOutcome::Failed);
        assert!(
            runs[0].message.contains("billrun panicked: an overflow"),
            "{}",
            runs[0].message
        );
        assert!(runs[0].ended_at.is_some());
    }
}

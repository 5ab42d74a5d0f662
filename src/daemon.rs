//! `billrun daemon`: a long-running worker. It sleeps until the next scheduled time in the
//! billing time zone, or until the earliest pending `suspend_at` if that comes sooner. Then it
//! does what `billrun run` does, and goes back to sleep.
//!
//! A stop signal (SIGTERM or SIGINT) ends it cleanly. A sleep is cut short. A run in hand is
//! abandoned: its open transaction rolls back, and pages already committed stay. The next run
//! finishes the work, and nobody is charged twice.

use crate::clock::Clock;
use crate::error::Stopped;
use crate::jobs::{run::run_due, Ctx};
use crate::recorded::recorded;
use crate::schedule::Schedule;
use crate::store::Store;
use std::future::Future;

pub async fn daemon<S: Store>(
    store: &S,
    base: &Ctx,
    clock: &Clock,
    schedule: &Schedule,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    tracing::info!(schedule = schedule.expression(), tz = %base.tz, "daemon started");
    loop {
        let now = clock.now();
        let scheduled = schedule.next_after(now, base.tz);
        let suspension = store.next_suspension().await?;
        let wake = match (scheduled, suspension) {
            (Some(a), Some(b)) => a.min(b.max(now)),
            (a, b) => a
                .or(b.map(|b| b.max(now)))
                .ok_or_else(|| anyhow::anyhow!("the schedule never fires again"))?,
        };
        let why = if Some(wake) == scheduled {
            "schedule"
        } else {
            "suspension due"
        };
        tracing::info!(wake = %base.local(wake), why, "sleeping");
        let pause = (wake - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut stop => {
                tracing::info!("stop signal: daemon stopped while sleeping");
                return Ok(());
            }
        }
        let ctx = Ctx {
            now: clock.now(),
            ..base.clone()
        };
        let result = recorded(store, &ctx, "run", None, run_due(store, &ctx), &mut stop).await;
        if result.as_ref().is_err_and(|e| e.is::<Stopped>()) {
            tracing::warn!("stop signal during a run: abandoned; the next run finishes it");
            return Ok(());
        }
        if let Err(e) = result {
            // The run is recorded as failed or busy; the daemon keeps going and tries again
            // at its next wake-up.
            tracing::error!(error = crate::error::describe(&e), "run failed");
        }
    }
}

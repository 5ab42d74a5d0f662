//! `billrun daemon`: a long-running worker. It sleeps until the next scheduled time in the
//! billing time zone, or until the earliest pending `suspend_at` if that comes sooner. Then it
//! does what `billrun run` does, delivers the webhooks that are due, and goes back to sleep.
//! With a webhooks file it also wakes when a delivery's retry is due, to send only that.
//!
//! With `--metrics-address` it serves the metrics on `/metrics` the whole time, asleep or
//! running, read from the database at each scrape; with `--push` it pushes them after each run.
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
use crate::webhooks::config::Webhooks;
use std::future::Future;

/// Where the daemon's decisions and metrics go, besides the database.
pub struct Outputs<'a> {
    pub hooks: Option<&'a Webhooks>,
    /// The Pushgateway's URL.
    pub push: Option<&'a str>,
    /// Where `/metrics` is served.
    pub metrics: Option<tokio::net::TcpListener>,
}

pub async fn daemon<S: Store>(
    store: &S,
    base: &Ctx,
    clock: &Clock,
    outputs: Outputs<'_>,
    schedule: &Schedule,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Outputs { hooks, push, metrics } = outputs;
    let Some(listener) = metrics else {
        return work(store, base, clock, hooks, push, schedule, stop).await;
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(address = %addr, "serving the metrics on /metrics");
    }
    let render = || async {
        // A catalog version imported while the daemon slept prices from now on.
        let ctx = Ctx {
            now: clock.now(),
            catalog: crate::jobs::catalog::kept(store, &base.catalog).await?,
            ..base.clone()
        };
        Ok(crate::reporting::metrics::render(
            &crate::jobs::metrics::gather(store, &ctx).await?,
        ))
    };
    tokio::select! {
        done = work(store, base, clock, hooks, push, schedule, stop) => done,
        never = crate::metrics_http::serve(listener, render) => match never {},
    }
}

/// The daemon's loop: sleep, run, deliver, push.
async fn work<S: Store>(
    store: &S,
    base: &Ctx,
    clock: &Clock,
    hooks: Option<&Webhooks>,
    push: Option<&str>,
    schedule: &Schedule,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    tracing::info!(schedule = schedule.expression(), tz = %base.tz, "daemon started");
    loop {
        let now = clock.now();
        let scheduled = schedule.next_after(now, base.tz);
        let suspension = store.next_suspension().await?;
        let delivery = match hooks {
            Some(h) => {
                let names: Vec<String> = h.endpoints.iter().map(|e| e.name.clone()).collect();
                store.next_delivery(&names).await?
            }
            None => None,
        };
        let wake = [scheduled, suspension.map(|b| b.max(now)), delivery.map(|d| d.max(now))]
            .into_iter()
            .flatten()
            .min()
            .ok_or_else(|| anyhow::anyhow!("the schedule never fires again"))?;
        let why = if Some(wake) == scheduled {
            "schedule"
        } else if Some(wake) == suspension.map(|b| b.max(now)) {
            "suspension due"
        } else {
            "webhook delivery due"
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
        if why == "webhook delivery due" {
            crate::jobs::webhooks::deliver_after(store, hooks, clock, ctx.currency()).await;
            continue;
        }
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
        crate::jobs::webhooks::deliver_after(store, hooks, clock, ctx.currency()).await;
        crate::commands::push_after(store, &ctx, clock, push).await;
    }
}

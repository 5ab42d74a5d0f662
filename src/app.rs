//! From a parsed command line to a finished job: reads the clock once, opens the store named by
//! the URL and hands the command to its function in `commands`. Nothing below this reads the
//! clock or the environment.

use crate::cli::{
    AccountsCommand, BillsCommand, CatalogCommand, Cli, Command, DeliveryState, ExportCommand, PacksCommand,
    RunsCommand, UsageCommand, WebhooksCommand,
};
use crate::clock::Clock;
use crate::commands;
use crate::error::input_error;
use crate::jobs::{self, Ctx};
use crate::output::Destination;
use crate::recorded::{recorded, StopSignal};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::webhooks::{DeliveryFilter, DeliveryStatus, Replay};
use crate::store::{redact_url, Store};
use crate::webhooks::config::Webhooks;
use std::process::ExitCode;

/// The whole program: parses the command line, starts the logs and the clock, runs the job,
/// and returns the exit code its outcome maps to (see `error`).
pub fn main() -> ExitCode {
    let parsed = <Cli as clap::CommandFactory>::command()
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.use_stderr() && json_logs_asked() => {
            return ExitCode::from(crate::error::report_usage(&e));
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                crate::error::EXIT_USAGE
            } else {
                crate::error::EXIT_OK
            });
        }
    };
    // `metrics` pushes when --push is on its command line; BILLRUN_PUSHGATEWAY alone only says
    // where the jobs push, and `metrics` then prints.
    let push_asked = matches.value_source("push") == Some(clap::parser::ValueSource::CommandLine);
    let format = cli.log_format;
    init_logs(format);
    // A panic is a bug: it is logged (in the log format, with where it happened) from
    // whichever thread it happens on, and the job that panicked ends as a failure.
    std::panic::set_hook(Box::new(|info| {
        let message = crate::error::panic_message(info.payload());
        if crate::error::is_closed_pipe_panic(&message) {
            return;
        }
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        tracing::error!(panic = %message, location, "billrun panicked: this is a bug");
    }));
    // The one place the system clock is chosen; everything below reads this clock, and every
    // command but the daemon reads it once.
    let clock = Clock::starting_at(cli.now);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let e = anyhow::Error::new(e).context("cannot start the async runtime");
            return ExitCode::from(crate::error::report(&e, format));
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(run(cli, clock, push_asked))
    }))
    .unwrap_or_else(|payload| Err(crate::error::panicked(payload.as_ref())));
    // A webhook attempt abandoned by a stop signal may still be waiting on its receiver in a
    // blocking thread: the process does not wait for it (its delivery stays pending).
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::from(crate::error::EXIT_OK),
        Err(e) => ExitCode::from(crate::error::report(&e, format)),
    }
}

/// Whether the logs are to be JSON, read from the raw command line and the environment: for a
/// command line that could not be parsed.
fn json_logs_asked() -> bool {
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let on_line = args.iter().enumerate().rev().find_map(|(i, a)| {
        if a == "--log-format" {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix("--log-format=").map(str::to_owned)
        }
    });
    on_line.or_else(|| std::env::var("BILLRUN_LOG_FORMAT").ok()).as_deref() == Some("json")
}

/// Logs go to standard error, as text or JSON. Colours only on a terminal, and never when
/// `NO_COLOR` is set (https://no-color.org): escape codes in a file, syslog or the journal are
/// noise.
fn init_logs(format: crate::cli::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{filter_fn, Targets};
    use tracing_subscriber::prelude::*;
    // `BILLRUN_LOG`: a level, and levels per target (`info,billrun=debug`); the default if unset
    // or not understood.
    let levels: Targets = std::env::var("BILLRUN_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| "info,sqlx=warn".parse().expect("valid levels"));
    // The HTTP client's own lines name whole URLs, query tokens included, at debug and trace:
    // at any BILLRUN_LOG, only its warnings and errors are let through. billrun's own lines
    // about webhooks and pushes leave the query out.
    let quiet = filter_fn(|meta| {
        *meta.level() <= tracing::Level::WARN || !["ureq", "native_tls"].iter().any(|t| meta.target().starts_with(t))
    });
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry();
    match format {
        crate::cli::LogFormat::Text => registry.with(logs.with_filter(levels).with_filter(quiet)).init(),
        crate::cli::LogFormat::Json => registry.with(logs.json().with_filter(levels).with_filter(quiet)).init(),
    }
}

/// Brings the schema up to date for a command that writes, and records the endpoints of the
/// webhooks file before the command records anything they want; checks the schema, changing
/// nothing, for a command that only reads.
async fn prepare<S: Store>(
    store: &S,
    writes: bool,
    hooks: Option<&Webhooks>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    if !writes {
        return Ok(store.check_schema().await?);
    }
    store.migrate().await.map_err(|e| {
        let e = anyhow::Error::from(e);
        if crate::error::is_permission_denied(&e) {
            e.context(
                "this command writes, and the database role it connects as may not: commands that write apply \
                 billrun's migrations and change its tables, so they need a role that may (the one `billrun migrate` \
                 runs as); lists, exports, reports and verify work with a role that may only read",
            )
        } else {
            e
        }
    })?;
    if let Some(hooks) = hooks {
        store.register_endpoints(&jobs::webhooks::records(hooks), now).await?;
    }
    Ok(())
}

/// What a command runs with, besides its store.
struct Job<'a> {
    ctx: &'a jobs::Ctx,
    clock: &'a Clock,
    hooks: Option<&'a Webhooks>,
    /// The Pushgateway's URL, if the metrics are pushed.
    push: Option<&'a str>,
    /// `--push` was on the command line (not only in the environment).
    push_asked: bool,
    /// The command may write to the database.
    writes: bool,
    /// The catalog file given (`None`: the built-in catalog).
    catalog_file: Option<&'a str>,
}

pub async fn run(cli: Cli, clock: Clock, push_asked: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let ctx = Ctx {
        now: clock.start(),
        tz: cli.tz,
        catalog: commands::load_catalog(cli.catalog.as_deref())?,
        progress: std::io::stderr().is_terminal(),
        page_size: cli.page_size as usize,
        settle_after: match &cli.command {
            Command::Run { due } | Command::Daemon { due, .. } => due.settle_after,
            _ => chrono::Duration::zero(),
        },
    };
    match &cli.command {
        Command::Demo { dir } => return crate::demo::run(&ctx, dir).await,
        Command::Completions { shell } => {
            // Written whole, then through the standard output every command writes through: a
            // reader that stops early (`| head`) ends it quietly, as for every other command.
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "billrun", &mut script);
            let mut out = Destination::stdout()?;
            std::io::Write::write_all(&mut out, &script)?;
            return out.finish();
        }
        Command::Man { out } => return commands::write_man_pages(out.as_deref()),
        Command::Schedule { schedule, count } => return commands::print_schedule(&ctx, schedule, *count),
        Command::Gen {
            accounts,
            rows,
            month,
            seed,
            out,
            layout,
        } => {
            let s = crate::gen::generate(out, *accounts, *rows, *month, *seed, ctx.tz, *layout)
                .map_err(|e| input_error(format!("{e:#}")))?;
            println!(
                "wrote {} accounts and {} usage rows ({} calls) for {month} to {}",
                s.accounts,
                s.rows,
                s.calls,
                out.display()
            );
            return Ok(());
        }
        _ => {}
    }
    // Jobs that may run long catch SIGTERM/SIGINT from the start, to stop cleanly; the others
    // keep the default (the process ends, and their single transaction rolls back).
    let stop = match cli.command {
        Command::Settle { .. } | Command::Enforce | Command::Run { .. } | Command::Daemon { .. } => {
            Some(StopSignal::install()?)
        }
        _ => None,
    };
    let hooks = match &cli.webhooks {
        Some(path) => Some(Webhooks::load(path).map_err(input_error)?),
        None => None,
    };
    let url = cli.database.as_str();
    let writes = cli.command.writes();
    let catalog_file = cli.catalog.as_ref().map(|p| p.display().to_string());
    let job = Job {
        ctx: &ctx,
        clock: &clock,
        hooks: hooks.as_ref(),
        push: cli.push.as_deref(),
        push_asked,
        writes,
        catalog_file: catalog_file.as_deref(),
    };
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, writes).await?;
        prepare(&store, writes, hooks.as_ref(), ctx.now).await?;
        let done = run_on(&store, &job, stop, cli.command).await;
        store.close().await;
        done
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url).await?;
        prepare(&store, writes, hooks.as_ref(), ctx.now).await?;
        let done = run_on(&store, &job, stop, cli.command).await;
        store.close().await;
        done
    } else {
        Err(input_error(format!(
            "unsupported database URL '{}': use sqlite://FILE or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact_url(url)
        )))
    }
}

/// Runs a command on an open store.
async fn run_on<S: Store>(store: &S, job: &Job<'_>, stop: Option<StopSignal>, command: Command) -> anyhow::Result<()> {
    // The prices are the database's once it keeps a catalog (jobs::catalog). `catalog import`
    // brings its own, and stores nothing else first.
    let importing = matches!(command, Command::Catalog(CatalogCommand::Import { .. }));
    let ctx = &if importing {
        job.ctx.clone()
    } else {
        let given = jobs::catalog::Given {
            file: job.catalog_file,
            catalog: &job.ctx.catalog,
        };
        let catalog = jobs::catalog::resolve(store, &given, job.writes, job.ctx.now).await?;
        jobs::Ctx {
            catalog,
            ..job.ctx.clone()
        }
    };
    let job = &Job { ctx, ..*job };
    let moves_money = matches!(
        command,
        Command::Accounts(AccountsCommand::Import { .. })
            | Command::Recharge { .. }
            | Command::Credit { .. }
            | Command::Settle { dry_run: false, .. }
            | Command::Run { .. }
            | Command::Daemon { .. }
    );
    commands::check_currency(store, ctx, moves_money).await?;
    // Jobs whose end changes what the metrics say push them when they end, failed or not.
    let pushes = matches!(
        command,
        Command::Run { .. }
            | Command::Settle { dry_run: false, .. }
            | Command::Enforce
            | Command::Webhooks(WebhooksCommand::Deliver)
    );
    let done = execute(store, job, stop, command).await;
    if pushes {
        commands::push_after(store, ctx, job.clock, job.push).await;
    }
    done
}

/// The file an `--out` names: none for standard output, which `-` names too, as it does for
/// most command-line tools.
fn to_file(out: &Option<std::path::PathBuf>) -> Option<&std::path::Path> {
    out.as_deref().filter(|p| p.as_os_str() != "-")
}

/// Sends the webhooks due after a command's work, until a stop signal: SIGTERM or SIGINT then
/// ends the command within moments, whatever a receiver does, and what was not sent stays
/// pending (its claim runs out, and the next run sends it, with the same webhook-id).
async fn deliver_until_stopped<S: Store>(store: &S, hooks: Option<&Webhooks>, clock: &Clock, currency: &str) {
    if hooks.is_none() {
        return;
    }
    let stop = StopSignal::install().ok();
    tokio::select! {
        () = jobs::webhooks::deliver_after(store, hooks, clock, currency) => {}
        () = async move {
            match stop {
                Some(s) => s.wait().await,
                None => std::future::pending().await,
            }
        } => {
            tracing::warn!("stop signal: webhook delivery abandoned; what was not sent is sent by the next run");
        }
    }
}

/// Hands the command to its function.
async fn execute<S: Store>(store: &S, job: &Job<'_>, stop: Option<StopSignal>, command: Command) -> anyhow::Result<()> {
    let Job {
        ctx,
        clock,
        hooks,
        push,
        ..
    } = *job;
    let stop_signal = move || async move {
        match stop {
            Some(s) => s.wait().await,
            None => std::future::pending().await,
        }
    };
    match command {
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Accounts(AccountsCommand::Import { file, assume_tz }) => {
            commands::accounts_import(store, ctx, &file, assume_tz).await
        }
        Command::Accounts(AccountsCommand::Activate { id }) => commands::accounts_activate(store, ctx, &id).await,
        Command::Accounts(AccountsCommand::List { format }) => commands::list_accounts(store, ctx, format).await,
        Command::Recharge { id, amount, reference } => {
            commands::recharge(store, ctx, &id, &amount, reference.as_deref()).await?;
            deliver_until_stopped(store, hooks, clock, ctx.currency()).await;
            Ok(())
        }
        Command::Credit {
            id,
            month,
            amount,
            api,
            all,
            reason,
            reference,
            by,
        } => {
            let amount = match (amount, api, all) {
                (Some(amount), _, _) => jobs::credit::Ask::Amount(amount),
                (None, Some(api), _) => jobs::credit::Ask::Line(api),
                (None, None, _) => jobs::credit::Ask::Rest,
            };
            let ask = jobs::credit::CreditAsk {
                account_id: id,
                month,
                amount,
                reason,
                reference,
                by,
            };
            commands::credit(store, ctx, &ask).await?;
            deliver_until_stopped(store, hooks, clock, ctx.currency()).await;
            Ok(())
        }
        Command::Usage(UsageCommand::Import {
            file,
            format,
            expect_rows,
            expect_sha256,
            allow_unopened,
            allow_repeats,
            assume_tz,
            replaces,
            reason,
            by,
        }) => {
            let options = crate::jobs::usage::ImportOptions {
                expect_rows,
                expect_sha256,
                allow_unopened,
                allow_repeats,
                assume_tz,
                replaces: replaces.map(|import_id| crate::jobs::usage::RetractAsk {
                    import_id,
                    reason: reason.unwrap_or_else(|| format!("replaced by {}", file.display())),
                    by,
                }),
            };
            commands::usage_import(store, ctx, &file, format.chosen(), options).await
        }
        Command::Usage(UsageCommand::Retract { import_id, reason, by }) => {
            let ask = crate::jobs::usage::RetractAsk { import_id, reason, by };
            commands::usage_retract(store, ctx, &ask).await
        }
        Command::Usage(UsageCommand::Imports { format, limit }) => {
            commands::usage_imports(store, ctx, format, limit).await
        }
        Command::Packs(PacksCommand::Import { file }) => commands::packs_import(store, ctx, &file).await,
        Command::Packs(PacksCommand::List { format }) => commands::list_packs(store, ctx, format).await,
        Command::Catalog(CatalogCommand::Import { file }) => commands::catalog_import(store, ctx, &file).await,
        Command::Catalog(CatalogCommand::List { format }) => commands::catalog_list(store, ctx, format).await,
        Command::Catalog(CatalogCommand::Show { version }) => commands::catalog_show(store, &version).await,
        Command::Grant { month } => commands::grant(store, ctx, month).await,
        Command::Settle {
            month,
            dry_run: true,
            shard,
        } => {
            let s = jobs::settle::settle(store, ctx, month, shard, true).await?;
            commands::print_dry_run(&s, ctx.currency());
            Ok(())
        }
        Command::Settle {
            month,
            dry_run: false,
            shard,
        } => {
            let job = jobs::settle::settle(store, ctx, month, shard, false);
            let command = if shard.is_all() {
                "settle".to_owned()
            } else {
                format!("settle --shard {shard}")
            };
            let s = recorded(store, ctx, &command, Some(month), job, stop_signal()).await?;
            commands::print_settled(&s, ctx.currency());
            deliver_until_stopped(store, hooks, clock, ctx.currency()).await;
            Ok(())
        }
        Command::Enforce => {
            let ids = recorded(store, ctx, "enforce", None, jobs::enforce(store, ctx), stop_signal()).await?;
            commands::print_suspended(&ids);
            deliver_until_stopped(store, hooks, clock, ctx.currency()).await;
            Ok(())
        }
        Command::Run { .. } => {
            let r = recorded(store, ctx, "run", None, jobs::run::run_due(store, ctx), stop_signal()).await?;
            commands::print_run(&r, ctx);
            deliver_until_stopped(store, hooks, clock, ctx.currency()).await;
            Ok(())
        }
        Command::Daemon {
            schedule,
            metrics_address,
            ..
        } => {
            let schedule = commands::parse_schedule(ctx, &schedule)?;
            let outputs = crate::daemon::Outputs {
                hooks,
                push,
                metrics: match metrics_address {
                    Some(addr) => Some(
                        tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(|e| input_error(format!("cannot serve the metrics on {addr}: {e}")))?,
                    ),
                    None => None,
                },
            };
            crate::daemon::daemon(store, ctx, clock, outputs, &schedule, stop_signal()).await
        }
        Command::Webhooks(WebhooksCommand::Deliver) => commands::webhooks_deliver(store, ctx, clock, hooks).await,
        Command::Webhooks(WebhooksCommand::List {
            endpoint,
            status,
            limit,
            format,
        }) => {
            let filter = DeliveryFilter {
                endpoint,
                status: status.map(|s| match s {
                    DeliveryState::Pending => DeliveryStatus::Pending,
                    DeliveryState::Delivered => DeliveryStatus::Delivered,
                    DeliveryState::Failed => DeliveryStatus::Failed,
                }),
                limit,
            };
            commands::webhooks_list(store, ctx, &filter, format).await
        }
        Command::Webhooks(WebhooksCommand::Replay { endpoint, id, since }) => {
            let which = match (id, since) {
                (Some(id), _) => Replay::One(crate::webhooks::payload::parse_message_id(&id).ok_or_else(|| {
                    input_error(format!(
                        "--id '{id}' is not a webhook-id billrun sends (bill_… or event_…)"
                    ))
                })?),
                (None, Some(t)) => Replay::Since(t),
                (None, None) => unreachable!("clap requires --id or --since"),
            };
            commands::webhooks_replay(store, ctx, clock, hooks, &endpoint, which).await
        }
        Command::Webhooks(WebhooksCommand::Enable { endpoint }) => commands::webhooks_enable(store, &endpoint).await,
        Command::Webhooks(WebhooksCommand::Remove { endpoint }) => {
            if hooks.is_some_and(|h| h.endpoint(&endpoint).is_some()) {
                return Err(input_error(format!(
                    "endpoint '{endpoint}' is still in the webhooks file: take it out first, or it is recorded again"
                )));
            }
            commands::webhooks_remove(store, &endpoint).await
        }
        Command::Runs(RunsCommand::List { format, limit }) => commands::runs_list(store, ctx, format, limit).await,
        Command::Archive { before, dir } => commands::archive(store, ctx, before, &dir).await,
        Command::RestoreUsage { dir, import } => commands::restore_usage(store, &dir, import).await,
        Command::Verify { month, archive } => commands::verify(store, ctx, month, archive.as_deref()).await,
        Command::Bills(BillsCommand::Show { id, month }) => commands::show_bill(store, ctx, &id, month).await,
        Command::Export(ExportCommand::Bills { month, out, excel }) => {
            commands::export_bills(store, ctx, month, to_file(&out), excel).await
        }
        Command::Export(ExportCommand::Summary { month, out, excel }) => {
            commands::export_summary(store, ctx, month, to_file(&out), excel).await
        }
        Command::Report { month, out } => commands::report(store, ctx, month, to_file(&out)).await,
        Command::Events { format } => commands::events(store, ctx, format).await,
        Command::Estimate { id, month, format, out } => {
            commands::estimate(store, ctx, id.as_deref(), month, format, to_file(&out)).await
        }
        Command::Metrics { out } => {
            let push = push.filter(|_| job.push_asked);
            commands::metrics(store, ctx, to_file(&out), push).await
        }
        Command::Schedule { .. }
        | Command::Gen { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Demo { .. } => unreachable!("handled before the store is opened"),
    }
}

//! The command line: the contract finance scripts and operators call.
//!
//! Global options come before or after the subcommand and each may also come from the
//! environment, the habit of cron and container deployments. The clock (`--now`) is read here
//! and nowhere else. Every command's first doc paragraph is its one-line summary (`-h`); the
//! paragraphs after it are its long help (`--help`), which the man page and the shell
//! completions are generated from too.

use crate::domain::month::Month;
use crate::domain::shard::Shard;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// billrun's version and the commit it was built from (`unknown` outside a git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BILLRUN_COMMIT"), ")");

const EXIT_CODES: &str = "Exit codes: 0 success or nothing to do; 1 unexpected failure (a bug); 2 command-line \
usage; 3 bad input or configuration, fix it (do not retry as is); 4 busy, or stopped by a signal (retry later); \
5 database (or Pushgateway) unavailable (retry later); 6 verify found a breach of the books.";

#[derive(Parser, Debug)]
#[command(
    name = "billrun",
    version = VERSION,
    about = "Monthly settlement of pay-per-call API usage: free packs, tiered prices, bills, debits and arrears.",
    long_about = "Monthly settlement of pay-per-call API usage: free packs, tiered prices, bills, debits and \
                  arrears.\n\nbillrun grants each month's free packs, totals the calls of the month before, prices \
                  them, writes one bill per account, debits it once, and flags accounts that went negative: their \
                  service stops 24 hours later unless they recharge. `billrun run` does whatever is due at --now; \
                  cron, systemd or a Kubernetes CronJob call it.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Database URL: sqlite://FILE (the default) or postgres://USER:PASSWORD@HOST:PORT/DATABASE.
    ///
    /// A SQLite file is created by the first command that writes. Commands that only read
    /// (lists, exports, reports, verify) never change the schema; they refuse a database whose
    /// schema is older than this billrun. The password is never shown in messages or logs.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://billrun.db",
        value_name = "URL",
        hide_env_values = true,
        global = true,
        help_heading = "Global options"
    )]
    pub database: String,

    /// The clock, as RFC 3339 with an offset (default: the system time).
    ///
    /// Nothing else in billrun reads the clock, so any month can be re-run or tested as of any
    /// moment, e.g. --now 2026-11-01T02:00:00+08:00.
    #[arg(long, env = "BILLRUN_NOW", hide_env_values = true, value_name = "RFC3339", value_parser = parse_now, global = true,
          help_heading = "Global options")]
    pub now: Option<DateTime<Utc>>,

    /// Billing time zone (IANA name): a month runs from the 1st 00:00 to the next 1st here.
    ///
    /// A month that has bills keeps the zone it was billed in: settling it in another is
    /// refused.
    #[arg(long, env = "BILLRUN_TZ", hide_env_values = true, default_value = "Asia/Shanghai", value_name = "ZONE", value_parser = parse_tz,
          global = true, help_heading = "Global options")]
    pub tz: Tz,

    /// Price catalog (TOML file); default: the built-in one, with the seed's prices. Once the
    /// database keeps a catalog (the first command that writes stores the one it runs with),
    /// commands price from it, and a file that disagrees with it is refused.
    ///
    /// A catalog has one currency, which must be the one the database keeps its balances in.
    #[arg(
        long,
        env = "BILLRUN_CATALOG",
        hide_env_values = true,
        value_name = "FILE",
        global = true,
        help_heading = "Global options"
    )]
    pub catalog: Option<PathBuf>,

    /// Accounts settled per transaction (1 to 100000); the result does not depend on it.
    #[arg(long, env = "BILLRUN_PAGE_SIZE", hide_env_values = true, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100_000), global = true, help_heading = "Global options")]
    pub page_size: u32,

    /// Log format on standard error: `text` (coloured on a terminal) or `json`.
    ///
    /// The level comes from BILLRUN_LOG (default `info`); NO_COLOR turns colours off.
    #[arg(long, env = "BILLRUN_LOG_FORMAT", hide_env_values = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT",
          global = true, help_heading = "Global options")]
    pub log_format: LogFormat,

    /// Webhooks file (TOML): the receivers told of bills, arrears, suspensions and restorations.
    ///
    /// Commands that write record its endpoints (never their secrets); from then on every bill
    /// and event of the types an endpoint wants is queued for it in the same transaction.
    /// `run`, `enforce`, the daemon and `webhooks deliver` send what is due. See
    /// docs/webhooks.md.
    #[arg(
        long,
        env = "BILLRUN_WEBHOOKS",
        hide_env_values = true,
        value_name = "FILE",
        global = true,
        help_heading = "Global options"
    )]
    pub webhooks: Option<PathBuf>,

    /// Pushgateway URL: `metrics` pushes the metrics there, and `run`, `settle`, `enforce` and
    /// `webhooks deliver` push them when they end, failed or not (e.g.
    /// http://pushgateway:9091; the group is job="billrun" unless the URL names one).
    #[arg(
        long,
        env = "BILLRUN_PUSHGATEWAY",
        hide_env_values = true,
        value_name = "URL",
        global = true,
        help_heading = "Global options"
    )]
    pub push: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply the database migrations.
    ///
    /// Commands that write apply them too; commands that only read never do. Run it with a role
    /// that may change the schema (the Kubernetes init container does).
    Migrate,
    /// Import, open and list accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Credit an account; a suspended service comes back once the balance is 0 or more.
    ///
    /// With --reference, the recharge is one payment: the same reference, account and amount
    /// again (a retried payment callback) is applied once; the reference with another account
    /// or amount is refused as a conflict (exit 3).
    Recharge {
        /// Account id.
        #[arg(value_name = "ACCOUNT")]
        id: String,
        /// Amount, with at most two decimals (e.g. 100.50), at most 10000000000000.00.
        #[arg(allow_hyphen_values = true, value_name = "AMOUNT")]
        amount: String,
        /// The payment's own id (an idempotency key): 1 to 128 visible characters.
        #[arg(long, value_name = "KEY")]
        reference: Option<String>,
    },
    /// Credit a settled bill: an outage, a disputed charge, a goodwill waiver.
    ///
    /// Writes a new revision of the account's bill for --month, of kind `credit`: the same lines,
    /// and the credit taken off what the bill asks for. The balance goes up by the amount (a
    /// suspended service comes back once it is 0 or more), `bill.issued` announces the revision,
    /// and exports, summaries and `bills show` list it. Later adjustments for late usage keep
    /// the credit. A credit is never more than the bill still asks for. The --reference names
    /// the credit: the same command again (a retry) credits once; the reference on another
    /// account, month or amount is refused as a conflict (exit 3).
    #[command(group(clap::ArgGroup::new("how_much").required(true).args(["amount", "api", "all"])))]
    Credit {
        /// Account id.
        #[arg(value_name = "ACCOUNT")]
        id: String,
        /// The month of the bill, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Credit this amount, with at most two decimals (e.g. 10.00).
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        amount: Option<String>,
        /// Credit one line of the bill whole: its exact amount rounded to the fen as the bill's
        /// total is (at most what the bill still asks for).
        #[arg(long, value_name = "API")]
        api: Option<String>,
        /// Credit everything the bill still asks for (waive it).
        #[arg(long)]
        all: bool,
        /// Why: shown on the bill, the exports and to support.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// The credit's own id (an idempotency key, e.g. the support ticket): 1 to 128 visible
        /// characters, unique across accounts.
        #[arg(long, value_name = "KEY")]
        reference: String,
        /// Who issued it (recorded with the credit).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Import usage files and list the imports.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Import and list free and prepaid packs.
    #[command(subcommand)]
    Packs(PacksCommand),
    /// The price catalog the database keeps: import a new version, list or show them.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Grant a month's free packs to every open account that lacks them.
    Grant {
        /// The month, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
    },
    /// Settle a month: bill every account with usage, debit it, flag those that went negative.
    ///
    /// Grants missing free packs first. Run again after late usage, it issues adjustments: new
    /// revisions of the bills whose usage changed, debiting or crediting the difference. Usage
    /// imported while it runs is billed before the month is recorded as settled. Refuses a
    /// month that has not ended in --tz, and a month billed in another zone.
    Settle {
        /// The month, as YYYY-MM. It must have ended in the billing time zone.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Print the bills settling would write, their debits and who would go into arrears;
        /// write no bill, debit or event (the month's usage totals are built for --tz if they
        /// were kept for another zone: they are derived from the usage rows).
        #[arg(long)]
        dry_run: bool,
        /// Settle only shard K of N (K from 0, as JOB_COMPLETION_INDEX counts).
        ///
        /// An account's shard is a stable hash of its id. The month counts as settled once
        /// every shard of the split is done.
        #[arg(long, value_name = "K/N", value_parser = parse_shard, default_value = "0/1")]
        shard: Shard,
    },
    /// Suspend accounts whose suspend_at has passed while their balance is still negative.
    Enforce,
    /// Do everything that is due at --now, and nothing else: what cron and CronJobs call.
    ///
    /// Grants this month's free packs; settles last month if it is not settled yet (once
    /// --settle-after has passed since it ended; with a warning after the 3rd); settles again
    /// every month usage was imported for after it was settled; enforces suspensions whose
    /// time has come; records this month's pack alerts once usage has been imported since the
    /// last check.
    Run {
        #[command(flatten)]
        due: Due,
    },
    /// Keep running: sleep until the schedule (or the next suspend_at), then do what `run` does.
    ///
    /// Stops cleanly on SIGTERM or SIGINT: a sleep is cut short; a run in hand is abandoned,
    /// its open transaction rolled back, and the next run finishes it.
    Daemon {
        /// Cron expression in the billing time zone: 5 fields (minute hour day-of-month month
        /// day-of-week) or 6 with seconds first, or @daily, @monthly….
        #[arg(long, env = "BILLRUN_SCHEDULE", hide_env_values = true, value_name = "EXPR", default_value = crate::schedule::DEFAULT)]
        schedule: String,
        /// Serve the metrics on http://ADDR/metrics for Prometheus to scrape, e.g. 0.0.0.0:9464.
        #[arg(long, env = "BILLRUN_METRICS_ADDRESS", hide_env_values = true, value_name = "ADDR")]
        metrics_address: Option<std::net::SocketAddr>,
        #[command(flatten)]
        due: Due,
    },
    /// Print a schedule's next wake-up times after --now, to check it before deploying.
    ///
    /// A field out of range, or a schedule that never fires (February 30th), is refused.
    Schedule {
        /// Cron expression, as for `daemon --schedule`.
        #[arg(long, env = "BILLRUN_SCHEDULE", hide_env_values = true, value_name = "EXPR", default_value = crate::schedule::DEFAULT)]
        schedule: String,
        /// How many wake-up times to print.
        #[arg(long, default_value_t = 5, value_name = "N")]
        count: usize,
    },
    /// Move the raw usage of settled months out of the database, into files.
    ///
    /// Every usage import whose rows all fall in months before --before, each of them settled
    /// with nothing waiting for the next run, is written to DIR as three files: its content as
    /// the meter sent it (usage-000042.csv.zst, a zstd stream: `zstd -d` reads it), its totals
    /// per month, account and API (usage-000042.totals.csv) and a manifest (SHA-256, rows,
    /// calls, how it reads back). Then its content leaves the database; bills, lines, ledger,
    /// totals and events stay, and `verify` checks the month against what was recorded. A
    /// month not settled, settled in another zone than the month's totals, or with late usage
    /// not yet billed, is refused before anything is written (exit 3); an import changed while
    /// it was being archived is left as it was (exit 4). Each import is archived whole or not at
    /// all: killed, run it again.
    /// Keep DIR as you keep backups; `billrun restore-usage --dir DIR` brings it back.
    Archive {
        /// Archive the usage of months before this one (YYYY-MM).
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        before: Month,
        /// The directory to write to (made if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Bring archived usage back into the database, byte for byte.
    ///
    /// Reads each archived import's files in DIR (as `billrun archive` wrote them), checks them
    /// against the SHA-256 the database recorded and the content the import recorded, and
    /// writes its content back, one transaction per import. Imports already in the database
    /// are left alone; an archived import whose files are missing or damaged is listed and
    /// nothing of it written, and the command exits 3 once the others are back.
    RestoreUsage {
        /// The archive directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Only this import (`billrun usage imports` lists them).
        #[arg(long, value_name = "ID")]
        import: Option<i64>,
    },
    /// Check the books and name every breach; exit 6 if there is any.
    ///
    /// Balances against ledgers, one original bill per account and month, every bill debited
    /// once, each bill's arithmetic, every usage row on exactly one current bill, every row's
    /// import recorded, pack remainders.
    Verify {
        /// Check only this month's bills and usage (YYYY-MM); balances and packs are always
        /// checked whole.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Option<Month>,
        /// Read the usage of archived imports back from the archive in DIR (as `billrun
        /// archive` wrote it) and check it as if it were in the database. Without it, a month
        /// whose usage is archived is checked whole: its totals against the calls its imports
        /// had when archived.
        #[arg(long, value_name = "DIR")]
        archive: Option<PathBuf>,
    },
    /// What accounts have used of a month not settled yet, and what it would bill.
    ///
    /// Per API: calls so far, free and prepaid calls used and left (per pack), billable calls,
    /// the tier reached and where the next begins, the charge so far at the month's prices,
    /// and the whole month at the pace so far (each API's calls scaled from the part of the
    /// month elapsed to the whole month, priced the same way). Priced by the settle's own
    /// rule: once the month has ended, the figure so far is the bill. Writes nothing.
    Estimate {
        /// One account, explained (or one JSON object, or its CSV rows); without it, every
        /// account with usage so far, one row per account and API (or one JSON object each).
        #[arg(value_name = "ACCOUNT")]
        id: Option<String>,
        /// The month, as YYYY-MM (default: the month containing --now in --tz). It must have
        /// begun and have no bills yet.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Option<Month>,
        /// Output format: `table` explains one account, or lists every account's rows.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
        /// Output file (default: standard output); a regular file is written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show bills, explained as support would.
    #[command(subcommand)]
    Bills(BillsCommand),
    /// List the recorded runs of settle, enforce, run and the daemon.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Export a settled month for finance, as CSV.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Write a settled month's report for the finance lead: one self-contained HTML page.
    ///
    /// Revenue by API, billable calls by tier, the month against the months before it, the
    /// largest bills and the accounts in arrears, charts as inline SVG; nothing fetched from the
    /// network.
    Report {
        /// The month, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output); a regular file is written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the metrics an on-call engineer alerts on, in Prometheus' text format.
    ///
    /// Read from the database at --now, so every replica reports the same: the last success,
    /// last run and duration of each command, months ended but not settled, accounts by status,
    /// overdue suspensions, the latest settled month's bills and amount, and webhook deliveries.
    /// With --out the file is replaced whole, as node_exporter's textfile collector needs; with
    /// --push they go to a Pushgateway instead of standard output.
    Metrics {
        /// Output file (default: standard output), e.g. a `.prom` file in node_exporter's
        /// textfile directory; written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Deliver, list and replay webhooks (needs --webhooks to send).
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// List arrears notices, suspensions, restorations and pack alerts, oldest first.
    Events {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
    },
    /// Write synthetic accounts.csv and usage.csv for a month, for benchmarks and load tests.
    ///
    /// Deterministic for a seed: most accounts small, a few in every higher tier, 5% opening
    /// mid-month, timestamps across the month, rows in time order with accounts interleaved
    /// unless --layout grouped.
    Gen {
        /// How many accounts.
        #[arg(long, value_name = "N")]
        accounts: u64,
        /// Usage rows in all (at least one per account).
        #[arg(long, value_name = "N")]
        rows: u64,
        /// The month the usage falls in, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// The seed: the same seed writes the same files.
        #[arg(long, default_value_t = 1, value_name = "N")]
        seed: u64,
        /// Directory to write accounts.csv and usage.csv into (created if missing).
        #[arg(long, default_value = "gen", value_name = "DIR")]
        out: PathBuf,
        /// The order of the usage rows: `interleaved` (time order, accounts mixed, as a meter
        /// logs them) or `grouped` (each account's rows together).
        #[arg(long, value_enum, default_value_t = crate::gen::Layout::Interleaved, value_name = "LAYOUT")]
        layout: crate::gen::Layout,
    },
    /// Settle a demo month from the built-in fixtures and print its bills, CSV and report.
    ///
    /// Writes into DIR, which must be empty or a demo directory from before: demo.db, the
    /// exports, the report and the input files it used (demo-*.csv). Its clock is fixed at
    /// 2026-11-01 02:00 Asia/Shanghai.
    Demo {
        /// Directory for the demo database and files.
        #[arg(long, default_value = "billrun-demo", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print a shell's completion script for billrun.
    ///
    /// For example: billrun completions bash > /etc/bash_completion.d/billrun
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print billrun's man page (roff), or write one page per command into a directory.
    ///
    /// For example: billrun man | man -l -
    Man {
        /// Directory to write billrun.1 and a page per command into.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum WebhooksCommand {
    /// Send every delivery due at --now to the endpoints of --webhooks, then stop.
    ///
    /// A failed attempt is retried on the Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 10 h) by later runs; after the eighth attempt the delivery is failed. Exits 0
    /// when everything due was attempted, whatever the receivers answered: the log and the
    /// metrics tell what failed.
    Deliver,
    /// List deliveries, newest first: pending, delivered and failed, with attempts, the last
    /// status and error.
    List {
        /// Only this endpoint's.
        #[arg(long, value_name = "NAME")]
        endpoint: Option<String>,
        /// Only deliveries with this status.
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<DeliveryState>,
        /// At most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: u32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
    },
    /// Send again, to one endpoint, one message (by its webhook-id) or everything since a time.
    ///
    /// The deliveries get a whole new schedule and keep their webhook-id, so a receiver that
    /// already had one recognises it. Messages recorded before the endpoint was configured are
    /// sent too. With --webhooks they are sent at once; otherwise by the next deliverer.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "since"]))]
    Replay {
        /// The endpoint's name.
        #[arg(long, value_name = "NAME")]
        endpoint: String,
        /// A message's webhook-id, e.g. bill_2026-10-acct-1-r1 or event_42.
        #[arg(long, value_name = "WEBHOOK_ID")]
        id: Option<String>,
        /// Every message of the endpoint's types recorded at or after this time (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_now)]
        since: Option<DateTime<Utc>>,
    },
    /// Turn an endpoint disabled by a 410 Gone back on; its waiting deliveries are sent again.
    Enable {
        /// The endpoint's name.
        #[arg(value_name = "NAME")]
        endpoint: String,
    },
    /// Forget an endpoint taken out of the webhooks file: nothing more is queued for it, and
    /// its pending deliveries are dropped (those delivered or failed stay listed).
    ///
    /// Until then, an endpoint that is no longer in the file keeps being queued for, and its
    /// deliveries wait (the metrics show them).
    Remove {
        /// The endpoint's name.
        #[arg(value_name = "NAME")]
        endpoint: String,
    },
}

/// A delivery's status, for `webhooks list --status`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

/// When `run` and the daemon settle last month.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Due {
    /// How long after a month ends to wait before settling it, e.g. 2h, 6h or 1d (0: at once).
    ///
    /// Leaves the meters time to deliver the month's last usage, so that the month's first
    /// settlement has it: with an hourly schedule the month is first settled at 02:00 on the
    /// 1st. Usage that arrives later is billed anyway, by the next run, as adjustments.
    #[arg(long, env = "BILLRUN_SETTLE_AFTER", hide_env_values = true, default_value = "2h", value_name = "DURATION", value_parser = parse_duration)]
    pub settle_after: chrono::Duration,
}

impl Command {
    /// Whether the command may write to the database. Only those apply migrations; the others
    /// (lists, exports, reports, verify) run with a role that may only read, and refuse a
    /// schema older than the binary.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Command::Accounts(AccountsCommand::List { .. })
                | Command::Packs(PacksCommand::List { .. })
                | Command::Catalog(CatalogCommand::List { .. } | CatalogCommand::Show { .. })
                | Command::Runs(_)
                | Command::Verify { .. }
                | Command::Bills(_)
                | Command::Export(_)
                | Command::Report { .. }
                | Command::Metrics { .. }
                | Command::Events { .. }
                | Command::Estimate { .. }
                | Command::Usage(UsageCommand::Imports { .. })
                | Command::Webhooks(WebhooksCommand::List { .. })
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Import accounts and their opening balances from CSV, all rows or none.
    ///
    /// Columns: account_id,name,activated_at,balance (any order, extra columns ignored). An
    /// account opened before the current month ends gets its free packs at once.
    Import {
        /// The CSV file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Read activated_at values written without an offset (2026-10-05 09:30:00, as a CRM or
        /// database export writes them) as wall-clock times of ZONE (an IANA name, such as
        /// Asia/Shanghai); without it they are refused.
        #[arg(long, value_name = "ZONE", value_parser = parse_tz)]
        assume_tz: Option<Tz>,
    },
    /// Open an account's service at --now and grant the current month's free packs.
    Activate {
        /// Account id.
        #[arg(value_name = "ACCOUNT")]
        id: String,
    },
    /// List accounts with their status and balance.
    ///
    /// Columns: account_id,name,status,balance,suspend_at. The status is inactive (not opened,
    /// or opening after --now), active, arrears (balance negative, stop scheduled) or
    /// suspended.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
    },
}

/// A SHA-256 in hex (64 digits, either case), as lower case.
fn parse_sha256(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("a SHA-256 is 64 hexadecimal digits, as sha256sum prints it".into())
    }
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Import a usage file, all rows or none; the same rows twice are refused.
    ///
    /// Columns (CSV) or fields (NDJSON): account_id,api,timestamp,calls, and optionally
    /// event_id: a row whose event the account already has is skipped as a duplicate (the
    /// same event with other calls, time or API is refused); a file made only of such rows
    /// adds nothing and succeeds. The file may be gzip-compressed (recognized by its content,
    /// whatever its name). Standard input must end with a newline: a stream cut mid-line is
    /// refused whole. Rows of a month already settled are reported as late, and `billrun run`
    /// bills them.
    Import {
        /// The usage file, or - for standard input (./- for a file named -).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// How the rows are written: `auto` reads NDJSON if the content starts with `{`, CSV
        /// otherwise.
        #[arg(long, value_enum, default_value_t = UsageFormat::Auto, value_name = "FORMAT")]
        format: UsageFormat,
        /// Refuse the input unless it holds exactly N usage rows (CSV records after the
        /// header, or NDJSON objects): what the sender says it sent.
        #[arg(long, value_name = "N")]
        expect_rows: Option<u64>,
        /// Refuse the input unless the SHA-256 of its bytes, as received (compressed, for
        /// gzip: what `sha256sum` prints for the file sent), is HEX.
        #[arg(long, value_name = "HEX", value_parser = parse_sha256)]
        expect_sha256: Option<String>,
        /// Take usage of an account never opened (no activated_at), or dated in a month before
        /// the one it opened in, as it is (it is refused otherwise): billed with no free pack
        /// for those months.
        #[arg(long)]
        allow_unopened: bool,
        /// Take a file whose rows without an event_id repeat, in more than 5% of them, rows of
        /// earlier imports (same account, API, time and calls) as it is (it is refused
        /// otherwise, as a file sent twice in part would bill those rows twice).
        #[arg(long)]
        allow_repeats: bool,
        /// Read timestamps written without an offset (2026-10-05 09:30:00, as a MySQL or
        /// spreadsheet export writes them) as wall-clock times of ZONE (an IANA name, such as
        /// Asia/Shanghai); without it they are refused.
        #[arg(long, value_name = "ZONE", value_parser = parse_tz)]
        assume_tz: Option<Tz>,
        /// Retract import ID and import this file in its place, in one transaction: a meter's
        /// nightly "month so far" export replacing the night before's. Nothing changes if
        /// this file is refused.
        #[arg(long, value_name = "ID")]
        replaces: Option<i64>,
        /// Why the replaced import is retracted (default: "replaced by FILE").
        #[arg(long, value_name = "TEXT", requires = "replaces")]
        reason: Option<String>,
        /// Who replaced it (recorded with the retraction).
        #[arg(long, value_name = "NAME", requires = "replaces")]
        by: Option<String>,
    },
    /// Take back a usage import that should not count: a meter that counted twice, usage sent
    /// under the wrong account.
    ///
    /// Its calls come off the month's totals at once (an open month's estimate drops them),
    /// its rows are kept aside, its event ids may be sent again, and the import stays listed,
    /// marked with when, by whom and why. Bills of settled months it reached are corrected by
    /// the next `billrun run` (or `settle --month M`): adjustments, crediting what the bills
    /// go down by and handing pack calls back. Retracting it again changes nothing.
    Retract {
        /// The import's id, as `usage import` printed it and `usage imports` lists it.
        #[arg(value_name = "ID")]
        import_id: i64,
        /// Why: kept with the import.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Who retracted it.
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// List the latest usage imports, newest first: id, file, SHA-256, rows, calls, the
    /// duplicate events skipped, the months their rows fall in, when, and whether it was
    /// retracted (and replaced by which import).
    Imports {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
        /// How many imports to show.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum CatalogCommand {
    /// Store a catalog file's versions as the database's; every command then prices from them.
    ///
    /// Versions already stored with the same content are left as they are; a version stored
    /// under the same name with other prices refuses the whole file (a stored version never
    /// changes, since bills name it: new prices are a new version, with its own
    /// effective_from). On a database without a catalog, the file becomes its catalog.
    Import {
        /// The catalog file (TOML, docs/formats.md).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List the stored versions: name, first month, currency, where each came from and when.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
    },
    /// Print a stored version as a catalog file's [[versions]] block.
    Show {
        /// The version's name, as `catalog list` and the bills export show it.
        #[arg(value_name = "VERSION")]
        version: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PacksCommand {
    /// Import prepaid packs from CSV, all rows or none.
    ///
    /// Columns: pack_id,account_id,api,calls,valid_from,valid_until,purchased_at.
    Import {
        /// The CSV file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List free and prepaid packs with what remains of them.
    ///
    /// Columns: pack_id,kind,account_id,api,calls,remaining,valid_from,valid_until,
    /// purchased_at,month.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The month's bills as CSV, one row per bill line (account × API), every revision.
    Bills {
        /// The month, as YYYY-MM. A month never settled is refused.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output); a regular file is written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Start with a UTF-8 byte-order mark, so that Excel reads Chinese names correctly.
        #[arg(long)]
        excel: bool,
    },
    /// The month summed up in one CSV: per API, a TOTAL that reconciles with the bills export,
    /// and the accounts in arrears.
    Summary {
        /// The month, as YYYY-MM. A month never settled is refused.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output); a regular file is written whole or not at all.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Start with a UTF-8 byte-order mark, so that Excel reads Chinese names correctly.
        #[arg(long)]
        excel: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillsCommand {
    /// One account's bill for a month, every revision, explained line by line.
    Show {
        /// Account id.
        #[arg(value_name = "ACCOUNT")]
        id: String,
        /// The month, as YYYY-MM.
        #[arg(long, value_name = "YYYY-MM", value_parser = parse_month)]
        month: Month,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// The latest runs, newest first, with their outcome.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
        format: Format,
        /// How many runs to show.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u32,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    /// NDJSON if the first character (after any byte-order mark and white space) is `{`.
    Auto,
    /// A header line naming the columns, then one row per line.
    Csv,
    /// One JSON object per line.
    Ndjson,
}

impl UsageFormat {
    pub fn chosen(self) -> Option<crate::input::stream::Format> {
        match self {
            UsageFormat::Auto => None,
            UsageFormat::Csv => Some(crate::input::stream::Format::Csv),
            UsageFormat::Ndjson => Some(crate::input::stream::Format::Ndjson),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, for a terminal.
    Table,
    /// CSV with a header; text cells a spreadsheet would run as formulas get a leading '.
    Csv,
    /// A JSON array of objects.
    Json,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    crate::input::parse_instant(s)
}

fn parse_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>()
        .map_err(|_| format!("'{s}' is not an IANA time zone name (like Asia/Shanghai or UTC)"))
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

fn parse_month(s: &str) -> Result<Month, String> {
    s.parse()
}

/// A duration written as a whole number and a unit: `90s`, `30m`, `6h`, `2d`; `0` is none.
fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("'{s}' is not a duration like 30m, 6h or 1d");
    if s == "0" {
        return Ok(chrono::Duration::zero());
    }
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    };
    d.filter(|d| *d <= chrono::Duration::days(31)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument and every command says what it is: no blank help anywhere.
    #[test]
    fn every_argument_and_command_has_help() {
        fn walk(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                if ["help", "version"].contains(&arg.get_id().as_str()) {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} {}: no help", arg.get_id());
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
                assert!(!about.is_empty(), "{path} {}: no summary", sub.get_name());
                assert!(
                    !about.contains('\n'),
                    "{path} {}: a summary is one line",
                    sub.get_name()
                );
                walk(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        walk(&Cli::command(), "billrun");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(chrono::Duration::zero()));
        assert_eq!(parse_duration("6h"), Ok(chrono::Duration::hours(6)));
        assert_eq!(parse_duration("1d"), Ok(chrono::Duration::days(1)));
        for bad in ["", "h", "6", "6x", "-1h", "40d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

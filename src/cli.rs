//! The command line: the contract finance scripts and operators call.
//!
//! Global options come before the subcommand and each may also come from the environment, the
//! habit of cron and container deployments. The clock (`--now`) is read here and nowhere else.

use crate::domain::month::Month;
use crate::domain::shard::Shard;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "billrun",
    version,
    about = "Monthly settlement of pay-per-call API usage: free packs, tiered prices, bills, debits and arrears.",
    after_help = "Exit codes: 0 success; 1 unexpected failure (a bug); 2 command-line usage; 3 bad input or \
                  configuration (do not retry); 4 busy: another run holds the work, or a stop signal \
                  ended this one (retry); 5 database unavailable (retry); 6 verify found a breach."
)]
pub struct Cli {
    /// Database URL; `sqlite://FILE` is created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://billrun.db",
        hide_env_values = true,
        global = true
    )]
    pub database: String,

    /// The clock, as RFC 3339 with an offset (default: the system time). Lets a month be re-run or
    /// tested as of any moment.
    #[arg(long, env = "BILLRUN_NOW", value_parser = parse_now, global = true)]
    pub now: Option<DateTime<Utc>>,

    /// Billing time zone (IANA name): months run from the 1st 00:00 to the next 1st 00:00 here.
    #[arg(long, env = "BILLRUN_TZ", default_value = "Asia/Shanghai", value_parser = parse_tz, global = true)]
    pub tz: Tz,

    /// Price catalog (TOML); default: the built-in catalog with the seed's prices.
    #[arg(long, env = "BILLRUN_CATALOG", global = true)]
    pub catalog: Option<PathBuf>,

    /// Accounts settled per transaction. Smaller pages commit more often; the result is the same.
    #[arg(long, env = "BILLRUN_PAGE_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), global = true)]
    pub page_size: u32,

    /// Log format on standard error: `text` for a terminal, `json` for log collectors. The level
    /// comes from BILLRUN_LOG (default `info`).
    #[arg(long, env = "BILLRUN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply database migrations (they also apply automatically on every command).
    Migrate,
    /// Import, open and list accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Credit an account; restores a suspended service once the balance is ≥ 0.
    Recharge {
        /// Account id.
        id: String,
        /// Amount in CNY, with at most two decimals (e.g. 100.50).
        #[arg(allow_hyphen_values = true)]
        amount: String,
        /// An idempotency key: a recharge with a reference already used is not applied twice.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Import usage.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Import and list free and prepaid packs.
    #[command(subcommand)]
    Packs(PacksCommand),
    /// Grant a month's free packs to every open account that lacks them.
    Grant {
        /// Month, as YYYY-MM.
        #[arg(long, value_parser = parse_month)]
        month: Month,
    },
    /// Settle a month: grant missing free packs, bill every account with usage, debit it, and
    /// flag accounts that went negative. Run again after late usage, it issues adjustments.
    Settle {
        /// Month, as YYYY-MM. It must have ended in the billing time zone.
        #[arg(long, value_parser = parse_month)]
        month: Month,
        /// Print what settling would do (bills, adjustments, totals, who would go into
        /// arrears) and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Settle only shard K of N (K from 0, as a Kubernetes Indexed Job's
        /// JOB_COMPLETION_INDEX counts). An account's shard is a stable hash of its id. The
        /// month counts as settled once every shard is done.
        #[arg(long, value_parser = parse_shard, default_value = "0/1")]
        shard: Shard,
    },
    /// Suspend accounts whose suspend_at has passed and whose balance is still negative.
    Enforce,
    /// Do everything that is due at --now, and nothing else: grant this month's free packs,
    /// settle last month if it is not settled yet (warning if after the 3rd), enforce
    /// suspensions. What cron and the Kubernetes CronJob call.
    Run,
    /// Keep running: sleep until the next scheduled time (or the next suspend_at, if sooner),
    /// then do what `run` does. Stops cleanly on SIGTERM or SIGINT.
    Daemon {
        /// Cron expression in the billing time zone: 5 fields (minute hour day-of-month month
        /// day-of-week) or 6 with seconds first.
        #[arg(long, env = "BILLRUN_SCHEDULE", default_value = crate::schedule::DEFAULT)]
        schedule: String,
    },
    /// Print the next wake-up times of a schedule after --now, to check it before deploying.
    Schedule {
        #[arg(long, env = "BILLRUN_SCHEDULE", default_value = crate::schedule::DEFAULT)]
        schedule: String,
        /// How many times to print.
        #[arg(long, default_value_t = 5)]
        count: usize,
    },
    /// Check the books: balances against ledgers, one original per account and month, every
    /// bill debited once, bill arithmetic, usage counted once, pack remainders. Exits 6 on
    /// any breach, naming it.
    Verify {
        /// Only this month's bills and usage (balances and packs are always checked whole).
        #[arg(long, value_parser = parse_month)]
        month: Option<Month>,
    },
    /// Show bills.
    #[command(subcommand)]
    Bills(BillsCommand),
    /// Recorded runs of settle, enforce, run and the daemon.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Export data for finance.
    #[command(subcommand)]
    Export(ExportCommand),
    /// The month's report for the finance lead: one self-contained HTML page (no network
    /// fetches) with revenue by API, billable calls by tier, the month against the months
    /// before it, the largest bills and the accounts in arrears, charts as inline SVG.
    Report {
        #[arg(long, value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output). Written whole or not at all.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List arrears notices, suspensions and restorations, oldest first.
    Events {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Write deterministic synthetic accounts.csv and usage.csv for a month, for benchmarks and
    /// load tests: most accounts small, a few in every higher tier, timestamps across the month.
    Gen {
        #[arg(long)]
        accounts: u64,
        /// Usage rows in all (at least one per account).
        #[arg(long)]
        rows: u64,
        #[arg(long, value_parser = parse_month)]
        month: Month,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "gen")]
        out: PathBuf,
    },
    /// Build a demo database from the built-in fixtures, settle October 2026, print the bills
    /// and write the finance CSV.
    Demo {
        /// Directory for the demo database and CSV (recreated on every run).
        #[arg(long, default_value = "billrun-demo")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Import accounts from CSV: account_id,name,activated_at,balance.
    Import { file: PathBuf },
    /// Open an account's service at --now and grant the current month's free packs.
    Activate { id: String },
    /// List accounts: account_id,name,status,balance,suspend_at,activated_at.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum UsageCommand {
    /// Import usage from CSV: account_id,api,timestamp,calls. All rows or none.
    Import { file: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum PacksCommand {
    /// Import prepaid packs from CSV: pack_id,account_id,api,calls,valid_from,valid_until,purchased_at.
    Import { file: PathBuf },
    /// List free and prepaid packs with what remains of them.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The month's bills as CSV, one row per bill line (account × API).
    Bills {
        #[arg(long, value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output). Written whole or not at all.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Start with a UTF-8 byte-order mark, so that Excel reads Chinese names correctly.
        #[arg(long)]
        excel: bool,
    },
    /// The month in one CSV: a row per API (calls, free, prepaid, billable, accounts per tier,
    /// revenue), a TOTAL row that reconciles with the bills export, then the accounts left in
    /// arrears and what they owe.
    Summary {
        #[arg(long, value_parser = parse_month)]
        month: Month,
        /// Output file (default: standard output). Written whole or not at all.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Start with a UTF-8 byte-order mark, so that Excel reads Chinese names correctly.
        #[arg(long)]
        excel: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BillsCommand {
    /// One account's bill for a month, with every revision, as support would explain it.
    Show {
        /// Account id.
        id: String,
        #[arg(long, value_parser = parse_month)]
        month: Month,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// The latest runs, newest first.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
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

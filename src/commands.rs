//! One function per command that works on a store: each calls its job and prints what it did,
//! in the words and formats the command's readers expect. `app` chooses which one runs; the
//! jobs below know nothing of printing.

use crate::cli::Format;
use crate::clock::Clock;
use crate::domain::catalog::Catalog;
use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
use crate::error::input_error;
use crate::input::text::shown;
use crate::jobs::accounts::Recharged;
use crate::jobs::{self, Ctx};
use crate::output::{terminal_safe, Destination, ListWriter};
use crate::schedule::Schedule;
use crate::store::sqlite::SqliteStore;
use crate::store::webhooks::{DeliveryFilter, Replay};
use crate::store::{ActivateOutcome, RetractOutcome, Store, StoreError};
use crate::webhooks::config::Webhooks;
use std::path::Path;

/// Loads the catalog named on the command line, or the built-in one.
pub fn load_catalog(path: Option<&std::path::Path>) -> anyhow::Result<Catalog> {
    match path {
        None => Ok(Catalog::built_in()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| input_error(format!("cannot read catalog {}: {e}", p.display())))?;
            Catalog::parse(&text, &p.display().to_string()).map_err(input_error)
        }
    }
}

/// Opens the SQLite store at `url` and applies migrations, creating the file if missing.
pub async fn open_sqlite(url: &str) -> anyhow::Result<SqliteStore> {
    let store = SqliteStore::connect(url, true).await?;
    store.migrate().await?;
    Ok(store)
}

/// `billrun man`: the man page of billrun to standard output, or a page per command into `dir`.
pub fn write_man_pages(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let command = <crate::cli::Cli as clap::CommandFactory>::command();
    match dir {
        None => {
            let mut out = Destination::stdout()?;
            clap_mangen::Man::new(command).render(&mut out)?;
            out.finish()
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| input_error(format!("cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(command, dir)
                .map_err(|e| input_error(format!("cannot write man pages into {}: {e}", dir.display())))?;
            println!("wrote billrun's man pages to {}", dir.display());
            Ok(())
        }
    }
}

/// Checks that the catalog prices in the currency the database keeps its balances in: billrun
/// never debits amounts in one currency from balances in another. A command that moves money
/// records the catalog's currency as the database's if none is recorded yet.
pub async fn check_currency<S: Store>(store: &S, ctx: &Ctx, moves_money: bool) -> anyhow::Result<()> {
    let wanted = ctx.currency();
    let kept = if moves_money {
        Some(store.adopt_currency(wanted).await?)
    } else {
        store.currency().await?
    };
    match kept {
        Some(kept) if kept != wanted => Err(input_error(format!(
            "this database keeps its balances in {kept}, but the catalog prices in {wanted}: billrun does not \
             debit {wanted} amounts from {kept} balances; use a catalog that prices in {kept}"
        ))),
        _ => Ok(()),
    }
}

/// A schedule that parses and fires at least once after `--now`.
pub fn parse_schedule(ctx: &Ctx, expression: &str) -> anyhow::Result<Schedule> {
    let schedule: Schedule = expression.parse().map_err(input_error)?;
    schedule.check_fires(ctx.now, ctx.tz).map_err(input_error)?;
    Ok(schedule)
}

/// `billrun schedule`: the next wake-up times, one per line, in the billing time zone.
pub fn print_schedule(ctx: &Ctx, expression: &str, count: usize) -> anyhow::Result<()> {
    let schedule = parse_schedule(ctx, expression)?;
    for t in schedule.upcoming(ctx.now, ctx.tz, count) {
        println!("{}", ctx.local(t));
    }
    Ok(())
}

/// What a settle did, and the month in all.
pub fn print_settled(s: &crate::jobs::settle::SettleSummary, currency: &str) {
    let t = &s.month_totals;
    println!(
        "settled {} (catalog {}): {} accounts billed now, {} {currency}; {} in arrears now",
        s.month,
        s.catalog_version,
        s.billed_now,
        format_money(from_fen(s.billed_now_fen)),
        s.arrears_now
    );
    if s.adjusted_now > 0 {
        println!(
            "{} of them are adjustments for late usage (new revisions of settled bills)",
            s.adjusted_now
        );
    }
    if !s.shard.is_all() {
        let state = if s.month_settled {
            "every shard is done: the month is settled"
        } else {
            "other shards are not done yet"
        };
        println!("shard {} of {} done; {state}", s.shard, s.month);
    }
    let credits = if t.credited_fen > 0 {
        format!(
            " after {} {currency} of credit notes",
            format_money(from_fen(t.credited_fen))
        )
    } else {
        String::new()
    };
    println!(
        "{} in all: {} bills, {} {currency} billed{credits}, {} accounts in arrears",
        s.month,
        t.bills,
        format_money(from_fen(t.total_fen)),
        t.accounts_in_arrears
    );
}

/// What a dry-run settle would write.
pub fn print_dry_run(s: &crate::jobs::settle::SettleSummary, currency: &str) {
    println!(
        "dry run: settling {} would write these bills; nothing was written",
        s.month
    );
    println!(
        "{:<24} {:>8} {:>12} {:>12} {:>14}  arrears",
        "account_id", "revision", "bill_total", "debit", "balance_after"
    );
    for p in &s.previews {
        println!(
            "{:<24} {:>8} {:>12} {:>12} {:>14}  {}",
            terminal_safe(&p.account_id),
            p.revision,
            format_money(from_fen(p.total_fen)),
            format_money(from_fen(p.debited_fen)),
            format_money(from_fen(p.balance_after_fen)),
            if p.in_arrears { "yes" } else { "" }
        );
    }
    println!(
        "would bill {} accounts ({} adjustments), {} {currency} net; {} would go into arrears",
        s.billed_now,
        s.adjusted_now,
        format_money(from_fen(s.billed_now_fen)),
        s.arrears_now
    );
}

/// How many suspended accounts `enforce` and `run` name; the rest are counted (the events list
/// has every one of them).
const SUSPENDED_NAMED: usize = 10;

/// `billrun accounts import`.
pub async fn accounts_import<S: Store>(
    store: &S,
    ctx: &Ctx,
    file: &Path,
    assume: Option<chrono_tz::Tz>,
) -> anyhow::Result<()> {
    let n = jobs::accounts::import(store, ctx, file, assume).await?;
    println!("imported {n} accounts from {}", file.display());
    Ok(())
}

/// `billrun accounts activate`.
pub async fn accounts_activate<S: Store>(store: &S, ctx: &Ctx, id: &str) -> anyhow::Result<()> {
    match jobs::accounts::activate(store, ctx, id).await? {
        ActivateOutcome::Activated { packs_granted } => println!(
            "account '{id}' opened at {}; {packs_granted} free packs granted for {}",
            ctx.local(ctx.now),
            ctx.current_month()
        ),
        ActivateOutcome::AlreadyActive { since } => {
            println!(
                "account '{id}' is already open (since {}); nothing changed",
                ctx.local(since)
            )
        }
    }
    Ok(())
}

/// `billrun recharge`.
pub async fn recharge<S: Store>(
    store: &S,
    ctx: &Ctx,
    id: &str,
    amount: &str,
    reference: Option<&str>,
) -> anyhow::Result<()> {
    let currency = ctx.currency();
    match jobs::accounts::recharge(store, ctx, id, amount, reference).await? {
        Recharged::Credited { balance_fen, restored } => {
            println!(
                "credited {amount} {currency} to '{}'; balance {} {currency}",
                shown(id),
                format_money(from_fen(balance_fen))
            );
            if restored {
                println!("service of '{}' restored", shown(id));
            }
        }
        Recharged::AlreadyApplied { balance_fen } => println!(
            "this payment (reference, account and amount) was already applied; nothing changed; balance {} {currency}",
            format_money(from_fen(balance_fen))
        ),
    }
    Ok(())
}

/// `billrun credit`.
pub async fn credit<S: Store>(store: &S, ctx: &Ctx, ask: &jobs::credit::CreditAsk) -> anyhow::Result<()> {
    let currency = ctx.currency();
    let money = |fen: i64| format_money(from_fen(fen));
    match jobs::credit::credit(store, ctx, ask).await? {
        jobs::credit::Credited::Issued(c) => {
            println!(
                "credited {} {currency} against {} (revision {}, kind credit) of '{}'; the bill now asks for {} {currency} \
                 ({} {currency} credited in all); balance {} {currency}",
                money(c.amount_fen),
                c.bill_id,
                c.revision,
                shown(&c.account_id),
                money(c.due_fen),
                money(c.credited_fen),
                money(c.balance_fen)
            );
            if c.restored {
                println!("service of '{}' restored", shown(&c.account_id));
            }
        }
        jobs::credit::Credited::AlreadyIssued(c) => println!(
            "this credit (reference, account and month) was already issued as {}: {} {currency}; nothing changed; \
             balance {} {currency}",
            c.bill_id,
            money(c.amount_fen),
            money(c.balance_fen)
        ),
    }
    Ok(())
}

/// `billrun usage import`: the rows imported, the duplicates skipped, and a warning for rows
/// that are late.
pub async fn usage_import<S: Store>(
    store: &S,
    ctx: &Ctx,
    file: &Path,
    format: Option<crate::input::stream::Format>,
    options: jobs::usage::ImportOptions,
) -> anyhow::Result<()> {
    let done = jobs::usage::import(store, ctx, file, format, options).await?;
    let name = if file.as_os_str() == "-" {
        jobs::usage::STDIN_NAME.to_owned()
    } else {
        file.display().to_string()
    };
    let Some(import_id) = done.import_id else {
        tracing::info!(
            file = %name,
            duplicates = done.duplicates,
            "nothing imported: every row is an event imported before"
        );
        println!(
            "nothing imported from {name}: its {} rows are all events imported before (a re-send); nothing is billed again",
            done.duplicates
        );
        return Ok(());
    };
    println!(
        "imported {} usage rows ({} calls) from {name} as import #{import_id}",
        done.rows, done.calls
    );
    if let Some(replaced) = &done.replaced {
        print_retracted(replaced, &format!("replaced by import #{import_id}"));
    }
    if done.duplicates > 0 {
        tracing::info!(
            duplicates = done.duplicates,
            "rows skipped: their account already had their event_id"
        );
        println!(
            "skipped {} duplicate rows: their account already had their event_id (from an earlier import or line); they are not billed again",
            done.duplicates
        );
    }
    let late: u64 = done.late.iter().map(|(_, n)| n).sum();
    if late > 0 {
        let months: Vec<String> = done.late.iter().map(|(m, n)| format!("{m} ({n} rows)")).collect();
        tracing::warn!(
            late_rows = late,
            months = months.join(", "),
            "some rows fall in months already settled: they are late and not on any bill yet; billrun run bills them"
        );
        println!(
            "warning: {late} rows are late: they fall in months already settled, {}; they are on no bill yet. \
             `billrun run` bills them (adjustments where a bill exists), or `billrun settle --month M`",
            months.join(", ")
        );
    }
    Ok(())
}

/// `billrun packs import`.
pub async fn packs_import<S: Store>(store: &S, ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let rejected = |problems: Vec<_>| {
        let total = problems.len() as u64;
        anyhow::Error::new(crate::error::RejectedFile::new(
            &file.display().to_string(),
            problems,
            total,
        ))
    };
    let rows = crate::input::packs::read(jobs::open_input(file)?, &ctx.catalog.known_apis()).map_err(rejected)?;
    let n = match store.import_packs(&rows).await {
        Err(StoreError::Rejected { problems, .. }) => return Err(rejected(problems)),
        n => n?,
    };
    println!("imported {n} prepaid packs from {}", file.display());
    Ok(())
}

/// `billrun grant`.
pub async fn grant<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<()> {
    let (n, _) = jobs::settle::grant(store, ctx, month).await?;
    println!("granted {n} free packs for {month}");
    Ok(())
}

/// `billrun enforce`'s and `billrun run`'s account of the suspensions.
pub fn print_suspended(ids: &[String]) {
    let named = terminal_safe(&ids.iter().take(SUSPENDED_NAMED).cloned().collect::<Vec<_>>().join(", "));
    match ids.len() {
        0 => println!("suspended 0 accounts"),
        n if n <= SUSPENDED_NAMED => println!("suspended {n} accounts: {named}"),
        n => println!(
            "suspended {n} accounts: {named} and {} more (`billrun events --format csv` lists every one)",
            n - SUSPENDED_NAMED
        ),
    }
}

/// `billrun run`'s account of what was due and done.
pub fn print_run(r: &jobs::run::RunSummary, ctx: &Ctx) {
    if r.packs_granted > 0 {
        println!("granted {} free packs for {}", r.packs_granted, r.current);
    }
    if let Some(s) = &r.settled {
        print_settled(s, ctx.currency());
        if r.late {
            println!("warning: {} was settled late, after the 1st-3rd window", s.month);
        }
    }
    for s in &r.late_usage {
        println!("usage for {} arrived after it was settled:", s.month);
        print_settled(s, ctx.currency());
    }
    print_suspended(&r.suspended);
    if let Some(n) = r.pack_alerts.filter(|n| *n > 0) {
        println!(
            "recorded {n} pack alerts for {} (`billrun events` lists them)",
            r.current
        );
    }
    if !r.did_something() {
        println!("nothing to do at {}", ctx.local(ctx.now));
    }
}

/// `billrun runs list`.
pub async fn runs_list<S: Store>(store: &S, ctx: &Ctx, format: Format, limit: u32) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &[
            "run_id",
            "command",
            "month",
            "started_at",
            "ended_at",
            "outcome",
            "accounts_billed",
            "billed",
            "suspended",
            "message",
        ],
        &["run_id", "accounts_billed", "billed", "suspended"],
        Destination::stdout()?,
    )?;
    for r in store.runs(limit).await? {
        w.row(vec![
            r.run_id.to_string(),
            r.command,
            r.month.unwrap_or_default(),
            ctx.local(r.started_at),
            r.ended_at.map(|t| ctx.local(t)).unwrap_or_default(),
            r.outcome.as_str().to_owned(),
            r.accounts_billed.to_string(),
            format_money(from_fen(r.billed_fen)),
            r.suspended.to_string(),
            r.message,
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun usage retract`.
pub async fn usage_retract<S: Store>(store: &S, ctx: &Ctx, ask: &jobs::usage::RetractAsk) -> anyhow::Result<()> {
    match jobs::usage::retract(store, ctx, ask).await? {
        RetractOutcome::Retracted(r) => print_retracted(&r, "retracted"),
        RetractOutcome::AlreadyRetracted(r) => println!(
            "import #{} ({}) was retracted before, at {}{}: {}; nothing changed",
            r.import_id,
            r.file_name,
            ctx.local(r.at),
            r.by.as_deref().map(|b| format!(" by {b}")).unwrap_or_default(),
            r.reason
        ),
    }
    Ok(())
}

/// What a retraction did, and what is left for the next run.
fn print_retracted(r: &crate::store::Retracted, how: &str) {
    println!(
        "import #{} ({}: {} rows, {} calls) {how}: its usage no longer counts; its event ids may be sent again",
        r.import_id, r.file_name, r.rows, r.calls
    );
    tracing::info!(
        import = r.import_id,
        record = r.record_id,
        how,
        "usage import retracted"
    );
    if !r.settled_months.is_empty() {
        let months = r.settled_months.join(", ");
        tracing::warn!(
            months = %months,
            "bills of settled months count the retracted usage until the next run adjusts them"
        );
        println!(
            "settled months it reached: {months}; `billrun run` (or `billrun settle --month M`) issues the adjustments"
        );
    }
}

/// `billrun usage imports`: the latest imports, newest first, with the months their rows fall in.
pub async fn usage_imports<S: Store>(store: &S, ctx: &Ctx, format: Format, limit: u32) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &[
            "import_id",
            "file_name",
            "sha256",
            "rows",
            "calls",
            "duplicates",
            "months",
            "first_usage",
            "last_usage",
            "imported_at",
            "retracted_at",
            "retracted_by",
            "retraction_reason",
            "replaced_by",
            "retracts",
        ],
        &["import_id", "rows", "calls", "duplicates"],
        Destination::stdout()?,
    )?;
    for i in store.usage_imports(limit).await? {
        let months = match (i.first, i.last) {
            (Some(first), Some(last)) => {
                let (first, last) = (Month::containing(first, ctx.tz), Month::containing(last, ctx.tz));
                if first == last {
                    first.to_string()
                } else {
                    format!("{first}..{last}")
                }
            }
            _ => String::new(),
        };
        w.row(vec![
            i.import_id.to_string(),
            i.file_name,
            i.sha256,
            i.rows.to_string(),
            i.calls.to_string(),
            i.duplicates.to_string(),
            months,
            i.first.map(|t| ctx.local(t)).unwrap_or_default(),
            i.last.map(|t| ctx.local(t)).unwrap_or_default(),
            ctx.local(i.imported_at),
            i.retracted_at.map(|t| ctx.local(t)).unwrap_or_default(),
            i.retracted_by.unwrap_or_default(),
            i.retraction_reason.unwrap_or_default(),
            i.replaced_by.map(|n| n.to_string()).unwrap_or_default(),
            i.retracts.map(|n| n.to_string()).unwrap_or_default(),
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun verify`: every check, the breaches with examples, the late usage pending, and exit
/// 6 if there are breaches (pending usage is not one).
pub async fn verify<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Option<Month>,
    archive: Option<&Path>,
) -> anyhow::Result<()> {
    let report = jobs::verify::verify(store, month, archive).await?;
    for c in &report.checks {
        if c.breaches == 0 {
            println!("ok      {}", c.what);
        } else {
            println!("BREACH  {} ({} found)", c.what, c.breaches);
            for e in &c.examples {
                println!("          {e}");
            }
        }
    }
    for l in &report.pending {
        println!(
            "pending {}: late usage waiting for the next run to bill it: {} import{} ({} rows, {} calls), the oldest imported {}",
            l.month,
            l.imports,
            if l.imports == 1 { "" } else { "s" },
            l.rows,
            l.calls,
            ctx.local(l.oldest_imported_at),
        );
    }
    for a in &report.archived {
        let how = if a.read {
            "read back from the archive"
        } else {
            "the month's totals checked against the calls recorded when archived; `verify --archive DIR` reads it back"
        };
        println!(
            "archived {}: the usage of {} import{} ({} calls) is archived: {how}",
            a.month,
            a.imports,
            if a.imports == 1 { "" } else { "s" },
            a.calls,
        );
    }
    let scope = month.map(|m| m.to_string()).unwrap_or_else(|| "all months".into());
    println!("{} bills checked ({scope})", report.bills_checked);
    if report.breaches() > 0 {
        return Err(anyhow::Error::new(crate::error::BooksBreached(report.breaches())));
    }
    Ok(())
}

/// `billrun archive`.
pub async fn archive<S: Store>(store: &S, ctx: &Ctx, before: Month, dir: &Path) -> anyhow::Result<()> {
    let report = jobs::archive::archive(store, ctx, before, dir).await?;
    for (id, file, bytes) in &report.archived {
        println!("archived import #{id} ({file}): {bytes} bytes in {}", dir.display());
    }
    for (id, file, why) in &report.kept {
        println!("kept     import #{id} ({file}): {why}");
    }
    println!(
        "{} import{} archived now, {} before, {} kept",
        report.archived.len(),
        if report.archived.len() == 1 { "" } else { "s" },
        report.already,
        report.kept.len()
    );
    Ok(())
}

/// `billrun restore-usage`.
pub async fn restore_usage<S: Store>(store: &S, dir: &Path, import: Option<i64>) -> anyhow::Result<()> {
    let report = jobs::archive::restore(store, dir, import).await?;
    for (id, file) in &report.restored {
        println!("restored import #{id} ({file})");
    }
    println!(
        "{} import{} restored",
        report.restored.len(),
        if report.restored.len() == 1 { "" } else { "s" }
    );
    if !report.failed.is_empty() {
        let listed: Vec<String> = report
            .failed
            .iter()
            .map(|(id, f, why)| format!("usage import #{id} ({f}): {why}"))
            .collect();
        return Err(input_error(format!(
            "{} archived import{} not restored from {}, and nothing of {} written: {}",
            listed.len(),
            if listed.len() == 1 { " was" } else { "s were" },
            dir.display(),
            if listed.len() == 1 { "it" } else { "them" },
            listed.join("; ")
        )));
    }
    Ok(())
}

/// `billrun export bills`.
pub async fn export_bills<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    out: Option<&Path>,
    excel: bool,
) -> anyhow::Result<()> {
    let n = jobs::export::bills(store, ctx, month, out, excel).await?;
    if let Some(p) = out {
        println!("wrote {n} bill lines for {month} to {}", p.display());
    }
    Ok(())
}

/// `billrun export summary`.
pub async fn export_summary<S: Store>(
    store: &S,
    ctx: &Ctx,
    month: Month,
    out: Option<&Path>,
    excel: bool,
) -> anyhow::Result<()> {
    let s = jobs::summary::summary(store, ctx, month, out, excel).await?;
    if let Some(p) = out {
        println!(
            "wrote the {month} summary to {}: {} APIs, {} bills, {} {} billed, {} accounts in arrears",
            p.display(),
            s.apis.len(),
            s.bills,
            format_money(from_fen(s.billed_fen)),
            ctx.currency(),
            s.arrears.len()
        );
    }
    Ok(())
}

/// `billrun report`.
pub async fn report<S: Store>(store: &S, ctx: &Ctx, month: Month, out: Option<&Path>) -> anyhow::Result<()> {
    let s = jobs::report::report(store, ctx, month, out).await?;
    if let Some(p) = out {
        println!(
            "wrote the {month} report to {}: {} bills, {} {} billed",
            p.display(),
            s.bills,
            format_money(from_fen(s.billed_fen)),
            ctx.currency()
        );
    }
    Ok(())
}

/// `billrun events`.
pub async fn events<S: Store>(store: &S, ctx: &Ctx, format: Format) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &[
            "event_id",
            "account_id",
            "kind",
            "at",
            "bill_id",
            "suspend_at",
            "balance",
            "pack_id",
            "api",
            "threshold",
            "pack_left",
        ],
        &["event_id", "balance", "pack_left"],
        Destination::stdout()?,
    )?;
    for e in store.events().await? {
        let pack = e.pack.as_ref();
        w.row(vec![
            e.event_id.to_string(),
            e.account_id,
            e.kind.as_str().to_owned(),
            ctx.local(e.at),
            e.bill_id.unwrap_or_default(),
            e.suspend_at.map(|t| ctx.local(t)).unwrap_or_default(),
            format_money(from_fen(e.balance_fen)),
            pack.map(|p| p.pack_id.clone()).unwrap_or_default(),
            pack.map(|p| p.api.clone()).unwrap_or_default(),
            pack.map(|p| p.threshold.as_str().to_owned()).unwrap_or_default(),
            pack.map(|p| p.left.to_string()).unwrap_or_default(),
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun catalog import FILE`.
pub async fn catalog_import<S: Store>(store: &S, ctx: &Ctx, file: &Path) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let catalog = load_catalog(Some(file))?;
    let done = jobs::catalog::import(store, &name, &catalog, ctx.now).await?;
    for (version, from) in &done.added {
        tracing::info!(version, from, file = %name, "catalog version stored");
        println!("stored catalog version {version}, in force from {from}");
    }
    if !done.unchanged.is_empty() {
        println!("already stored, unchanged: {}", done.unchanged.join(", "));
    }
    if done.added.is_empty() {
        println!("nothing new in {name}");
    }
    Ok(())
}

/// `billrun catalog list`.
pub async fn catalog_list<S: Store>(store: &S, ctx: &Ctx, format: Format) -> anyhow::Result<()> {
    let stored = store.catalog_versions().await?;
    if stored.is_empty() {
        tracing::warn!(
            "this database keeps no catalog yet: the first command that writes to it stores the one it runs with"
        );
    }
    let mut w = ListWriter::new(
        format,
        &["version", "effective_from", "currency", "source", "imported_at"],
        &[],
        Destination::stdout()?,
    )?;
    for v in stored {
        w.row(vec![
            v.version,
            v.effective_from,
            v.currency,
            v.source,
            ctx.local(v.imported_at),
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun catalog show VERSION`.
pub async fn catalog_show<S: Store>(store: &S, version: &str) -> anyhow::Result<()> {
    let stored = store.catalog_versions().await?;
    let Some(v) = stored.iter().find(|v| v.version == version) else {
        let names: Vec<&str> = stored.iter().map(|v| v.version.as_str()).collect();
        return Err(input_error(format!(
            "this database keeps no catalog version '{version}' (it keeps: {})",
            if names.is_empty() {
                "none yet".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let mut out = Destination::stdout()?;
    use std::io::Write;
    writeln!(
        out,
        "# catalog version {}, imported from {} at {}",
        v.version,
        v.source,
        v.imported_at.to_rfc3339()
    )?;
    out.write_all(v.definition.as_bytes())?;
    out.finish()
}

/// `billrun accounts list`.
pub async fn list_accounts<S: Store>(store: &S, ctx: &Ctx, format: Format) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &["account_id", "name", "status", "balance", "suspend_at"],
        &["balance"],
        Destination::stdout()?,
    )?;
    store
        .accounts(&mut |a| {
            w.row(vec![
                a.account_id.clone(),
                a.name.clone(),
                a.status(ctx.now).as_str().to_owned(),
                format_money(a.balance),
                a.suspend_at.map(|t| ctx.local(t)).unwrap_or_default(),
            ])
        })
        .await?;
    w.finish()?.finish()
}

/// `billrun packs list`.
pub async fn list_packs<S: Store>(store: &S, ctx: &Ctx, format: Format) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &[
            "pack_id",
            "kind",
            "account_id",
            "api",
            "calls",
            "remaining",
            "valid_from",
            "valid_until",
            "purchased_at",
            "month",
        ],
        &["calls", "remaining"],
        Destination::stdout()?,
    )?;
    for p in store.packs().await? {
        w.row(vec![
            p.pack_id,
            p.kind.as_str().to_owned(),
            p.account_id,
            p.api,
            p.calls.to_string(),
            p.remaining.to_string(),
            ctx.local(p.valid_from),
            ctx.local(p.valid_until),
            ctx.local(p.purchased_at),
            p.month.unwrap_or_default(),
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun bills show`: an account's bill for a month, every revision, explained line by line,
/// with the account's status now.
pub async fn show_bill<S: Store>(store: &S, ctx: &Ctx, id: &str, month: Month) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    store
        .export_lines(Some(month), Some(id), &mut |l| {
            lines.push(l);
            Ok(())
        })
        .await?;
    if lines.is_empty() {
        return Err(input_error(format!("account '{id}' has no bill for {month}")));
    }
    let account = store.account(id).await?;
    let stops = store
        .arrears_bills(month)
        .await?
        .into_iter()
        .filter(|b| b.account_id == id)
        .map(|b| (b.bill_id, b.suspend_at))
        .collect();
    let month_text = month.to_string();
    let currency = jobs::export::currency(ctx, month);
    let c = crate::reporting::bill_text::BillContext {
        month: &month_text,
        tz: ctx.tz,
        currency: &currency,
        account: &account,
        now: ctx.now,
        stops: &stops,
    };
    let names = |l: &crate::store::ExportLine| jobs::export::names(ctx, &l.catalog_version, &l.api).1;
    // Names and ids come from the database: shown, not obeyed, by the terminal.
    for line in crate::reporting::bill_text::explain(&c, &lines, &names).lines() {
        println!("{}", terminal_safe(line));
    }
    Ok(())
}

/// `billrun metrics`: the Prometheus text exposition, to standard output or a file replaced
/// whole.
pub async fn metrics<S: Store>(store: &S, ctx: &Ctx, out: Option<&Path>, push: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let text = crate::reporting::metrics::render(&jobs::metrics::gather(store, ctx).await?);
    if let Some(url) = push {
        crate::metrics_http::push(url, text.clone()).await?;
        println!(
            "pushed billrun's metrics to {}",
            crate::webhooks::config::display_url(&crate::metrics_http::push_target(url))
        );
        if out.is_none() {
            return Ok(());
        }
    }
    let mut dest = Destination::open(out)?;
    dest.write_all(text.as_bytes())?;
    dest.finish()?;
    if let Some(p) = out {
        println!("wrote billrun's metrics to {}", p.display());
    }
    Ok(())
}

/// Pushes the metrics after a job, if a Pushgateway is configured; a push that fails is logged
/// and never changes the job's outcome.
pub async fn push_after<S: Store>(store: &S, ctx: &Ctx, clock: &Clock, push: Option<&str>) {
    let Some(url) = push else { return };
    let ctx = Ctx {
        now: clock.now(),
        ..ctx.clone()
    };
    let pushed = async {
        let text = crate::reporting::metrics::render(&jobs::metrics::gather(store, &ctx).await?);
        crate::metrics_http::push(url, text).await
    };
    if let Err(e) = pushed.await {
        tracing::warn!(error = crate::error::describe(&e), "metrics not pushed");
    }
}

/// The webhooks file, required by a command that sends.
fn need_webhooks(hooks: Option<&Webhooks>) -> anyhow::Result<&Webhooks> {
    hooks.ok_or_else(|| input_error("no webhooks file: give --webhooks FILE (or set BILLRUN_WEBHOOKS)"))
}

/// What a deliverer's run did: logged, and said in one line.
fn print_delivered(s: &jobs::webhooks::DeliverSummary) {
    jobs::webhooks::log_summary(s);
    println!(
        "delivered {}, failed and to be retried {}, failed for good {}",
        s.delivered, s.retrying, s.failed
    );
}

/// `billrun webhooks deliver`.
pub async fn webhooks_deliver<S: Store>(
    store: &S,
    ctx: &Ctx,
    clock: &Clock,
    hooks: Option<&Webhooks>,
) -> anyhow::Result<()> {
    let hooks = need_webhooks(hooks)?;
    let s = jobs::webhooks::deliver(store, hooks, clock, ctx.currency()).await?;
    print_delivered(&s);
    for name in &s.disabled {
        println!("endpoint {name} answered 410 Gone and is disabled (billrun webhooks enable {name})");
    }
    for name in &s.resting {
        println!("endpoint {name} failed too many attempts in a row: its other deliveries wait for the next run");
    }
    if let Some(t) = s.next_due {
        println!("next delivery due at {}", ctx.local(t));
    }
    Ok(())
}

/// `billrun webhooks list`.
pub async fn webhooks_list<S: Store>(
    store: &S,
    ctx: &Ctx,
    filter: &DeliveryFilter,
    format: Format,
) -> anyhow::Result<()> {
    let mut w = ListWriter::new(
        format,
        &[
            "delivery_id",
            "endpoint",
            "webhook_id",
            "type",
            "account_id",
            "recorded_at",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status",
            "last_error",
        ],
        &["delivery_id", "attempts", "last_status"],
        Destination::stdout()?,
    )?;
    for d in store.deliveries(filter).await? {
        w.row(vec![
            d.delivery_id.to_string(),
            d.endpoint,
            crate::webhooks::payload::message_id(&d.notice),
            d.event_type.as_str().to_owned(),
            d.account_id,
            ctx.local(d.created_at),
            d.status.as_str().to_owned(),
            d.attempts.to_string(),
            d.next_attempt_at.map(|t| ctx.local(t)).unwrap_or_default(),
            d.last_attempt_at.map(|t| ctx.local(t)).unwrap_or_default(),
            d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            d.last_error.unwrap_or_default(),
        ])?;
    }
    w.finish()?.finish()
}

/// `billrun webhooks replay`.
pub async fn webhooks_replay<S: Store>(
    store: &S,
    ctx: &Ctx,
    clock: &Clock,
    hooks: Option<&Webhooks>,
    endpoint: &str,
    which: Replay,
) -> anyhow::Result<()> {
    let Some(n) = store.replay(endpoint, &which, ctx.now).await? else {
        return Err(input_error(format!(
            "no endpoint named '{endpoint}': an endpoint is known once a command that writes ran with it in --webhooks"
        )));
    };
    if n == 0 {
        if let Replay::One(id) = &which {
            return Err(input_error(format!(
                "nothing to send {endpoint} again for {}: no such bill or event, or {endpoint} is not subscribed to \
                 its type (an endpoint is sent only the event types the webhooks file lists for it)",
                crate::webhooks::payload::message_id(id)
            )));
        }
    }
    println!("{n} deliveries to {endpoint} due again");
    if n == 0 {
        return Ok(());
    }
    if let Some(hooks) = hooks.filter(|h| h.endpoint(endpoint).is_some()) {
        print_delivered(&jobs::webhooks::deliver(store, hooks, clock, ctx.currency()).await?);
    }
    Ok(())
}

/// `billrun webhooks enable`.
pub async fn webhooks_enable<S: Store>(store: &S, endpoint: &str) -> anyhow::Result<()> {
    if !store.enable_endpoint(endpoint).await? {
        return Err(input_error(format!("no endpoint named '{endpoint}'")));
    }
    println!("endpoint {endpoint} enabled");
    Ok(())
}

/// `billrun webhooks remove`.
pub async fn webhooks_remove<S: Store>(store: &S, endpoint: &str) -> anyhow::Result<()> {
    let Some(dropped) = store.remove_endpoint(endpoint).await? else {
        return Err(input_error(format!("no endpoint named '{endpoint}'")));
    };
    println!("endpoint {endpoint} removed; {dropped} pending deliveries dropped");
    Ok(())
}

/// `billrun estimate`: one account's month to date explained, or every account's as rows or
/// JSON objects, to standard output or a file written whole.
pub async fn estimate<S: Store>(
    store: &S,
    ctx: &Ctx,
    id: Option<&str>,
    month: Option<Month>,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    use crate::reporting::estimate::{explain, json, rows, EstimateContext, HEADERS, NUMERIC};
    use std::io::Write;
    let month = month.unwrap_or_else(|| ctx.current_month());
    let mut dest = Destination::open(out)?;
    if let (Some(id), Format::Table | Format::Json) = (id, format) {
        let (mtd, e) = jobs::estimate::one(store, ctx, month, id).await?;
        let cx = EstimateContext { mtd: &mtd, tz: ctx.tz };
        if format == Format::Json {
            serde_json::to_writer_pretty(&mut dest, &json(&cx, id, &e))?;
            dest.write_all(b"\n")?;
        } else {
            // Ids and names come from the database: shown, not obeyed, by the terminal.
            for line in explain(&cx, id, &e).lines() {
                writeln!(dest, "{}", terminal_safe(line))?;
            }
        }
        return dest.finish();
    }
    if format == Format::Json {
        dest.write_all(b"[")?;
        let mut first = true;
        jobs::estimate::everyone(store, ctx, month, &mut |mtd, account, e, _| {
            dest.write_all(if first { b"\n  " } else { b",\n  " })?;
            first = false;
            serde_json::to_writer(&mut dest, &json(&EstimateContext { mtd, tz: ctx.tz }, account, e))?;
            Ok(())
        })
        .await?;
        dest.write_all(if first { b"]\n" } else { b"\n]\n" })?;
        return dest.finish();
    }
    let mut w = ListWriter::new(format, HEADERS, NUMERIC, dest)?;
    let mut each = |mtd: &crate::domain::estimate::MonthToDate, account: &str, e: &_| {
        for row in rows(&EstimateContext { mtd, tz: ctx.tz }, account, e) {
            w.row(row)?;
        }
        Ok(())
    };
    match id {
        Some(id) => {
            let (mtd, e) = jobs::estimate::one(store, ctx, month, id).await?;
            each(&mtd, id, &e)?;
        }
        None => {
            jobs::estimate::everyone(store, ctx, month, &mut |mtd, account, e, _| each(mtd, account, e)).await?;
        }
    }
    w.finish()?.finish()
}

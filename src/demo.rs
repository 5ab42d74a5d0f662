//! `billrun demo`: a month settled from the built-in fixtures, start to finish, in a
//! directory of its own (never the user's database), with the finance CSV, the month summary
//! and the month report written beside it. The demo's clock is fixed at
//! 2026-11-01 02:00 Asia/Shanghai so its output is the same on every run.

use crate::cli::Format;
use crate::commands::{list_accounts, open_sqlite};
use crate::domain::money::{format_money, from_fen};
use crate::domain::month::Month;
use crate::jobs::{self, Ctx};
use crate::store::{ExportLine, Store};
use anyhow::Context;
use std::path::Path;

const ACCOUNTS: &str = include_str!("../fixtures/demo/accounts.csv");
const USAGE: &str = include_str!("../fixtures/demo/usage.csv");
const PACKS: &str = include_str!("../fixtures/demo/packs.csv");
const DEMO_NOW: &str = "2026-11-01T02:00:00+08:00";
const DEMO_MONTH: &str = "2026-10";

/// Every file the demo writes into its directory (the month is `DEMO_MONTH`); it writes into no
/// directory holding others.
const DEMO_FILES: [&str; 9] = [
    "demo.db",
    "demo.db-wal",
    "demo.db-shm",
    "demo-accounts.csv",
    "demo-usage.csv",
    "demo-packs.csv",
    "bills-2026-10.csv",
    "summary-2026-10.csv",
    "report-2026-10.html",
];

/// Refuses a directory holding anything the demo does not write itself (say, the accounts.csv
/// and usage.csv of `billrun gen --out`): the demo replaces its own files only.
fn check_dir(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut foreign: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !DEMO_FILES.contains(&n.as_str()))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    Err(crate::error::input_error(format!(
        "{} holds files the demo did not write ({}); give --dir a new or empty directory, or one an earlier \
         demo wrote",
        dir.display(),
        foreign.join(", ")
    )))
}

pub async fn run(ctx: &Ctx, dir: &Path) -> anyhow::Result<()> {
    check_dir(dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for f in ["demo.db", "demo.db-wal", "demo.db-shm"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove the old {}", p.display()))?;
        }
    }
    for (name, text) in [
        ("demo-accounts.csv", ACCOUNTS),
        ("demo-usage.csv", USAGE),
        ("demo-packs.csv", PACKS),
    ] {
        std::fs::write(dir.join(name), text)?;
    }
    let ctx = Ctx {
        now: crate::input::parse_instant(DEMO_NOW).map_err(anyhow::Error::msg)?,
        ..ctx.clone()
    };
    let month: Month = DEMO_MONTH.parse().map_err(anyhow::Error::msg)?;
    let db = dir.join("demo.db");
    let store = open_sqlite(&format!("sqlite://{}", db.display())).await?;

    println!("billrun demo: settling {month} as of {} ({})\n", DEMO_NOW, ctx.tz);
    let n = jobs::accounts::import(&store, &ctx, &dir.join("demo-accounts.csv"), None).await?;
    println!("imported {n} accounts");
    store
        .import_packs(
            &crate::input::packs::read(PACKS.as_bytes(), &ctx.catalog.known_apis())
                .map_err(|p| anyhow::anyhow!("demo packs: {p:?}"))?,
        )
        .await
        .map_err(|e| anyhow::anyhow!("demo packs: {e}"))?;
    println!("imported 1 prepaid pack");
    let u = jobs::usage::import(&store, &ctx, &dir.join("demo-usage.csv"), None, Default::default()).await?;
    println!("imported {} usage rows ({} calls)\n", u.rows, u.calls);

    let s = jobs::settle::settle(&store, &ctx, month, crate::domain::shard::Shard::ALL, false).await?;
    print_bills(&store, &ctx, month).await?;
    println!(
        "settled {month}: {} bills, {} CNY billed, {} accounts in arrears\n",
        s.month_totals.bills,
        format_money(from_fen(s.month_totals.total_fen)),
        s.month_totals.accounts_in_arrears
    );
    let csv = dir.join(format!("bills-{month}.csv"));
    let lines = jobs::export::bills(&store, &ctx, month, Some(&csv), false).await?;
    println!("finance CSV: {} ({lines} lines)", csv.display());
    let summary = dir.join(format!("summary-{month}.csv"));
    jobs::summary::summary(&store, &ctx, month, Some(&summary), false).await?;
    println!("month summary: {}", summary.display());
    let report = dir.join(format!("report-{month}.html"));
    jobs::report::report(&store, &ctx, month, Some(&report)).await?;
    println!("month report: {} (open it in a browser)\n", report.display());
    println!("accounts after settlement:");
    list_accounts(&store, &ctx, Format::Table).await?;
    println!("\ndatabase: {} — look around with, e.g.:", db.display());
    println!("  billrun --database sqlite://{} accounts list", db.display());
    println!(
        "  billrun --database sqlite://{} --now 2026-11-02T03:00:00+08:00 enforce",
        db.display()
    );
    Ok(())
}

/// Prints each bill as finance would read it.
async fn print_bills<S: Store>(store: &S, ctx: &Ctx, month: Month) -> anyhow::Result<()> {
    let mut lines: Vec<ExportLine> = Vec::new();
    store
        .export_lines(Some(month), None, &mut |l| {
            lines.push(l);
            Ok(())
        })
        .await?;
    let mut i = 0;
    while i < lines.len() {
        let bill: Vec<&ExportLine> = lines[i..]
            .iter()
            .take_while(|l| l.bill_id == lines[i].bill_id)
            .collect();
        let head = bill[0];
        println!("bill {}  {}  {}", head.bill_id, head.account_id, head.account_name);
        crate::output::print_bill_lines(&bill);
        println!(
            "  total {} CNY (exact {}, rounding {}); balance {} → {} CNY\n",
            format_money(from_fen(head.bill_total_fen)),
            format_money(head.bill_exact_total),
            format_money(head.rounding_adjustment),
            format_money(from_fen(head.balance_before_fen)),
            format_money(from_fen(head.balance_after_fen)),
        );
        i += bill.len();
    }
    let _ = ctx;
    Ok(())
}

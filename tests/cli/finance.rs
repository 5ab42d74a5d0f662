//! What finance and support read: the bills export with its extra columns, formula
//! neutralising and `--excel`, the month summary reconciled with the bills export, and
//! `bills show`.

use crate::harness::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::str::FromStr;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";
const NOV_5: &str = "2026-11-05T09:00:00+08:00";
const BOM: &[u8] = b"\xEF\xBB\xBF";

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|e| panic!("'{s}' is not a plain decimal: {e}"))
}

/// The columns the bills export had before this issue, in their order: never moved.
const OLD_COLUMNS: &str = "month,account_id,api,total_calls,free_calls,prepaid_calls,billable_calls,tier,unit_price,\
amount,bill_total,rounding_adjustment,account_name,bill_id,currency,catalog_version,pricing,tier_basis,tier_from,\
tier_to,bill_exact_total,balance_before,balance_after,period_start,period_end,settled_at,revision,kind,revision_debited";

/// Reads a CSV with the `csv` crate, as a spreadsheet import would: header → value rows.
fn read_csv(bytes: &[u8]) -> (Vec<String>, Vec<Row>) {
    let mut r = csv::ReaderBuilder::new().from_reader(bytes);
    let headers: Vec<String> = r.headers().expect("header").iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.expect("record");
            assert_eq!(rec.len(), headers.len(), "a row with a different number of cells");
            headers.iter().cloned().zip(rec.iter().map(str::to_owned)).collect()
        })
        .collect();
    (headers, rows)
}

/// Accounts with hostile names and ids, one of which gets a credit from a correction.
fn hostile_month(env: &Env) {
    env.file(
        "accounts.csv",
        "account_id,name,activated_at,balance\n\
         f1,\"=HYPERLINK(\"\"http://evil.example/\"\",\"\"click\"\")\",2026-01-01T00:00:00Z,100\n\
         -cmd,@SUM(A1:A9),2026-01-01T00:00:00Z,100\n\
         +plus,示例 Co,2026-01-01T00:00:00Z,100\n\
         down,Owes less,2026-01-01T00:00:00Z,2000\n",
    );
    env.ok(&["--now", NOV_1, "accounts", "import", "accounts.csv"]);
    env.import_usage(&[
        "f1,AssessQuality,2026-10-05T00:00:00+08:00,1500",
        "-cmd,CropImage,2026-10-05T00:00:00+08:00,2000",
        "+plus,EnhanceImage,2026-10-05T00:00:00+08:00,1001",
        // 999,999 calls → tier 1: 2997.00, balance −997.00; one late call reaches tier 2 and
        // lowers the bill: a credit of 499.50.
        "down,AssessQuality,2026-10-05T00:00:00+08:00,999999",
    ]);
    env.settle("2026-10", NOV_1);
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\ndown,AssessQuality,2026-10-31T23:59:59+08:00,1\n",
    );
    env.ok(&["--now", NOV_5, "usage", "import", &late]);
    env.settle("2026-10", NOV_5);
}

#[test]
fn the_bills_export_neutralises_text_formulas_but_never_numbers() {
    let env = Env::new();
    hostile_month(&env);
    let out = env.run(&["export", "bills", "--month", "2026-10"]);
    assert!(out.status.success());
    assert!(!out.stdout.starts_with(BOM), "no byte-order mark without --excel");
    let (headers, rows) = read_csv(&out.stdout);
    assert_eq!(
        headers[..29].join(","),
        OLD_COLUMNS,
        "existing columns keep their order"
    );
    assert_eq!(
        headers[29..].join(","),
        "product,api_name,billing_mode,in_arrears,suspend_at,bill_credited,bill_due,credit_reference,credit_reason"
    );
    let by = |id: &str| {
        rows.iter()
            .find(|r| r["account_id"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    // Text cells that a spreadsheet would run get a leading apostrophe, whatever the column.
    assert_eq!(
        by("f1")["account_name"],
        "'=HYPERLINK(\"http://evil.example/\",\"click\")"
    );
    let cmd = by("'-cmd");
    assert_eq!(cmd["account_name"], "'@SUM(A1:A9)");
    assert_eq!(cmd["bill_id"], "2026-10--cmd-r1", "starts with a digit: left alone");
    assert_eq!(by("'+plus")["account_name"], "示例 Co");
    // The display names and product come from the catalog version the line was priced with.
    let f1 = by("f1");
    assert_eq!(
        (
            f1["product"].as_str(),
            f1["api_name"].as_str(),
            f1["billing_mode"].as_str(),
            f1["currency"].as_str()
        ),
        ("图像处理", "图像质量评估", "postpaid", "CNY")
    );
    assert_eq!((f1["in_arrears"].as_str(), f1["suspend_at"].as_str()), ("false", ""));

    // Numeric cells are never touched, negative ones included.
    let down: Vec<&Row> = rows.iter().filter(|r| r["account_id"] == "down").collect();
    assert_eq!(down.len(), 2);
    assert_eq!(
        (down[1]["kind"].as_str(), down[1]["revision_debited"].as_str()),
        ("adjustment", "-499.50")
    );
    assert_eq!(d(&down[1]["revision_debited"]), Decimal::new(-49950, 2));
    assert_eq!(
        (down[0]["balance_after"].as_str(), down[1]["balance_after"].as_str()),
        ("-997.00", "-497.50")
    );
    for r in &rows {
        for col in [
            "total_calls",
            "amount",
            "bill_total",
            "rounding_adjustment",
            "balance_before",
            "balance_after",
            "revision_debited",
            "unit_price",
        ] {
            assert!(!r[col].starts_with('\''), "{col} = {} was neutralised", r[col]);
            d(&r[col]);
        }
    }
    // In arrears after each revision; the credit left it negative, still under the same stop.
    for r in &down {
        assert_eq!(
            (r["in_arrears"].as_str(), r["suspend_at"].as_str()),
            ("true", "2026-11-02T02:00:00+08:00"),
            "revision {}",
            r["revision"]
        );
    }
    assert_eq!(
        (
            by("'+plus")["in_arrears"].as_str(),
            by("'+plus")["balance_after"].as_str()
        ),
        ("false", "99.99")
    );
}

#[test]
fn excel_gets_a_byte_order_mark_and_nothing_else_changes() {
    let env = Env::new();
    hostile_month(&env);
    let plain = env.run(&["export", "bills", "--month", "2026-10"]).stdout;
    let excel = env.run(&["export", "bills", "--month", "2026-10", "--excel"]).stdout;
    assert!(excel.starts_with(BOM), "--excel starts with EF BB BF");
    assert_eq!(&excel[3..], &plain[..], "only the mark differs");
    // A real CSV reader takes the mark as the file's encoding, not as part of `month`.
    let (headers, rows) = read_csv(&excel);
    assert_eq!(headers[0], "month");
    assert_eq!(rows.len(), 5);
    // To a file too, and for the summary.
    env.ok(&["export", "bills", "--month", "2026-10", "--excel", "--out", "bills.csv"]);
    assert_eq!(std::fs::read(env.dir.path().join("bills.csv")).unwrap(), excel);
    let summary = env.run(&["export", "summary", "--month", "2026-10", "--excel"]).stdout;
    assert!(summary.starts_with(BOM));
    let summary = env.run(&["export", "summary", "--month", "2026-10"]).stdout;
    assert!(!summary.starts_with(BOM));
}

/// Each account's latest revision in a bills export, as (account → its lines).
fn latest_bills(rows: &[Row]) -> BTreeMap<String, Vec<&Row>> {
    let mut latest: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        let rev: i32 = r["revision"].parse().unwrap();
        let lines = latest.entry(r["account_id"].clone()).or_default();
        match lines.first().map(|l| l["revision"].parse::<i32>().unwrap()) {
            Some(cur) if cur > rev => continue,
            Some(cur) if cur < rev => lines.clear(),
            _ => {}
        }
        lines.push(r);
    }
    latest
}

#[test]
fn the_summary_reconciles_exactly_with_the_bills_export() {
    let env = Env::new();
    env.ok(&[
        "gen",
        "--accounts",
        "400",
        "--rows",
        "3000",
        "--month",
        "2026-10",
        "--seed",
        "11",
        "--out",
        "gen",
    ]);
    env.ok(&["--now", NOV_1, "accounts", "import", "gen/accounts.csv"]);
    env.ok(&["--now", NOV_1, "usage", "import", "gen/usage.csv"]);
    let settled = env.settle("2026-10", NOV_1);
    // Late usage for two accounts: their latest revision is an adjustment.
    let first: Vec<String> = env.accounts().into_keys().take(2).collect();
    let late = env.file(
        "late.csv",
        &format!(
            "account_id,api,timestamp,calls\n{0},EnhanceImage,2026-10-31T12:00:00+08:00,250000\n\
             {1},CropImage,2026-10-30T12:00:00+08:00,4000\n",
            first[0], first[1]
        ),
    );
    // A credit note on the first account's bill, which the late usage then adjusts: the
    // adjustment keeps the credit.
    env.ok(&[
        "--now",
        "2026-11-03T09:00:00+08:00",
        "credit",
        &first[0],
        "--month",
        "2026-10",
        "--amount",
        "0.01",
        "--reason",
        "goodwill",
        "--reference",
        "G-1",
    ]);
    env.ok(&["--now", NOV_5, "usage", "import", &late]);
    let resettled = env.settle("2026-10", NOV_5);
    assert!(
        resettled.contains("2 of them are adjustments"),
        "{resettled}\n{settled}"
    );

    let (_, bills) = read_csv(&env.run(&["export", "bills", "--month", "2026-10"]).stdout);
    env.ok(&["export", "summary", "--month", "2026-10", "--out", "summary.csv"]);
    let (headers, summary) = read_csv(&std::fs::read(env.dir.path().join("summary.csv")).unwrap());
    let tiers: Vec<&String> = headers.iter().filter(|h| h.starts_with("accounts_tier_")).collect();
    assert_eq!(tiers.len(), 4, "{headers:?}");

    // Sums computed from the bills export, latest revision of each account.
    let latest = latest_bills(&bills);
    #[derive(Default, Debug, PartialEq)]
    struct Api {
        accounts: u64,
        calls: i64,
        free: i64,
        prepaid: i64,
        billable: i64,
        revenue: Decimal,
        per_tier: [u64; 4],
    }
    let mut apis: BTreeMap<String, Api> = BTreeMap::new();
    let (mut rounding, mut billed, mut owed) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let (mut credited, mut due) = (Decimal::ZERO, Decimal::ZERO);
    let mut in_arrears = BTreeMap::new();
    for lines in latest.values() {
        for l in lines {
            let a = apis.entry(l["api"].clone()).or_default();
            a.accounts += 1;
            a.calls += l["total_calls"].parse::<i64>().unwrap();
            a.free += l["free_calls"].parse::<i64>().unwrap();
            a.prepaid += l["prepaid_calls"].parse::<i64>().unwrap();
            a.billable += l["billable_calls"].parse::<i64>().unwrap();
            a.revenue += d(&l["amount"]);
            a.per_tier[l["tier"].parse::<usize>().unwrap() - 1] += 1;
        }
        rounding += d(&lines[0]["rounding_adjustment"]);
        billed += d(&lines[0]["bill_total"]);
        credited += d(&lines[0]["bill_credited"]);
        due += d(&lines[0]["bill_due"]);
        assert_eq!(
            d(&lines[0]["bill_due"]),
            (d(&lines[0]["bill_total"]) - d(&lines[0]["bill_credited"])).max(Decimal::ZERO)
        );
        let after = d(&lines[0]["balance_after"]);
        if after < Decimal::ZERO {
            owed -= after;
            in_arrears.insert(lines[0]["account_id"].clone(), (-after, lines[0]["suspend_at"].clone()));
        }
    }
    assert!(
        apis.values().any(|a| a.per_tier[1..].iter().any(|&n| n > 0)),
        "the month reaches a tier above the first"
    );
    assert!(!in_arrears.is_empty(), "some accounts go into arrears");

    let section = |s: &'static str| summary.iter().filter(move |r| r["section"] == s);
    let mut from_summary: BTreeMap<String, Api> = BTreeMap::new();
    for r in section("api") {
        from_summary.insert(
            r["api"].clone(),
            Api {
                accounts: r["accounts"].parse().unwrap(),
                calls: r["calls"].parse().unwrap(),
                free: r["free_calls"].parse().unwrap(),
                prepaid: r["prepaid_calls"].parse().unwrap(),
                billable: r["billable_calls"].parse().unwrap(),
                revenue: d(&r["revenue"]),
                per_tier: [1, 2, 3, 4].map(|t| r[&format!("accounts_tier_{t}")].parse().unwrap()),
            },
        );
    }
    assert_eq!(from_summary, apis);

    let total: Vec<&Row> = section("total").collect();
    assert_eq!(total.len(), 1);
    let total = total[0];
    let revenue: Decimal = apis.values().map(|a| a.revenue).sum();
    assert_eq!(total["api"], "TOTAL");
    assert_eq!(total["accounts"], latest.len().to_string());
    assert_eq!(
        total["billable_calls"],
        apis.values().map(|a| a.billable).sum::<i64>().to_string()
    );
    assert_eq!(d(&total["revenue"]), revenue);
    assert_eq!(d(&total["rounding"]), rounding);
    assert_eq!(d(&total["billed"]), billed);
    assert_eq!(revenue + rounding, billed, "lines + rounding = billed, exactly");
    assert_eq!(d(&total["credited"]), credited);
    assert_eq!(credited, d("0.01"), "the credit note is on the latest revision");
    assert_eq!(d(&total["due"]), due);
    // What every revision moved adds up to what the latest ones ask for ...
    let mut moved = BTreeMap::new();
    for l in &bills {
        moved.insert(l["bill_id"].clone(), d(&l["revision_debited"]));
    }
    assert_eq!(moved.values().copied().sum::<Decimal>(), due, "money moved = due");
    // ... which is the month's billing as settle reports it.
    assert!(
        resettled.contains(&format!("{} CNY billed after 0.01 CNY of credit notes", total["due"])),
        "{resettled} vs {}",
        total["due"]
    );

    let arrears: BTreeMap<String, (Decimal, String)> = section("arrears")
        .map(|r| (r["account_id"].clone(), (d(&r["owed"]), r["suspend_at"].clone())))
        .collect();
    assert_eq!(arrears, in_arrears);
    let arrears_total: Vec<&Row> = section("arrears_total").collect();
    assert_eq!(arrears_total[0]["accounts"], in_arrears.len().to_string());
    assert_eq!(d(&arrears_total[0]["owed"]), owed);
    assert_eq!(summary.len(), 3 + 1 + in_arrears.len() + 1, "no other rows");
}

#[test]
fn a_month_without_bills_sums_to_zero_and_bad_paths_are_named() {
    let env = Env::new();
    env.ok(&["migrate"]);
    // A month never settled has nothing to show, and says so rather than exporting zeros.
    for args in [
        vec!["export", "summary", "--month", "2026-10"],
        vec!["export", "bills", "--month", "2026-10"],
        vec!["report", "--month", "2026-10", "--out", "report.html"],
    ] {
        let err = env.fails(3, &args);
        assert!(err.contains("2026-10 has not been settled"), "{args:?}: {err}");
    }
    assert!(!env.dir.path().join("report.html").exists());
    // Settled with no usage at all, it is a month without revenue.
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    let out = env.ok(&["export", "summary", "--month", "2026-10"]);
    let (_, rows) = read_csv(out.as_bytes());
    let total = rows.iter().find(|r| r["section"] == "total").unwrap();
    assert_eq!(
        (
            total["accounts"].as_str(),
            total["revenue"].as_str(),
            total["billed"].as_str()
        ),
        ("0", "0.00", "0.00")
    );
    assert_eq!(rows.iter().filter(|r| r["section"] == "api").count(), 3);
    let err = env.fails(
        3,
        &[
            "export",
            "summary",
            "--month",
            "2026-10",
            "--out",
            "no/such/dir/summary.csv",
        ],
    );
    assert!(err.contains("cannot write no/such/dir/summary.csv"), "{err}");
    let err = env.fails(2, &["export", "summary", "--month", "2026-13"]);
    assert!(err.contains("2026-13"), "{err}");
}

#[test]
fn bills_show_explains_a_bill_as_support_would() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["p,Prepaid 示例,2026-01-01T00:00:00Z,1.00"]);
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         PP-1,p,CropImage,3000,2026-09-01T00:00:00+08:00,2027-03-01T00:00:00+08:00,2026-08-28T15:20:00+08:00\n",
    );
    env.ok(&["packs", "import", &packs]);
    env.import_usage(&[
        "p,CropImage,2026-10-10T10:00:00+08:00,6000",
        "p,AssessQuality,2026-10-11T10:00:00+08:00,1735",
    ]);
    env.settle("2026-10", NOV_1);
    // As support sees it on the day of the settlement, before the stop.
    let show = env.ok(&["--now", NOV_1, "bills", "show", "p", "--month", "2026-10"]);
    for expected in [
        "2026-10 bill of p (Prepaid 示例): 1 revision(s)",
        "account status now: in arrears (balance -5.21 CNY): service stops at 2026-11-02T02:00:00+08:00",
        "AssessQuality (图像质量评估): 1,735 calls − 1,000 free − 0 prepaid = 735 billable",
        "735 × 0.003 = 2.205 CNY",
        "CropImage (智能裁剪): 6,000 calls − 1,000 free − 3,000 prepaid = 2,000 billable",
        "tier 1 (0 to 999,999 calls), chosen by the month's 6,000 calls in all: 0.002 CNY a call",
        "2,000 × 0.002 = 4.00 CNY",
        "lines        6.205 CNY (exact)",
        "rounding     +0.005 CNY (half-up to 0.01)",
        "total        6.21 CNY",
        "debited 6.21 CNY (the total); balance 1.00 -> -5.21 CNY",
        "this left the account in arrears; service stop scheduled at 2026-11-02T02:00:00+08:00",
    ] {
        assert!(show.contains(expected), "missing {expected:?} in\n{show}");
    }
    env.ok(&["--now", "2026-11-02T03:00:00+08:00", "enforce"]);
    let show = env.ok(&["bills", "show", "p", "--month", "2026-10"]);
    assert!(
        show.contains("account status now: suspended since 2026-11-02T02:00:00+08:00 (balance -5.21 CNY)"),
        "{show}"
    );
    env.ok(&["--now", "2026-11-03T09:00:00+08:00", "recharge", "p", "10"]);
    let show = env.ok(&["bills", "show", "p", "--month", "2026-10"]);
    assert!(show.contains("account status now: active (balance 4.79 CNY)"), "{show}");
    // The bill itself does not change with the account.
    assert!(show.contains("balance 1.00 -> -5.21 CNY"), "{show}");
}

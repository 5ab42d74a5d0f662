//! Month to date: `billrun estimate` during the month and at its end, against the bill the
//! settle then writes.

use crate::harness::*;
use serde_json::Value;

const MID_OCTOBER: &str = "2026-10-16T00:00:00+08:00";
const OCTOBER_OVER: &str = "2026-11-01T01:00:00+08:00";

fn october(env: &Env) {
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &[
            "big,Big,2026-09-01T00:00:00+08:00,100",
            "prepaid,Prepaid,2026-09-01T00:00:00+08:00,0",
            "newcomer,Newcomer,2026-10-20T00:00:00+08:00,0",
            "idle,Idle,2026-09-01T00:00:00+08:00,0",
        ],
    );
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         PP-1,prepaid,CropImage,3000,2026-09-01T00:00:00+08:00,2027-03-01T00:00:00+08:00,2026-08-28T00:00:00+08:00\n",
    );
    env.ok(&["--now", "2026-10-01T00:00:00+08:00", "packs", "import", &packs]);
    // The first half of October.
    env.import_usage(&[
        "big,AssessQuality,2026-10-02T00:00:00+08:00,600000",
        "big,CropImage,2026-10-03T00:00:00+08:00,500",
        "prepaid,CropImage,2026-10-05T00:00:00+08:00,2500",
    ]);
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn api<'a>(account: &'a Value, api: &str) -> &'a Value {
    account["apis"]
        .as_array()
        .expect("apis")
        .iter()
        .find(|a| a["api"] == api)
        .unwrap_or_else(|| panic!("no {api} in {account:#}"))
}

#[test]
fn the_month_so_far_shows_packs_tiers_and_the_pace() {
    let env = Env::new();
    october(&env);
    // 15 days of October's 31 have passed.
    let big = json(&env.ok(&["--now", MID_OCTOBER, "estimate", "big", "--format", "json"]));
    assert_eq!(big["month"], "2026-10");
    assert_eq!(big["elapsed_seconds"], 15 * 86_400);
    assert_eq!(big["month_seconds"], 31 * 86_400);
    let aq = api(&big, "AssessQuality");
    assert_eq!(aq["calls"], 600_000);
    assert_eq!(aq["free_used"], 1000);
    assert_eq!(aq["free_left"], 0);
    assert_eq!(aq["billable"], 599_000);
    assert_eq!(aq["tier"], 1);
    assert_eq!(aq["next_tier_from"], 1_000_000);
    // 599,000 × 0.003 = 1797.
    assert_eq!(aq["amount"], "1797");
    // 600,000 × 31 / 15 = 1,240,000 calls: tier 2, 1,239,000 billable × 0.0025 = 3097.5.
    assert_eq!(aq["projected_calls"], 1_240_000);
    assert_eq!(aq["projected_amount"], "3097.5");
    // CropImage: 500 of the free 1000 used; EnhanceImage, never called, still shows its pack.
    let crop = api(&big, "CropImage");
    assert_eq!(
        (crop["free_used"].as_i64(), crop["free_left"].as_i64()),
        (Some(500), Some(500))
    );
    let enh = api(&big, "EnhanceImage");
    assert_eq!(
        (enh["calls"].as_i64(), enh["free_left"].as_i64()),
        (Some(0), Some(1000))
    );
    assert_eq!(big["total"], "1797.00");

    // The prepaid pack is used after the free one, and what is left of it is shown.
    let prepaid = json(&env.ok(&["--now", MID_OCTOBER, "estimate", "prepaid", "--format", "json"]));
    let crop = api(&prepaid, "CropImage");
    assert_eq!(crop["prepaid_used"], 1500);
    let packs = crop["packs"].as_array().unwrap();
    assert_eq!(packs.len(), 2, "{packs:#?}");
    assert_eq!(
        (packs[0]["kind"].as_str(), packs[0]["left"].as_i64()),
        (Some("free"), Some(0))
    );
    assert_eq!(
        (
            packs[1]["pack_id"].as_str(),
            packs[1]["used"].as_i64(),
            packs[1]["left"].as_i64()
        ),
        (Some("PP-1"), Some(1500), Some(1500))
    );
    assert_eq!(prepaid["total"], "0.00");
    // At this pace (2500 × 31 / 15 = 5167 calls) the prepaid pack runs out: 5167 − 1000 − 3000.
    assert_eq!(crop["projected_calls"], 5167);
    assert_eq!(crop["projected_billable"], 1167);

    // On screen, as support reads it to the customer.
    let text = env.ok(&["--now", MID_OCTOBER, "estimate", "prepaid"]);
    for said in [
        "account prepaid, 2026-10 to date",
        "15 of 31 days",
        "CropImage (智能裁剪)",
        "prepaid pack      1,500 used, 1,500 left (PP-1)",
        "tier 1 (from 0 calls); tier 2 from 1,000,000 calls",
        "at this pace      5,167 calls in the month, 1,167 billable",
    ] {
        assert!(text.contains(said), "{said:?} missing from:\n{text}");
    }

    // An account opened mid-month counts the free packs the settle will grant it, though
    // none is stored yet; the estimate stores nothing.
    let packs_before = env.ok(&["packs", "list", "--format", "csv"]);
    let newcomer = json(&env.ok(&[
        "--now",
        "2026-10-25T00:00:00+08:00",
        "estimate",
        "newcomer",
        "--format",
        "json",
    ]));
    assert_eq!(api(&newcomer, "CropImage")["free_left"], 1000);
    assert_eq!(env.ok(&["packs", "list", "--format", "csv"]), packs_before);
}

#[test]
fn at_the_months_end_the_estimate_is_the_bill() {
    let env = Env::new();
    october(&env);
    env.import_usage(&[
        "big,AssessQuality,2026-10-25T00:00:00+08:00,500000",
        "big,EnhanceImage,2026-10-26T00:00:00+08:00,1234",
        "prepaid,CropImage,2026-10-27T00:00:00+08:00,1501",
        "newcomer,EnhanceImage,2026-10-28T00:00:00+08:00,1777",
    ]);
    // Everyone, as JSON, after the month has ended and before it is settled.
    let all = json(&env.ok(&[
        "--now",
        OCTOBER_OVER,
        "estimate",
        "--month",
        "2026-10",
        "--format",
        "json",
    ]));
    let all = all.as_array().expect("an array");
    let ids: Vec<&str> = all.iter().map(|a| a["account_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["big", "newcomer", "prepaid"], "accounts with usage, in order");
    let csv = parse_csv(&env.ok(&[
        "--now",
        OCTOBER_OVER,
        "estimate",
        "--month",
        "2026-10",
        "--format",
        "csv",
    ]));

    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    let bills = env.bills("2026-10");
    for account in all {
        let id = account["account_id"].as_str().unwrap();
        let bill: Vec<&Row> = bills.iter().filter(|r| r["account_id"] == id).collect();
        assert!(!bill.is_empty(), "{id} has a bill");
        assert_eq!(account["total"], bill[0]["bill_total"].as_str(), "{id}'s total");
        assert_eq!(
            account["projected_total"], account["total"],
            "a month that has ended projects to itself"
        );
        for line in &bill {
            let api = api(account, &line["api"]);
            for (ours, theirs) in [
                ("calls", "total_calls"),
                ("free_used", "free_calls"),
                ("prepaid_used", "prepaid_calls"),
                ("billable", "billable_calls"),
                ("tier", "tier"),
            ] {
                assert_eq!(api[ours].to_string(), line[theirs], "{id} {}: {ours}", line["api"]);
            }
            let amount = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
            assert_eq!(
                amount(api["amount"].as_str().unwrap()),
                amount(&line["amount"]),
                "{id} {}",
                line["api"]
            );
            // The CSV says the same, row for row.
            let row = csv
                .iter()
                .find(|r| r["account_id"] == id && r["api"] == line["api"])
                .expect("a CSV row per account and API");
            assert_eq!(row["billable"], line["billable_calls"]);
            assert_eq!(amount(&row["amount"]), amount(&line["amount"]));
        }
    }
    // Settled, the month is the bills' to show.
    let said = env.fails(
        3,
        &[
            "--now",
            "2026-11-02T00:00:00+08:00",
            "estimate",
            "big",
            "--month",
            "2026-10",
        ],
    );
    assert!(said.contains("2026-10 has been settled"), "{said}");
}

#[test]
fn an_estimate_refuses_what_it_cannot_say() {
    let env = Env::new();
    october(&env);
    let said = env.fails(3, &["--now", MID_OCTOBER, "estimate", "big", "--month", "2026-11"]);
    assert!(said.contains("2026-11 has not begun"), "{said}");
    let said = env.fails(3, &["--now", MID_OCTOBER, "estimate", "nobody"]);
    assert!(said.contains("nobody"), "{said}");
    let said = env.fails(3, &["--now", MID_OCTOBER, "--tz", "UTC", "estimate", "big"]);
    assert!(said.contains("kept for the months of Asia/Shanghai"), "{said}");
    // Nobody has used anything yet in November: an empty list, not an error.
    let out = env.ok(&["--now", "2026-11-01T00:30:00+08:00", "estimate", "--format", "csv"]);
    assert_eq!(out.lines().count(), 1, "{out}");
}

//! Settling a month: the seed's examples, tier edges, month bounds, free packs, rounding,
//! re-runs, catalog versions and the demo.

use crate::harness::*;
use rust_decimal::Decimal;
use std::str::FromStr;

const OPENED: &str = "2026-01-01T00:00:00+08:00";
const NOV_1: &str = "2026-11-01T02:00:00+08:00";

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn the_seed_examples_come_out_exactly() {
    let env = Env::new();
    env.import_accounts(
        OPENED,
        &[
            "s1,Example one,2026-01-01T00:00:00+08:00,10000",
            "s2,Example two,2026-01-01T00:00:00+08:00,10000",
            "s3,Example three,2026-01-01T00:00:00+08:00,10000",
        ],
    );
    env.import_usage(&[
        "s1,AssessQuality,2026-10-02T10:00:00+08:00,1500000",
        "s1,AssessQuality,2026-10-20T10:00:00+08:00,500000",
        "s2,CropImage,2026-10-05T10:00:00+08:00,500000",
        "s3,EnhanceImage,2026-10-09T10:00:00+08:00,3500000",
    ]);
    let out = env.settle("2026-10", NOV_1);
    assert!(out.contains("3 accounts billed now, 30488.50 CNY"), "{out}");
    let bills = env.bills("2026-10");
    let s1 = line(&bills, "s1", AQ);
    assert_eq!(
        (s1["amount"].as_str(), s1["tier"].as_str(), s1["unit_price"].as_str()),
        ("4997.50", "2", "0.0025")
    );
    assert_eq!(
        (s1["free_calls"].as_str(), s1["billable_calls"].as_str()),
        ("1000", "1999000")
    );
    assert_eq!(line(&bills, "s2", CROP)["amount"], "998.00");
    assert_eq!(line(&bills, "s2", CROP)["tier"], "1");
    assert_eq!(line(&bills, "s3", ENH)["amount"], "24493.00");
    assert_eq!(line(&bills, "s3", ENH)["tier"], "3");
    for (id, total) in [("s1", "4997.50"), ("s2", "998.00"), ("s3", "24493.00")] {
        let b = bills.iter().find(|r| r["account_id"] == id).unwrap();
        assert_eq!(b["bill_total"], total);
        assert_eq!(b["rounding_adjustment"], "0.00");
        assert_eq!(b["catalog_version"], "seed-2023-12");
    }
    let accounts = env.accounts();
    assert_eq!(accounts["s1"]["balance"], "5002.50");
    assert_eq!(accounts["s3"]["balance"], "-14493.00");
    assert_eq!(accounts["s3"]["status"], "arrears");
}

#[test]
fn tier_edges_are_lower_inclusive() {
    let env = Env::new();
    env.import_accounts(
        OPENED,
        &[
            "at,At the edge,2026-01-01T00:00:00Z,0",
            "below,Below it,2026-01-01T00:00:00Z,0",
        ],
    );
    env.import_usage(&[
        "at,AssessQuality,2026-10-02T10:00:00+08:00,1000000",
        "below,AssessQuality,2026-10-02T10:00:00+08:00,999999",
    ]);
    env.settle("2026-10", NOV_1);
    let bills = env.bills("2026-10");
    let at = line(&bills, "at", AQ);
    assert_eq!((at["tier"].as_str(), at["amount"].as_str()), ("2", "2497.50"));
    let below = line(&bills, "below", AQ);
    // Volume pricing is not monotonic at the edge: fewer calls, higher bill.
    assert_eq!((below["tier"].as_str(), below["amount"].as_str()), ("1", "2996.997"));
    assert_eq!(below["bill_total"], "2997.00");
    assert_eq!(below["rounding_adjustment"], "0.003");
}

#[test]
fn month_boundaries_follow_the_billing_time_zone() {
    for (tz, month_of_the_row) in [("Asia/Shanghai", "2026-10"), ("UTC", "2026-09")] {
        let env = Env::new();
        if env.is_postgres() {
            // The database's own TimeZone is another zone on purpose (harness.rs); bounds are
            // computed in --tz and bound as instants, so it must not matter.
            let zone: String = env.query(
                "SELECT array_to_string(s.setconfig, ',') FROM pg_db_role_setting s
                 JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()",
            );
            assert_eq!(zone, "TimeZone=Pacific/Kiritimati");
        }
        env.import_accounts(OPENED, &["a,A,2026-01-01T00:00:00Z,0"]);
        env.import_usage(&[
            "a,CropImage,2026-09-30T16:00:00Z,1500",
            "a,CropImage,2026-10-31T15:59:59Z,1",
        ]);
        env.ok(&[
            "--tz",
            tz,
            "--now",
            "2026-11-02T00:00:00Z",
            "settle",
            "--month",
            "2026-09",
        ]);
        env.ok(&[
            "--tz",
            tz,
            "--now",
            "2026-11-02T00:00:00Z",
            "settle",
            "--month",
            "2026-10",
        ]);
        let sept = env.bills("2026-09");
        let oct = env.bills("2026-10");
        let calls_in = |bills: &[Row]| {
            bills
                .iter()
                .map(|r| r["total_calls"].parse::<i64>().unwrap())
                .sum::<i64>()
        };
        if month_of_the_row == "2026-10" {
            assert_eq!((calls_in(&sept), calls_in(&oct)), (0, 1501), "{tz}");
            assert_eq!(oct[0]["period_start"], "2026-10-01T00:00:00+08:00");
        } else {
            assert_eq!((calls_in(&sept), calls_in(&oct)), (1500, 1), "{tz}");
            // The export shows instants in its own --tz (the default, Shanghai): UTC midnight.
            assert_eq!(oct[0]["period_start"], "2026-10-01T08:00:00+08:00");
        }
    }
}

#[test]
fn an_account_opened_mid_month_gets_the_whole_free_pack() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["late,Opened late,,25"]);
    assert_eq!(env.accounts()["late"]["status"], "inactive");
    let out = env.ok(&["--now", "2026-10-28T15:00:00+08:00", "accounts", "activate", "late"]);
    assert!(out.contains("3 free packs granted for 2026-10"), "{out}");
    let packs = env.packs();
    assert_eq!(packs.len(), 3);
    assert!(packs
        .iter()
        .all(|p| p["kind"] == "free" && p["calls"] == "1000" && p["month"] == "2026-10"));
    assert_eq!(packs[0]["valid_from"], "2026-10-01T00:00:00+08:00");
    // Activating again changes nothing.
    let again = env.ok(&["--now", "2026-10-29T15:00:00+08:00", "accounts", "activate", "late"]);
    assert!(again.contains("already open"), "{again}");
    env.import_usage(&["late,EnhanceImage,2026-10-29T10:00:00+08:00,1200"]);
    env.settle("2026-10", NOV_1);
    let l = env.bills("2026-10");
    let l = line(&l, "late", ENH);
    assert_eq!(
        (
            l["free_calls"].as_str(),
            l["billable_calls"].as_str(),
            l["amount"].as_str()
        ),
        ("1000", "200", "1.60")
    );
}

#[test]
fn settling_grants_the_free_packs_where_missing() {
    let env = Env::new();
    // Imported in December: the October packs were never granted at the time.
    env.import_accounts("2026-12-05T00:00:00+08:00", &["a,A,2026-03-01T00:00:00+08:00,0"]);
    assert!(env.packs().iter().all(|p| p["month"] == "2026-12"));
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,999"]);
    env.settle("2026-10", "2026-12-05T00:00:00+08:00");
    let bills = env.bills("2026-10");
    assert_eq!(line(&bills, "a", CROP)["free_calls"], "999");
    assert_eq!(line(&bills, "a", CROP)["bill_total"], "0.00");
    let oct: Vec<_> = env.packs().into_iter().filter(|p| p["month"] == "2026-10").collect();
    assert_eq!(oct.len(), 3);
    assert_eq!(oct.iter().find(|p| p["api"] == CROP).unwrap()["remaining"], "1");
    // `grant` alone is idempotent too.
    let out = env.ok(&["--now", "2026-12-05T00:00:00+08:00", "grant", "--month", "2026-10"]);
    assert!(out.contains("granted 0 free packs"), "{out}");
    let out = env.ok(&["--now", "2026-12-05T00:00:00+08:00", "grant", "--month", "2027-01"]);
    assert!(out.contains("granted 3 free packs"), "{out}");
}

/// A month's free packs follow from its grant (`free_grants`) and each account's opening: an
/// account imported after the grant, with an opening inside the month, has the month's packs
/// at once, usage or not, and the grant has nothing left to do.
#[test]
fn an_account_opened_in_a_granted_month_and_imported_later_has_its_packs() {
    let env = Env::new();
    env.import_accounts("2026-10-05T00:00:00+08:00", &["a,A,2026-03-01T00:00:00+08:00,0"]);
    let out = env.ok(&["--now", "2026-10-06T00:00:00+08:00", "grant", "--month", "2026-10"]);
    assert!(out.contains("granted 0 free packs"), "{out}");
    // Imported in November, opened on 20 October, with no usage at all.
    env.import_accounts("2026-11-01T01:00:00+08:00", &["b,B,2026-10-20T00:00:00+08:00,0"]);
    let october = |id: &str| {
        env.packs()
            .into_iter()
            .filter(|p| p["account_id"] == id && p["month"] == "2026-10")
            .count()
    };
    assert_eq!(october("b"), 3, "b was opened in October: it is due October's packs");
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,5"]);
    env.settle("2026-10", NOV_1);
    assert_eq!(october("a"), 3);
    assert_eq!(october("b"), 3);
    let whole = env
        .packs()
        .into_iter()
        .filter(|p| p["account_id"] == "b")
        .all(|p| p["remaining"] == p["calls"]);
    assert!(whole, "b used none of its packs");
    let out = env.ok(&["--now", NOV_1, "grant", "--month", "2026-10"]);
    assert!(out.contains("granted 0 free packs"), "{out}");
    env.ok(&["verify"]);
}

#[test]
fn bill_totals_round_half_up_and_lines_plus_adjustment_equal_the_total() {
    let env = Env::new();
    env.import_accounts(
        OPENED,
        &["r,Rounding,2026-01-01T00:00:00Z,10", "m,Many,2026-01-01T00:00:00Z,10"],
    );
    env.import_usage(&[
        // 735 billable × 0.003 = 2.205 → 2.21
        "r,AssessQuality,2026-10-02T10:00:00+08:00,1735",
        "m,AssessQuality,2026-10-02T10:00:00+08:00,1001",
        "m,CropImage,2026-10-02T10:00:00+08:00,1003",
        "m,EnhanceImage,2026-10-02T10:00:00+08:00,1001",
    ]);
    env.settle("2026-10", NOV_1);
    let bills = env.bills("2026-10");
    let r = line(&bills, "r", AQ);
    assert_eq!(
        (
            r["amount"].as_str(),
            r["bill_total"].as_str(),
            r["rounding_adjustment"].as_str()
        ),
        ("2.205", "2.21", "0.005")
    );
    // m: 0.003 + 0.006 + 0.008 = 0.017 → 0.02, adjustment 0.003.
    let m: Vec<&Row> = bills.iter().filter(|r| r["account_id"] == "m").collect();
    assert_eq!(m[0]["bill_total"], "0.02");
    for bill_id in bills.iter().map(|r| r["bill_id"].clone()) {
        let lines: Vec<&Row> = bills.iter().filter(|r| r["bill_id"] == bill_id).collect();
        let sum: Decimal = lines.iter().map(|l| d(&l["amount"])).sum();
        assert_eq!(
            sum + d(&lines[0]["rounding_adjustment"]),
            d(&lines[0]["bill_total"]),
            "bill {bill_id}"
        );
        assert_eq!(sum, d(&lines[0]["bill_exact_total"]));
    }
    assert_eq!(env.accounts()["r"]["balance"], "7.79");
}

#[test]
fn settling_again_changes_nothing() {
    let env = Env::new();
    env.import_accounts(OPENED, &["a,A,2026-01-01T00:00:00Z,1", "b,B,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&[
        "a,EnhanceImage,2026-10-02T10:00:00+08:00,5000",
        "b,CropImage,2026-10-02T10:00:00+08:00,2000",
    ]);
    env.settle("2026-10", NOV_1);
    let first = env.snapshot(&["2026-10"]);
    let out = env.settle("2026-10", "2026-11-03T09:00:00+08:00");
    assert!(out.contains("0 accounts billed now"), "{out}");
    assert!(
        out.contains("2 bills, 34.00 CNY billed, 1 accounts in arrears"),
        "{out}"
    );
    assert_eq!(env.snapshot(&["2026-10"]), first);
    assert_eq!(env.accounts()["a"]["balance"], "-31.00");
}

#[test]
fn a_month_that_has_not_ended_is_refused() {
    let env = Env::new();
    env.import_accounts(OPENED, &["a,A,2026-01-01T00:00:00Z,1"]);
    env.import_usage(&["a,EnhanceImage,2026-11-02T10:00:00+08:00,5000"]);
    let before = env.snapshot(&["2026-11"]);
    let err = env.fails(
        3,
        &["--now", "2026-11-30T23:59:59+08:00", "settle", "--month", "2026-11"],
    );
    assert!(err.contains("2026-11 has not ended yet in Asia/Shanghai"), "{err}");
    assert!(err.contains("2026-12-01T00:00:00+08:00"), "{err}");
    assert_eq!(env.snapshot(&["2026-11"]), before);
    // One second later it has.
    env.settle("2026-11", "2026-12-01T00:00:00+08:00");
}

#[test]
fn prepaid_packs_cover_calls_after_the_free_pack_and_carry_over() {
    let env = Env::new();
    env.import_accounts(OPENED, &["p,Prepaid,2026-01-01T00:00:00Z,100"]);
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         LATER,p,CropImage,5000,2026-10-01T00:00:00+08:00,2027-06-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n\
         SOONER,p,CropImage,3000,2026-09-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,2026-09-15T00:00:00+08:00\n\
         EXPIRED,p,CropImage,9000,2026-01-01T00:00:00+08:00,2026-10-01T00:00:00+08:00,2026-01-01T00:00:00+08:00\n\
         OTHER,p,AssessQuality,9000,2026-01-01T00:00:00+08:00,2027-01-01T00:00:00+08:00,2026-01-01T00:00:00+08:00\n",
    );
    env.ok(&["packs", "import", &packs]);
    env.import_usage(&[
        "p,CropImage,2026-10-10T00:00:00+08:00,6000",
        "p,CropImage,2026-11-10T00:00:00+08:00,6000",
    ]);
    env.settle("2026-10", NOV_1);
    let oct = env.bills("2026-10");
    let l = line(&oct, "p", CROP);
    // 1000 free, then SOONER (expires first) 3000, then 2000 of LATER.
    assert_eq!(
        (
            l["free_calls"].as_str(),
            l["prepaid_calls"].as_str(),
            l["billable_calls"].as_str()
        ),
        ("1000", "5000", "0")
    );
    let remaining = |id: &str| env.packs().into_iter().find(|p| p["pack_id"] == id).unwrap()["remaining"].clone();
    assert_eq!(
        (
            remaining("SOONER"),
            remaining("LATER"),
            remaining("EXPIRED"),
            remaining("OTHER")
        ),
        ("0".into(), "3000".into(), "9000".into(), "9000".into())
    );
    env.settle("2026-11", "2026-12-01T02:00:00+08:00");
    let nov = env.bills("2026-11");
    let l = line(&nov, "p", CROP);
    // November: 1000 free, the 3000 left of LATER, 2000 billable × 0.002.
    assert_eq!(
        (
            l["free_calls"].as_str(),
            l["prepaid_calls"].as_str(),
            l["billable_calls"].as_str(),
            l["amount"].as_str()
        ),
        ("1000", "3000", "2000", "4.00")
    );
    assert_eq!(remaining("LATER"), "0");
}

#[test]
fn a_month_is_priced_by_the_catalog_version_in_force() {
    let env = Env::new();
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/catalog.toml")).unwrap();
    let catalog = format!(
        "{seed}\n[[versions]]\nversion = \"2026-11-graduated\"\neffective_from = \"2026-11\"\n\
         [[versions.apis]]\napi = \"CropImage\"\nfree_calls = 500\npricing = \"graduated\"\ntier_basis = \"billable\"\n\
         tiers = [{{ from = 0, unit_price = \"0.01\" }}, {{ from = 1000, unit_price = \"0.001\" }}]\n"
    );
    let cat = env.file("catalog.toml", &catalog);
    // The database prices with this catalog: given before anything else, it is its catalog.
    env.ok(&["catalog", "import", &cat]);
    env.import_accounts(OPENED, &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&[
        "a,CropImage,2026-10-10T00:00:00+08:00,3000",
        "a,CropImage,2026-11-10T00:00:00+08:00,3000",
    ]);
    env.ok(&[
        "--catalog",
        &cat,
        "--now",
        "2026-12-02T00:00:00+08:00",
        "settle",
        "--month",
        "2026-10",
    ]);
    env.ok(&[
        "--catalog",
        &cat,
        "--now",
        "2026-12-02T00:00:00+08:00",
        "settle",
        "--month",
        "2026-11",
    ]);
    let oct = env.bills("2026-10");
    assert_eq!(line(&oct, "a", CROP)["catalog_version"], "seed-2023-12");
    assert_eq!(line(&oct, "a", CROP)["amount"], "4.00");
    let nov = env.bills("2026-11");
    let l = line(&nov, "a", CROP);
    // 500 free; 2500 billable graduated: 1000 × 0.01 + 1500 × 0.001 = 11.50.
    assert_eq!(
        (
            l["catalog_version"].as_str(),
            l["free_calls"].as_str(),
            l["amount"].as_str(),
            l["pricing"].as_str(),
            l["tier"].as_str()
        ),
        ("2026-11-graduated", "500", "11.50", "graduated", "2")
    );
    // Usage of an API the version in force does not price is a clear configuration error.
    let env2 = Env::new();
    env2.ok(&["catalog", "import", &cat]);
    env2.import_accounts(OPENED, &["b,B,2026-01-01T00:00:00Z,100"]);
    env2.import_usage(&["b,AssessQuality,2026-11-10T00:00:00+08:00,1"]);
    let err = env2.fails(
        3,
        &[
            "--catalog",
            &cat,
            "--now",
            "2026-12-02T00:00:00+08:00",
            "settle",
            "--month",
            "2026-11",
        ],
    );
    assert!(
        err.contains("API 'AssessQuality' has usage but no price in catalog version '2026-11-graduated'"),
        "{err}"
    );
}

#[test]
fn options_can_come_from_the_environment() {
    let env = Env::new();
    env.import_accounts(OPENED, &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,3000"]);
    let out = std::process::Command::new(BIN)
        .args(["settle", "--month", "2026-10"])
        .env("DATABASE_URL", &env.database)
        .env("BILLRUN_NOW", "2026-11-01T00:00:00+08:00")
        .env("BILLRUN_TZ", "Asia/Shanghai")
        .env_remove("BILLRUN_CATALOG")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.bills("2026-10")[0]["settled_at"], "2026-11-01T00:00:00+08:00");
}

#[test]
fn export_to_a_file_and_the_demo() {
    let env = Env::new();
    let out = env.ok(&["demo", "--dir", "demo"]);
    for amount in ["4997.50", "998.00", "24493.00", "2.205", "2.21"] {
        assert!(out.contains(amount), "demo output lacks {amount}:\n{out}");
    }
    let csv = std::fs::read_to_string(env.dir.path().join("demo/bills-2026-10.csv")).unwrap();
    let rows = parse_csv(&csv);
    assert_eq!(line(&rows, "seed-1", AQ)["amount"], "4997.50");
    assert_eq!(line(&rows, "seed-2", CROP)["amount"], "998.00");
    assert_eq!(line(&rows, "seed-3", ENH)["amount"], "24493.00");
    assert_eq!(line(&rows, "prepaid", CROP)["prepaid_calls"], "3000");
    assert!(rows.iter().all(|r| r["account_id"] != "idle"));
    // Running it again rebuilds the same result.
    let again = env.ok(&["demo", "--dir", "demo"]);
    // A directory with files the demo did not write (here, what `gen --out` writes) is refused,
    // and left as it was.
    env.ok(&[
        "gen",
        "--accounts",
        "3",
        "--rows",
        "9",
        "--month",
        "2026-10",
        "--out",
        "generated",
    ]);
    let before = std::fs::read(env.dir.path().join("generated/usage.csv")).unwrap();
    let err = env.fails(3, &["demo", "--dir", "generated"]);
    assert!(
        err.contains("holds files the demo did not write (accounts.csv, usage.csv)"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(env.dir.path().join("generated/usage.csv")).unwrap(),
        before
    );
    assert!(!env.dir.path().join("generated/demo.db").exists());
    assert_eq!(again, out);
    // Export --out writes the same CSV as standard output.
    let demo_db = format!("sqlite://{}", env.dir.path().join("demo/demo.db").display());
    let stdout = std::process::Command::new(BIN)
        .args(["--database", &demo_db, "export", "bills", "--month", "2026-10"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(stdout.status.success());
    assert_eq!(String::from_utf8(stdout.stdout).unwrap(), csv);
}

#[test]
fn a_meters_log_in_time_order_bills_the_same_as_the_same_rows_grouped_by_account() {
    let mut exports = Vec::new();
    for layout in ["interleaved", "grouped"] {
        let env = Env::new();
        let dir = env.dir.path().join("gen");
        let dir = dir.to_str().unwrap();
        let args = [
            "gen",
            "--accounts",
            "300",
            "--rows",
            "6000",
            "--month",
            "2026-10",
            "--seed",
            "3",
        ];
        env.ok(&[&args[..], &["--layout", layout, "--out", dir]].concat());
        env.ok(&[
            "--now",
            "2026-10-01T00:00:00+08:00",
            "accounts",
            "import",
            &format!("{dir}/accounts.csv"),
        ]);
        env.ok(&[
            "--now",
            "2026-11-01T01:00:00+08:00",
            "usage",
            "import",
            &format!("{dir}/usage.csv"),
        ]);
        env.settle("2026-10", "2026-11-01T02:00:00+08:00");
        env.ok(&["verify"]);
        exports.push(env.bills_csv("2026-10"));
    }
    assert!(exports[0].lines().count() > 300);
    assert_same(
        &exports[0],
        &exports[1],
        "the interleaved file's bills against the grouped file's",
    );
}

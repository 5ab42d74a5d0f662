//! Listing accounts and packs in each format, late usage, and the help text.

use crate::harness::*;

#[test]
fn accounts_list_in_three_formats() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-10T00:00:00+08:00",
        &["b,Beta 公司,,0", "a,\"Alpha, Inc\",2026-10-01T00:00:00+08:00,12.5"],
    );
    let csv = env.ok(&["accounts", "list", "--format", "csv"]);
    assert!(csv.starts_with("account_id,name,status,balance,suspend_at"), "{csv}");
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0]["account_id"].as_str(),
            rows[0]["name"].as_str(),
            rows[0]["status"].as_str(),
            rows[0]["balance"].as_str()
        ),
        ("a", "Alpha, Inc", "active", "12.50")
    );
    assert_eq!(rows[1]["status"], "inactive");
    let json: serde_json::Value = serde_json::from_str(&env.ok(&["accounts", "list", "--format", "json"])).unwrap();
    assert_eq!(json[1]["name"], "Beta 公司");
    assert_eq!(json[1]["suspend_at"], serde_json::Value::Null);
    let table = env.ok(&["accounts", "list"]);
    assert!(table.lines().next().unwrap().starts_with("account_id"), "{table}");
    assert_eq!(table.lines().count(), 3);
}

#[test]
fn packs_list_shows_free_and_prepaid_packs() {
    let env = Env::new();
    env.import_accounts("2026-10-10T00:00:00+08:00", &["a,A,2026-10-01T00:00:00+08:00,0"]);
    let f = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P1,a,CropImage,100,2026-10-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n",
    );
    let out = env.ok(&["packs", "import", &f]);
    assert!(out.contains("imported 1 prepaid packs"), "{out}");
    let csv = env.ok(&["packs", "list", "--format", "csv"]);
    assert!(
        csv.starts_with("pack_id,kind,account_id,api,calls,remaining,valid_from,valid_until"),
        "{csv}"
    );
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 4);
    let p1 = rows.iter().find(|r| r["pack_id"] == "P1").unwrap();
    assert_eq!((p1["kind"].as_str(), p1["remaining"].as_str()), ("prepaid", "100"));
    assert_eq!(rows.iter().filter(|r| r["kind"] == "free").count(), 3);
    // Importing the same pack id twice is refused.
    let err = env.fails(3, &["packs", "import", &f]);
    assert!(err.contains("pack 'P1' already exists"), "{err}");
}

#[test]
fn usage_for_a_month_already_billed_is_reported_as_late() {
    let env = Env::new();
    env.import_accounts("2026-10-10T00:00:00+08:00", &["a,A,2026-10-01T00:00:00+08:00,100"]);
    env.import_usage(&["a,CropImage,2026-10-05T00:00:00+08:00,1500"]);
    env.settle("2026-10", "2026-11-01T00:00:00+08:00");
    let f = env.file("late.csv", "account_id,api,timestamp,calls\na,CropImage,2026-10-20T00:00:00+08:00,10\na,CropImage,2026-11-02T00:00:00+08:00,10\n");
    let out = env.ok(&["--now", "2026-11-05T00:00:00+08:00", "usage", "import", &f]);
    assert!(out.contains("warning: 1 rows are late"), "{out}");
    // The original bill is not edited.
    assert_eq!(line(&env.bills("2026-10"), "a", CROP)["total_calls"], "1500");
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    let help = env.ok(&["--help"]);
    for cmd in [
        "accounts", "recharge", "usage", "packs", "grant", "settle", "enforce", "export", "demo", "migrate",
    ] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
    let settle = env.ok(&["settle", "--help"]);
    assert!(settle.contains("--month") && settle.contains("BILLRUN_NOW"), "{settle}");
    let out = env.ok(&["migrate"]);
    assert!(out.contains("migrations applied"));
}

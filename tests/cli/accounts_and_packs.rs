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

#[test]
fn short_help_is_a_summary_long_help_explains_and_completions_and_man_pages_are_generated() {
    let env = Env::new();
    let words = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let short = words(env.ok(&["settle", "-h"]));
    let long = words(env.ok(&["settle", "--help"]));
    assert!(long.len() > short.len() + 200, "--help says more than -h");
    assert!(long.contains("Usage imported while it runs is billed"), "{long}");
    assert!(!short.contains("Usage imported while it runs is billed"), "{short}");
    // Columns documented are the columns printed.
    let list = env
        .ok(&["accounts", "list", "--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        list.contains("Columns: account_id,name,status,balance,suspend_at."),
        "{list}"
    );
    env.ok(&["migrate"]);
    let csv = env.ok(&["accounts", "list", "--format", "csv"]);
    assert_eq!(csv.lines().next(), Some("account_id,name,status,balance,suspend_at"));
    // --version names the commit it was built from.
    let version = env.ok(&["--version"]);
    assert!(version.starts_with("billrun 0.1.0 (commit "), "{version}");
    // Completions that bash itself reads without an error.
    let bash = env.ok(&["completions", "bash"]);
    assert!(bash.contains("billrun") && bash.contains("settle"));
    let script = env.file("billrun.bash", &bash);
    let checked = std::process::Command::new("bash")
        .args(["-n", &script])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(!env.ok(&["completions", shell]).is_empty(), "{shell}");
    }
    // Man pages that groff renders without a warning, one per command.
    env.ok(&["man", "--out", "man"]);
    let pages: Vec<String> = std::fs::read_dir(env.dir.path().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "billrun.1",
        "billrun-settle.1",
        "billrun-export-bills.1",
        "billrun-usage-import.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} in {pages:?}");
    }
    let top = env.dir.path().join("man/billrun.1");
    let rendered = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&top)
        .output()
        .expect("groff (scripts/test installs groff-base)");
    assert!(
        rendered.status.success() && rendered.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    // `billrun man` alone prints the main page, for `billrun man | man -l -`.
    assert!(env.ok(&["man"]).contains(".TH billrun 1"));
}

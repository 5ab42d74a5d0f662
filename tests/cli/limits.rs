//! Numbers at the edges: bounds are checked where input enters, with the file, line and field;
//! sums beyond what billrun can count are clear errors, never panics or wrapped numbers; and a
//! run that fails is recorded as failed. Timestamps that could never be settled are refused.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

fn usage_file(env: &Env, rows: &str) -> String {
    env.file("usage.csv", &format!("account_id,api,timestamp,calls\n{rows}"))
}

#[test]
fn calls_and_timestamps_that_cannot_be_billed_are_refused_by_line_and_field() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,0"]);
    let f = usage_file(
        &env,
        "a,CropImage,2026-10-02T00:00:00Z,9223372036854775807\n\
         a,CropImage,2026-10-02T00:00:00Z,9223372036854775807\n\
         a,CropImage,0000-01-01T00:00:00Z,1\n\
         a,CropImage,1900-01-01T00:00:00Z,1\n\
         a,CropImage,9999-12-31T00:00:00Z,1\n\
         a,CropImage,2026-11-01T02:05:01+08:00,1\n",
    );
    let err = env.fails(3, &["--now", NOV_1, "usage", "import", &f]);
    for (line, field) in [
        (2, "calls"),
        (3, "calls"),
        (4, "timestamp"),
        (5, "timestamp"),
        (6, "timestamp"),
        (7, "timestamp"),
    ] {
        assert!(
            err.contains(&format!("usage.csv:line {line}: field '{field}'")),
            "line {line}: {err}"
        );
    }
    assert!(err.contains("the most one row may count"), "{err}");
    assert!(err.contains("the start of the first month the catalog prices"), "{err}");
    assert!(err.contains("is in the future"), "{err}");
    assert!(env.query::<i64>("SELECT COUNT(*) FROM usage_chunks") == 0);
}

#[test]
fn a_leap_second_is_billed_in_the_month_its_meter_wrote() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100"]);
    let f = usage_file(&env, "a,CropImage,2026-10-31T23:59:60+08:00,1500\n");
    env.ok(&["--now", NOV_1, "usage", "import", &f]);
    env.settle("2026-10", NOV_1);
    assert_eq!(line(&env.bills("2026-10"), "a", CROP)["total_calls"], "1500");
    env.settle("2026-11", "2026-12-01T02:00:00+08:00");
    assert!(env.bills("2026-11").is_empty());
}

#[test]
fn an_account_opening_in_the_future_is_inactive_until_then() {
    let env = Env::new();
    env.import_accounts(
        "2026-11-10T00:00:00+08:00",
        &[
            "soon,Soon,2026-11-20T00:00:00+08:00,0",
            "open,Open,2026-11-01T00:00:00+08:00,0",
        ],
    );
    let status = |now: &str| {
        parse_csv(&env.ok(&["--now", now, "accounts", "list", "--format", "csv"]))
            .into_iter()
            .map(|r| (r["account_id"].clone(), r["status"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        status("2026-11-10T00:00:00+08:00"),
        [("open".into(), "active".into()), ("soon".into(), "inactive".into())]
    );
    assert_eq!(status("2026-11-20T00:00:00+08:00")[1].1, "active");
}

/// What `runs list` says of the latest run.
fn last_run(env: &Env) -> Row {
    parse_csv(&env.ok(&["runs", "list", "--format", "csv", "--limit", "1"])).remove(0)
}

#[test]
fn a_balance_that_a_debit_would_overflow_stops_the_settle_with_the_account_named() {
    let env = Env::new();
    env.import_accounts(
        NOV_1,
        &["deep,Deep,2026-01-01T00:00:00Z,0", "fine,Fine,2026-01-01T00:00:00Z,0"],
    );
    env.import_usage(&[
        "deep,EnhanceImage,2026-10-05T00:00:00+08:00,5000",
        "fine,EnhanceImage,2026-10-05T00:00:00+08:00,5000",
    ]);
    // An opening balance near the bottom of the range, as an older version accepted it.
    let epoch = if env.is_postgres() { "to_timestamp(0)" } else { "0" };
    env.exec(&format!(
        "UPDATE accounts SET balance_fen = -9223372036854775000 WHERE account_id = 'deep';
         INSERT INTO ledger (account_id, kind, amount_fen, created_at) VALUES ('deep', 'opening', -9223372036854775000, {epoch})"
    ));
    let err = env.fails(3, &["--page-size", "1", "--now", NOV_1, "settle", "--month", "2026-10"]);
    assert!(err.contains("account 'deep' cannot be billed for 2026-10"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let run = last_run(&env);
    assert_eq!(run["outcome"], "failed", "{run:?}");
    assert!(run["message"].contains("'deep'"), "{run:?}");
    // Nothing half-written: the books hold.
    env.ok(&["verify"]);
    assert!(env.bills("2026-10").iter().all(|r| r["account_id"] != "deep"));
}

#[test]
fn a_month_whose_calls_cannot_be_counted_is_refused_clearly() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["big,Big,2026-01-01T00:00:00Z,0"]);
    env.import_usage(&["big,CropImage,2026-10-05T00:00:00+08:00,1"]);
    // A total written by another writer: it is no longer the sum of what the imports kept,
    // and verify says so.
    env.exec("UPDATE usage_totals SET calls = 6");
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(6));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("account big, 2026-10, CropImage: 1 calls in its imports' kept usage, 6 in the month's totals"),
        "{report}"
    );
    // An import that would take a month's total past 64 bits is refused, and writes nothing.
    env.exec("UPDATE usage_totals SET calls = 9223372036854775800");
    let f = env.file(
        "more.csv",
        "account_id,api,timestamp,calls\nbig,CropImage,2026-10-07T00:00:00+08:00,100\n",
    );
    let err = env.fails(3, &["--now", NOV_1, "usage", "import", &f]);
    assert!(err.contains("adds up to more than 9223372036854775807 calls"), "{err}");
    let imports: i64 = env.query("SELECT COUNT(*) FROM usage_imports");
    assert_eq!(imports, 1);
}

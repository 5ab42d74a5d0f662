//! Usage that arrives late is always billed, and no one has to notice: an import that commits
//! while a settle runs is billed by that settle before it records the month as settled, and
//! usage imported after a month was settled is billed by the next `billrun run`.

use crate::harness::*;
use std::time::{Duration, Instant};

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

/// `n` accounts with October usage, opened in September with a balance of 100.00.
fn month_of(env: &Env, n: usize) {
    let mut accounts = String::from("account_id,name,activated_at,balance\n");
    let mut usage = String::from("account_id,api,timestamp,calls\n");
    for i in 0..n {
        accounts += &format!("acct-{i:05},Account {i},2026-09-01T00:00:00+08:00,100.00\n");
        usage += &format!(
            "acct-{i:05},{CROP},2026-10-{:02}T10:00:00+08:00,{}\n",
            1 + i % 28,
            1500 + i
        );
    }
    let a = env.file("accounts.csv", &accounts);
    let u = env.file("usage.csv", &usage);
    env.ok(&["--now", "2026-10-01T00:00:00+08:00", "accounts", "import", &a]);
    env.ok(&["--now", NOV_1, "usage", "import", &u]);
}

/// A second October file: one more row for every account, so that accounts the settle has
/// billed already and accounts it has not reached yet both get late rows.
fn more_usage(env: &Env, n: usize) -> String {
    let mut usage = String::from("account_id,api,timestamp,calls\n");
    for i in 0..n {
        usage += &format!("acct-{i:05},{AQ},2026-10-31T23:00:00+08:00,{}\n", 2000 + i);
    }
    env.file("more.csv", &usage)
}

/// Starts a settle of October in pages of 20 and, once it has billed some accounts and not
/// all, imports `more`. Returns the settle and whether the import committed before the settle
/// had billed every account.
fn import_during_settle(env: &Env, n: usize, more: &str) -> (std::process::Child, bool) {
    // Small pages: the settle commits often, and the import gets its turn between them.
    let settle = env
        .command(&["--page-size", "20", "--now", NOV_1, "settle", "--month", "2026-10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Import once the settle has billed some accounts and not all of them.
    loop {
        let bills: i64 = env.query("SELECT COUNT(*) FROM bills");
        if bills > 0 {
            assert!(
                bills < n as i64 / 2,
                "the settle went too fast for this test: {bills} bills"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the settle billed nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    env.ok(&["--now", "2026-11-01T02:00:01+08:00", "usage", "import", more]);
    let billed_when_imported: i64 = env.query("SELECT COUNT(*) FROM bills");
    (settle, billed_when_imported < n as i64)
}

#[test]
fn usage_imported_while_a_settle_runs_is_billed_before_the_month_is_settled() {
    const N: usize = 4000;
    // SQLite hands its write lock to whoever asks first when it is free, and a busy importer
    // asks again only after a sleep: on a loaded machine the settle may take every turn until
    // it is done. Such a run does not test what this test is for, so the story is told again
    // on a fresh database; it must interleave within a few tries.
    let mut tries = 0;
    let (env, settle) = loop {
        tries += 1;
        let env = Env::new();
        month_of(&env, N);
        let more = more_usage(&env, N);
        let (settle, during) = import_during_settle(&env, N, &more);
        if during {
            break (env, settle);
        }
        let _ = settle.wait_with_output();
        assert!(
            tries < 5,
            "in {tries} tries the import never committed while the settle ran"
        );
        eprintln!("try {tries}: the import waited until the settle was done; trying again");
    };
    let settled = settle.wait_with_output().unwrap();
    assert!(
        settled.status.success(),
        "settle failed: {}",
        String::from_utf8_lossy(&settled.stderr)
    );

    // Every row of both files is on a current bill, and the month is settled: nothing left
    // for anyone to notice.
    let verified = env.ok(&["verify", "--month", "2026-10"]);
    assert!(!verified.contains("BREACH"), "{verified}");
    let months: i64 = env.query("SELECT COUNT(*) FROM settled_months WHERE month = '2026-10'");
    assert_eq!(months, 1);
    let bills = env.bills("2026-10");
    for i in [0, N / 2, N - 1] {
        let id = format!("acct-{i:05}");
        let latest: Vec<&Row> = bills.iter().filter(|r| r["account_id"] == id).collect();
        let max = latest.iter().map(|r| r["revision"].clone()).max().unwrap();
        let aq = latest
            .iter()
            .find(|r| r["revision"] == max && r["api"] == AQ)
            .unwrap_or_else(|| panic!("{id}: the late AssessQuality calls are on no current bill"));
        assert_eq!(aq["total_calls"], (2000 + i).to_string());
    }
    // A run now finds nothing left to bill.
    let out = env.ok(&["--now", "2026-11-02T02:00:00+08:00", "run"]);
    assert!(!out.contains("arrived after it was settled"), "{out}");
}

#[test]
fn usage_imported_after_the_month_was_settled_is_billed_by_the_next_run() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &[
            "early,Early,2026-09-01T00:00:00+08:00,100",
            "late,Late,2026-09-01T00:00:00+08:00,100",
        ],
    );
    env.import_usage(&["early,CropImage,2026-10-10T00:00:00+08:00,3000"]);
    // The month-end run settles October before the meter's second file is in.
    let out = env.ok(&["--now", NOV_1, "run"]);
    assert!(out.contains("settled 2026-10"), "{out}");
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\n\
         late,CropImage,2026-10-20T00:00:00+08:00,5000\n\
         early,CropImage,2026-10-21T00:00:00+08:00,1000\n",
    );
    let out = env.ok(&["--now", "2026-11-01T09:00:00+08:00", "usage", "import", &late]);
    assert!(out.contains("warning: 2 rows are late"), "{out}");
    assert!(out.contains("2026-10 (2 rows)"), "{out}");
    assert!(out.contains("billrun run"), "{out}");
    // Waiting for the next run is pending, not a breach of the books.
    let verified = env.ok(&["verify", "--month", "2026-10"]);
    assert!(!verified.contains("BREACH"), "{verified}");
    assert!(
        verified.contains(
            "pending 2026-10: late usage waiting for the next run to bill it: 1 import (2 rows, 6000 calls), \
             the oldest imported 2026-11-01T09:00:00+08:00"
        ),
        "{verified}"
    );
    // A bill that counts neither the month's usage nor the usage before the late import is
    // still a breach while late usage waits.
    env.exec("UPDATE bill_lines SET total_calls = total_calls + 7 WHERE account_id = 'early'");
    let out = env.run(&["verify", "--month", "2026-10"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{said}");
    assert!(
        said.contains("account early, 2026-10, CropImage: 4000 calls of usage (1000 of them late, waiting), 3007 on the current bill"),
        "{said}"
    );
    env.exec("UPDATE bill_lines SET total_calls = total_calls - 7 WHERE account_id = 'early'");

    // The next scheduled run bills them, without anyone asking.
    let out = env.ok(&["--now", "2026-11-02T02:00:00+08:00", "run"]);
    assert!(out.contains("usage for 2026-10 arrived after it was settled"), "{out}");
    assert!(out.contains("2 accounts billed now"), "{out}");
    assert!(out.contains("1 of them are adjustments"), "{out}");
    env.ok(&["verify", "--month", "2026-10"]);
    let bills = env.bills("2026-10");
    // late: 5000 − 1000 free = 4000 × 0.002 = 8.00; early: 4000 − 1000 = 3000 × 0.002 = 6.00.
    assert_eq!(line(&bills, "late", CROP)["bill_total"], "8.00");
    let early: Vec<&Row> = bills.iter().filter(|r| r["account_id"] == "early").collect();
    assert_eq!(early.len(), 2, "{early:#?}");
    assert_eq!(
        (
            early[1]["kind"].as_str(),
            early[1]["bill_total"].as_str(),
            early[1]["revision_debited"].as_str()
        ),
        ("adjustment", "6.00", "2.00")
    );
    // And the run after that has nothing to do.
    let out = env.ok(&["--now", "2026-11-03T02:00:00+08:00", "run"]);
    assert!(out.contains("nothing to do"), "{out}");
}

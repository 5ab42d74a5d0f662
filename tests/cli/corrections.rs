//! Corrections: late usage leads to adjustments (new revisions that move only the difference),
//! dry runs write nothing, `verify` names breaches, and a bad row in a large file changes nothing.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";
const NOV_5: &str = "2026-11-05T09:00:00+08:00";

fn revisions(env: &Env, account: &str) -> Vec<Row> {
    env.bills("2026-10")
        .into_iter()
        .filter(|r| r["account_id"] == account)
        .collect()
}

#[test]
fn late_usage_produces_exactly_the_expected_adjustments_and_a_second_rerun_none() {
    let env = Env::new();
    env.import_accounts(
        NOV_1,
        &[
            "up,Owes more,2026-01-01T00:00:00Z,100",
            "down,Owes less,2026-01-01T00:00:00Z,2000",
            "same,Unchanged,2026-01-01T00:00:00Z,100",
        ],
    );
    env.import_usage(&[
        // up: 1500 calls → 500 × 0.003 = 1.50
        "up,AssessQuality,2026-10-05T00:00:00+08:00,1500",
        // down: 999,999 calls → tier 1: 998,999 × 0.003 = 2996.997 → 2997.00, balance -997.00
        "down,AssessQuality,2026-10-05T00:00:00+08:00,999999",
        "same,CropImage,2026-10-05T00:00:00+08:00,5000",
    ]);
    env.settle("2026-10", NOV_1);
    assert_eq!(env.accounts()["down"]["status"], "arrears");
    env.ok(&["--now", "2026-11-02T02:00:00+08:00", "enforce"]);
    assert_eq!(env.accounts()["down"]["status"], "suspended");
    let before_same = revisions(&env, "same");

    // Late rows for October: `up` gets 200 more calls; `down` gets 1 more call, which reaches
    // tier 2 and lowers its bill (volume pricing is not monotonic).
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\n\
         up,AssessQuality,2026-10-30T23:00:00+08:00,200\n\
         down,AssessQuality,2026-10-31T23:59:59+08:00,1\n",
    );
    let out = env.ok(&["--now", NOV_5, "usage", "import", &late]);
    assert!(out.contains("2 rows are late"), "{out}");
    // Not yet settled again: verify lists the usage no current bill counts as pending.
    let pending = env.ok(&["verify", "--month", "2026-10"]);
    assert!(pending.contains("pending 2026-10: late usage waiting"), "{pending}");

    let out = env.settle("2026-10", NOV_5);
    assert!(out.contains("2 accounts billed now"), "{out}");
    assert!(out.contains("2 of them are adjustments"), "{out}");

    let up = revisions(&env, "up");
    assert_eq!(up.len(), 2, "{up:#?}");
    assert_eq!(
        (
            up[0]["revision"].as_str(),
            up[0]["kind"].as_str(),
            up[0]["bill_total"].as_str()
        ),
        ("1", "original", "1.50")
    );
    assert_eq!(
        (up[0]["revision_debited"].as_str(), up[0]["total_calls"].as_str()),
        ("1.50", "1500")
    );
    // The adjustment holds the recomputed line, and debits only the difference: 2.10 − 1.50.
    assert_eq!(
        (
            up[1]["revision"].as_str(),
            up[1]["kind"].as_str(),
            up[1]["total_calls"].as_str()
        ),
        ("2", "adjustment", "1700")
    );
    assert_eq!(
        (
            up[1]["amount"].as_str(),
            up[1]["bill_total"].as_str(),
            up[1]["revision_debited"].as_str()
        ),
        ("2.10", "2.10", "0.60")
    );
    assert_eq!(
        (up[1]["balance_before"].as_str(), up[1]["balance_after"].as_str()),
        ("98.50", "97.90")
    );

    let down = revisions(&env, "down");
    assert_eq!(down.len(), 2);
    assert_eq!(
        (down[0]["tier"].as_str(), down[0]["bill_total"].as_str()),
        ("1", "2997.00")
    );
    // 1,000,000 calls: tier 2, 999,000 × 0.0025 = 2497.50; a credit of 499.50.
    assert_eq!(
        (
            down[1]["tier"].as_str(),
            down[1]["bill_total"].as_str(),
            down[1]["revision_debited"].as_str()
        ),
        ("2", "2497.50", "-499.50")
    );
    // -997.00 + 499.50 = -497.50: still negative, so still suspended; nothing restored.
    let a = env.accounts();
    assert_eq!(
        (a["down"]["balance"].as_str(), a["down"]["status"].as_str()),
        ("-497.50", "suspended")
    );
    assert_eq!(a["up"]["balance"], "97.90");
    // The unchanged account got nothing new.
    assert_eq!(revisions(&env, "same"), before_same);
    env.ok(&["verify"]);

    // A second re-run: nothing.
    let books = env.snapshot(&["2026-10"]);
    let out = env.settle("2026-10", "2026-11-06T09:00:00+08:00");
    assert!(out.contains("0 accounts billed now"), "{out}");
    assert_same(&env.snapshot(&["2026-10"]), &books, "a second re-run");

    // bills show tells the story.
    let show = env.ok(&["bills", "show", "down", "--month", "2026-10"]);
    assert!(
        show.contains("2 revision(s)") && show.contains("revision 2 (adjustment)"),
        "{show}"
    );
    assert!(show.contains("credited 499.50 CNY"), "{show}");
    let err = env.fails(3, &["bills", "show", "nobody", "--month", "2026-10"]);
    assert!(err.contains("has no bill for 2026-10"), "{err}");
}

#[test]
fn a_credit_that_brings_the_balance_to_zero_restores_the_service() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["d,Down,2026-01-01T00:00:00Z,2497.50"]);
    env.import_usage(&["d,AssessQuality,2026-10-05T00:00:00+08:00,999999"]);
    env.settle("2026-10", NOV_1);
    env.ok(&["--now", "2026-11-03T00:00:00+08:00", "enforce"]);
    assert_eq!(env.accounts()["d"]["status"], "suspended");
    env.import_usage(&["d,AssessQuality,2026-10-31T00:00:00+08:00,1"]);
    env.settle("2026-10", NOV_5);
    let a = env.accounts();
    assert_eq!(
        (a["d"]["balance"].as_str(), a["d"]["status"].as_str()),
        ("0.00", "active")
    );
    let kinds: Vec<String> = env.events().into_iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, ["arrears_notice", "suspended", "restored"]);
    env.ok(&["verify"]);
}

#[test]
fn late_usage_hands_back_and_retakes_pack_calls() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["p,Packs,2026-01-01T00:00:00Z,100"]);
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P,p,CropImage,3000,2026-10-01T00:00:00+08:00,2027-01-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n",
    );
    env.ok(&["packs", "import", &packs]);
    env.import_usage(&["p,CropImage,2026-10-05T00:00:00+08:00,2500"]);
    env.settle("2026-10", NOV_1);
    let remaining = |env: &Env| env.packs().into_iter().find(|p| p["pack_id"] == "P").unwrap()["remaining"].clone();
    assert_eq!(remaining(&env), "1500");
    env.import_usage(&["p,CropImage,2026-10-06T00:00:00+08:00,4000"]);
    env.settle("2026-10", NOV_5);
    // 6500 calls: 1000 free, all 3000 of P, 2500 billable × 0.002 = 5.00.
    let rev = revisions(&env, "p");
    assert_eq!(
        (
            rev[1]["prepaid_calls"].as_str(),
            rev[1]["billable_calls"].as_str(),
            rev[1]["amount"].as_str()
        ),
        ("3000", "2500", "5.00")
    );
    assert_eq!(remaining(&env), "0");
    env.ok(&["verify"]);
}

#[test]
fn a_dry_run_reports_and_writes_nothing() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &["a,A,2026-01-01T00:00:00Z,1", "b,B,2026-01-01T00:00:00Z,100"],
    );
    env.import_usage(&[
        "a,EnhanceImage,2026-10-02T10:00:00+08:00,5000",
        "b,CropImage,2026-10-02T10:00:00+08:00,2000",
    ]);
    let before = env.snapshot(&["2026-10"]);
    let runs_before = env.ok(&["runs", "list", "--format", "csv"]);
    let out = env.ok(&["--now", NOV_1, "settle", "--month", "2026-10", "--dry-run"]);
    assert!(out.contains("nothing was written"), "{out}");
    assert!(
        out.contains("would bill 2 accounts (0 adjustments), 34.00 CNY net; 1 would go into arrears"),
        "{out}"
    );
    let a_line = out.lines().find(|l| l.starts_with("a ")).unwrap();
    assert!(
        a_line.contains("32.00") && a_line.contains("-31.00") && a_line.ends_with("yes"),
        "{a_line}"
    );
    assert_same(&env.snapshot(&["2026-10"]), &before, "a dry run");
    assert_eq!(env.ok(&["runs", "list", "--format", "csv"]), runs_before);
    // The real run then does what the dry run said.
    let out = env.settle("2026-10", NOV_1);
    assert!(
        out.contains("2 accounts billed now, 34.00 CNY; 1 in arrears now"),
        "{out}"
    );
}

#[test]
fn verify_names_each_kind_of_breach() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100", "b,B,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&[
        "a,AssessQuality,2026-10-05T00:00:00+08:00,1735",
        "b,CropImage,2026-10-05T00:00:00+08:00,2000",
    ]);
    // Prepaid packs b and a do not use: their stored remainders are checked against their size.
    let f = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P1,b,EnhanceImage,100,2026-10-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n\
         P2,a,EnhanceImage,100,2026-10-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n",
    );
    env.ok(&["packs", "import", &f]);
    env.settle("2026-10", NOV_1);
    let out = env.ok(&["verify"]);
    assert!(out.contains("2 bills checked"), "{out}");
    // Tamper with the books directly, as a bug or a hand edit would.
    let tamper = |sql: &str| {
        let _: i64 = env.query(&format!("{sql} RETURNING CAST(1 AS BIGINT)"));
    };
    tamper("UPDATE accounts SET balance_fen = balance_fen + 1 WHERE account_id = 'a'");
    tamper("UPDATE bill_lines SET amount = '2.215' WHERE api = 'AssessQuality'");
    tamper("UPDATE packs SET remaining = remaining - 5 WHERE pack_id = 'P1'");
    tamper("INSERT INTO pack_consumption (account_id, bill_id, pack_id, calls) VALUES ('a', '2026-10-a-r1', 'P2', 5)");
    tamper("DELETE FROM ledger WHERE bill_id = '2026-10-b-r1'");
    tamper("UPDATE bill_lines SET free_calls = 1200 WHERE bill_id = '2026-10-b-r1' AND api = 'CropImage'");
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(6));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for named in [
        "account a: balance 9780 fen, ledger sum 9779 fen",
        "bill 2026-10-a-r1: lines sum to 2.215, the bill says 2.205",
        "pack P1: 95 remaining, but 100 - 0 used by current bills",
        "pack P2: 100 remaining, but 100 - 5 used by current bills",
        "bill 2026-10-a-r1: its lines took 0 calls from stored packs, its pack use 5",
        "pack free:2026-10:CropImage:b: 1000 calls, of which the current bill took 1200",
        "bill 2026-10-b-r1: 0 ledger entries, 0 fen, for a bill that moved 200 fen",
    ] {
        assert!(stdout.contains(named), "verify should name {named:?}:\n{stdout}");
    }
}

#[test]
fn verify_names_rows_whose_import_bill_or_pack_is_missing() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,AssessQuality,2026-10-05T00:00:00+08:00,1735"]);
    env.settle("2026-10", NOV_1);
    env.ok(&["verify"]);
    let tamper = |sql: &str| -> Result<(), String> {
        use sqlx::Connection;
        let sql = sql.to_string();
        let database = env.database.clone();
        block_on(async move {
            let done = if database.starts_with("postgres") {
                let mut c = sqlx::PgConnection::connect(&database)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql).execute(&mut c).await.map(|_| ())
            } else {
                let mut c = sqlx::SqliteConnection::connect(&database)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql).execute(&mut c).await.map(|_| ())
            };
            done.map_err(|e| e.to_string())
        })
    };
    // On PostgreSQL a chunk of kept content goes missing (Citus does not move a row to another
    // import, its distribution column); on SQLite one names an import that does not exist.
    let chunk_edit = if env.is_postgres() {
        "DELETE FROM usage_chunks WHERE seq = 0"
    } else {
        "UPDATE usage_chunks SET import_id = 999"
    };
    let edits = [
        chunk_edit,
        "UPDATE bill_lines SET bill_id = 'no-such-bill' WHERE bill_id = '2026-10-a-r1'",
    ];
    // Pack use has no foreign key to the packs (a free pack that follows from its grant is no
    // row): verify is the check, on every backend.
    tamper(
        "INSERT INTO pack_consumption (account_id, bill_id, pack_id, calls) VALUES ('a', '2026-10-a-r1', 'no-such-pack', 5)",
    )
    .unwrap();
    if env.is_postgres() {
        // PostgreSQL does not declare these foreign keys (a trigger per row): verify is the check.
        for sql in edits {
            tamper(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let out = env.run(&["verify"]);
        assert_eq!(out.status.code(), Some(6));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for named in [
            "chunk 0 is missing",
            "pack use of bill 2026-10-a-r1: no pack no-such-pack",
            "bill line no-such-bill AssessQuality: no such bill",
        ] {
            assert!(stdout.contains(named), "verify should name {named:?}:\n{stdout}");
        }
    } else {
        // SQLite declares them: the database itself refuses each edit.
        for sql in edits {
            let err = tamper(sql).expect_err(sql);
            assert!(err.contains("FOREIGN KEY"), "{sql}: {err}");
        }
        let out = env.run(&["verify"]);
        assert_eq!(out.status.code(), Some(6));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("pack use of bill 2026-10-a-r1: no pack no-such-pack"),
            "{stdout}"
        );
    }
}

#[test]
fn a_bad_row_in_the_middle_of_a_large_file_changes_nothing() {
    let env = Env::new();
    let mut accounts = String::from("account_id,name,activated_at,balance\n");
    for i in 0..1000 {
        accounts += &format!("acct-{i:04},Account {i},2026-01-01T00:00:00Z,50\n");
    }
    let a = env.file("accounts.csv", &accounts);
    env.ok(&["--now", "2026-10-01T00:00:00+08:00", "accounts", "import", &a]);
    env.import_usage(&["acct-0001,CropImage,2026-10-01T10:00:00+08:00,5000"]);
    env.settle("2026-10", NOV_1);
    let before = env.snapshot(&["2026-10"]);
    let rows = 200_000;
    let mut usage = String::with_capacity(rows * 60);
    usage += "account_id,api,timestamp,calls\n";
    for r in 0..rows {
        if r == rows / 2 {
            usage += "acct-0500,CropImage,2026-10-15T10:00:00+08:00,12.5\n";
        } else {
            usage += &format!(
                "acct-{:04},AssessQuality,2026-10-{:02}T10:00:00+08:00,{}\n",
                r % 1000,
                1 + r % 28,
                1 + r % 7
            );
        }
    }
    let big = env.file("big.csv", &usage);
    let err = env.fails(3, &["--now", NOV_5, "usage", "import", &big]);
    assert!(
        err.contains(&format!(
            "line {}: field 'calls': '12.5' is not a positive whole number",
            rows / 2 + 2
        )),
        "{err}"
    );
    assert!(err.contains("(1 problem)"), "{err}");
    env.ok(&["verify"]);
    assert_same(&env.snapshot(&["2026-10"]), &before, "a rejected large file");
    let out = env.settle("2026-10", NOV_5);
    assert!(out.contains("0 accounts billed now"), "{out}");
}

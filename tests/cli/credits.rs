//! Credit notes: `billrun credit` writes a revision of kind `credit` that later adjustments
//! keep, never credits more than was billed, credits once per reference (a retry, two at once,
//! or a process killed mid-way), restores a suspended service, and shows in the exports, the
//! summary, `bills show` and `verify`.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";
const NOV_3: &str = "2026-11-03T10:00:00+08:00";
const NOV_5: &str = "2026-11-05T09:00:00+08:00";

fn credit(env: &Env, account: &str, how: &[&str], reference: &str) -> std::process::Output {
    let mut args = vec!["--now", NOV_3, "credit", account, "--month", "2026-10"];
    args.extend(how);
    args.extend(["--reason", "outage on 2026-10-12", "--reference", reference]);
    env.run(&args)
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "credit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr).unwrap()
}

/// (revision, kind, revision_debited, bill_credited, bill_due, total_calls) of each revision
/// of the account's October bill.
fn revisions(env: &Env, account: &str) -> Vec<[String; 6]> {
    env.bills("2026-10")
        .into_iter()
        .filter(|r| r["account_id"] == account)
        .map(|r| {
            [
                "revision",
                "kind",
                "revision_debited",
                "bill_credited",
                "bill_due",
                "total_calls",
            ]
            .map(|c| r[c].clone())
        })
        .collect()
}

fn balance(env: &Env, account: &str) -> String {
    env.accounts()[account]["balance"].clone()
}

#[test]
fn a_credit_is_a_revision_that_later_adjustments_keep() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,Acme,2026-01-01T00:00:00Z,10"]);
    // 3000 calls: 1000 free, 2000 × 0.003 = 6.00.
    env.import_usage(&["a,AssessQuality,2026-10-05T00:00:00+08:00,3000"]);
    env.settle("2026-10", NOV_1);
    assert_eq!(balance(&env, "a"), "4.00");

    let out = env.ok(&[
        "--now",
        NOV_3,
        "credit",
        "a",
        "--month",
        "2026-10",
        "--amount",
        "2.50",
        "--reason",
        "outage on 2026-10-12",
        "--reference",
        "T-1",
        "--by",
        "alice",
    ]);
    assert!(
        out.contains("credited 2.50 CNY against 2026-10-a-r2 (revision 2, kind credit)")
            && out.contains("the bill now asks for 3.50 CNY"),
        "{out}"
    );
    assert_eq!(balance(&env, "a"), "6.50");

    // The same command again (a retry) credits nothing; the reference on another amount, or
    // on another account's bill, is a conflict.
    let books = env.snapshot(&["2026-10"]);
    let again = ok(credit(&env, "a", &["--amount", "2.50"], "T-1"));
    assert!(again.contains("already issued as 2026-10-a-r2"), "{again}");
    let err = refused(credit(&env, "a", &["--amount", "1.00"], "T-1"));
    assert!(err.contains("reference 'T-1' already names another credit"), "{err}");
    // More than the bill still asks for (3.50), nothing due, no bill, no such line, no account.
    let err = refused(credit(&env, "a", &["--amount", "3.51"], "T-2"));
    assert!(err.contains("3.51 is more than the 3.50"), "{err}");
    let err = refused(credit(&env, "a", &["--amount", "0"], "T-2"));
    assert!(err.contains("must be more than 0.00"), "{err}");
    let err = refused(credit(&env, "a", &["--api", "EnhanceImage"], "T-2"));
    assert!(err.contains("has no line for 'EnhanceImage'"), "{err}");
    let err = env.fails(
        3,
        &[
            "--now",
            NOV_3,
            "credit",
            "a",
            "--month",
            "2026-09",
            "--all",
            "--reason",
            "x",
            "--reference",
            "T-2",
        ],
    );
    assert!(err.contains("has no bill for 2026-09"), "{err}");
    let err = refused(credit(&env, "nobody", &["--all"], "T-2"));
    assert!(err.contains("unknown account 'nobody'"), "{err}");
    let err = env.fails(
        2,
        &[
            "credit",
            "a",
            "--month",
            "2026-10",
            "--reason",
            "x",
            "--reference",
            "T-2",
        ],
    );
    assert!(
        err.contains("--amount"),
        "one of --amount, --api, --all is required: {err}"
    );
    assert_same(&env.snapshot(&["2026-10"]), &books, "refused and retried credits");

    // The credit revision holds the same line, and moves minus the credit.
    let s = |v: &[&str; 6]| v.map(String::from);
    assert_eq!(
        revisions(&env, "a"),
        [
            s(&["1", "original", "6.00", "0.00", "6.00", "3000"]),
            s(&["2", "credit", "-2.50", "2.50", "3.50", "3000"])
        ]
    );
    let r2 = env.bills("2026-10").into_iter().find(|r| r["revision"] == "2").unwrap();
    assert_eq!(
        (
            r2["credit_reference"].as_str(),
            r2["credit_reason"].as_str(),
            r2["bill_total"].as_str()
        ),
        ("T-1", "outage on 2026-10-12", "6.00")
    );

    // Late usage: 1000 calls more, 9.00 in all. The adjustment debits 3.00 and keeps the credit:
    // the account pays 9.00 − 2.50.
    env.import_usage(&["a,AssessQuality,2026-10-30T00:00:00+08:00,1000"]);
    env.settle("2026-10", NOV_5);
    assert_eq!(
        revisions(&env, "a")[2],
        s(&["3", "adjustment", "3.00", "2.50", "6.50", "4000"])
    );
    assert_eq!(balance(&env, "a"), "3.50");
    env.ok(&["verify"]);

    // What finance and support read.
    let summary = parse_csv(&env.ok(&["export", "summary", "--month", "2026-10"]));
    let total = summary.iter().find(|r| r["section"] == "total").unwrap();
    assert_eq!(
        (
            total["billed"].as_str(),
            total["credited"].as_str(),
            total["due"].as_str()
        ),
        ("9.00", "2.50", "6.50")
    );
    let show = env.ok(&["bills", "show", "a", "--month", "2026-10"]);
    for part in [
        "revision 2 (credit), issued 2026-11-03T10:00:00+08:00",
        "credit note T-1 by alice: outage on 2026-10-12",
        "credited 2.50 CNY (a credit note; the lines are unchanged); balance 4.00 -> 6.50 CNY",
        "credits      -2.50 CNY\n  due          6.50 CNY",
    ] {
        assert!(show.contains(part), "missing {part:?} in\n{show}");
    }
    let report = env.ok(&["report", "--month", "2026-10"]);
    assert!(
        report.contains("credit notes 2.50 CNY, due 6.50 CNY"),
        "the report's KPI"
    );

    // A whole line: 9.00, but only 6.50 is still due; then nothing is.
    let out = ok(credit(&env, "a", &["--api", "AssessQuality"], "T-3"));
    assert!(
        out.contains("credited 6.50 CNY") && out.contains("asks for 0.00 CNY"),
        "{out}"
    );
    let err = refused(credit(&env, "a", &["--all"], "T-4"));
    assert!(err.contains("asks for nothing any more"), "{err}");
    assert_eq!(balance(&env, "a"), "10.00");
    // A bill credited in full that later goes down credits nothing more.
    env.ok(&["verify"]);
}

#[test]
fn a_credit_restores_a_suspended_service() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["s,Short,2026-01-01T00:00:00Z,1"]);
    env.import_usage(&["s,AssessQuality,2026-10-05T00:00:00+08:00,3000"]);
    env.settle("2026-10", NOV_1);
    env.ok(&["--now", "2026-11-02T03:00:00+08:00", "enforce"]);
    assert_eq!(env.accounts()["s"]["status"], "suspended");
    // Balance -5.00: a credit of 4.00 leaves it suspended, 1.00 more restores it.
    ok(credit(&env, "s", &["--amount", "4"], "S-1"));
    assert_eq!(env.accounts()["s"]["status"], "suspended");
    let out = ok(credit(&env, "s", &["--amount", "1"], "S-2"));
    assert!(out.contains("service of 's' restored"), "{out}");
    let a = env.accounts();
    assert_eq!(
        (a["s"]["balance"].as_str(), a["s"]["status"].as_str()),
        ("0.00", "active")
    );
    let kinds: Vec<String> = env.events().into_iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, ["arrears_notice", "suspended", "restored"]);
    env.ok(&["verify"]);
}

#[test]
fn credits_at_once_never_take_more_than_was_billed() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["c,Concurrent,2026-01-01T00:00:00Z,100"]);
    // 1833 calls: 833 × 0.003 = 2.499 → 2.50.
    env.import_usage(&["c,AssessQuality,2026-10-05T00:00:00+08:00,1833"]);
    env.settle("2026-10", NOV_1);
    // Four credits of 1.00 at once, each its own reference: two fit in 2.50.
    let children: Vec<_> = (0..4)
        .map(|i| {
            let reference = format!("C-{i}");
            env.command(&[
                "--now",
                NOV_3,
                "credit",
                "c",
                "--month",
                "2026-10",
                "--amount",
                "1.00",
                "--reason",
                "at once",
                "--reference",
                &reference,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let codes: Vec<Option<i32>> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == Some(0)).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Some(3)).count(), 2, "{codes:?}");
    let last = revisions(&env, "c").pop().unwrap();
    assert_eq!((last[3].as_str(), last[4].as_str()), ("2.00", "0.50"));
    assert_eq!(balance(&env, "c"), "99.50");
    env.ok(&["verify"]);
}

#[test]
fn a_credit_killed_at_any_moment_then_retried_credits_once() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["k,Killed,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["k,AssessQuality,2026-10-05T00:00:00+08:00,101000"]);
    env.settle("2026-10", NOV_1);
    // 100,000 × 0.003 = 300.00: each round credits 1.00 under its own reference, killed after
    // a delay that walks across the command's life, then retried to the end.
    let mut killed_before_commit = 0;
    for round in 0..16u64 {
        let reference = format!("K-{round}");
        let args = [
            "--now",
            NOV_3,
            "credit",
            "k",
            "--month",
            "2026-10",
            "--amount",
            "1.00",
            "--reason",
            "killed",
            "--reference",
            &reference,
        ];
        let mut child = env
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(round * 5));
        child.kill().ok();
        let status = child.wait().unwrap();
        let out = env.ok(&args);
        if !status.success() && !out.contains("already issued") {
            killed_before_commit += 1;
        }
        let credited = revisions(&env, "k").pop().unwrap()[3].clone();
        assert_eq!(
            credited,
            format!("{}.00", round + 1),
            "round {round}: one credit per reference"
        );
    }
    assert_eq!(balance(&env, "k"), "-184.00");
    env.ok(&["verify"]);
    // Early kills must have landed before the commit, or the test proves nothing.
    assert!(killed_before_commit > 0, "no kill landed before a credit was written");
}

//! Sharded settlement: N workers, each settling the accounts of its shard of one month, end
//! with exactly the bills and balances of one unsharded run; the month counts as settled only
//! once every shard is done.

use crate::crash::{check_books, clean_settle_books, load, ACCOUNTS, NOW};
use crate::harness::*;
use std::process::Stdio;

#[test]
fn four_shards_at_once_equal_one_unsharded_run() {
    let expected = clean_settle_books();

    let env = Env::new();
    load(&env);
    let children: Vec<_> = (0..4)
        .map(|k| {
            env.command(&[
                "--now",
                NOW,
                "settle",
                "--month",
                "2026-10",
                "--shard",
                &format!("{k}/4"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut billed = 0u64;
    let mut settled_reports = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = billed_now(&stdout);
        // Each shard bills roughly a quarter of the accounts, never all of them.
        assert!(n > ACCOUNTS as u64 / 8 && n < ACCOUNTS as u64 / 2, "{stdout}");
        billed += n;
        settled_reports += stdout.contains("the month is settled") as usize;
    }
    assert_eq!(billed, ACCOUNTS as u64);
    assert!(
        settled_reports >= 1,
        "the last shard to finish reports the month settled"
    );
    check_books(&env);
    env.ok(&["verify"]);
    assert_same(&env.snapshot(&["2026-10"]), &expected, "four shards");
    let runs = parse_csv(&env.ok(&["runs", "list", "--format", "csv"]));
    let mut commands: Vec<&str> = runs.iter().map(|r| r["command"].as_str()).collect();
    commands.sort();
    assert_eq!(
        commands,
        [
            "settle --shard 0/4",
            "settle --shard 1/4",
            "settle --shard 2/4",
            "settle --shard 3/4"
        ]
    );
    // `run` knows the month is settled.
    let out = env.ok(&["--now", "2026-11-01T03:00:00+08:00", "run"]);
    assert!(!out.contains("settled 2026-10"), "{out}");
}

#[test]
fn a_month_with_a_shard_missing_is_not_settled_and_run_finishes_it() {
    let clean = Env::new();
    load(&clean);
    clean.ok(&["--now", NOW, "run"]);
    let expected = clean.snapshot(&["2026-10"]);

    let env = Env::new();
    load(&env);
    for k in 0..2 {
        let out = env.ok(&[
            "--now",
            NOW,
            "settle",
            "--month",
            "2026-10",
            "--shard",
            &format!("{k}/3"),
        ]);
        assert!(out.contains("other shards are not done yet"), "{out}");
    }
    // Shard 2/3 never ran: `run` sees the month unsettled and settles the rest.
    let out = env.ok(&["--now", NOW, "run"]);
    assert!(out.contains("settled 2026-10"), "{out}");
    env.ok(&["verify"]);
    assert_same(&env.snapshot(&["2026-10"]), &expected, "two shards then run");
    let err = env.fails(2, &["settle", "--month", "2026-10", "--shard", "3/3"]);
    assert!(err.contains("is not a shard"), "{err}");
}

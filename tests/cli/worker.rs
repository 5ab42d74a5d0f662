//! The unattended worker: `run`, `daemon` and `schedule`, driven with `--now` and short
//! schedules, and stopped with real signals.

use crate::harness::*;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn small_month(env: &Env) {
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &[
            "rich,Rich,2026-01-01T00:00:00Z,1000",
            "poor,Poor,2026-01-01T00:00:00Z,1",
        ],
    );
    env.import_usage(&[
        "rich,CropImage,2026-10-05T00:00:00+08:00,3000",
        "poor,EnhanceImage,2026-10-05T00:00:00+08:00,2000",
    ]);
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Polls `check` for up to `seconds`.
fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn runs(env: &Env) -> Vec<Row> {
    parse_csv(&env.ok(&["runs", "list", "--format", "csv"]))
}

#[test]
fn the_first_run_of_a_month_settles_and_grants_and_the_second_changes_nothing() {
    let env = Env::new();
    small_month(&env);
    let out = env.ok(&["--now", "2026-11-01T02:00:00+08:00", "run"]);
    assert!(out.contains("granted 6 free packs for 2026-11"), "{out}");
    assert!(out.contains("settled 2026-10"), "{out}");
    assert!(!out.contains("late"), "{out}");
    assert_eq!(env.bills("2026-10").len(), 2);
    let after_first = env.snapshot(&["2026-10", "2026-11"]);
    let out = env.ok(&["--now", "2026-11-01T02:10:00+08:00", "run"]);
    assert!(out.contains("nothing to do at 2026-11-01T02:10:00+08:00"), "{out}");
    assert_same(&env.snapshot(&["2026-10", "2026-11"]), &after_first, "a second run");
    let r = runs(&env);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0]["outcome"].as_str(), r[0]["month"].as_str()),
        ("nothing-to-do", "")
    );
    assert_eq!(
        (
            r[1]["outcome"].as_str(),
            r[1]["month"].as_str(),
            r[1]["accounts_billed"].as_str()
        ),
        ("ok", "2026-10", "2")
    );
    assert_eq!(r[1]["started_at"], "2026-11-01T02:00:00+08:00");
}

#[test]
fn a_missed_first_is_caught_up_later_with_a_warning_after_the_third() {
    for (now, late) in [
        ("2026-11-02T02:00:00+08:00", false),
        ("2026-11-04T02:00:00+08:00", true),
    ] {
        let env = Env::new();
        small_month(&env);
        let out = env.run(&["--now", now, "run"]);
        assert!(out.status.success());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stdout.contains("settled 2026-10"), "{stdout}");
        assert_eq!(stdout.contains("was settled late"), late, "{stdout}");
        assert_eq!(
            stderr.contains("late: the settlement window is the 1st to the 3rd"),
            late,
            "{stderr}"
        );
        // The debit time is the run's clock: the stop comes 24 hours after it.
        let day: u32 = now[8..10].parse().unwrap();
        let expected = format!("{}{:02}{}", &now[..8], day + 1, &now[10..]);
        assert_eq!(env.accounts()["poor"]["suspend_at"], expected);
    }
}

#[test]
fn run_enforces_suspensions_whose_time_has_come() {
    let env = Env::new();
    small_month(&env);
    env.ok(&["--now", "2026-11-01T02:00:00+08:00", "run"]);
    let out = env.ok(&["--now", "2026-11-02T01:59:59+08:00", "run"]);
    assert!(out.contains("suspended 0 accounts"), "{out}");
    let out = env.ok(&["--now", "2026-11-02T02:00:00+08:00", "run"]);
    assert!(out.contains("suspended 1 accounts: poor"), "{out}");
    assert_eq!(env.accounts()["poor"]["status"], "suspended");
}

#[test]
fn schedule_prints_the_next_wake_ups_and_refuses_bad_expressions() {
    let env = Env::new();
    // The default: every hour on the hour.
    let out = env.ok(&["--now", "2026-10-31T22:30:00+08:00", "schedule", "--count", "4"]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "2026-10-31T23:00:00+08:00",
            "2026-11-01T00:00:00+08:00",
            "2026-11-01T01:00:00+08:00",
            "2026-11-01T02:00:00+08:00"
        ]
    );
    let out = env.ok(&[
        "--tz",
        "UTC",
        "--now",
        "2026-10-31T20:00:00Z",
        "schedule",
        "--schedule",
        "30 */6 * * *",
        "--count",
        "2",
    ]);
    assert_eq!(out, "2026-11-01T00:30:00Z\n2026-11-01T06:30:00Z\n");
    let err = env.fails(3, &["schedule", "--schedule", "0 2 1-3 *"]);
    assert!(err.contains("has 4 fields"), "{err}");
    let err = env.fails(3, &["schedule", "--schedule", "0 25 * * *"]);
    assert!(err.contains("schedule '0 25 * * *'"), "{err}");
}

#[test]
fn the_daemon_runs_on_its_schedule_and_stops_cleanly_on_sigterm() {
    let env = Env::new();
    small_month(&env);
    let mut daemon = env
        .command(&[
            "--now",
            "2026-11-01T01:59:57+08:00",
            "daemon",
            "--schedule",
            "*/2 * * * * *",
        ])
        .env("BILLRUN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        eventually(30, || env.bills("2026-10").len() == 2),
        "the daemon did not settle October"
    );
    assert!(eventually(30, || runs(&env).len() >= 2), "the daemon did not run again");
    signal(&daemon, "TERM");
    let out = wait_with_timeout(&mut daemon, 30);
    assert_eq!(out.0, Some(0), "daemon exit: {}", out.1);
    assert!(
        out.1.contains("daemon stopped") || out.1.contains("abandoned"),
        "{}",
        out.1
    );
    let r = runs(&env);
    let settled: Vec<&Row> = r.iter().filter(|r| r["month"] == "2026-10").collect();
    assert_eq!(settled.len(), 1, "October settled by exactly one run: {r:#?}");
    assert!(r.iter().all(|r| r["outcome"] != "failed"), "{r:#?}");
    // Its first run happened at its first scheduled time, not before.
    assert!(
        settled[0]["started_at"].as_str() >= "2026-11-01T01:59:58+08:00",
        "{:?}",
        settled[0]
    );
}

#[test]
fn a_daemon_started_before_a_suspend_at_wakes_and_suspends_on_time() {
    let env = Env::new();
    small_month(&env);
    env.ok(&["--now", "2026-11-01T02:00:00+08:00", "run"]);
    assert_eq!(env.accounts()["poor"]["suspend_at"], "2026-11-02T02:00:00+08:00");
    // A schedule that will not fire for months: only the suspension can wake it.
    let mut daemon = env
        .command(&[
            "--now",
            "2026-11-02T01:59:57+08:00",
            "daemon",
            "--schedule",
            "0 0 1 1 *",
        ])
        .env("BILLRUN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        env.accounts()["poor"]["status"],
        "arrears",
        "suspended before suspend_at"
    );
    assert!(
        eventually(20, || env.accounts()["poor"]["status"] == "suspended"),
        "not suspended on time"
    );
    signal(&daemon, "TERM");
    let out = wait_with_timeout(&mut daemon, 30);
    assert_eq!(out.0, Some(0), "{}", out.1);
    let suspended: Vec<Row> = env.events().into_iter().filter(|e| e["kind"] == "suspended").collect();
    assert_eq!(suspended.len(), 1);
    let at = &suspended[0]["at"];
    assert!(
        at.as_str() >= "2026-11-02T02:00:00+08:00" && at.as_str() < "2026-11-02T02:00:05+08:00",
        "suspended at {at}"
    );
}

fn wait_with_timeout(child: &mut Child, seconds: u64) -> (Option<i32>, String) {
    let until = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                e.read_to_string(&mut err).ok();
            }
            return (status.code(), err);
        }
        if Instant::now() > until {
            child.kill().ok();
            panic!("process did not stop within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

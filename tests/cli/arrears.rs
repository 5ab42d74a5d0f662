//! Rule 7: arrears after the debit, suspension at `suspend_at` and not before, restoration by
//! a recharge to ≥ 0, each change recorded once as an event.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

fn kinds(env: &Env, account: &str) -> Vec<String> {
    env.events()
        .into_iter()
        .filter(|e| e["account_id"] == account)
        .map(|e| e["kind"].clone())
        .collect()
}

#[test]
fn arrears_suspension_and_restoration() {
    let env = Env::new();
    env.import_accounts(
        NOV_1,
        &[
            "poor,Poor,2026-01-01T00:00:00Z,10.00",
            "rich,Rich,2026-01-01T00:00:00Z,1000",
        ],
    );
    // 3000 billable × 0.008 = 24.00 against a balance of 10.00.
    env.import_usage(&[
        "poor,EnhanceImage,2026-10-05T00:00:00+08:00,4000",
        "rich,EnhanceImage,2026-10-05T00:00:00+08:00,4000",
    ]);
    let out = env.settle("2026-10", NOV_1);
    assert!(out.contains("1 in arrears now"), "{out}");
    let a = env.accounts();
    assert_eq!(
        (a["poor"]["status"].as_str(), a["poor"]["balance"].as_str()),
        ("arrears", "-14.00")
    );
    assert_eq!(a["poor"]["suspend_at"], "2026-11-02T02:00:00+08:00");
    assert_eq!(
        (a["rich"]["status"].as_str(), a["rich"]["suspend_at"].as_str()),
        ("active", "")
    );
    assert_eq!(kinds(&env, "poor"), ["arrears_notice"]);
    assert!(kinds(&env, "rich").is_empty());

    // Not before suspend_at…
    let out = env.ok(&["--now", "2026-11-02T01:59:59+08:00", "enforce"]);
    assert!(out.contains("suspended 0 accounts"), "{out}");
    assert_eq!(env.accounts()["poor"]["status"], "arrears");
    // …at it.
    let out = env.ok(&["--now", "2026-11-02T02:00:00+08:00", "enforce"]);
    assert!(out.contains("suspended 1 accounts: poor"), "{out}");
    assert_eq!(env.accounts()["poor"]["status"], "suspended");
    // Enforcing again records nothing new.
    env.ok(&["--now", "2026-11-03T00:00:00+08:00", "enforce"]);
    assert_eq!(kinds(&env, "poor"), ["arrears_notice", "suspended"]);

    // A recharge that leaves the balance negative does not restore.
    let out = env.ok(&["--now", "2026-11-04T00:00:00+08:00", "recharge", "poor", "13.99"]);
    assert!(out.contains("balance -0.01 CNY") && !out.contains("restored"), "{out}");
    assert_eq!(env.accounts()["poor"]["status"], "suspended");
    // One that brings it to zero does, at once.
    let out = env.ok(&["--now", "2026-11-04T00:05:00+08:00", "recharge", "poor", "0.01"]);
    assert!(out.contains("service of 'poor' restored"), "{out}");
    let a = env.accounts();
    assert_eq!(
        (
            a["poor"]["status"].as_str(),
            a["poor"]["balance"].as_str(),
            a["poor"]["suspend_at"].as_str()
        ),
        ("active", "0.00", "")
    );
    env.ok(&["--now", "2026-11-05T00:00:00+08:00", "recharge", "poor", "5"]);
    env.ok(&["--now", "2026-11-06T00:00:00+08:00", "enforce"]);
    assert_eq!(kinds(&env, "poor"), ["arrears_notice", "suspended", "restored"]);
    let restored = env.events().into_iter().find(|e| e["kind"] == "restored").unwrap();
    assert_eq!(restored["at"], "2026-11-04T00:05:00+08:00");
}

#[test]
fn a_recharge_before_suspend_at_cancels_the_stop() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["p,P,2026-01-01T00:00:00Z,0"]);
    env.import_usage(&["p,CropImage,2026-10-05T00:00:00+08:00,2000"]);
    env.settle("2026-10", NOV_1);
    assert_eq!(env.accounts()["p"]["balance"], "-2.00");
    env.ok(&["--now", "2026-11-01T12:00:00+08:00", "recharge", "p", "2"]);
    env.ok(&["--now", "2026-11-03T00:00:00+08:00", "enforce"]);
    let a = env.accounts();
    assert_eq!(
        (a["p"]["status"].as_str(), a["p"]["suspend_at"].as_str()),
        ("active", "")
    );
    assert_eq!(kinds(&env, "p"), ["arrears_notice"]);
}

#[test]
fn a_recharge_reference_is_applied_once() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["p,P,2026-01-01T00:00:00Z,0"]);
    env.ok(&["recharge", "p", "10", "--reference", "pay-123"]);
    let out = env.ok(&["recharge", "p", "10", "--reference", "pay-123"]);
    assert!(out.contains("already applied"), "{out}");
    assert_eq!(env.accounts()["p"]["balance"], "10.00");
}

//! Recharges and their references: a reference names one payment. The same payment retried is
//! applied once; another payment under a reference already taken is a conflict, refused; an
//! empty reference is no reference at all, refused. Nothing is credited by a refused recharge.

use crate::harness::*;

const NOW: &str = "2026-11-02T10:00:00+08:00";

fn env_with(accounts: &[&str]) -> Env {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", accounts);
    env
}

fn balance(env: &Env, id: &str) -> String {
    env.accounts()[id]["balance"].clone()
}

#[test]
fn a_reference_names_one_payment() {
    let env = env_with(&["a,A,2026-01-01T00:00:00Z,0", "b,B,2026-01-01T00:00:00Z,0"]);
    let out = env.ok(&["--now", NOW, "recharge", "a", "100.00", "--reference", "pay-1"]);
    assert!(out.contains("balance 100.00 CNY"), "{out}");
    // The same payment again (a retried callback): applied once, exit 0.
    let out = env.ok(&["--now", NOW, "recharge", "a", "100", "--reference", "pay-1"]);
    assert!(
        out.contains("already applied; nothing changed; balance 100.00 CNY"),
        "{out}"
    );
    let before = env.snapshot(&[]);
    // Another amount, or another account, under the same reference: a conflict.
    let err = env.fails(3, &["--now", NOW, "recharge", "a", "200.00", "--reference", "pay-1"]);
    assert!(
        err.contains("reference 'pay-1' already names another payment: 100.00 to 'a'"),
        "{err}"
    );
    assert!(err.contains("this one (200.00 to 'a') was not applied"), "{err}");
    let err = env.fails(3, &["--now", NOW, "recharge", "b", "100.00", "--reference", "pay-1"]);
    assert!(err.contains("this one (100.00 to 'b') was not applied"), "{err}");
    assert!(
        !err.contains("balance"),
        "the other account's balance is not shown: {err}"
    );
    assert_eq!(env.snapshot(&[]), before);
    assert_eq!(
        (balance(&env, "a"), balance(&env, "b")),
        ("100.00".into(), "0.00".into())
    );
    env.ok(&["verify"]);
}

#[test]
fn an_empty_or_invisible_reference_is_refused_and_nothing_is_lost() {
    let env = env_with(&["a,A,2026-01-01T00:00:00Z,0", "b,B,2026-01-01T00:00:00Z,0"]);
    let before = env.snapshot(&[]);
    for bad in ["", " ", " pay-1", "pay\u{200b}1", "pay\u{1b}[2J", &"p".repeat(129)] {
        let err = env.fails(3, &["--now", NOW, "recharge", "a", "10.00", "--reference", bad]);
        assert!(err.contains("reference"), "{bad:?}: {err}");
    }
    assert_eq!(env.snapshot(&[]), before);
    // Recharges without a reference are each applied: two payments of 10.00.
    env.ok(&["--now", NOW, "recharge", "a", "10.00"]);
    env.ok(&["--now", NOW, "recharge", "b", "10.00"]);
    env.ok(&["--now", NOW, "recharge", "b", "10.00"]);
    assert_eq!(
        (balance(&env, "a"), balance(&env, "b")),
        ("10.00".into(), "20.00".into())
    );
}

#[test]
fn recharges_beyond_the_bounds_are_refused_with_a_reason_not_a_panic() {
    let env = env_with(&["a,A,2026-01-01T00:00:00Z,0"]);
    let err = env.fails(3, &["--now", NOW, "recharge", "a", "10000000000000.01"]);
    assert!(err.contains("the largest recharge billrun takes"), "{err}");
    // A balance near the top of the range, as another writer may have left it: the credit
    // that would overflow it is refused, and nothing changes.
    let epoch = if env.is_postgres() { "to_timestamp(0)" } else { "0" };
    env.exec(&format!(
        "UPDATE accounts SET balance_fen = 9223372036854775000 WHERE account_id = 'a';
         INSERT INTO ledger (account_id, kind, amount_fen, created_at) VALUES ('a', 'recharge', 9223372036854775000, {epoch})"
    ));
    let before = env.snapshot(&[]);
    let err = env.fails(3, &["--now", NOW, "recharge", "a", "100.00"]);
    assert!(
        err.contains("would take its balance of 92233720368547750.00 beyond"),
        "{err}"
    );
    assert_eq!(env.snapshot(&[]), before);
}

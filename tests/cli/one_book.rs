//! One book: a month is billed for one period, whatever `--tz` a later run is given, and a
//! database keeps its money in one currency, whatever catalog a later run is given.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

fn october(env: &Env) {
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,1000"]);
    env.import_usage(&[
        "a,CropImage,2026-09-30T18:00:00+08:00,500",
        "a,CropImage,2026-10-15T00:00:00+08:00,5000",
        "a,CropImage,2026-10-31T20:00:00+08:00,700",
    ]);
}

#[test]
fn a_settled_month_keeps_its_billing_time_zone() {
    let env = Env::new();
    october(&env);
    env.settle("2026-10", NOV_1);
    let before = env.snapshot(&["2026-10"]);
    for tz in ["UTC", "America/Los_Angeles"] {
        let err = env.fails(
            3,
            &[
                "--tz",
                tz,
                "--now",
                "2026-11-05T00:00:00Z",
                "settle",
                "--month",
                "2026-10",
            ],
        );
        assert!(
            err.contains("2026-10 was billed in Asia/Shanghai for [2026-09-30T16:00:00+00:00"),
            "{err}"
        );
        assert!(err.contains(&format!("in --tz {tz} it would be")), "{err}");
        assert!(err.contains("run with --tz Asia/Shanghai"), "{err}");
        env.fails(
            3,
            &[
                "--tz",
                tz,
                "--now",
                "2026-11-05T00:00:00Z",
                "settle",
                "--month",
                "2026-10",
                "--dry-run",
            ],
        );
    }
    assert_eq!(env.snapshot(&["2026-10"]), before);
    // The books hold, whatever zone verify is run in: it reads the periods the bills recorded.
    env.ok(&["verify"]);
    env.ok(&["--tz", "UTC", "verify", "--month", "2026-10"]);
    // The same zone again is a re-run, which changes nothing.
    let out = env.settle("2026-10", "2026-11-05T00:00:00+08:00");
    assert!(out.contains("0 accounts billed now"), "{out}");
}

/// The built-in catalog's text.
fn built_in() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/catalog.toml")).unwrap()
}

fn catalog_in(env: &Env, currency: &str) -> String {
    let built_in = built_in();
    env.file(
        &format!("catalog-{currency}.toml"),
        &built_in.replace("currency = \"CNY\"", &format!("currency = \"{currency}\"")),
    )
}

#[test]
fn a_catalog_in_another_currency_is_refused_where_money_is_kept_in_cny() {
    let env = Env::new();
    october(&env);
    let usd = catalog_in(&env, "USD");
    let before = env.snapshot(&["2026-10"]);
    for args in [
        vec!["settle", "--month", "2026-10"],
        vec!["settle", "--month", "2026-10", "--dry-run"],
        vec!["recharge", "a", "5.00"],
        vec!["run"],
        vec!["export", "bills", "--month", "2026-10"],
    ] {
        let mut all = vec!["--catalog", usd.as_str(), "--now", NOV_1];
        all.extend(args.iter().copied());
        let err = env.fails(3, &all);
        assert!(
            err.contains("disagrees with the one this database prices with: version 'seed-2023-12' says other prices"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(env.snapshot(&["2026-10"]), before);
    // A database from before the catalog was kept: the USD catalog is not stored as its own.
    env.exec("DELETE FROM catalog_versions");
    let err = env.fails(3, &["--catalog", usd.as_str(), "--now", NOV_1, "migrate"]);
    assert!(
        err.contains("this database keeps its balances in CNY, but the catalog"),
        "{err}"
    );
    let kept: i64 = env.query("SELECT COUNT(*) FROM catalog_versions");
    assert_eq!(kept, 0);
}

#[test]
fn a_database_started_with_a_usd_catalog_keeps_usd_throughout() {
    let env = Env::new();
    let usd = catalog_in(&env, "USD");
    let accounts = env.file(
        "accounts.csv",
        "account_id,name,activated_at,balance\na,A,2026-01-01T00:00:00Z,100\n",
    );
    env.ok(&["--catalog", &usd, "--now", NOV_1, "accounts", "import", &accounts]);
    let usage = env.file(
        "usage.csv",
        "account_id,api,timestamp,calls\na,CropImage,2026-10-15T00:00:00+08:00,6000\n",
    );
    env.ok(&["--catalog", &usd, "--now", NOV_1, "usage", "import", &usage]);
    let out = env.ok(&["--catalog", &usd, "--now", NOV_1, "settle", "--month", "2026-10"]);
    assert!(out.contains("1 accounts billed now, 10.00 USD"), "{out}");
    let bills = parse_csv(&env.ok(&["--catalog", &usd, "export", "bills", "--month", "2026-10"]));
    assert_eq!(bills[0]["currency"], "USD");
    // The database keeps its USD catalog: a command without --catalog prices with it, and
    // the built-in catalog (CNY) named as a file is refused.
    env.ok(&["--now", NOV_1, "recharge", "a", "1.00"]);
    let cny = env.file("cny.toml", &built_in());
    let err = env.fails(3, &["--catalog", &cny, "--now", NOV_1, "recharge", "a", "1.00"]);
    assert!(err.contains("version 'seed-2023-12' says other prices"), "{err}");
}

#[test]
fn a_catalog_that_mixes_currencies_is_refused() {
    let env = Env::new();
    let built_in = built_in();
    let second = built_in[built_in.find("\n[[versions]]").unwrap()..]
        .replace("seed-2023-12", "usd-2026-12")
        .replace("effective_from = \"2023-12\"", "effective_from = \"2026-12\"")
        .replace("currency = \"CNY\"", "currency = \"USD\"");
    let mixed = env.file("mixed.toml", &format!("{built_in}\n{second}"));
    let err = env.fails(3, &["--catalog", &mixed, "accounts", "list"]);
    assert!(err.contains("a catalog has one currency"), "{err}");
}

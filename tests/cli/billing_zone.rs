//! The month's usage totals, which settle reads, are those of the billing zone the month is
//! settled in, whatever zone the usage was imported under.

use crate::harness::*;

/// Rows on both sides of October's bounds in Asia/Shanghai (UTC+8) and in UTC, with calls
/// that say which row is which.
const ROWS: [&str; 5] = [
    "z,CropImage,2026-09-30T15:59:59Z,1",     // September in both zones
    "z,CropImage,2026-09-30T16:00:00Z,10",    // October in Shanghai, September in UTC
    "z,CropImage,2026-10-31T15:59:59Z,100",   // October in both
    "z,CropImage,2026-10-31T16:00:00Z,1000",  // November in Shanghai, October in UTC
    "z,CropImage,2026-11-01T00:00:00Z,10000", // November in both
];

fn october_calls(env: &Env) -> String {
    line(&env.bills("2026-10"), "z", CROP)["total_calls"].clone()
}

fn env_with_rows(import_zone: &str) -> Env {
    let env = Env::new();
    env.import_accounts("2026-01-01T00:00:00Z", &["z,Zed,2026-01-01T00:00:00Z,100"]);
    let text = format!("account_id,api,timestamp,calls\n{}\n", ROWS.join("\n"));
    let f = env.file("usage.csv", &text);
    env.ok(&[
        "--tz",
        import_zone,
        "--now",
        "2026-11-05T00:00:00Z",
        "usage",
        "import",
        &f,
    ]);
    env
}

#[test]
fn a_month_is_totalled_in_the_zone_it_is_settled_in_whatever_zone_imported_it() {
    let now = "2026-11-05T00:00:00Z";
    // Imported under Shanghai, settled in UTC: the totals are built again for UTC.
    let env = env_with_rows("Asia/Shanghai");
    let out = env.run(&["--tz", "UTC", "--now", now, "settle", "--month", "2026-10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("usage totals built from the imports' kept usage"),
        "a rebuild is logged"
    );
    assert_eq!(october_calls(&env), "1100", "October in UTC: 100 + 1000");
    env.ok(&["--tz", "UTC", "verify"]);
    let rebuilt = env.bills_csv("2026-10");

    // Imported and settled in UTC from the start: the same bill.
    let utc = env_with_rows("UTC");
    utc.ok(&["--tz", "UTC", "--now", now, "settle", "--month", "2026-10"]);
    assert_same(
        &utc.bills_csv("2026-10"),
        &rebuilt,
        "UTC from the start against rebuilt for UTC",
    );

    // Imported under UTC, settled in Shanghai: October is 10 + 100 there.
    let shanghai = env_with_rows("UTC");
    shanghai.ok(&["--now", now, "settle", "--month", "2026-10"]);
    assert_eq!(october_calls(&shanghai), "110");
    shanghai.ok(&["verify"]);

    // Usage imported later under either zone lands in the totals of the zone they are kept in.
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\nz,CropImage,2026-10-31T20:00:00Z,5\n",
    );
    env.ok(&["--tz", "UTC", "--now", now, "usage", "import", &late]);
    env.ok(&["--tz", "UTC", "--now", now, "settle", "--month", "2026-10"]);
    let bills = env.bills("2026-10");
    let newest = bills
        .iter()
        .filter(|b| b["api"] == CROP)
        .max_by_key(|b| b["revision"].clone())
        .unwrap();
    assert_eq!(newest["total_calls"], "1105", "the adjustment counts the late row");
    env.ok(&["--tz", "UTC", "verify"]);
}

/// What `verify` prints about October's usage and its bill, stdout and stderr together.
fn verify_october(env: &Env, zone: &str) -> String {
    let out = env.run(&["--tz", zone, "verify", "--month", "2026-10"]);
    assert_eq!(out.status.code(), Some(6), "a breach: exit 6");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn verify_compares_a_bill_with_the_usage_of_the_period_it_was_settled_for() {
    let now = "2026-11-05T00:00:00Z";
    let env = env_with_rows("UTC");
    env.ok(&["--tz", "UTC", "--now", now, "settle", "--month", "2026-10"]);
    env.ok(&["--tz", "UTC", "verify"]);

    // A late row under the zone October was settled in: waiting for the next run, pending.
    let late = |name: &str, row: &str| env.file(name, &format!("account_id,api,timestamp,calls\n{row}\n"));
    let first = late("late1.csv", "z,CropImage,2026-10-15T00:00:00Z,1");
    env.ok(&["--tz", "UTC", "--now", now, "usage", "import", &first]);
    let pending = env.ok(&["--tz", "UTC", "verify", "--month", "2026-10"]);
    assert!(pending.contains("pending 2026-10: late usage waiting"), "{pending}");
    // A bill that counts neither the month's usage nor all of it but the late row is a
    // breach, named with the usage of the period: the totals, which match the rows.
    env.exec("UPDATE bill_lines SET total_calls = total_calls + 7 WHERE account_id = 'z' AND api = 'CropImage'");
    let out = verify_october(&env, "UTC");
    assert!(
        out.contains(
            "account z, 2026-10, CropImage: 1101 calls of usage (1 of them late, waiting), 1107 on the current bill"
        ),
        "{out}"
    );

    // Another under Shanghai: the totals are built again for Shanghai, where October holds
    // 10 + 100 + 1 + 2 calls; the bill, settled for October in UTC, is still compared with
    // the rows of that period: 100 + 1000 + 1 + 2.
    let second = late("late2.csv", "z,CropImage,2026-10-16T00:00:00Z,2");
    env.ok(&["--tz", "Asia/Shanghai", "--now", now, "usage", "import", &second]);
    let out = verify_october(&env, "Asia/Shanghai");
    assert!(
        out.contains(
            "account z, 2026-10, CropImage: 1103 calls of usage (3 of them late, waiting), 1107 on the current bill"
        ),
        "{out}"
    );
    assert!(!out.contains("113 calls"), "not Shanghai's October: {out}");
}

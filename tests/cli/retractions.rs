//! Retracting a usage import: `billrun usage retract` takes a bad import back (its calls off the
//! totals, its rows kept aside, its event ids free), the next `run` corrects the settled bills
//! with adjustments that credit and hand pack calls back, and `usage import --replaces` swaps a
//! meter's re-export for the one before, all or nothing. Killed at any moment, a replacement
//! re-run ends with the books of one clean run.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";
const NOV_5: &str = "2026-11-05T09:00:00+08:00";

fn imports(env: &Env) -> Vec<Row> {
    parse_csv(&env.ok(&["usage", "imports", "--format", "csv"]))
}

fn import_id(out: &str) -> String {
    out.split("as import #")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no import id in {out}"))
        .to_owned()
}

/// (revision, kind, api, total_calls, bill_total, revision_debited) of an account's October bill.
fn revisions(env: &Env, account: &str) -> Vec<[String; 6]> {
    env.bills("2026-10")
        .into_iter()
        .filter(|r| r["account_id"] == account)
        .map(|r| {
            [
                "revision",
                "kind",
                "api",
                "total_calls",
                "bill_total",
                "revision_debited",
            ]
            .map(|c| r[c].clone())
        })
        .collect()
}

fn s(v: [&str; 6]) -> [String; 6] {
    v.map(String::from)
}

#[test]
fn a_retracted_import_comes_off_the_bills_at_the_next_run_and_can_be_imported_again() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100", "b,B,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&[
        "a,AssessQuality,2026-10-05T00:00:00+08:00,3000",
        "b,CropImage,2026-10-05T00:00:00+08:00,2500",
    ]);
    // A meter that counted a day twice.
    let twice = env.file(
        "twice.csv",
        "account_id,api,timestamp,calls\na,AssessQuality,2026-10-06T00:00:00+08:00,2000\n",
    );
    let id = import_id(&env.ok(&["--now", "2026-10-31T00:00:00+08:00", "usage", "import", &twice]));
    env.settle("2026-10", NOV_1);
    // 5000 calls: 4000 × 0.003 = 12.00.
    assert_eq!(
        revisions(&env, "a"),
        [s(["1", "original", "AssessQuality", "5000", "12.00", "12.00"])]
    );
    let sha = imports(&env).into_iter().find(|i| i["import_id"] == id).unwrap()["sha256"].clone();

    let out = env.ok(&[
        "--now",
        "2026-11-03T10:00:00+08:00",
        "usage",
        "retract",
        &id,
        "--reason",
        "meter counted 10-06 twice",
        "--by",
        "bob",
    ]);
    assert!(
        out.contains(&format!("import #{id} (")) && out.contains("retracted"),
        "{out}"
    );
    assert!(out.contains("settled months it reached: 2026-10"), "{out}");
    // Until the next run the bill still counts it: verify says it waits, and finds no breach.
    let pending = env.ok(&["verify", "--month", "2026-10"]);
    assert!(pending.contains("pending 2026-10"), "{pending}");

    // Again: nothing changes. Unknown ids, and a retraction's own record, are refused.
    let books = env.snapshot(&["2026-10"]) + &env.ok(&["usage", "imports", "--format", "csv"]);
    let again = env.ok(&["usage", "retract", &id, "--reason", "again"]);
    assert!(
        again.contains("was retracted before") && again.contains("by bob"),
        "{again}"
    );
    let err = env.fails(3, &["usage", "retract", "99", "--reason", "x"]);
    assert!(err.contains("no usage import #99"), "{err}");
    let list = imports(&env);
    let record = list
        .iter()
        .find(|i| i["retracts"] == id)
        .expect("the retraction's record");
    let err = env.fails(3, &["usage", "retract", &record["import_id"], "--reason", "x"]);
    assert!(err.contains("no usage import"), "{err}");
    let err = env.fails(3, &["usage", "retract", &id, "--reason", " "]);
    assert!(err.contains("reason"), "{err}");
    assert_same(
        &(env.snapshot(&["2026-10"]) + &env.ok(&["usage", "imports", "--format", "csv"])),
        &books,
        "a repeated or refused retraction",
    );
    let retracted = list.iter().find(|i| i["import_id"] == id).unwrap();
    assert_eq!(
        (
            retracted["retracted_by"].as_str(),
            retracted["retraction_reason"].as_str(),
            retracted["retracted_at"].as_str(),
            retracted["sha256"].as_str()
        ),
        (
            "bob",
            "meter counted 10-06 twice",
            "2026-11-03T10:00:00+08:00",
            sha.as_str()
        ),
        "kept, with who, when and why, and the SHA-256 it had"
    );

    // The hourly run corrects the bill: 3000 calls, 6.00, crediting 6.00. b is untouched.
    let out = env.ok(&["--now", NOV_5, "run"]);
    assert!(out.contains("2026-10"), "{out}");
    assert_eq!(
        revisions(&env, "a")[1],
        s(["2", "adjustment", "AssessQuality", "3000", "6.00", "-6.00"])
    );
    assert_eq!(revisions(&env, "b").len(), 1);
    assert_eq!(env.accounts()["a"]["balance"], "94.00");
    env.ok(&["verify"]);

    // The retraction was a mistake: the same file imports again, and the next run bills it.
    let back = import_id(&env.ok(&["--now", "2026-11-06T09:00:00+08:00", "usage", "import", &twice]));
    assert_ne!(back, id);
    env.ok(&["--now", "2026-11-06T10:00:00+08:00", "run"]);
    assert_eq!(
        revisions(&env, "a")[2],
        s(["3", "adjustment", "AssessQuality", "5000", "12.00", "6.00"])
    );
    env.ok(&["verify"]);
}

#[test]
fn retracting_all_of_an_accounts_usage_takes_its_bill_to_zero_and_hands_the_packs_back() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["p,Packs,2026-01-01T00:00:00Z,100"]);
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P,p,CropImage,3000,2026-10-01T00:00:00+08:00,2027-01-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n",
    );
    env.ok(&["packs", "import", &packs]);
    // Usage sent under the wrong account: 1000 free, 3000 prepaid, 1000 × 0.002 = 2.00.
    let wrong = env.file(
        "wrong.csv",
        "account_id,api,timestamp,calls\np,CropImage,2026-10-10T00:00:00+08:00,5000\n",
    );
    let id = import_id(&env.ok(&["--now", "2026-10-31T00:00:00+08:00", "usage", "import", &wrong]));
    env.settle("2026-10", NOV_1);
    let left = |env: &Env| -> Vec<(String, String)> {
        env.packs()
            .into_iter()
            .filter(|p| p["api"] == "CropImage" && p["account_id"] == "p" && p["valid_from"].starts_with("2026-10"))
            .map(|p| (p["pack_id"].clone(), p["remaining"].clone()))
            .collect()
    };
    assert_eq!(
        left(&env),
        [
            ("P".into(), "0".into()),
            ("free:2026-10:CropImage:p".into(), "0".into())
        ]
    );
    env.ok(&["usage", "retract", &id, "--reason", "not p's usage"]);
    env.ok(&["--now", NOV_5, "run"]);
    // The line goes to zero calls and 0.00; the packs come back whole.
    assert_eq!(
        revisions(&env, "p")[1],
        s(["2", "adjustment", "CropImage", "0", "0.00", "-2.00"])
    );
    assert_eq!(
        left(&env),
        [
            ("P".into(), "3000".into()),
            ("free:2026-10:CropImage:p".into(), "1000".into())
        ]
    );
    assert_eq!(env.accounts()["p"]["balance"], "100.00");
    env.ok(&["verify"]);
    // Nothing more to do: a second run writes nothing.
    let books = env.snapshot(&["2026-10"]);
    env.ok(&["--now", "2026-11-05T10:00:00+08:00", "settle", "--month", "2026-10"]);
    assert_same(&env.snapshot(&["2026-10"]), &books, "a re-settle after the adjustment");
}

#[test]
fn an_open_months_retraction_leaves_its_estimate_and_its_events_may_come_again() {
    let env = Env::new();
    env.import_accounts("2026-12-01T00:00:00+08:00", &["e,Events,2026-01-01T00:00:00Z,100"]);
    let now = "2026-12-07T10:00:00+08:00";
    let sent = |name: &str, calls: i64| {
        env.file(
            name,
            &format!(
                "{{\"account_id\":\"e\",\"api\":\"CropImage\",\"timestamp\":\"2026-12-02T00:00:00+08:00\",\"calls\":{calls},\"event_id\":\"ev-1\"}}\n"
            ),
        )
    };
    let calls = |env: &Env| -> String {
        parse_csv(&env.ok(&["--now", now, "estimate", "--format", "csv"]))
            .into_iter()
            .find(|r| r["api"] == "CropImage")
            .map(|r| r["calls"].clone())
            .unwrap_or_default()
    };
    let first = import_id(&env.ok(&["--now", now, "usage", "import", &sent("a.ndjson", 5000)]));
    assert_eq!(calls(&env), "5000");
    // The same event with other calls is a conflict while the first counts ...
    env.fails(3, &["--now", now, "usage", "import", &sent("b.ndjson", 500)]);
    env.ok(&[
        "--now",
        now,
        "usage",
        "retract",
        &first,
        "--reason",
        "the meter's first count was wrong",
    ]);
    assert_eq!(calls(&env), "", "nothing of the month counts now");
    // ... and once it is retracted, the corrected event is taken, and billed once.
    env.ok(&["--now", now, "usage", "import", &sent("b.ndjson", 500)]);
    assert_eq!(calls(&env), "500");
    env.ok(&["verify"]);
}

#[test]
fn a_replacement_swaps_a_meters_reexport_for_the_one_before_all_or_nothing() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["m,Meter,2026-01-01T00:00:00Z,100"]);
    let night = |name: &str, days: u32, bad: bool| {
        let mut text = String::from("account_id,api,timestamp,calls\n");
        for d in 1..=days {
            text += &format!("m,AssessQuality,2026-10-{d:02}T12:00:00+08:00,1000\n");
        }
        if bad {
            text += "m,AssessQuality,not-a-time,1\n";
        }
        env.file(name, &text)
    };
    let now = "2026-10-31T00:00:00+08:00";
    let first = import_id(&env.ok(&["--now", now, "usage", "import", &night("n1.csv", 5, false)]));
    // The next night's export holds the month so far again, a day more: imported on top, it
    // would count five days twice; in place of the first, it counts each day once.
    let out = env.ok(&[
        "--now",
        now,
        "usage",
        "import",
        &night("n2.csv", 6, false),
        "--replaces",
        &first,
        "--by",
        "cron",
    ]);
    let second = import_id(&out);
    assert!(
        out.contains(&format!("import #{first} (")) && out.contains(&format!("replaced by import #{second}")),
        "{out}"
    );
    let list = imports(&env);
    let replaced = list.iter().find(|i| i["import_id"] == first).unwrap();
    assert_eq!(
        (replaced["replaced_by"].as_str(), replaced["retraction_reason"].as_str()),
        (
            second.as_str(),
            format!("replaced by {}", env.dir.path().join("n2.csv").display()).as_str()
        )
    );
    // A bad file replaces nothing; an import retracted before cannot be replaced.
    let books = env.snapshot(&[]) + &env.ok(&["usage", "imports", "--format", "csv"]);
    env.fails(
        3,
        &[
            "--now",
            now,
            "usage",
            "import",
            &night("n3.csv", 7, true),
            "--replaces",
            &second,
        ],
    );
    let err = env.fails(
        3,
        &[
            "--now",
            now,
            "usage",
            "import",
            &night("n4.csv", 7, false),
            "--replaces",
            &first,
        ],
    );
    assert!(err.contains("was retracted before"), "{err}");
    assert_same(
        &(env.snapshot(&[]) + &env.ok(&["usage", "imports", "--format", "csv"])),
        &books,
        "a refused replacement",
    );
    env.settle("2026-10", NOV_1);
    // 6000 calls: 5000 × 0.003 = 15.00.
    assert_eq!(
        revisions(&env, "m"),
        [s(["1", "original", "AssessQuality", "6000", "15.00", "15.00"])]
    );
    env.ok(&["verify"]);
}

#[test]
fn a_replacement_killed_at_any_moment_then_run_again_ends_as_one_clean_run() {
    let env = Env::new();
    let rows = |calls: u32| {
        let mut text = String::from("account_id,api,timestamp,calls\n");
        for i in 0..30_000u32 {
            text += &format!(
                "k{},CropImage,2026-10-{:02}T{:02}:00:00+08:00,{calls}\n",
                i % 50,
                1 + i % 28,
                i % 24
            );
        }
        text
    };
    let accounts: Vec<String> = (0..50).map(|i| format!("k{i},K{i},2026-01-01T00:00:00Z,100")).collect();
    env.import_accounts(NOV_1, &accounts.iter().map(String::as_str).collect::<Vec<_>>());
    let now = "2026-10-31T00:00:00+08:00";
    let old = env.file("old.csv", &rows(2));
    let new = env.file("new.csv", &rows(1));
    let mut live = import_id(&env.ok(&["--now", now, "usage", "import", &old]));
    // What one clean replacement leaves, told from the start on a database of its own.
    let clean = Env::new();
    clean.import_accounts(NOV_1, &accounts.iter().map(String::as_str).collect::<Vec<_>>());
    let clean_first = import_id(&clean.ok(&["--now", now, "usage", "import", &old]));
    clean.ok(&["--now", now, "usage", "import", &new, "--replaces", &clean_first]);
    clean.settle("2026-10", NOV_1);
    let expected = clean.bills_csv("2026-10");

    let live_import = |env: &Env| -> String {
        let list = imports(env);
        let live: Vec<&Row> = list
            .iter()
            .filter(|i| i["retracted_at"].is_empty() && i["retracts"].is_empty())
            .collect();
        assert_eq!(live.len(), 1, "one import counts: {list:#?}");
        live[0]["import_id"].clone()
    };
    let mut killed_before = 0;
    for round in 0..12u64 {
        let args = ["--now", now, "usage", "import", &new, "--replaces", &live];
        let mut child = env
            .command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(round * 40));
        child.kill().ok();
        child.wait().unwrap();
        if live_import(&env) == live {
            // Killed before its commit: nothing of it is kept, and running it again does it.
            killed_before += 1;
            env.ok(&args);
        }
        // Once done, running it again is refused and changes nothing.
        let err = env.fails(3, &args);
        assert!(err.contains("was retracted before"), "round {round}: {err}");
        env.ok(&["verify"]);
        live = live_import(&env);
        if round < 11 {
            // Back to the old file for the next round, by the same means.
            env.ok(&["--now", now, "usage", "import", &old, "--replaces", &live]);
            live = live_import(&env);
        }
    }
    assert!(killed_before > 0, "no kill landed before the replacement committed");
    env.settle("2026-10", NOV_1);
    assert_eq!(env.bills_csv("2026-10"), expected, "the books of one clean replacement");
}

#[test]
fn a_late_import_taken_back_and_sent_again_waits_for_the_run_and_a_resend_replaces_nothing() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,AssessQuality,2026-10-05T00:00:00+08:00,3000"]);
    env.settle("2026-10", NOV_1);
    // A late file, taken back by mistake before the hourly run and imported again: it was never
    // on a bill, so verify must see it once, as late usage waiting for the run, not as a breach.
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\na,AssessQuality,2026-10-06T00:00:00+08:00,2000\n",
    );
    let at = "2026-11-02T09:00:00+08:00";
    let id = import_id(&env.ok(&["--now", at, "usage", "import", &late]));
    env.ok(&[
        "--now",
        at,
        "usage",
        "retract",
        &id,
        "--reason",
        "wrong file, we thought",
    ]);
    env.ok(&["--now", at, "usage", "import", &late]);
    let pending = env.ok(&["verify", "--month", "2026-10"]);
    assert!(pending.contains("pending 2026-10"), "{pending}");
    env.ok(&["--now", NOV_5, "run"]);
    // 5000 calls: 4000 × 0.003 = 12.00, 6.00 more than the original.
    assert_eq!(
        revisions(&env, "a")[1],
        s(["2", "adjustment", "AssessQuality", "5000", "12.00", "6.00"])
    );
    env.ok(&["verify"]);

    // A meter's events, then a file whose every row another import holds: as a replacement of
    // the first it would leave nothing in its place, and it is refused, changing nothing.
    let events = |name: &str, ids: &[u32]| {
        let mut text = String::from("account_id,api,timestamp,calls,event_id\n");
        for i in ids {
            text += &format!("a,CropImage,2026-11-0{i}T12:00:00+08:00,10,e{i}\n");
        }
        env.file(name, &text)
    };
    let now = "2026-11-05T10:00:00+08:00";
    let first = import_id(&env.ok(&["--now", now, "usage", "import", &events("e12.csv", &[1, 2])]));
    env.ok(&["--now", now, "usage", "import", &events("e34.csv", &[3, 4])]);
    let books = env.snapshot(&[]) + &env.ok(&["usage", "imports", "--format", "csv"]);
    let err = env.fails(
        3,
        &[
            "--now",
            now,
            "usage",
            "import",
            &events("e3.csv", &[3]),
            "--replaces",
            &first,
        ],
    );
    assert!(
        err.contains(&format!("replace import #{first}")) && err.contains("nothing was changed"),
        "{err}"
    );
    assert_same(
        &(env.snapshot(&[]) + &env.ok(&["usage", "imports", "--format", "csv"])),
        &books,
        "a replacement by events held elsewhere",
    );
    // Without --replaces the same file is a harmless re-send.
    let resend = env.ok(&["--now", now, "usage", "import", &events("e3.csv", &[3])]);
    assert!(resend.contains("all events imported before"), "{resend}");
}

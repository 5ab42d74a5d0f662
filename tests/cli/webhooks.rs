//! Webhooks, end to end: the real binary sends to a real HTTP receiver on 127.0.0.1
//! (tests/receiver/webhook_receiver.py) that verifies every signature with the Standard
//! Webhooks reference library (`standardwebhooks` from PyPI, installed by scripts/test into
//! target/pytools), answers 500s, hangs past the timeout and drops connections on chosen
//! attempts, and logs what it got. Without that Python the tests say so loudly and stop,
//! unless `CI` is set: then they fail.

use crate::harness::*;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NOV_1: &str = "2026-11-01T02:00:00+08:00";

/// The Python that has `standardwebhooks`: BILLRUN_TEST_PYTHON, or scripts/test's venv.
fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("BILLRUN_TEST_PYTHON").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pytools/bin/python")),
    ];
    for p in candidates.into_iter().flatten() {
        let ok = Command::new(&p)
            .args(["-c", "import standardwebhooks"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(p);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("no Python with the standardwebhooks package and CI is set: run scripts/test, which installs it");
    }
    eprintln!(
        "WARNING: no Python with the standardwebhooks package (scripts/test installs it in target/pytools): \
         the webhook test was NOT run"
    );
    None
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Got {
    id: String,
    attempt: u64,
    verified: bool,
    answer: String,
    body: serde_json::Value,
}

/// A running receiver; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Receiver {
    /// `args`: `--plan 500,hang,drop`, `--always 410`, `--hang SECONDS`.
    fn start(env: &Env, name: &str, args: &[&str]) -> Option<Receiver> {
        let python = python()?;
        let log = env.dir.path().join(format!("{name}.jsonl"));
        let mut child = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/receiver/webhook_receiver.py"))
            .args(["--secret", SECRET, "--log"])
            .arg(&log)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the receiver's port");
        let port = line.trim().parse().expect("a port");
        Some(Receiver { child, port, log })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn got(&self) -> Vec<Got> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a log line");
                Got {
                    id: v["id"].as_str().unwrap().to_owned(),
                    attempt: v["attempt"].as_u64().unwrap(),
                    verified: v["verified"].as_bool().unwrap(),
                    answer: v["answer"].as_str().unwrap().to_owned(),
                    body: v["body"].clone(),
                }
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A webhooks file with a notifier (bills and arrears) and a gateway (suspensions and
/// restorations).
fn hooks_file(env: &Env, notifier: &str, gateway: &str, timeout: u32) -> String {
    env.file(
        "webhooks.toml",
        &format!(
            "timeout_seconds = {timeout}\n\n\
             [[endpoints]]\nname = \"notifier\"\nurl = \"{notifier}\"\nsecret = \"{SECRET}\"\n\
             events = [\"bill.issued\", \"account.arrears\"]\n\n\
             [[endpoints]]\nname = \"gateway\"\nurl = \"{gateway}\"\nsecret = \"{SECRET}\"\n\
             events = [\"account.suspended\", \"account.restored\"]\n"
        ),
    )
}

/// Three accounts with October usage: `rich` pays, `poor` goes into arrears.
fn october(env: &Env) {
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &[
            "rich,Rich Co,2026-09-01T00:00:00+08:00,10000.00",
            "poor,Poor Co,2026-09-01T00:00:00+08:00,1.00",
            "idle,Idle Co,2026-09-01T00:00:00+08:00,5.00",
        ],
    );
    env.import_usage(&[
        &format!("rich,{AQ},2026-10-10T10:00:00+08:00,2000000"),
        &format!("poor,{CROP},2026-10-10T10:00:00+08:00,900000"),
    ]);
}

/// `webhooks list --format csv` as rows.
fn deliveries(env: &Env, hooks: &str) -> Vec<Row> {
    parse_csv(&env.ok(&[
        "--webhooks",
        hooks,
        "webhooks",
        "list",
        "--limit",
        "100000",
        "--format",
        "csv",
    ]))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect(text).to_utc()
}

fn plus(t: &str, d: Duration) -> String {
    (at(t) + d).to_rfc3339()
}

/// Every request verified, and the ids answered 2xx, each with one body however often sent.
fn delivered_ids(got: &[Got]) -> BTreeSet<String> {
    let mut bodies: BTreeMap<&str, &serde_json::Value> = BTreeMap::new();
    for g in got {
        assert!(
            g.verified,
            "a request failed the reference library's verification: {g:?}"
        );
        if let Some(b) = bodies.insert(&g.id, &g.body) {
            assert_eq!(b, &g.body, "two attempts of {} sent different bodies", g.id);
        }
    }
    got.iter().filter(|g| g.answer == "204").map(|g| g.id.clone()).collect()
}

#[test]
fn every_decision_reaches_its_receiver_through_500s_hangs_and_dropped_connections() {
    let env = Env::new();
    let Some(notifier) = Receiver::start(&env, "notifier", &["--plan", "500,hang,drop", "--hang", "6"]) else {
        return;
    };
    let Some(gateway) = Receiver::start(&env, "gateway", &[]) else {
        return;
    };
    let hooks = hooks_file(&env, &notifier.url("billing"), &gateway.url("gw"), 3);
    october(&env);
    // The run settles October and sends at once; every notifier attempt 1 is a 500.
    let out = env.ok(&["--webhooks", &hooks, "--now", NOV_1, "run"]);
    assert!(out.contains("settled 2026-10"), "{out}");
    let bills: BTreeSet<String> = env.bills("2026-10").iter().map(|b| b["bill_id"].clone()).collect();
    assert_eq!(bills.len(), 2, "rich and poor have usage; idle has none");
    let mut wanted: BTreeSet<String> = bills.iter().map(|b| format!("bill_{b}")).collect();
    let events = env.events();
    let arrears: Vec<&Row> = events.iter().filter(|e| e["kind"] == "arrears_notice").collect();
    assert_eq!(arrears.len(), 1, "{events:?}");
    wanted.insert(format!("event_{}", arrears[0]["event_id"]));
    assert_eq!(notifier.got().len(), wanted.len(), "one first attempt each");
    assert!(delivered_ids(&notifier.got()).is_empty());
    // Attempt 2, 5 s later, hangs past the 3 s timeout; attempt 3, 5 min after that, is
    // dropped; attempt 4, 30 min after that, is answered 204.
    let mut now = NOV_1.to_owned();
    for wait in [Duration::seconds(6), Duration::minutes(6), Duration::minutes(31)] {
        now = plus(&now, wait);
        env.ok(&["--webhooks", &hooks, "--now", &now, "webhooks", "deliver"]);
    }
    let got = notifier.got();
    assert_eq!(delivered_ids(&got), wanted);
    for id in &wanted {
        let attempts: Vec<(u64, &str)> = got
            .iter()
            .filter(|g| &g.id == id)
            .map(|g| (g.attempt, g.answer.as_str()))
            .collect();
        assert_eq!(attempts, [(1, "500"), (2, "hang"), (3, "drop"), (4, "204")], "{id}");
    }
    // The arrears notice says what the customer owes and when service stops.
    let notice = got
        .iter()
        .find(|g| g.body["type"] == "account.arrears")
        .unwrap()
        .body
        .clone();
    assert_eq!(notice["data"]["account_id"], "poor");
    assert_eq!(notice["data"]["suspend_at"], "2026-11-01T18:00:00Z");
    assert_eq!(notice["data"]["currency"], "CNY");
    let owed: rust_decimal::Decimal = notice["data"]["owed"].as_str().unwrap().parse().unwrap();
    let balance: rust_decimal::Decimal = notice["data"]["balance"].as_str().unwrap().parse().unwrap();
    assert!(owed > rust_decimal::Decimal::ZERO && owed == -balance, "{notice}");
    // A bill's payload adds up with the books.
    let bill = got
        .iter()
        .find(|g| g.id == "bill_2026-10-poor-r1")
        .unwrap()
        .body
        .clone();
    assert_eq!(bill["data"]["balance_after"], notice["data"]["balance"]);
    assert_eq!(bill["data"]["kind"], "original");

    // The gateway learns of the suspension and of the restoration.
    env.ok(&["--webhooks", &hooks, "--now", "2026-11-02T02:00:01+08:00", "enforce"]);
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-02T09:00:00+08:00",
        "recharge",
        "poor",
        "100000",
    ]);
    let got = gateway.got();
    let types: Vec<&str> = got.iter().map(|g| g.body["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["account.suspended", "account.restored"]);
    assert_eq!(delivered_ids(&got).len(), 2);
    assert_eq!(got[0].body["data"]["account_id"], "poor");
    let restored = got[1].body["data"]["balance"].as_str().unwrap();
    assert!(!restored.starts_with('-'), "restored at a balance of {restored}");

    // Everything is delivered, and the metrics say so.
    let rows = deliveries(&env, &hooks);
    assert_eq!(rows.len(), wanted.len() + 2);
    assert!(rows.iter().all(|r| r["status"] == "delivered"), "{rows:?}");
    let metrics = env.ok(&["--now", "2026-11-02T10:00:00+08:00", "metrics"]);
    assert!(
        metrics.contains("billrun_webhook_deliveries{endpoint=\"notifier\",status=\"pending\"} 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("billrun_webhook_oldest_pending_timestamp_seconds{"),
        "{metrics}"
    );
}

#[test]
fn a_delivery_that_never_succeeds_fails_after_more_than_a_day_and_a_replay_sends_it_again() {
    let env = Env::new();
    let Some(down) = Receiver::start(&env, "down", &["--always", "503"]) else {
        return;
    };
    // A generous timeout: the receiver logs each attempt before it answers, and one that a
    // loaded machine kept from answering within a short timeout would be logged after billrun
    // had given up on it, in the next step's count.
    let hooks = hooks_file(&env, &down.url("billing"), &down.url("gw"), 30);
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &["solo,Solo,2026-09-01T00:00:00+08:00,100.00"],
    );
    env.import_usage(&[&format!("solo,{AQ},2026-10-10T10:00:00+08:00,1000")]);
    // The endpoints are recorded by any command that writes with the file (here `migrate`);
    // from then on the bills are queued for them even by a settle run without it.
    env.ok(&["--webhooks", &hooks, "migrate"]);
    env.settle("2026-10", NOV_1);
    env.ok(&["--webhooks", &hooks, "--now", NOV_1, "webhooks", "deliver"]);
    // Walk the schedule at --now: each attempt is due exactly when the one before said.
    let mut gaps = Vec::new();
    loop {
        let rows = deliveries(&env, &hooks);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        if r["status"] != "pending" {
            assert_eq!(r["status"], "failed");
            break;
        }
        let last = at(&r["last_attempt_at"]);
        let next = at(&r["next_attempt_at"]);
        gaps.push((next - last).num_seconds());
        // Not yet due a second before: nothing sent.
        let before = (next - Duration::seconds(1)).to_rfc3339();
        env.ok(&["--webhooks", &hooks, "--now", &before, "webhooks", "deliver"]);
        assert_eq!(down.got().len(), gaps.len());
        env.ok(&["--webhooks", &hooks, "--now", &next.to_rfc3339(), "webhooks", "deliver"]);
        assert_eq!(down.got().len(), gaps.len() + 1);
    }
    assert_eq!(gaps, [5, 300, 1800, 7200, 18000, 36000, 36000]);
    assert!(gaps.iter().sum::<i64>() >= 24 * 3600);
    let got = down.got();
    assert_eq!(got.len(), 8);
    assert!(got.iter().all(|g| g.verified && g.id == "bill_2026-10-solo-r1"));
    let failed = parse_csv(&env.ok(&["webhooks", "list", "--status", "failed", "--format", "csv"]));
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempts"], "8");
    assert_eq!(failed[0]["last_status"], "503");
    let metrics = env.ok(&["--now", "2026-11-03T00:00:00+08:00", "metrics"]);
    assert!(
        metrics.contains("billrun_webhook_deliveries{endpoint=\"notifier\",status=\"failed\"} 1"),
        "{metrics}"
    );

    // The receiver is mended (it moved): a replay sends the message again, same webhook-id.
    let Some(up) = Receiver::start(&env, "up", &[]) else {
        return;
    };
    let hooks = hooks_file(&env, &up.url("billing"), &up.url("gw"), 2);
    let out = env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-03T00:00:00+08:00",
        "webhooks",
        "replay",
        "--endpoint",
        "notifier",
        "--id",
        "bill_2026-10-solo-r1",
    ]);
    assert!(out.contains("1 deliveries to notifier due again"), "{out}");
    assert_eq!(
        delivered_ids(&up.got()),
        BTreeSet::from(["bill_2026-10-solo-r1".to_owned()])
    );
    assert_eq!(up.got()[0].body, got[0].body, "a replay sends the same message");
    env.fails(3, &["webhooks", "replay", "--endpoint", "nobody", "--id", "event_1"]);
    env.fails(3, &["webhooks", "replay", "--endpoint", "notifier", "--id", "msg_1"]);
    // The gateway wants suspensions and restorations only: a bill is never sent to it, even
    // named by its id.
    let err = env.fails(
        3,
        &[
            "--webhooks",
            &hooks,
            "--now",
            "2026-11-03T00:00:00+08:00",
            "webhooks",
            "replay",
            "--endpoint",
            "gateway",
            "--id",
            "bill_2026-10-solo-r1",
        ],
    );
    assert!(err.contains("gateway is not subscribed to its type"), "{err}");
    assert_eq!(up.got().len(), 1, "nothing more was sent");
}

#[test]
fn a_410_disables_the_endpoint_and_its_deliveries_wait_until_it_is_enabled() {
    let env = Env::new();
    let Some(gone) = Receiver::start(&env, "gone", &["--always", "410"]) else {
        return;
    };
    let hooks = hooks_file(&env, &gone.url("billing"), &gone.url("gw"), 2);
    october(&env);
    env.ok(&["--webhooks", &hooks, "--now", NOV_1, "run"]);
    // The first 410 disables the notifier: of its three messages, only what was in flight
    // at once was sent.
    let sent = gone.got().len();
    assert!((1..=3).contains(&sent), "{sent}");
    // A 410 fails no delivery: they all wait with the endpoint, those it answered too.
    let rows = deliveries(&env, &hooks);
    assert_eq!(rows.iter().filter(|r| r["status"] == "failed").count(), 0);
    assert_eq!(
        rows.iter()
            .filter(|r| r["endpoint"] == "notifier" && r["status"] == "pending")
            .count(),
        3
    );
    let metrics = env.ok(&["--now", NOV_1, "metrics"]);
    assert!(
        metrics.contains("billrun_webhook_endpoint_disabled{endpoint=\"notifier\"} 1"),
        "{metrics}"
    );
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-01T03:00:00+08:00",
        "webhooks",
        "deliver",
    ]);
    assert_eq!(gone.got().len(), sent, "a disabled endpoint is not called");

    let Some(back) = Receiver::start(&env, "back", &[]) else {
        return;
    };
    let hooks = hooks_file(&env, &back.url("billing"), &back.url("gw"), 2);
    env.ok(&["webhooks", "enable", "notifier"]);
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-01T03:00:00+08:00",
        "webhooks",
        "deliver",
    ]);
    assert_eq!(
        back.got().len(),
        3,
        "once enabled, every waiting one goes out, those answered 410 too"
    );
    env.fails(3, &["webhooks", "enable", "nobody"]);
}

/// SIGTERM while `run` delivers to a receiver that hangs: the process ends within seconds, not
/// after every attempt's timeout, and what was not sent stays pending for the next run.
#[test]
fn a_stop_signal_ends_delivery_within_seconds_and_nothing_is_lost() {
    let env = Env::new();
    let Some(slow) = Receiver::start(&env, "slow", &["--plan", "hang", "--hang", "30"]) else {
        return;
    };
    let hooks = hooks_file(&env, &slow.url("billing"), &slow.url("gw"), 20);
    october(&env);
    let run = env
        .command(&["--webhooks", &hooks, "--now", NOV_1, "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while slow.got().is_empty() {
        assert!(started.elapsed().as_secs() < 30, "run never delivered");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let signalled = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    let out = run.wait_with_output().unwrap();
    let waited = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(waited.as_secs() < 5, "the run took {waited:?} to stop: {stderr}");
    assert!(stderr.contains("webhook delivery abandoned"), "{stderr}");
    // The month is settled; its notices wait, none failed, none lost.
    assert_eq!(env.bills("2026-10").len(), 2);
    let rows = deliveries(&env, &hooks);
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["status"] == "pending"), "{rows:?}");
}

#[test]
fn a_deliverer_killed_mid_delivery_loses_nothing_and_the_resend_keeps_the_webhook_id() {
    let env = Env::new();
    let Some(slow) = Receiver::start(&env, "slow", &["--plan", "hang", "--hang", "30"]) else {
        return;
    };
    let hooks = hooks_file(&env, &slow.url("billing"), &slow.url("gw"), 20);
    october(&env);
    env.ok(&["--webhooks", &hooks, "migrate"]);
    env.settle("2026-10", NOV_1);
    let mut deliverer = env
        .command(&["--webhooks", &hooks, "--now", NOV_1, "webhooks", "deliver"])
        .spawn()
        .unwrap();
    // Wait until every message is in flight at the receiver, then kill the deliverer.
    let started = std::time::Instant::now();
    while slow.got().len() < 3 {
        assert!(
            started.elapsed().as_secs() < 15,
            "the deliverer never sent: {:?}",
            slow.got()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    deliverer.kill().unwrap();
    deliverer.wait().unwrap();
    let rows = deliveries(&env, &hooks);
    assert!(
        rows.iter().all(|r| r["status"] == "pending" && r["attempts"] == "0"),
        "{rows:?}"
    );
    // While the lease lasts, another deliverer leaves them alone; after it, they are sent again.
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        &plus(NOV_1, Duration::seconds(60)),
        "webhooks",
        "deliver",
    ]);
    assert_eq!(slow.got().len(), 3);
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        &plus(NOV_1, Duration::minutes(10)),
        "webhooks",
        "deliver",
    ]);
    let got = slow.got();
    assert_eq!(got.len(), 6);
    assert_eq!(delivered_ids(&got).len(), 3, "{got:?}");
    let rows = deliveries(&env, &hooks);
    assert!(rows.iter().all(|r| r["status"] == "delivered"), "{rows:?}");
}

#[test]
fn two_deliverers_at_once_send_each_message_once() {
    let env = Env::new();
    let Some(receiver) = Receiver::start(&env, "both", &[]) else {
        return;
    };
    let hooks = hooks_file(&env, &receiver.url("billing"), &receiver.url("gw"), 5);
    let accounts: Vec<String> = (0..150)
        .map(|i| format!("a{i:03},A {i},2026-09-01T00:00:00+08:00,100.00"))
        .collect();
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &accounts.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let usage: Vec<String> = (0..150)
        .map(|i| format!("a{i:03},{AQ},2026-10-10T10:00:00+08:00,{}", 1000 + i))
        .collect();
    env.import_usage(&usage.iter().map(String::as_str).collect::<Vec<_>>());
    env.settle("2026-10", NOV_1);
    // The settle ran without the file, so the endpoints were recorded after the bills and have
    // no deliveries of them: a replay of everything since the settlement creates them.
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        NOV_1,
        "webhooks",
        "replay",
        "--endpoint",
        "notifier",
        "--since",
        "2026-11-01T00:00:00+08:00",
    ]);
    let n = receiver.got().len();
    assert_eq!(n, 150);
    env.ok(&[
        "--now",
        "2026-11-01T03:00:00+08:00",
        "webhooks",
        "replay",
        "--endpoint",
        "notifier",
        "--since",
        "2026-11-01T00:00:00+08:00",
    ]);
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command(&[
                "--webhooks",
                &hooks,
                "--now",
                "2026-11-01T03:00:00+08:00",
                "webhooks",
                "deliver",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let again: Vec<Got> = receiver.got().into_iter().skip(n).collect();
    let ids: BTreeSet<&str> = again.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), 150);
    assert_eq!(again.len(), 150, "a message was sent twice by two deliverers at once");
}

#[test]
fn a_bad_webhooks_file_is_refused_by_line_and_field_and_its_secret_never_shows() {
    let env = Env::new();
    let bad = env.file(
        "bad.toml",
        &format!(
            "[[endpoints]]\nname = \"notifier\"\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"{SECRET}\"\n\
             events = [\"bill.paid\"]\n"
        ),
    );
    let err = env.fails(3, &["--webhooks", &bad, "--now", NOV_1, "run"]);
    assert!(err.contains("line 5, events: unknown event type 'bill.paid'"), "{err}");
    let secretless = env.file(
        "short.toml",
        "[[endpoints]]\nname = \"n\"\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"whsec_c2hvcnQ=\"\nevents = [\"bill.issued\"]\n",
    );
    let err = env.fails(3, &["--webhooks", &secretless, "run"]);
    assert!(err.contains("line 4, secret:") && !err.contains("c2hvcnQ"), "{err}");
    let err = env.fails(3, &["--now", NOV_1, "webhooks", "deliver"]);
    assert!(err.contains("--webhooks"), "{err}");

    // A receiver that is not there never fails the run; its secret is in no output or list.
    october(&env);
    let hooks = hooks_file(&env, "http://127.0.0.1:9/nobody", "http://127.0.0.1:9/nobody", 1);
    let out = env.run(&["--webhooks", &hooks, "--now", NOV_1, "run"]);
    assert!(out.status.success());
    let said = format!(
        "{}{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        env.ok(&["runs", "list"]),
        env.ok(&["webhooks", "list"])
    );
    assert!(said.contains("connection failed"), "{said}");
    assert!(!said.contains("MfKQ9r8"), "the secret leaked: {said}");
    let bills: BTreeSet<String> = env.bills("2026-10").iter().map(|b| b["bill_id"].clone()).collect();
    assert_eq!(bills.len(), 2);
}

#[test]
fn the_webhooks_files_in_the_documentation_are_accepted() {
    let env = Env::new();
    for doc in ["README.md", "docs/webhooks.md"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(doc)).unwrap();
        let start = text.find("```toml\n").expect("a TOML example") + "```toml\n".len();
        let end = start + text[start..].find("```").unwrap();
        let example: String = text[start..end]
            .lines()
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        let file = env.file("example.toml", &example);
        env.ok(&["--webhooks", &file, "migrate"]);
        let endpoints: i64 = env.query("SELECT COUNT(*) FROM webhook_subscriptions");
        assert_eq!(endpoints, 4, "{doc}: two endpoints of two event types each");
    }
}

#[test]
fn a_restoration_by_a_settle_credit_is_queued_for_the_gateway_like_one_by_a_recharge() {
    let env = Env::new();
    // No receiver is called: the endpoints point nowhere, and only the queue is read.
    let hooks = hooks_file(&env, "http://127.0.0.1:9/n", "http://127.0.0.1:9/g", 1);
    env.ok(&["--webhooks", &hooks, "migrate"]);
    env.import_accounts(NOV_1, &["d,Down,2026-01-01T00:00:00Z,2497.50"]);
    env.import_usage(&["d,AssessQuality,2026-10-05T00:00:00+08:00,999999"]);
    env.settle("2026-10", NOV_1);
    env.ok(&["--now", "2026-11-03T00:00:00+08:00", "enforce"]);
    // One more call moves the bill to the next tier's lower price: the adjustment credits the
    // difference, the balance comes back to 0, and the service with it.
    env.import_usage(&["d,AssessQuality,2026-10-31T00:00:00+08:00,1"]);
    env.settle("2026-10", "2026-11-05T09:00:00+08:00");
    let mut queued: Vec<(String, String, String)> = deliveries(&env, &hooks)
        .into_iter()
        .map(|r| (r["endpoint"].clone(), r["type"].clone(), r["webhook_id"].clone()))
        .collect();
    queued.sort();
    let events = env.events();
    let id = |kind: &str| {
        format!(
            "event_{}",
            events.iter().find(|e| e["kind"] == kind).unwrap()["event_id"]
        )
    };
    assert_eq!(
        queued,
        [
            ("gateway".into(), "account.restored".into(), id("restored")),
            ("gateway".into(), "account.suspended".into(), id("suspended")),
            ("notifier".into(), "account.arrears".into(), id("arrears_notice")),
            ("notifier".into(), "bill.issued".into(), "bill_2026-10-d-r1".into()),
            ("notifier".into(), "bill.issued".into(), "bill_2026-10-d-r2".into()),
        ]
    );
}

#[test]
fn a_receiver_that_hangs_costs_a_run_a_few_timeouts_and_does_not_hold_up_the_other_endpoint() {
    let env = Env::new();
    let Some(hanging) = Receiver::start(&env, "hanging", &["--always", "hang", "--hang", "5"]) else {
        return;
    };
    let Some(gateway) = Receiver::start(&env, "gateway", &[]) else {
        return;
    };
    let hooks = hooks_file(&env, &hanging.url("billing"), &gateway.url("gw"), 1);
    env.ok(&["--webhooks", &hooks, "migrate"]);
    let accounts: Vec<String> = (0..40)
        .map(|i| format!("p{i:02},P {i},2026-09-01T00:00:00+08:00,0"))
        .collect();
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &accounts.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let usage: Vec<String> = (0..40)
        .map(|i| format!("p{i:02},{CROP},2026-10-10T10:00:00+08:00,900000"))
        .collect();
    env.import_usage(&usage.iter().map(String::as_str).collect::<Vec<_>>());
    env.settle("2026-10", NOV_1);
    env.ok(&["--now", "2026-11-02T02:00:01+08:00", "enforce"]);
    // 80 messages for the notifier (40 bills, 40 arrears notices), 40 suspensions for the gateway.
    let started = std::time::Instant::now();
    let out = env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-02T02:00:02+08:00",
        "webhooks",
        "deliver",
    ]);
    let took = started.elapsed().as_secs();
    assert!(
        out.contains("endpoint notifier failed too many attempts in a row"),
        "{out}"
    );
    // Every suspension was attempted in this run, not held up behind the notifier (on a loaded
    // machine the gateway itself may time out once: its retry comes 5 s later).
    let rows = deliveries(&env, &hooks);
    let untried: Vec<&Row> = rows
        .iter()
        .filter(|r| r["endpoint"] == "gateway" && r["attempts"] == "0")
        .collect();
    assert!(untried.is_empty(), "suspensions held up: {untried:?}");
    // One batch was tried at the notifier (its requests may time out before the receiver even
    // reads them), not all 80; what was not tried keeps its schedule.
    let tried = rows
        .iter()
        .filter(|r| r["endpoint"] == "notifier" && r["attempts"] != "0")
        .count();
    assert!((5..=64).contains(&tried), "one batch at most, not all 80: {tried}");
    let got = hanging.got();
    assert!(
        got.len() <= tried,
        "{tried} tried, {} received: {:?}",
        got.len(),
        got.iter().map(|g| (&g.id, g.attempt)).collect::<Vec<_>>()
    );
    assert!(took < 30, "the run took {took} s");
    env.ok(&[
        "--webhooks",
        &hooks,
        "--now",
        "2026-11-02T02:01:00+08:00",
        "webhooks",
        "deliver",
    ]);
    assert_eq!(
        delivered_ids(&gateway.got()).len(),
        40,
        "the gateway got every suspension"
    );
}

#[test]
fn the_daemon_wakes_for_a_webhook_retry_and_sends_it() {
    let env = Env::new();
    let Some(receiver) = Receiver::start(&env, "retry", &["--plan", "500"]) else {
        return;
    };
    let hooks = hooks_file(&env, &receiver.url("billing"), &receiver.url("gw"), 2);
    env.ok(&["--webhooks", &hooks, "migrate"]);
    env.import_accounts(
        "2026-09-01T00:00:00+08:00",
        &["solo,Solo,2026-09-01T00:00:00+08:00,100.00"],
    );
    env.import_usage(&[&format!("solo,{AQ},2026-10-10T10:00:00+08:00,1000")]);
    env.settle("2026-10", NOV_1);
    // The daemon's schedule is days away; the bill's delivery is due now, and its retry 5 s
    // after the first attempt fails.
    let mut daemon = env
        .command(&["--webhooks", &hooks, "--now", "2026-11-10T12:00:00+08:00", "daemon"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while delivered_ids(&receiver.got()).is_empty() && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let got = receiver.got();
    let answers: Vec<&str> = got.iter().map(|g| g.answer.as_str()).collect();
    assert_eq!(answers, ["500", "204"], "{got:?}");
    let waited = started.elapsed().as_secs();
    assert!((4..30).contains(&waited), "the retry came after {waited} s");
}

#[test]
fn an_endpoint_taken_out_of_the_file_is_queued_for_until_it_is_removed() {
    let env = Env::new();
    let hooks = hooks_file(&env, "http://127.0.0.1:9/n", "http://127.0.0.1:9/g", 1);
    env.ok(&["--webhooks", &hooks, "migrate"]);
    october(&env);
    env.settle("2026-10", NOV_1);
    let only_gateway = env.file(
        "gateway.toml",
        &format!(
            "[[endpoints]]\nname = \"gateway\"\nurl = \"http://127.0.0.1:9/g\"\nsecret = \"{SECRET}\"\n\
             events = [\"account.suspended\", \"account.restored\"]\n"
        ),
    );
    let err = env.fails(3, &["--webhooks", &hooks, "webhooks", "remove", "notifier"]);
    assert!(err.contains("still in the webhooks file"), "{err}");
    let out = env.ok(&["--webhooks", &only_gateway, "webhooks", "remove", "notifier"]);
    assert!(
        out.contains("endpoint notifier removed; 3 pending deliveries dropped"),
        "{out}"
    );
    let metrics = env.ok(&["--now", NOV_1, "metrics"]);
    assert!(!metrics.contains("endpoint=\"notifier\""), "{metrics}");
    // Later bills are not queued for it.
    env.import_usage(&[&format!("idle,{AQ},2026-10-31T10:00:00+08:00,10")]);
    env.ok(&["--webhooks", &only_gateway, "--now", "2026-11-02T02:00:00+08:00", "run"]);
    assert!(deliveries(&env, &only_gateway)
        .iter()
        .all(|r| r["endpoint"] == "gateway"));
    env.fails(3, &["webhooks", "remove", "notifier"]);
}

#[test]
fn pack_alerts_are_recorded_once_each_and_reach_the_endpoint_subscribed_to_them() {
    let env = Env::new();
    let Some(console) = Receiver::start(&env, "console", &[]) else {
        return;
    };
    let hooks = env.file(
        "webhooks.toml",
        &format!(
            "[[endpoints]]\nname = \"console\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nevents = [\"pack.alert\"]\n",
            console.url("alerts")
        ),
    );
    env.import_accounts("2026-11-01T00:00:00+08:00", &["a,A,2026-09-01T00:00:00+08:00,0"]);
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         PP-1,a,CropImage,1000,2026-09-01T00:00:00+08:00,2027-03-01T00:00:00+08:00,2026-08-28T00:00:00+08:00\n",
    );
    env.ok(&["--now", "2026-11-01T00:00:00+08:00", "packs", "import", &packs]);
    let run = |now: &str| env.ok(&["--webhooks", &hooks, "--now", now, "run"]);
    let usage = |name: &str, rows: &str| {
        let f = env.file(name, &format!("account_id,api,timestamp,calls\n{rows}\n"));
        env.ok(&["--now", "2026-11-20T00:00:00+08:00", "usage", "import", &f]);
    };

    // 850 of the 1000 free calls: past 80%.
    usage("u1.csv", "a,CropImage,2026-11-02T00:00:00+08:00,850");
    let out = run("2026-11-03T00:00:00+08:00");
    assert!(out.contains("recorded 1 pack alerts for 2026-11"), "{out}");
    // Nothing imported since: the month is not read again, and nothing is recorded twice.
    let out = run("2026-11-03T01:00:00+08:00");
    assert!(out.contains("nothing to do"), "{out}");

    // 1000 more: the free pack used up, the prepaid pack (the last) down to 150 of 1000.
    usage("u2.csv", "a,CropImage,2026-11-10T00:00:00+08:00,1000");
    let out = run("2026-11-11T00:00:00+08:00");
    assert!(out.contains("recorded 2 pack alerts for 2026-11"), "{out}");
    let out = run("2026-11-11T01:00:00+08:00");
    assert!(out.contains("nothing to do"), "{out}");

    let alerts: Vec<(String, String, String)> = env
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "pack_alert")
        .map(|e| (e["account_id"].clone(), e["pack_id"].clone(), e["threshold"].clone()))
        .collect();
    let free = "free:2026-11:CropImage:a".to_string();
    assert_eq!(
        alerts,
        [
            ("a".into(), free.clone(), "free_80_percent_used".into()),
            ("a".into(), free.clone(), "free_used_up".into()),
            ("a".into(), "PP-1".into(), "prepaid_under_20_percent_left".into()),
        ]
    );

    // Each reached the receiver, signed as the reference library checks.
    let got = console.got();
    assert_eq!(delivered_ids(&got).len(), 3, "{got:#?}");
    let prepaid = got
        .iter()
        .map(|g| &g.body)
        .find(|b| b["data"]["pack_id"] == "PP-1")
        .expect("the prepaid pack's alert");
    assert_eq!(prepaid["type"], "pack.alert");
    let data = &prepaid["data"];
    assert_eq!(data["account_id"], "a");
    assert_eq!(data["api"], "CropImage");
    assert_eq!(data["pack_kind"], "prepaid");
    assert_eq!(data["threshold"], "prepaid_under_20_percent_left");
    assert_eq!(
        (data["calls"].as_i64(), data["used"].as_i64(), data["left"].as_i64()),
        (Some(1000), Some(850), Some(150))
    );
    assert_eq!(data["alerted_at"], "2026-11-10T16:00:00Z");
}

/// An HTTPS receiver with a self-signed certificate for 127.0.0.1 (made here with `openssl`),
/// answering 204 to every POST: its port, once it listens.
fn https_receiver(env: &Env) -> (Child, u16) {
    let (key, cert) = (env.dir.path().join("key.pem"), env.dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success(), "openssl req failed");
    let server = r#"
import http.server, ssl, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
httpd = http.server.HTTPServer(("127.0.0.1", 0), Answer)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(sys.argv[1], sys.argv[2])
httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", server])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the receiver's port");
    (child, line.trim().parse().expect("a port"))
}

#[test]
fn an_https_receiver_is_reached_over_tls_and_its_certificate_must_be_trusted() {
    let env = Env::new();
    let (mut server, port) = https_receiver(&env);
    let hooks = env.file(
        "webhooks.toml",
        &format!(
            "[[endpoints]]\nname = \"tls\"\nurl = \"https://127.0.0.1:{port}/hooks?token=s3cret\"\n\
             secret = \"{SECRET}\"\nevents = [\"bill.issued\"]\n"
        ),
    );
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-09-01T00:00:00+08:00,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,5000"]);
    env.ok(&["--webhooks", &hooks, "--now", NOV_1, "settle", "--month", "2026-10"]);
    let listed = deliveries(&env, &hooks);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    // The handshake happened, and a certificate no trusted authority signed was refused: the
    // bill waits for a retry, with the reason, and the URL's token is not in it.
    let d = &listed[0];
    assert_eq!(d["status"], "pending", "{d:?}");
    assert_eq!(d["attempts"], "1", "{d:?}");
    assert!(d["last_error"].to_lowercase().contains("certificate"), "{d:?}");
    assert!(!d["last_error"].contains("s3cret"), "{d:?}");
}

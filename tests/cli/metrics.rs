//! `billrun metrics`: what an on-call engineer alerts on, read from the database, in the
//! Prometheus text format. The output is checked with Prometheus' own `promtool check metrics`
//! (Debian's `prometheus` package, installed by scripts/test); without promtool the test says
//! so loudly and checks the rest, unless `CI` is set: then it fails.

use crate::harness::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample line");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Runs `promtool check metrics` on `text`; fails the test on any problem it names.
fn promtool_accepts(text: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        if std::env::var_os("CI").is_some() {
            panic!("promtool is missing and CI is set: the metrics must be checked by Prometheus' own tool");
        }
        eprintln!("WARNING: promtool not found: the metrics were NOT checked by it (install prometheus)");
        return;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn metrics_follow_the_month_from_usage_to_settlement_and_suspension() {
    let env = Env::new();
    env.import_accounts(
        NOV_1,
        &[
            "poor,Poor,2026-01-01T00:00:00Z,10.00",
            "rich,Rich,2026-01-01T00:00:00Z,1000",
            "soon,Soon,,0",
        ],
    );
    // 3000 billable × 0.008 = 24.00 each.
    env.import_usage(&[
        "poor,EnhanceImage,2026-10-05T00:00:00+08:00,4000",
        "rich,EnhanceImage,2026-10-31T23:59:59+08:00,4000",
    ]);

    // October has ended with usage and is not settled.
    let before = env.ok(&["--now", NOV_1, "metrics"]);
    promtool_accepts(&before);
    let m = samples(&before);
    assert_eq!(m["billrun_months_unsettled"], "1", "{before}");
    // October ended at 2026-11-01T00:00 in Shanghai.
    assert_eq!(
        m["billrun_oldest_unsettled_month_end_timestamp_seconds{month=\"2026-10\"}"],
        "1793462400"
    );
    assert_eq!(m["billrun_accounts{status=\"active\"}"], "2");
    assert_eq!(m["billrun_accounts{status=\"inactive\"}"], "1");
    assert_eq!(m["billrun_metrics_read_timestamp_seconds"], "1793469600");
    assert!(
        !before.contains("billrun_last_success_timestamp_seconds{"),
        "no run yet: {before}"
    );
    // In October itself nothing is due yet.
    let during = samples(&env.ok(&["--now", "2026-10-31T23:00:00+08:00", "metrics"]));
    assert_eq!(during["billrun_months_unsettled"], "0");

    env.settle("2026-10", NOV_1);
    let after = env.ok(&["--now", "2026-11-01T03:00:00+08:00", "metrics"]);
    promtool_accepts(&after);
    let m = samples(&after);
    assert_eq!(m["billrun_months_unsettled"], "0", "{after}");
    assert!(!after.contains("billrun_oldest_unsettled_month_end_timestamp_seconds{"));
    let settled_at: f64 = m["billrun_last_success_timestamp_seconds{command=\"settle\"}"]
        .parse()
        .unwrap();
    assert!((1793469600.0..1793469600.0 + 600.0).contains(&settled_at), "{after}");
    assert_eq!(
        m["billrun_last_run_timestamp_seconds{command=\"settle\"}"],
        "1793469600"
    );
    assert!(m.contains_key("billrun_last_run_duration_seconds{command=\"settle\"}"));
    assert_eq!(m["billrun_last_run_failed{command=\"settle\"}"], "0");
    assert_eq!(
        m["billrun_last_settled_month_billed{month=\"2026-10\",currency=\"CNY\"}"],
        "48.00"
    );
    assert_eq!(m["billrun_last_settled_month_bills{month=\"2026-10\"}"], "2");
    assert_eq!(m["billrun_accounts{status=\"arrears\"}"], "1");
    assert_eq!(m["billrun_accounts{status=\"active\"}"], "1");
    assert_eq!(m["billrun_suspensions_overdue"], "0");

    // Past suspend_at, the suspension is overdue until enforce runs.
    let due = samples(&env.ok(&["--now", "2026-11-02T03:00:00+08:00", "metrics"]));
    assert_eq!(due["billrun_suspensions_overdue"], "1");
    env.ok(&["--now", "2026-11-02T03:00:00+08:00", "enforce"]);
    let out = env.dir.path().join("textfile").join("billrun.prom");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let stdout = env.ok(&[
        "--now",
        "2026-11-02T03:05:00+08:00",
        "metrics",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("wrote billrun's metrics to"), "{stdout}");
    let written = std::fs::read_to_string(&out).unwrap();
    promtool_accepts(&written);
    assert_eq!(
        written,
        env.ok(&["--now", "2026-11-02T03:05:00+08:00", "metrics"]),
        "the file holds exactly what standard output shows"
    );
    let names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["billrun.prom"],
        "no temporary file is left for the collector to read"
    );
    let m = samples(&written);
    assert_eq!(m["billrun_suspensions_overdue"], "0");
    assert_eq!(m["billrun_accounts{status=\"suspended\"}"], "1");
    assert_eq!(m["billrun_last_run_failed{command=\"enforce\"}"], "0");
    assert!(m.contains_key("billrun_last_success_timestamp_seconds{command=\"enforce\"}"));
}

/// A free port on 127.0.0.1 (free when asked; the test binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GETs `url`; the status and the body.
fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(url).call().expect(url);
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// Waits until `url` answers.
fn wait_for(url: &str) {
    for _ in 0..100 {
        if ureq::get(url).call().is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{url} never answered");
}

/// A real Pushgateway (Debian's prometheus-pushgateway, installed by scripts/test), stopped
/// when dropped.
struct Pushgateway(std::process::Child, u16);

impl Pushgateway {
    fn start() -> Option<Pushgateway> {
        let port = free_port();
        let Ok(child) = std::process::Command::new("prometheus-pushgateway")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            if std::env::var_os("CI").is_some() {
                panic!("prometheus-pushgateway is missing and CI is set: pushes must reach a real Pushgateway");
            }
            eprintln!("WARNING: prometheus-pushgateway not found: the push test was NOT run");
            return None;
        };
        let gw = Pushgateway(child, port);
        wait_for(&format!("{}/-/ready", gw.url()));
        Some(gw)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.1)
    }

    /// The samples of job billrun, as the Pushgateway exposes them, without the labels it adds.
    fn billrun(&self) -> BTreeMap<String, String> {
        let (_, text) = get(&format!("{}/metrics", self.url()));
        samples(&text)
            .into_iter()
            .filter(|(k, _)| k.starts_with("billrun_"))
            .map(|(k, v)| {
                (
                    k.replace("instance=\"\",job=\"billrun\",", "")
                        .replace(",instance=\"\",job=\"billrun\"", "")
                        .replace("{instance=\"\",job=\"billrun\"}", ""),
                    v,
                )
            })
            .collect()
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn metrics_pushed_to_a_real_pushgateway_read_back_the_same_and_a_run_pushes_when_it_ends() {
    let env = Env::new();
    let Some(gw) = Pushgateway::start() else {
        return;
    };
    env.import_accounts(NOV_1, &["poor,Poor,2026-01-01T00:00:00Z,10.00"]);
    env.import_usage(&["poor,EnhanceImage,2026-10-05T00:00:00+08:00,4000"]);
    let out = env.ok(&["--push", &gw.url(), "--now", NOV_1, "metrics"]);
    assert!(out.contains("pushed billrun's metrics to"), "{out}");
    // Every sample reads back from the Pushgateway with the value billrun printed (which
    // writes numbers its own way: 1793469600 comes back as 1.7934696e+09).
    let printed = samples(&env.ok(&["--now", NOV_1, "metrics"]));
    let read_back = gw.billrun();
    assert_eq!(printed.keys().collect::<Vec<_>>(), read_back.keys().collect::<Vec<_>>());
    for (name, value) in &printed {
        let number = |v: &str| v.parse::<f64>().unwrap();
        assert_eq!(number(value), number(&read_back[name]), "{name}");
    }
    assert_eq!(read_back["billrun_months_unsettled"], "1", "{read_back:?}");
    // `run` pushes when it ends: October settled, the run's success pushed. The URL's query (a
    // token a proxy asks for) stays a query, and no log line shows it, at any level.
    let with_token = format!("{}/?token=SEKRET", gw.url());
    let out = env
        .command(&["--push", &with_token, "--now", "2026-11-01T02:00:00+08:00", "run"])
        .env("BILLRUN_LOG", "trace")
        .output()
        .unwrap();
    let logged = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{logged}");
    assert!(logged.contains("billrun"), "a trace was written: {logged}");
    assert!(!logged.contains("SEKRET"), "{logged}");
    let after = gw.billrun();
    assert_eq!(after["billrun_months_unsettled"], "0", "{after:?}");
    assert!(
        after.contains_key("billrun_last_success_timestamp_seconds{command=\"run\"}"),
        "{after:?}"
    );
    // BILLRUN_PUSHGATEWAY only says where jobs push: `metrics` without --push prints.
    let printed = env
        .command(&["--now", NOV_1, "metrics"])
        .env("BILLRUN_PUSHGATEWAY", gw.url())
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert!(
        String::from_utf8_lossy(&printed.stdout).contains("# TYPE billrun_months_unsettled gauge"),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    // A Pushgateway that is not there: `metrics --push` fails with 5; `run` still succeeds.
    let gone = format!("http://127.0.0.1:{}", free_port());
    let err = env.fails(5, &["--push", &gone, "metrics"]);
    assert!(err.contains("cannot push the metrics"), "{err}");
    env.ok(&["--push", &gone, "--now", "2026-11-01T03:00:00+08:00", "run"]);
}

#[test]
fn the_daemon_serves_its_metrics_on_the_address_it_is_given() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["poor,Poor,2026-01-01T00:00:00Z,10.00"]);
    let port = free_port();
    let mut daemon = env
        .command(&[
            "--now",
            "2026-11-15T00:00:00+08:00",
            "daemon",
            "--metrics-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{url}/metrics"));
    let (status, text) = get(&format!("{url}/metrics"));
    assert_eq!(status, 200);
    promtool_accepts(&text);
    assert_eq!(samples(&text)["billrun_accounts{status=\"active\"}"], "1", "{text}");
    assert_eq!(get(&format!("{url}/")).0, 404);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// What on-call sees between two runs: late usage waiting for the next run, and an operator's
/// typo, which is recorded as refused and looks like no failure.
#[test]
fn late_usage_waiting_shows_in_the_metrics_and_a_refused_command_is_no_failure() {
    let env = Env::new();
    env.import_accounts(NOV_1, &["acct,Acct,2026-01-01T00:00:00Z,1000"]);
    env.import_usage(&["acct,EnhanceImage,2026-10-05T00:00:00+08:00,4000"]);
    env.ok(&["--now", NOV_1, "run"]);
    let quiet = env.ok(&["--now", "2026-11-10T10:00:00+08:00", "metrics"]);
    assert!(!quiet.contains("billrun_late_usage"), "{quiet}");

    // October's late rows arrive on the 10th.
    let late = env.file(
        "late.csv",
        "account_id,api,timestamp,calls\n\
         acct,EnhanceImage,2026-10-20T00:00:00+08:00,300\n\
         acct,CropImage,2026-10-21T00:00:00+08:00,200\n",
    );
    env.ok(&["--now", "2026-11-10T10:17:00+08:00", "usage", "import", &late]);
    let waiting = env.ok(&["--now", "2026-11-10T10:20:00+08:00", "metrics"]);
    promtool_accepts(&waiting);
    let m = samples(&waiting);
    // 2026-11-10T10:17:00+08:00 is 1794277020 seconds since the epoch.
    assert_eq!(
        m["billrun_late_usage_oldest_import_timestamp_seconds{month=\"2026-10\"}"], "1794277020",
        "{waiting}"
    );
    assert_eq!(m["billrun_late_usage_imports{month=\"2026-10\"}"], "1");
    assert_eq!(m["billrun_late_usage_rows{month=\"2026-10\"}"], "2");
    assert_eq!(m["billrun_late_usage_calls{month=\"2026-10\"}"], "500");
    // October has been settled: waiting late usage is not an unsettled month.
    assert_eq!(m["billrun_months_unsettled"], "0");

    // An operator's typo: November has not ended. Refused (exit 3), recorded as such, and
    // no failure to page for; the run before it still says how `settle` stands.
    env.ok(&["--now", "2026-11-10T10:30:00+08:00", "settle", "--month", "2026-10"]);
    let err = env.fails(
        3,
        &["--now", "2026-11-10T10:40:00+08:00", "settle", "--month", "2026-11"],
    );
    assert!(err.contains("2026-11"), "{err}");
    let runs = parse_csv(&env.ok(&["runs", "list", "--format", "csv"]));
    assert_eq!(
        (runs[0]["command"].as_str(), runs[0]["outcome"].as_str()),
        ("settle", "refused"),
        "{runs:#?}"
    );
    let after = samples(&env.ok(&["--now", "2026-11-10T10:45:00+08:00", "metrics"]));
    assert_eq!(after["billrun_last_run_failed{command=\"settle\"}"], "0");
    // 2026-11-10T10:30:00+08:00: the settle that billed the late usage, not the refusal.
    assert_eq!(
        after["billrun_last_run_timestamp_seconds{command=\"settle\"}"],
        "1794277800"
    );
    assert!(
        !after.keys().any(|k| k.starts_with("billrun_late_usage")),
        "billed: nothing waits {after:#?}"
    );
}

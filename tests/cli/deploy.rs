//! deploy/ is not just files that look right: every schedule in it parses with billrun's own
//! cron parser and fires when intended, and the Kubernetes failure policy uses billrun's
//! documented exit codes, and the container build copies in all the build reads. (Schema
//! validation: scripts/validate-deploy.)

use crate::harness::*;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn next_times(schedule: &str, now: &str, count: &str) -> Vec<String> {
    let env = Env::new();
    env.ok(&["--now", now, "schedule", "--schedule", schedule, "--count", count])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The schedule of the CronJob that calls `billrun run`, and of the one that calls `enforce`.
fn kubernetes_schedules() -> Vec<String> {
    read("deploy/k8s/cronjob.yaml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("schedule: "))
        .map(|s| s.trim_matches('"').to_owned())
        .collect()
}

/// A shipped setting of `run`'s environment: the value given for `name` in `text` (YAML
/// `- name: X` then `value: Y`, or `X=Y` in a crontab or a unit's `Environment=`).
fn shipped_env(text: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if line == format!("- name: {name}") {
            if let Some(v) = lines.peek().and_then(|l| l.strip_prefix("value: ")) {
                found.push(v.to_owned());
            }
        } else if let Some(v) = line
            .trim_start_matches("Environment=")
            .strip_prefix(&format!("{name}="))
        {
            found.push(v.to_owned());
        }
    }
    found
}

#[test]
fn every_shipped_schedule_calls_run_every_hour() {
    let schedules = kubernetes_schedules();
    assert_eq!(schedules, ["0 * * * *", "*/10 * * * *"]);
    let cronjobs = read("deploy/k8s/cronjob.yaml");
    assert_eq!(cronjobs.matches("timeZone: Asia/Shanghai").count(), 2);
    assert_eq!(cronjobs.matches("concurrencyPolicy: Forbid").count(), 2);
    assert_eq!(
        next_times(&schedules[0], "2026-10-31T23:30:00+08:00", "4"),
        [
            "2026-11-01T00:00:00+08:00",
            "2026-11-01T01:00:00+08:00",
            "2026-11-01T02:00:00+08:00",
            "2026-11-01T03:00:00+08:00"
        ]
    );
    assert_eq!(
        next_times(&schedules[1], "2026-11-02T02:03:00+08:00", "2"),
        ["2026-11-02T02:10:00+08:00", "2026-11-02T02:20:00+08:00"]
    );
    // A run that could not start on time may start late, but not into the next hour's run.
    let deadline: u64 = cronjobs
        .lines()
        .find_map(|l| l.trim().strip_prefix("startingDeadlineSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((600..3600).contains(&deadline), "{deadline}");
    // cron and the daemon: the same hourly schedule in the same zone.
    let crontab = read("deploy/cron/billrun.crontab");
    let run_line = crontab
        .lines()
        .find(|l| l.contains("/usr/local/bin/billrun run "))
        .expect("the crontab calls run");
    assert!(run_line.starts_with(&format!("{} ", schedules[0])), "{run_line}");
    let daemon_help = Env::new().ok(&["daemon", "--help"]);
    assert!(
        daemon_help.contains(&format!("[default: \"{}\"]", schedules[0])),
        "{daemon_help}"
    );
    // systemd: every hour on the hour, in the billing zone.
    assert!(read("deploy/systemd/billrun.timer").contains("\nOnCalendar=*-*-* *:00:00 Asia/Shanghai\n"));
    // Every shipped `run` waits two hours after the month ends, as the default does.
    for (file, text) in [
        ("deploy/k8s/cronjob.yaml", cronjobs.as_str()),
        ("deploy/cron/billrun.crontab", crontab.as_str()),
        (
            "deploy/systemd/billrun.service",
            &read("deploy/systemd/billrun.service"),
        ),
    ] {
        assert_eq!(shipped_env(text, "BILLRUN_SETTLE_AFTER"), ["2h"], "{file}");
    }
    let run_help = Env::new().ok(&["run", "--help"]);
    assert!(run_help.contains("[default: 2h]"), "{run_help}");
}

#[test]
fn the_crontab_schedules_parse() {
    let crontab = read("deploy/cron/billrun.crontab");
    let lines: Vec<&str> = crontab
        .lines()
        .filter(|l| l.contains("/usr/local/bin/billrun"))
        .collect();
    assert_eq!(lines.len(), 3, "run, enforce and webhooks deliver");
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().take(5).collect();
        assert_eq!(
            next_times(&fields.join(" "), "2026-10-31T12:00:00+08:00", "1").len(),
            1,
            "{line}"
        );
    }
    assert!(crontab.contains("CRON_TZ=Asia/Shanghai"));
}

/// November as the shipped schedule drives it: `billrun run` at every time the CronJob fires,
/// with the CronJob's settings, from the end of October to the end of November. October is
/// settled at 02:00 on the 1st, after its last file came in at 01:10; usage that arrives for
/// October at 10:17 on the 10th is billed by the 11:00 run, and the runs in between and after
/// have nothing to do.
#[test]
fn the_shipped_schedule_bills_late_usage_within_the_hour() {
    let env = Env::new();
    let schedule = &kubernetes_schedules()[0];
    let cronjob = read("deploy/k8s/cronjob.yaml");
    let cronjob_env: Vec<(&str, String)> = ["BILLRUN_TZ", "BILLRUN_SETTLE_AFTER"]
        .into_iter()
        .map(|name| (name, shipped_env(&cronjob, name)[0].clone()))
        .collect();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &[
            "early,Early,2026-09-01T00:00:00+08:00,100",
            "late,Late,2026-09-01T00:00:00+08:00,100",
        ],
    );
    // The schedule ran through October: its free packs are granted.
    env.ok(&["--now", "2026-10-01T00:00:00+08:00", "run"]);
    let usage = |name: &str, rows: &str| env.file(name, &format!("account_id,api,timestamp,calls\n{rows}"));
    let imports = [
        // October's meters, on time; the last file of the month arrives after midnight.
        (
            "2026-10-31T23:50:00+08:00",
            usage("oct.csv", &format!("early,{CROP},2026-10-10T00:00:00+08:00,3000\n")),
        ),
        (
            "2026-11-01T01:10:00+08:00",
            usage("oct-last.csv", &format!("late,{CROP},2026-10-31T23:59:00+08:00,2000\n")),
        ),
        // A meter that was down for a week sends October's rest on the 10th.
        (
            "2026-11-10T10:17:00+08:00",
            usage(
                "oct-late.csv",
                &format!("early,{CROP},2026-10-21T00:00:00+08:00,1000\n"),
            ),
        ),
    ];
    let times = next_times(schedule, "2026-10-31T23:00:00+08:00", "720");
    assert_eq!(times.last().unwrap(), "2026-11-30T23:00:00+08:00");
    let mut pending = imports.iter().peekable();
    let mut did = Vec::new();
    for t in &times {
        // What the meters sent before this run.
        while let Some((at, file)) = pending.next_if(|(at, _)| *at < t.as_str()) {
            env.ok(&["--now", at, "usage", "import", file]);
        }
        // With the CronJob's environment.
        let mut run = env.command(&["--now", t, "run"]);
        for (name, value) in &cronjob_env {
            run.env(name, value);
        }
        let out = run.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = String::from_utf8(out.stdout).unwrap();
        if !out.contains("nothing to do") {
            did.push((t.clone(), out));
        }
    }
    let what: Vec<&str> = did.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        what,
        [
            "2026-11-01T00:00:00+08:00",
            "2026-11-01T02:00:00+08:00",
            "2026-11-10T11:00:00+08:00"
        ],
        "only the free packs, the month end and the late usage are work: {did:#?}"
    );
    assert!(did[0].1.contains("granted"), "{}", did[0].1);
    assert!(did[1].1.contains("settled 2026-10"), "{}", did[1].1);
    assert!(
        did[2].1.contains("usage for 2026-10 arrived after it was settled"),
        "{}",
        did[2].1
    );
    let bills = env.bills("2026-10");
    let early: Vec<&Row> = bills.iter().filter(|r| r["account_id"] == "early").collect();
    // early: 3000 − 1000 free = 2000 × 0.002 = 4.00, then 4000 − 1000 = 3000 × 0.002 = 6.00.
    assert_eq!(
        early
            .iter()
            .map(|r| (r["kind"].as_str(), r["bill_total"].as_str(), r["settled_at"].as_str()))
            .collect::<Vec<_>>(),
        [
            ("original", "4.00", "2026-11-01T02:00:00+08:00"),
            ("adjustment", "6.00", "2026-11-10T11:00:00+08:00")
        ]
    );
    // late's usage came in at 01:10 and is on its first bill.
    assert_eq!(line(&bills, "late", CROP)["bill_total"], "2.00");
    env.ok(&["verify"]);
}

#[test]
fn the_failure_policies_use_the_documented_exit_codes() {
    // 1 bug, 2 usage, 3 bad input: never retried. 4 busy/stopped, 5 database: retried.
    for file in ["deploy/k8s/cronjob.yaml", "deploy/k8s/settle-month-job.yaml"] {
        let text = read(file);
        assert!(
            text.contains("- action: FailJob\n") && text.contains("values: [1, 2, 3]"),
            "{file}"
        );
        assert!(
            text.contains("restartPolicy: Never"),
            "{file}: podFailurePolicy needs restartPolicy Never"
        );
        assert!(
            text.contains("secretKeyRef:") && !text.contains("postgres://"),
            "{file}: the URL comes from a Secret"
        );
    }
    let help = Env::new()
        .ok(&["--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("3 bad input or configuration, fix it (do not retry as is); 4 busy"),
        "{help}"
    );
    let service = read("deploy/systemd/billrun.service");
    assert!(service.contains("RestartPreventExitStatus=1 2 3"));
}

#[test]
fn the_indexed_job_passes_each_pod_its_shard() {
    let job = read("deploy/k8s/settle-sharded-job.yaml");
    assert!(job.contains("completionMode: Indexed"));
    let completions = job
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap();
    assert!(
        job.contains(&format!("\"--shard\", \"$(JOB_COMPLETION_INDEX)/{completions}\"")),
        "{job}"
    );
    // What each pod's argument becomes is a shard billrun accepts.
    let env = Env::new();
    for k in 0..completions.parse::<u32>().unwrap() {
        let shard = format!("{k}/{completions}");
        let out = env.ok(&[
            "--now",
            "2026-11-01T02:00:00+08:00",
            "settle",
            "--month",
            "2026-10",
            "--shard",
            &shard,
            "--dry-run",
        ]);
        assert!(out.contains("would bill 0 accounts"), "{out}");
    }
}

/// The image is built from what deploy/Dockerfile copies in. It must copy the manifest, the
/// lock file, `.cargo/` (how the bundled SQLite is built: without it the image's settle queues
/// on SQLite's global mutexes), the sources, and every directory the sources read at compile
/// time (`include_str!`, `include_bytes!`, `sqlx::migrate!`), found here by reading `src/`.
#[test]
fn the_container_build_copies_in_everything_the_build_reads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().unwrap();
    let mut needed = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".into(),
        "build.rs".into(),
        ".cargo".into(),
        "src".into(),
    ];
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (mac, base) in [
                ("include_str!(\"", dir.as_path()),
                // A path put together from literals: its first, a directory.
                ("include_str!(concat!(\"", dir.as_path()),
                ("include_bytes!(\"", dir.as_path()),
                ("migrate!(\"", root.as_path()),
            ] {
                for found in text.split(mac).skip(1) {
                    let relative = found.split('"').next().unwrap();
                    let file = base.join(relative).canonicalize().unwrap();
                    let top = file.strip_prefix(&root).unwrap().components().next().unwrap();
                    needed.push(top.as_os_str().to_string_lossy().into_owned());
                }
            }
        }
    }
    let dockerfile = read("deploy/Dockerfile");
    // The build stage: from the first FROM to the next.
    let build = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    let copied: Vec<&str> = build
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    needed.sort();
    needed.dedup();
    assert!(needed.contains(&"fixtures".to_string()) && needed.contains(&"migrations".to_string()));
    for path in &needed {
        assert!(
            copied.contains(&path.as_str()),
            "deploy/Dockerfile does not COPY {path}: {copied:?}"
        );
    }
}

/// What an operator meets beyond the schedules: the build context, the pods' credentials, the
/// one-line re-run of a month, how systemd and cron report a failure.
#[test]
fn deploy_files_keep_failures_visible_and_pods_minimal() {
    // The build context is what the Dockerfile copies, not target/ or local databases.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "*"), "{ignore}");
    assert!(!ignore.contains("!target"), "{ignore}");
    let dockerfile = read("deploy/Dockerfile");
    assert!(
        dockerfile.contains("FROM rust:1.95-bookworm AS build"),
        "a pinned Rust release"
    );
    assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    // The dependency layer is built before the sources are copied in.
    let deps = dockerfile
        .find("echo 'fn main() {}' > src/main.rs")
        .expect("a dependency layer");
    assert!(deps < dockerfile.find("COPY src ./src").unwrap());
    // No pod mounts a service-account token it never uses.
    for file in [
        "deploy/k8s/cronjob.yaml",
        "deploy/k8s/settle-month-job.yaml",
        "deploy/k8s/settle-sharded-job.yaml",
    ] {
        let text = read(file);
        assert_eq!(
            text.matches("automountServiceAccountToken: false").count(),
            text.matches("restartPolicy: Never").count(),
            "{file}"
        );
    }
    // A month is re-run with the one line its header gives, and the Job it renders settles that
    // month.
    let job = read("deploy/k8s/settle-month-job.yaml");
    assert!(job.contains("sed 's/yyyy-mm/2026-10/g' deploy/k8s/settle-month-job.yaml | kubectl create -f -"));
    let rendered = job.replace("yyyy-mm", "2026-10");
    let args = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: [\"settle\""))
        .expect("the settle container's args");
    assert_eq!(args, ", \"--month\", \"2026-10\"]");
    assert!(rendered.contains("generateName: billrun-settle-2026-10-"));
    // systemd: a bounded number of retries, then OnFailure= reports it.
    for unit in [
        "deploy/systemd/billrun.service",
        "deploy/systemd/billrun-enforce.service",
    ] {
        assert!(read(unit).contains("OnFailure=billrun-failed@%n.service"), "{unit}");
    }
    let run = read("deploy/systemd/billrun.service");
    assert!(run.contains("StartLimitBurst=4") && run.contains("StartLimitIntervalSec=2h"));
    assert!(read("deploy/systemd/billrun-failed@.service").contains("--priority=err"));
    // cron: billrun's exit status decides; a failure mails a line, a success nothing.
    let crontab = read("deploy/cron/billrun.crontab");
    for line in crontab.lines().filter(|l| l.contains("/usr/local/bin/billrun")) {
        assert!(
            !line.contains('|') || line.contains("||"),
            "no pipe hides the status: {line}"
        );
        assert!(line.contains("|| echo \"billrun"), "{line}");
    }
    assert!(crontab.contains("MAILTO="));
}

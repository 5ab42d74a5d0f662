//! deploy/ is not just files that look right: every schedule in it parses with billrun's own
//! cron parser and fires when intended, and the Kubernetes failure policy uses billrun's
//! documented exit codes. (Schema validation: scripts/validate-deploy.)

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

#[test]
fn every_kubernetes_schedule_parses_and_fires_when_intended() {
    let cronjobs = read("deploy/k8s/cronjob.yaml");
    let schedules: Vec<&str> = cronjobs
        .lines()
        .filter_map(|l| l.trim().strip_prefix("schedule: "))
        .map(|s| s.trim_matches('"'))
        .collect();
    assert_eq!(schedules, ["0 2 1-3 * *", "*/10 * * * *"]);
    assert_eq!(cronjobs.matches("timeZone: Asia/Shanghai").count(), 2);
    assert_eq!(cronjobs.matches("concurrencyPolicy: Forbid").count(), 2);
    assert_eq!(
        next_times(schedules[0], "2026-10-31T12:00:00+08:00", "4"),
        [
            "2026-11-01T02:00:00+08:00",
            "2026-11-02T02:00:00+08:00",
            "2026-11-03T02:00:00+08:00",
            "2026-12-01T02:00:00+08:00"
        ]
    );
    assert_eq!(
        next_times(schedules[1], "2026-11-02T02:03:00+08:00", "2"),
        ["2026-11-02T02:10:00+08:00", "2026-11-02T02:20:00+08:00"]
    );
    // A missed 1st can still start before the 3rd: the deadline is at least 24 hours.
    let deadline: u64 = cronjobs
        .lines()
        .find_map(|l| l.trim().strip_prefix("startingDeadlineSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_400..=172_800).contains(&deadline), "{deadline}");
}

#[test]
fn the_crontab_schedules_parse() {
    let crontab = read("deploy/cron/billrun.crontab");
    let lines: Vec<&str> = crontab
        .lines()
        .filter(|l| l.contains("/usr/local/bin/billrun"))
        .collect();
    assert_eq!(lines.len(), 2);
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
    let help = Env::new().ok(&["--help"]);
    assert!(
        help.contains("3 bad input or configuration (do not retry); 4 busy"),
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

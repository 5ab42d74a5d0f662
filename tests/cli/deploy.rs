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

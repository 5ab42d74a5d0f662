//! What an operator's tools see: no secret in any message, no terminal driven by a name, lists
//! safe to open in a spreadsheet, `--out` that never destroys what is not a regular file, the
//! documented exit code for every error an operator must fix, and errors in the log format.

use crate::harness::*;
use std::process::{Command, Stdio};

const NOV_1: &str = "2026-11-01T02:00:00+08:00";

/// Runs billrun with `args` and no database flag, returning (exit code, stdout + stderr).
fn bare(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .env_remove("DATABASE_URL")
        .env("BILLRUN_LOG", "warn")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn a_database_password_is_never_shown_however_the_url_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (url, code) in [
        ("postgres://bill@127.0.0.1:1/x?password=SECRET-1", 5),
        ("postgres://bill@127.0.0.1:1/x?sslmode=disable&password=SECRET-2", 5),
        ("postgres:/bill:SECRET-3@127.0.0.1:1/x", 3),
        ("postgresql:bill:SECRET-4@127.0.0.1:1/x", 3),
        ("sqlite://bill:SECRET-5@/tmp/billrun-secret-test.db", 3),
        ("bill:SECRET-6@127.0.0.1/x", 3),
    ] {
        for args in [vec!["accounts", "list"], vec!["--log-format", "json", "run"]] {
            let mut all = vec!["--database", url];
            all.extend(args);
            let (exit, text) = bare(dir.path(), &all);
            assert_eq!(exit, Some(code), "{url}: {text}");
            assert!(!text.contains("SECRET"), "{url} shown in clear: {text}");
            assert!(text.contains("***"), "{url}: {text}");
        }
    }
    assert!(!std::path::Path::new("/tmp/billrun-secret-test.db").exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file made of a mistyped URL"
    );
}

/// A name and an id with escape sequences, as another writer or an older version left them.
fn hostile_names(env: &Env) {
    env.import_accounts(
        NOV_1,
        &[
            "plain,=HYPERLINK(\"http://x\"),2026-01-01T00:00:00Z,-5",
            "ok,OK,2026-01-01T00:00:00Z,100",
        ],
    );
    env.exec("UPDATE accounts SET name = 'Evil' || char(27) || ']0;owned' || char(7) || char(27) || '[2J' WHERE account_id = 'ok'"
        .replace("char(", if env.is_postgres() { "chr(" } else { "char(" })
        .as_str());
    env.import_usage(&["ok,EnhanceImage,2026-10-05T00:00:00+08:00,1500"]);
    env.settle("2026-10", NOV_1);
}

#[test]
fn names_reach_a_terminal_as_text_and_a_spreadsheet_as_values() {
    let env = Env::new();
    hostile_names(&env);
    for args in [
        vec!["accounts", "list"],
        vec!["--now", NOV_1, "bills", "show", "ok", "--month", "2026-10"],
    ] {
        let out = env.ok(&args);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?} printed escapes: {out:?}"
        );
        assert!(
            out.contains("Evil\\u{001b}]0;owned\\u{0007}\\u{001b}[2J"),
            "{args:?}: {out}"
        );
    }
    // CSV lists are neutralised as the exports are: text cells only.
    let accounts = env.ok(&["accounts", "list", "--format", "csv"]);
    assert!(
        accounts.contains("plain,\"'=HYPERLINK(\"\"http://x\"\")\",active,-5.00,"),
        "{accounts}"
    );
    let events = env.ok(&["events", "--format", "csv"]);
    assert!(
        events.lines().skip(1).all(|l| !l.contains(",'-")),
        "numbers stay numbers: {events}"
    );
    // JSON keeps the data as it is, escaped by the JSON encoder.
    let json = env.ok(&["accounts", "list", "--format", "json"]);
    assert!(json.contains("\\u001b") && !json.contains('\u{1b}'), "{json}");
}

/// The month's bills export, for writing to odd places.
fn settled(env: &Env) {
    env.import_accounts(NOV_1, &["a,A,2026-01-01T00:00:00Z,100"]);
    env.import_usage(&["a,CropImage,2026-10-05T00:00:00+08:00,5000"]);
    env.settle("2026-10", NOV_1);
}

#[test]
fn out_writes_through_links_fifos_and_devices_and_refuses_directories() {
    let env = Env::new();
    settled(&env);
    let dir = env.dir.path();
    let expected = env.ok(&["export", "bills", "--month", "2026-10"]);
    // A symbolic link: the file it points to is replaced, the link stays a link.
    std::fs::write(dir.join("real.csv"), "old").unwrap();
    std::os::unix::fs::symlink("real.csv", dir.join("link.csv")).unwrap();
    env.ok(&["export", "bills", "--month", "2026-10", "--out", "link.csv"]);
    assert!(std::fs::symlink_metadata(dir.join("link.csv"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(dir.join("real.csv")).unwrap(), expected);
    // A FIFO: written through to whoever reads it, and still a FIFO afterwards.
    let fifo = dir.join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    env.ok(&["export", "bills", "--month", "2026-10", "--out", "pipe"]);
    assert_eq!(reader.join().unwrap(), expected);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A device: written through; /dev/full answers that it is full, an error to fix (3).
    let err = env.fails(3, &["export", "bills", "--month", "2026-10", "--out", "/dev/full"]);
    assert!(err.contains("cannot write /dev/full"), "{err}");
    assert!(std::fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    env.ok(&["export", "summary", "--month", "2026-10", "--out", "/dev/null"]);
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A directory: refused, and nothing left behind in it.
    std::fs::create_dir(dir.join("exports")).unwrap();
    let err = env.fails(3, &["export", "bills", "--month", "2026-10", "--out", "exports"]);
    assert!(err.contains("is a directory"), "{err}");
    assert_eq!(std::fs::read_dir(dir.join("exports")).unwrap().count(), 0);
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_export_to_a_closed_or_full_standard_output_fails() {
    let env = Env::new();
    settled(&env);
    // Standard output closed, as `billrun export … >&-` leaves it.
    let out = env
        .command(&["export", "bills", "--month", "2026-10"])
        .stdout(Stdio::from(
            std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap(),
        ))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "a writable standard output is fine");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec \"$0\" --database '{}' export bills --month 2026-10 >&-",
            env.database
        ))
        .arg(BIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("standard output"), "{err}");
    let full = env
        .command(&["export", "bills", "--month", "2026-10"])
        .stdout(Stdio::from(
            std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap(),
        ))
        .output()
        .unwrap();
    assert_eq!(full.status.code(), Some(3), "{}", String::from_utf8_lossy(&full.stderr));
}

#[test]
fn sqlite_files_an_operator_must_fix_exit_3_once_said() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    // A directory that does not exist.
    let (code, text) = bare(dir.path(), &["--database", &at("missing/billrun.db"), "migrate"]);
    assert_eq!(code, Some(3), "{text}");
    // Named as what it is, not as SQLite's code 14 ("unable to open database file").
    assert_eq!(
        text.matches(&format!(
            "the directory {} does not exist",
            dir.path().join("missing").display()
        ))
        .count(),
        1,
        "said once: {text}"
    );
    // No file, for a command that only reads: it is not created.
    let (code, text) = bare(dir.path(), &["--database", &at("none.db"), "accounts", "list"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("there is no SQLite database at"), "{text}");
    assert!(!dir.path().join("none.db").exists());
    // A file that is not a database.
    std::fs::write(dir.path().join("notes.db"), "not a database, just notes\n".repeat(200)).unwrap();
    let (code, text) = bare(dir.path(), &["--database", &at("notes.db"), "accounts", "list"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("not a database"), "{text}");
    // A database cut in half.
    let whole = dir.path().join("whole.db");
    let env_db = format!("sqlite://{}", whole.display());
    let accounts: String = (0..3000).map(|i| format!("a{i},Account {i},,0\n")).collect();
    std::fs::write(
        dir.path().join("a.csv"),
        format!("account_id,name,activated_at,balance\n{accounts}"),
    )
    .unwrap();
    let (code, text) = bare(dir.path(), &["--database", &env_db, "accounts", "import", "a.csv"]);
    assert_eq!(code, Some(0), "{text}");
    // Everything in the file itself, none of it in the write-ahead log beside it.
    block_on(async {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::SqliteConnection::connect(&env_db).await.unwrap();
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
    });
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(dir.path().join("cut.db"), &bytes[..bytes.len() / 2]).unwrap();
    let (code, text) = bare(dir.path(), &["--database", &at("cut.db"), "accounts", "list"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("malformed"), "{text}");
    // A database opened read-only, asked to write.
    let ro = format!("{env_db}?mode=ro");
    let (code, text) = bare(
        dir.path(),
        &["--database", &ro, "--now", NOV_1, "recharge", "a1", "1.00"],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("readonly"), "{text}");
}

#[test]
fn postgres_errors_an_operator_must_fix_exit_3_and_outages_5() {
    let Ok(server) = std::env::var("BILLRUN_TEST_PG") else {
        return; // the PostgreSQL half of the suite runs this (scripts/test)
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    let (code, text) = bare(
        dir.path(),
        &["--database", &format!("{base}/no_such_database"), "accounts", "list"],
    );
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // scripts/test's server checks passwords over TCP.
    let wrong = server.replace(":not-a-secret@", ":WRONG-SECRET@");
    assert_ne!(wrong, server, "the test server's URL carries its password");
    let (code, text) = bare(dir.path(), &["--database", &wrong, "accounts", "list"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!text.contains("WRONG-SECRET"), "{text}");
    let started = std::time::Instant::now();
    let (code, text) = bare(
        dir.path(),
        &["--database", "postgres://bill:pw@127.0.0.1:1/x", "accounts", "list"],
    );
    assert_eq!(code, Some(5), "{text}");
    assert!(
        text.contains("Connection refused"),
        "the cause, not a pool timeout: {text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // A name with a NUL byte never reaches the server: the file is refused by line and field.
    let env = Env::new();
    let f = env.file("nul.csv", "account_id,name,activated_at,balance\nn,Nul\u{0}name,,0\n");
    let err = env.fails(3, &["accounts", "import", &f]);
    assert!(err.contains("nul.csv:line 2: field 'name'"), "{err}");
}

#[test]
fn errors_follow_the_log_format() {
    let env = Env::new();
    let mut body = String::from("account_id,api,timestamp,calls\n");
    for i in 0..1500 {
        body += &format!("ghost{i},CropImage,2026-10-02T10:00:00+08:00,x\n");
    }
    let f = env.file("bad.csv", &body);
    let out = env.run(&["--log-format", "json", "--now", NOV_1, "usage", "import", &f]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    for l in &lines {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
    }
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 3);
    assert_eq!(last["fields"]["problems_total"], 1500);
    let problems = last["fields"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1000);
    assert_eq!(problems[0]["line"], 2);
    assert_eq!(problems[0]["field"], "calls");
    // A command line that cannot be parsed (exit 2) too, whether the format is asked for on
    // the line or in the environment.
    for out in [
        env.run(&["--log-format", "json", "settle"]),
        env.command(&["settle", "--month", "2026-13"])
            .env("BILLRUN_LOG_FORMAT", "json")
            .output()
            .unwrap(),
    ] {
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let line: serde_json::Value =
            serde_json::from_str(stderr.trim_end()).unwrap_or_else(|e| panic!("not one JSON line ({e}): {stderr}"));
        assert_eq!(
            (line["level"].as_str(), line["fields"]["exit_code"].as_i64()),
            (Some("ERROR"), Some(2))
        );
        assert!(
            line["fields"]["message"].as_str().unwrap().contains("--month"),
            "{line}"
        );
    }
    // And a failed run's summary is logged as an error, not as information.
    let out = env.run(&[
        "--log-format",
        "json",
        "--now",
        "2026-10-15T00:00:00+08:00",
        "settle",
        "--month",
        "2026-10",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let finished: serde_json::Value = stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "run finished")
        .expect("a run finished line");
    // A month that has not ended: an operator's typo, refused, at WARN (a failure is at ERROR).
    assert_eq!(finished["level"], "WARN", "{finished}");
    assert_eq!(finished["fields"]["outcome"], "refused");
}

#[test]
fn a_database_file_or_directory_billrun_may_not_write_exits_3() {
    use std::os::unix::fs::PermissionsExt;
    // A user of its own, since permissions do not bind root: billrun runs as `nobody` when
    // the tests run as root, from a copy of the binary that user can reach.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("billrun");
    std::fs::copy(BIN, &bin).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let run_as = |args: &[&str]| {
        let mut c = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = c.env("BILLRUN_LOG", "warn").args(args).output().expect("runuser");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let db_dir = dir.path().join("db");
    std::fs::create_dir(&db_dir).unwrap();
    let url = format!("sqlite://{}", db_dir.join("billrun.db").display());
    let accounts = dir.path().join("a.csv");
    std::fs::write(
        &accounts,
        "account_id,name,activated_at,balance\na,A,2026-01-01T00:00:00Z,0\n",
    )
    .unwrap();
    let (code, text) = bare(
        dir.path(),
        &[
            "--database",
            &url,
            "--now",
            NOV_1,
            "accounts",
            "import",
            accounts.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    for f in std::fs::read_dir(&db_dir).unwrap() {
        std::fs::set_permissions(f.unwrap().path(), std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    // The file read-only, in a directory anyone may write: writing is refused as
    // configuration to fix.
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, text) = run_as(&["--database", &url, "--now", NOV_1, "recharge", "a", "1.00"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("readonly"), "{text}");
    // The directory read-only too: the database cannot even be opened for writing.
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let (code, text) = run_as(&["--database", &url, "--now", NOV_1, "recharge", "a", "1.00"]);
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(code, Some(3), "{text}");
}

#[test]
fn commands_that_only_read_never_migrate_and_work_with_a_role_that_may_only_read() {
    let env = Env::new();
    settled(&env);
    let reads: [&[&str]; 8] = [
        &["accounts", "list"],
        &["packs", "list", "--format", "csv"],
        &["events"],
        &["runs", "list"],
        &["verify"],
        &["--now", NOV_1, "bills", "show", "a", "--month", "2026-10"],
        &["export", "bills", "--month", "2026-10"],
        &["--now", NOV_1, "report", "--month", "2026-10"],
    ];
    if env.is_postgres() {
        // A role that may read every table and change nothing, as finance and support get.
        let role = format!("reader_{}", std::process::id());
        env.exec(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'read-only';
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
        ));
        if !pg_database::citus_workers().is_empty() {
            // On Citus the coordinator reaches the nodes (itself among them) as the role: its
            // password goes where Citus looks for it, as an operator would put it.
            env.exec(&format!(
                "INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) VALUES (0, '{role}', 'password=read-only')"
            ));
        }
        let (head, tail) = env.database.split_once("@").unwrap();
        let (scheme, _) = head.split_once("//").unwrap();
        let reader = format!("{scheme}//{role}:read-only@{tail}");
        let dir = tempfile::tempdir().unwrap();
        for args in reads {
            let mut all = vec!["--database", reader.as_str()];
            all.extend(args.iter().copied());
            let (code, text) = bare(dir.path(), &all);
            assert_eq!(code, Some(0), "{args:?} as a reader: {text}");
        }
        // Writing is refused by the database, as configuration to fix (exit 3).
        let (code, text) = bare(
            dir.path(),
            &["--database", &reader, "--now", NOV_1, "recharge", "a", "1.00"],
        );
        assert_eq!(code, Some(3), "{text}");
        assert!(text.contains("permission denied"), "{text}");
        assert!(
            text.contains("this command writes, and the database role it connects as may not"),
            "{text}"
        );
    }
    // A schema older than the binary: commands that read say so, and change nothing.
    env.exec("DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)");
    for args in reads {
        let err = env.fails(3, args);
        assert!(err.contains("schema is older than this billrun"), "{args:?}: {err}");
        assert!(err.contains("billrun migrate"), "{err}");
    }
    let versions: i64 = env.query("SELECT COUNT(*) FROM _sqlx_migrations");
    let known = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .count() as i64;
    assert_eq!(
        versions,
        known - 1,
        "a command that reads applied nothing (every migration but the last one undone)"
    );
}

#[test]
fn run_waits_for_the_meters_when_told_to() {
    let env = Env::new();
    env.import_accounts("2026-10-01T00:00:00+08:00", &["a,A,2026-09-01T00:00:00+08:00,100"]);
    env.import_usage(&["a,CropImage,2026-10-10T00:00:00+08:00,3000"]);
    // Six hours' grace: the 02:00 run leaves October alone, the 07:00 one settles it.
    let out = env.ok(&["--now", NOV_1, "run", "--settle-after", "6h"]);
    assert!(!out.contains("settled 2026-10"), "{out}");
    assert_eq!(env.query::<i64>("SELECT COUNT(*) FROM settled_months"), 0);
    let out = env
        .command(&["--now", "2026-11-01T07:00:00+08:00", "run"])
        .env("BILLRUN_SETTLE_AFTER", "6h")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("settled 2026-10"), "{stdout}");
    let err = env.fails(2, &["run", "--settle-after", "6 hours"]);
    assert!(err.contains("is not a duration"), "{err}");
}

#[test]
fn schedules_that_never_fire_or_have_a_field_out_of_range_are_refused() {
    let env = Env::new();
    let err = env.fails(3, &["--now", NOV_1, "schedule", "--schedule", "0 2 30 2 *"]);
    assert!(err.contains("never fires"), "{err}");
    let err = env.fails(3, &["--now", NOV_1, "schedule", "--schedule", "0 25 * * *"]);
    assert!(err.contains("hour 25 is out of range (0-23)"), "{err}");
    let err = env.fails(3, &["--now", NOV_1, "daemon", "--schedule", "0 2 31 4 *"]);
    assert!(err.contains("never fires"), "{err}");
}

#[test]
fn output_a_reader_stops_reading_ends_quietly() {
    let env = Env::new();
    let rows: Vec<String> = (0..3000).map(|i| format!("acct-{i:04},Account {i},,0")).collect();
    env.import_accounts(NOV_1, &rows.iter().map(String::as_str).collect::<Vec<_>>());
    for args in [
        "accounts list",
        "accounts list --format csv",
        "events",
        "--now 2026-10-31T00:00:00Z schedule --count 100000",
    ] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "\"$0\" --database '{}' {args} | head -n 1 >/dev/null",
                env.database
            ))
            .arg(BIN)
            .env("BILLRUN_LOG", "warn")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args}: {stderr}");
        assert!(
            !stderr.contains("Broken pipe") && !stderr.contains("panicked"),
            "{args}: {stderr}"
        );
    }
    // And its exit status is success, as for ripgrep or cargo.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; \"$0\" --database '{}' accounts list | head -n 1 >/dev/null",
            env.database
        ))
        .arg(BIN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Every command that prints, with its reader gone before it writes a byte: success, and
    // not a word on standard error. `--out -` is standard output too.
    let env = Env::new();
    settled(&env);
    for args in [
        "completions zsh",
        "man",
        "accounts list",
        "packs list",
        "events",
        "runs list",
        "catalog list",
        "catalog show seed-2023-12",
        "bills show a --month 2026-10",
        "export bills --month 2026-10",
        "export bills --month 2026-10 --out -",
        "export summary --month 2026-10 --out -",
        "report --month 2026-10 --out -",
        "metrics --out -",
        "webhooks list",
    ] {
        let mut child = env
            .command(&args.split(' ').collect::<Vec<_>>())
            .env("BILLRUN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args}: {stderr}");
        assert!(stderr.is_empty(), "{args}: {stderr}");
    }
    // `--out -` writes what standard output gets without it.
    for (with_dash, without) in [
        ("export bills --month 2026-10 --out -", "export bills --month 2026-10"),
        (
            "--now 2026-11-02T00:00:00+08:00 report --month 2026-10 --out -",
            "--now 2026-11-02T00:00:00+08:00 report --month 2026-10",
        ),
    ] {
        let a = env.ok(&with_dash.split(' ').collect::<Vec<_>>());
        let b = env.ok(&without.split(' ').collect::<Vec<_>>());
        assert!(a == b, "{with_dash}: not what standard output gets without it");
        assert!(!env.dir.path().join("-").exists(), "no file named -");
    }
}

#[test]
fn logs_carry_no_colour_codes_off_a_terminal_and_long_lists_stay_short() {
    let env = Env::new();
    let rows: Vec<String> = (0..25)
        .map(|i| format!("p{i:02},P {i},2026-01-01T00:00:00Z,0"))
        .collect();
    env.import_accounts(NOV_1, &rows.iter().map(String::as_str).collect::<Vec<_>>());
    let usage: Vec<String> = (0..25)
        .map(|i| format!("p{i:02},EnhanceImage,2026-10-05T00:00:00+08:00,5000"))
        .collect();
    env.import_usage(&usage.iter().map(String::as_str).collect::<Vec<_>>());
    let out = env
        .command(&["--now", NOV_1, "settle", "--month", "2026-10"])
        .env("BILLRUN_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("run finished"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a log that is not a terminal: {stderr:?}"
    );
    // 25 suspensions: ten named, the rest counted, and where to find them all.
    let out = env.ok(&["--now", "2026-11-02T03:00:00+08:00", "enforce"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("suspended 25 accounts: p00, p01, p02, p03, p04, p05, p06, p07, p08, p09 and 15 more"),
        "{out}"
    );
    assert!(out.contains("billrun events --format csv"), "{out}");
    assert_eq!(env.events().iter().filter(|e| e["kind"] == "suspended").count(), 25);
}

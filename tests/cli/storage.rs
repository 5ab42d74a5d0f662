//! What a month leaves on disk: SQLite's write-ahead log folded back after every command.

use crate::harness::*;

/// The size of the database's `-wal` file, 0 when there is none.
fn wal_bytes(env: &Env) -> u64 {
    std::fs::metadata(env.dir.path().join("billrun.db-wal")).map_or(0, |m| m.len())
}

#[test]
fn no_command_leaves_a_write_ahead_log_behind_even_while_another_program_has_the_database_open() {
    let env = Env::new();
    if env.is_postgres() {
        // PostgreSQL manages its own write-ahead log; the file below is SQLite's.
        return;
    }
    env.ok(&["--now", "2026-10-01T00:00:00Z", "migrate"]);
    env.ok(&[
        "gen",
        "--accounts",
        "2000",
        "--rows",
        "60000",
        "--month",
        "2026-10",
        "--seed",
        "1",
        "--out",
        "gen",
    ]);
    // An idle connection of another program (a backup tool, the sqlite3 shell): SQLite then
    // does not remove the log when billrun's last connection closes.
    let other = rusqlite::Connection::open(env.dir.path().join("billrun.db")).unwrap();
    let steps: [&[&str]; 4] = [
        &[
            "--now",
            "2026-10-01T00:00:00Z",
            "accounts",
            "import",
            "gen/accounts.csv",
        ],
        &["--now", "2026-11-01T00:00:00Z", "usage", "import", "gen/usage.csv"],
        &["--now", "2026-11-01T03:00:00Z", "settle", "--month", "2026-10"],
        &["--now", "2026-11-01T04:00:00Z", "verify"],
    ];
    for step in steps {
        env.ok(step);
        assert_eq!(
            wal_bytes(&env),
            0,
            "`billrun {}` left a write-ahead log behind",
            step[2..].join(" ")
        );
    }
    let bills: i64 = other.query_row("SELECT COUNT(*) FROM bills", [], |r| r.get(0)).unwrap();
    assert_eq!(bills, 2000);
}

#[test]
fn an_import_keeps_its_content_compressed_and_verify_finds_a_byte_changed_in_it() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &["a,A,2026-10-01T00:00:00+08:00,100", "b,B,2026-10-01T00:00:00+08:00,100"],
    );
    // Large enough for several chunks (4 MiB of content each), sent gzip-compressed: what is
    // kept is the content as parsed, after gzip decoding.
    let mut text = String::from("account_id,api,timestamp,calls\n");
    for i in 0..200_000u32 {
        let account = if i % 3 == 0 { "a" } else { "b" };
        text += &format!(
            "{account},{CROP},2026-10-{:02}T{:02}:{:02}:{:02}+08:00,{}\n",
            1 + i / 8000,
            i / 400 % 24,
            i / 60 % 60,
            i % 60,
            1 + i % 7
        );
    }
    let gz = env.dir.path().join("usage.csv.gz");
    {
        use std::io::Write;
        let mut w = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
        w.write_all(text.as_bytes()).unwrap();
        w.finish().unwrap();
    }
    env.ok(&[
        "--now",
        "2026-11-01T00:00:00+08:00",
        "usage",
        "import",
        gz.to_str().unwrap(),
    ]);
    let content: (i64, i64) = (
        env.query("SELECT content_bytes FROM usage_imports"),
        env.query("SELECT content_chunks FROM usage_imports"),
    );
    assert_eq!(content.0, text.len() as i64);
    assert_eq!(content.1, text.len().div_ceil(4 << 20) as i64);
    assert!(content.1 >= 2, "{content:?}");
    let stored: i64 = env.query("SELECT CAST(SUM(LENGTH(data)) AS BIGINT) FROM usage_chunks");
    assert!(
        stored < text.len() as i64 / 5,
        "{stored} bytes stored for {}",
        text.len()
    );
    let sha: String = env.query("SELECT content_sha256 FROM usage_imports");
    assert_eq!(sha, sha256_hex(text.as_bytes()));
    // The SHA-256 that names the import (the same file twice is refused by it) is the same.
    let named: String = env.query("SELECT sha256 FROM usage_imports");
    assert_eq!(named, sha);
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    let ok = env.ok(&["verify"]);
    assert!(ok.contains("stored content"), "{ok}");

    // One byte of the second chunk's compressed data changed, as a bad disk or a hand would.
    if env.is_postgres() {
        env.exec("UPDATE usage_chunks SET data = set_byte(data, 100, get_byte(data, 100) # 1) WHERE seq = 1");
    } else {
        let db = rusqlite::Connection::open(env.dir.path().join("billrun.db")).unwrap();
        let mut data: Vec<u8> = db
            .query_row("SELECT data FROM usage_chunks WHERE seq = 1", [], |r| r.get(0))
            .unwrap();
        data[100] ^= 1;
        db.execute("UPDATE usage_chunks SET data = ?1 WHERE seq = 1", [data])
            .unwrap();
    }
    let found = breaches(&env);
    assert!(found.contains("import #1 ("), "{found}");
    // A chunk gone.
    env.exec("DELETE FROM usage_chunks WHERE seq = 1");
    let found = breaches(&env);
    assert!(
        found.contains("import #1 (") && found.contains("chunk 1 is missing"),
        "{found}"
    );
}

#[test]
fn verify_recounts_the_month_from_what_the_imports_kept_as_they_read_it() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &["a,A,2026-10-01T00:00:00+08:00,100", "b,B,2026-10-01T00:00:00+08:00,100"],
    );
    let now = "2026-11-01T00:00:00+08:00";
    let import = |name: &str, text: &str, extra: &[&str]| {
        let f = env.file(name, text);
        let mut args = vec!["--now", now, "usage", "import", &f];
        args.extend_from_slice(extra);
        env.ok(&args);
    };
    let header = "account_id,api,timestamp,calls,event_id";
    import(
        "first.csv",
        &format!("{header}\na,{CROP},2026-10-02T10:00:00+08:00,3,e1\n"),
        &[],
    );
    // Local times read in a zone given on the command line; an event already imported (line
    // 3) and one sent twice within the file (line 5): both skipped, and recorded as skipped.
    import(
        "second.csv",
        &format!(
            "{header}\na,{CROP},2026-10-03 10:00:00,4,e2\na,{CROP},2026-10-02T10:00:00+08:00,3,e1\n\
             b,{CROP},2026-10-03 11:00:00,5,e3\nb,{CROP},2026-10-03 11:00:00,5,e3\n"
        ),
        &["--assume-tz", "Asia/Shanghai"],
    );
    import(
        "third.ndjson",
        &format!("{{\"account_id\":\"b\",\"api\":\"{CROP}\",\"timestamp\":\"2026-10-04T00:00:00Z\",\"calls\":7}}\n"),
        &[],
    );
    let read_as: String = env.query(
        "SELECT STRING_AGG(content_format || ' ' || COALESCE(assume_tz, '-') || ' ' || \
         CASE WHEN skipped_lines IS NULL THEN '-' ELSE 'skips' END, ', ' ORDER BY import_id) FROM usage_imports",
    );
    assert_eq!(read_as, "csv - -, csv Asia/Shanghai skips, ndjson - -");
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    env.ok(&["verify"]);
    env.ok(&["verify", "--month", "2026-10"]);
    // Totals built again for another billing zone come from the same kept content, read as it
    // was read: the skipped lines stay skipped, the local times stay Shanghai's.
    let totals = || -> String {
        env.query("SELECT STRING_AGG(account_id || ' ' || calls, ', ' ORDER BY account_id) FROM usage_totals")
    };
    assert_eq!(totals(), "a 7, b 12");
    env.ok(&[
        "--tz",
        "UTC",
        "--now",
        "2026-12-02T00:00:00Z",
        "settle",
        "--month",
        "2026-11",
        "--dry-run",
    ]);
    let zone: String = env.query("SELECT value FROM settings WHERE name = 'usage_totals_zone'");
    assert_eq!(zone, "UTC");
    assert_eq!(totals(), "a 7, b 12");
    env.ok(&["verify"]);

    // A total that is not what the kept content sums to is named, with both figures.
    env.exec("UPDATE usage_totals SET calls = calls + 1 WHERE account_id = 'b'");
    let found = breaches(&env);
    assert!(
        found.contains(&format!(
            "account b, 2026-10, {CROP}: 12 calls in its imports' kept usage, 13 in the month's totals"
        )),
        "{found}"
    );
    env.exec("UPDATE usage_totals SET calls = calls - 1 WHERE account_id = 'b'");
    // A retracted import counts no more: its calls leave the totals, and the recount agrees.
    env.ok(&["--now", now, "usage", "retract", "2", "--reason", "meter replayed"]);
    let a_calls: i64 = env.query("SELECT calls FROM usage_totals WHERE account_id = 'a'");
    assert_eq!(a_calls, 3);
    env.ok(&["verify"]);
    env.settle("2026-10", "2026-11-01T03:00:00+08:00");
    env.ok(&["verify"]);

    // An import whose content no longer says how it reads back (as one made before that was
    // recorded, once its rows are gone) is named.
    env.exec("UPDATE usage_imports SET content_format = NULL WHERE import_id = 3");
    let found = breaches(&env);
    assert!(
        found.contains("import #3 (") && found.contains("not kept in a form that reads back"),
        "{found}"
    );
    env.exec("UPDATE usage_imports SET content_format = 'ndjson' WHERE import_id = 3");
    env.ok(&["verify"]);
    env.ok(&["--now", now, "usage", "retract", "3", "--reason", "meter replayed"]);
    let b_calls: i64 = env.query("SELECT calls FROM usage_totals WHERE account_id = 'b'");
    assert_eq!(b_calls, 0);
    env.ok(&["verify"]);
}

/// What `verify` prints when it finds breaches (it exits 6).
fn breaches(env: &Env) -> String {
    let out = env.run(&["verify"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

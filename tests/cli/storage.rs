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

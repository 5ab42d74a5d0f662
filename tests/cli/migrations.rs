//! The two backends' migrations stay in step (same versions, same names, same tables), and a
//! database of the schema before the newest migration upgrades without any export changing.

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn migrations(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    names
}

/// The tables a backend has after all its migrations: created, minus dropped, renamed.
fn tables_after_all(backend: &str) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for file in migrations(backend) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend)
            .join(&file);
        for line in std::fs::read_to_string(path).unwrap().lines().map(str::trim) {
            let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
            match words.as_slice() {
                ["CREATE", "TABLE", name, ..] => {
                    tables.insert(name.to_string());
                }
                ["DROP", "TABLE", name, ..] => {
                    tables.remove(*name);
                }
                ["ALTER", "TABLE", from, "RENAME", "TO", to] => {
                    tables.remove(*from);
                    tables.insert(to.to_string());
                }
                _ => {}
            }
        }
    }
    tables
}

/// Each table's columns after all of a backend's migrations: those of its `CREATE TABLE` (one
/// column per line, constraints left out), plus `ADD COLUMN`, minus `DROP COLUMN`, through
/// renames and drops (of tables and columns). A table built again under its own name (SQLite's way to change a
/// constraint) has the columns of its new `CREATE TABLE`.
fn columns_after_all(backend: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in migrations(backend) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend)
            .join(&file);
        let (mut creating, mut altering): (Option<String>, Option<String>) = (None, None);
        for line in std::fs::read_to_string(path).unwrap().lines() {
            let line = line.split("--").next().unwrap().trim();
            let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
            if let Some(table) = &creating {
                if line.starts_with(')') {
                    creating = None;
                } else if let Some(column) = words.first().filter(|w| {
                    w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                }) {
                    tables.get_mut(table).unwrap().insert(column.to_string());
                }
                continue;
            }
            match words.as_slice() {
                ["CREATE", "TABLE", name, ..] => {
                    let name = name.trim_end_matches('(').to_string();
                    tables.insert(name.clone(), BTreeSet::new());
                    creating = Some(name);
                }
                ["DROP", "TABLE", name, ..] => {
                    tables.remove(*name);
                }
                ["ALTER", "TABLE", from, "RENAME", "TO", to] => {
                    let columns = tables.remove(*from).unwrap_or_default();
                    tables.insert(to.to_string(), columns);
                }
                ["ALTER", "TABLE", name, ..] => altering = Some(name.to_string()),
                _ => {}
            }
            // `ADD COLUMN` and `DROP COLUMN`, several to a statement, on the `ALTER TABLE`
            // line or the lines after it, and `RENAME COLUMN a TO b`.
            for rename in words.windows(5) {
                if let (Some(table), ["RENAME", "COLUMN", from, "TO", to]) = (&altering, rename) {
                    let columns = tables.entry(table.clone()).or_default();
                    columns.remove(*from);
                    columns.insert(to.to_string());
                }
            }
            for pair in words.windows(3) {
                if let (Some(table), [verb, "COLUMN", column]) = (&altering, pair) {
                    let columns = tables.entry(table.clone()).or_default();
                    let column = column.trim_end_matches(',').to_string();
                    match *verb {
                        "ADD" => columns.insert(column),
                        "DROP" => columns.remove(&column),
                        _ => false,
                    };
                }
            }
        }
    }
    tables
}

#[test]
fn sqlite_and_postgres_migrations_do_not_drift_apart() {
    let sqlite = migrations("sqlite");
    let postgres = migrations("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must hold the same versions"
    );
    assert_eq!(
        tables_after_all("sqlite"),
        tables_after_all("postgres"),
        "the backends end with different tables"
    );
    assert!(tables_after_all("sqlite").contains("ledger"));
    let columns = columns_after_all("sqlite");
    assert_eq!(
        columns,
        columns_after_all("postgres"),
        "the backends end with different columns"
    );
    assert!(columns["events"].contains("threshold"), "{columns:?}");
    assert!(columns["bills"].contains("debited_fen"), "{columns:?}");
}

#[test]
fn no_money_column_is_floating_point() {
    for backend in ["sqlite", "postgres"] {
        for file in migrations(backend) {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend)
                .join(&file);
            let sql = std::fs::read_to_string(path).unwrap().to_lowercase();
            let code: String = sql
                .lines()
                .map(|l| l.split("--").next().unwrap())
                .collect::<Vec<_>>()
                .join("\n");
            for bad in [" real", " double", " float"] {
                assert!(!code.contains(bad), "{backend}/{file} uses{bad}");
            }
        }
    }
}

/// A PostgreSQL database migrated before migration 5's comments were reworded recorded the
/// old text's checksum: billrun takes it over instead of refusing the database, and still
/// refuses a migration that differs otherwise. (Only PostgreSQL's migration was reworded; on
/// SQLite there is nothing to adopt, and this test has nothing to check.)
#[test]
fn a_database_migrated_with_a_reworded_migration_keeps_working() {
    let env = Env::new();
    if !env.is_postgres() {
        eprintln!("only a PostgreSQL migration was reworded: checked in the PostgreSQL run");
        return;
    }
    env.ok(&["migrate"]);
    let current: String = env.query("SELECT encode(checksum, 'hex') FROM _sqlx_migrations WHERE version = 5");
    const OLD: &str =
        "b4800ffea016bab3b2285e7716a890c4b76731f0fef491d52a110cd25ca0957d0d63a25f3de983391f89564f93341448";
    assert_ne!(current, OLD, "migration 5 is the reworded text");
    env.exec(&format!(
        "UPDATE _sqlx_migrations SET checksum = decode('{OLD}', 'hex') WHERE version = 5"
    ));
    env.ok(&["migrate"]);
    let adopted: String = env.query("SELECT encode(checksum, 'hex') FROM _sqlx_migrations WHERE version = 5");
    assert_eq!(adopted, current);
    // Any other checksum is an edited migration, refused as before.
    env.exec("UPDATE _sqlx_migrations SET checksum = decode('00', 'hex') WHERE version = 5");
    let refused = env.fails(1, &["migrate"]);
    assert!(refused.contains("migration 5"), "{refused}");
}

/// A settled SQLite database of the schema before the newest migration: the current books,
/// copied column by column into a database migrated to the migration before the newest (every
/// column the newest one adds then takes its default, as it does on a database written by the
/// release before). `billrun migrate` upgrades it, and nothing a user sees changes.
#[test]
fn a_settled_database_of_the_previous_schema_upgrades_and_every_export_stays_the_same() {
    let all = migrations("sqlite");
    upgrades_unchanged(all.len() - 1);
}

/// The same from the schema before the raw usage was kept as received: `billrun migrate`
/// writes each import's content from its rows, then drops the rows, and verify recounts every
/// total from the content it wrote.
#[test]
fn a_settled_database_from_before_kept_content_upgrades_and_every_export_stays_the_same() {
    let all = migrations("sqlite");
    let kept = all.iter().position(|m| m.contains("stored_usage")).unwrap();
    upgrades_unchanged(kept);
}

/// The rows a usage CSV (`account_id,api,timestamp,calls[,event_id]`) was stored as before
/// migration 0020: (line, account, API, time in µs, calls, event id), the header on line 1.
fn usage_rows(path: &Path) -> Vec<(i64, String, String, i64, i64, Option<String>)> {
    let mut file = csv::Reader::from_path(path).unwrap();
    file.records()
        .enumerate()
        .map(|(i, r)| {
            let r = r.unwrap();
            let ts = chrono::DateTime::parse_from_rfc3339(&r[2]).unwrap().timestamp_micros();
            let event = r.get(4).map(str::to_string);
            (
                i as i64 + 2,
                r[0].to_string(),
                r[1].to_string(),
                ts,
                r[3].parse().unwrap(),
                event,
            )
        })
        .collect()
}

/// Books settled by the current release, copied into a database of the first `applied`
/// migrations, with the raw rows that schema kept; `billrun migrate` must change nothing seen.
fn upgrades_unchanged(applied: usize) {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let out = std::process::Command::new(BIN)
        .args(["demo", "--dir"])
        .arg(&demo)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let current = demo.join("demo.db");
    // November's first usage, with event ids: the rows an event file leaves behind differ.
    let events_file = demo.join("events.csv");
    std::fs::write(
        &events_file,
        "account_id,api,timestamp,calls,event_id\n\
         seed-1,AssessQuality,2026-11-01T09:00:00+08:00,40,ev-1\n\
         seed-2,AssessQuality,2026-11-01T09:05:00+08:00,7,ev-2\n\
         seed-1,AssessQuality,2026-11-01T09:00:00+08:00,40,ev-1\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--database", &format!("sqlite://{}", current.display())])
        .args(["--now", "2026-11-02T10:00:00+08:00", "usage", "import"])
        .arg(&events_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = |db: &Path| -> String {
        let url = format!("sqlite://{}", db.display());
        let mut all = String::new();
        for args in [
            &["accounts", "list", "--format", "csv"][..],
            &["packs", "list", "--format", "csv"],
            &["events", "--format", "csv"],
            &["usage", "imports", "--format", "csv"],
            &["export", "bills", "--month", "2026-10"],
            &["export", "summary", "--month", "2026-10"],
            &["bills", "show", "seed-3", "--month", "2026-10"],
            &["verify"],
        ] {
            let out = std::process::Command::new(BIN)
                .args(["--database", &url, "--now", "2026-11-02T10:00:00+08:00"])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            all += &String::from_utf8(out.stdout).unwrap();
        }
        all
    };
    // One free pack stored as a row of another size, as a release before the grant's packs
    // could have left: it stays stored through every upgrade, and stands in for the grant's.
    let odd = rusqlite::Connection::open(&current)
        .unwrap()
        .execute(
            "INSERT INTO packs (pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month)
             SELECT pack_id, kind, account_id, api, 800, 800, valid_from, valid_until, purchased_at, month
             FROM free_packs WHERE remaining = calls ORDER BY month DESC, pack_id LIMIT 1",
            [],
        )
        .unwrap();
    assert_eq!(odd, 1);
    let before = seen(&current);
    assert!(before.contains(",free,") && before.contains(",800,800,"), "{before}");

    // The schema before the newest migration, by sqlx's own migrator, from the files.
    let files = dir.path().join("previous");
    std::fs::create_dir(&files).unwrap();
    let all = migrations("sqlite");
    let (previous, later) = all.split_at(applied);
    let newest = later.last().unwrap();
    for name in previous {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/sqlite")
            .join(name);
        std::fs::copy(from, files.join(name)).unwrap();
    }
    let old = dir.path().join("old.db");
    block_on(async {
        use sqlx::sqlite::SqliteConnectOptions;
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", old.display()))
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(files.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    // Every row of the current books, in the columns the previous schema has.
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute("ATTACH DATABASE ?1 AS src", [current.display().to_string()])
        .unwrap();
    let columns = |schema: &str, table: &str| -> BTreeSet<String> {
        let mut st = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}', '{schema}')"))
            .unwrap();
        let names = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        names.map(Result::unwrap).collect()
    };
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM main.sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut copied = 0;
    for table in &tables {
        let shared: Vec<String> = columns("main", table)
            .intersection(&columns("src", table))
            .cloned()
            .collect();
        if shared.is_empty() {
            continue; // a table the newest migration drops
        }
        let list = shared.join(", ");
        copied += conn
            .execute(
                &format!("INSERT INTO main.{table} ({list}) SELECT {list} FROM src.{table}"),
                [],
            )
            .unwrap();
    }
    let events: i64 = conn
        .query_row("SELECT COUNT(*) FROM src.usage_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 2, "the event file's two events");
    let second: String = conn
        .query_row("SELECT file_name FROM src.usage_imports WHERE import_id = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(second.ends_with("events.csv"), "{second}");
    // A schema before 0020 kept the raw usage rows, one per line read: written here from the
    // two files imported (the line that repeats an event was skipped, as the import did).
    if columns("main", "usage").contains("event_id") {
        let mut rows = 0;
        for (file, import_id) in [(demo.join("demo-usage.csv"), 1), (events_file.clone(), 2)] {
            let mut seen_events = BTreeSet::new();
            for (line, account, api, ts, calls, event) in usage_rows(&file) {
                if event
                    .as_ref()
                    .is_some_and(|e| !seen_events.insert((account.clone(), e.clone())))
                {
                    continue;
                }
                rows += conn
                    .execute(
                        "INSERT INTO main.usage (account_id, ts, api, calls, import_id, source_line, event_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        rusqlite::params![account, ts, api, calls, import_id, line, event],
                    )
                    .unwrap();
            }
        }
        assert_eq!(rows, 19, "the demo's 17 rows and the two events");
    }
    // A schema before 0021 kept a row per free pack, which now follow from the month's grant.
    let views: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM main.sqlite_schema WHERE type = 'view' AND name = 'free_packs'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if views == 0 {
        let list = "pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month";
        let free = conn
            .execute(
                &format!("INSERT INTO main.packs ({list}) SELECT {list} FROM src.free_packs"),
                [],
            )
            .unwrap();
        assert!(free >= 30, "the demo's free packs ({free})");
    }
    conn.execute_batch(
        "DELETE FROM main.sqlite_sequence; INSERT INTO main.sqlite_sequence SELECT * FROM src.sqlite_sequence;
         DETACH DATABASE src",
    )
    .unwrap();
    drop(conn);
    assert!(copied > 50, "the demo's books were copied ({copied} rows)");

    let url = format!("sqlite://{}", old.display());
    let refused = std::process::Command::new(BIN)
        .args(["--database", &url, "verify"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("schema is older"),
        "the copy is of the previous schema, without {newest}"
    );
    let out = std::process::Command::new(BIN)
        .args(["--database", &url, "migrate"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{newest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every import's content now reads back: rebuilt from its rows where the previous schema
    // did not say how to read it, and verify (in `seen`) recounts the totals from it.
    let conn = rusqlite::Connection::open(&old).unwrap();
    let waiting: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM usage_imports WHERE retracts IS NULL AND content_format IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(waiting, 0, "every import's content reads back after {newest}");
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM packs WHERE kind = 'free'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, 1,
        "every free pack but the odd one follows from its grant after {newest}"
    );
    let kept: i64 = conn
        .query_row("SELECT COUNT(*) FROM usage_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, events, "every event comes through {newest}");
    drop(conn);
    assert_same(&seen(&old), &before, &format!("the books after {newest}"));
}

/// A settled database from before free packs followed from the month's grant, on every
/// backend: the free packs are put back as rows and migration 0021 undone by hand, as the
/// release before it left them (one free pack of another size among them, as a catalog change
/// could have left). `billrun migrate` takes every free pack that is what its grant gives out
/// of `packs`, keeps the other, and nothing a user sees changes, revisions included.
#[test]
fn free_packs_stored_as_rows_become_the_grants_and_nothing_changes() {
    let env = Env::new();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &[
            "a,A,2026-01-01T00:00:00Z,100",
            "b,B,2026-01-01T00:00:00Z,100",
            "c,C,2026-10-20T00:00:00+08:00,5",
        ],
    );
    let packs = env.file(
        "packs.csv",
        "pack_id,account_id,api,calls,valid_from,valid_until,purchased_at\n\
         P1,b,CropImage,300,2026-10-01T00:00:00+08:00,2026-12-01T00:00:00+08:00,2026-09-01T00:00:00+08:00\n",
    );
    env.ok(&["packs", "import", &packs]);
    env.import_usage(&[
        "a,CropImage,2026-10-05T00:00:00+08:00,1500",
        "b,CropImage,2026-10-05T00:00:00+08:00,1200",
        "b,AssessQuality,2026-10-06T00:00:00+08:00,400",
    ]);
    env.settle("2026-10", "2026-11-01T02:00:00+08:00");
    // Late usage: a's bill is revised, and its free pack's use is the revision's.
    env.import_usage(&["a,AssessQuality,2026-10-30T00:00:00+08:00,50"]);
    env.settle("2026-10", "2026-11-02T00:00:00+08:00");
    env.ok(&["--now", "2026-11-02T00:00:00+08:00", "grant", "--month", "2026-11"]);
    let odd: i64 =
        env.query("SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM packs WHERE kind = 'free') AS stored");
    assert_eq!(odd, 0, "free packs follow from the grant");
    env.exec(
        "INSERT INTO packs (pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month)
         SELECT pack_id, kind, account_id, api, 800, 800, valid_from, valid_until, purchased_at, month
         FROM free_packs WHERE account_id = 'c' AND api = 'EnhanceImage' AND month = '2026-11'",
    );
    let before = env.snapshot(&["2026-10", "2026-11"]);
    assert!(
        before.contains("free:2026-11:EnhanceImage:c,free,c,EnhanceImage,800,800,"),
        "{before}"
    );
    assert!(
        before.contains("free:2026-10:CropImage:a,free,a,CropImage,1000,0,"),
        "{before}"
    );

    // As the release before left it: every free pack a row, what each bill took from one a row
    // of pack use, 0021 not applied.
    env.exec(
        "INSERT INTO pack_consumption (account_id, bill_id, pack_id, calls)
         SELECT l.account_id, l.bill_id, 'free:' || b.month || ':' || l.api || ':' || l.account_id, l.free_calls
         FROM bill_lines l JOIN bills b ON b.account_id = l.account_id AND b.bill_id = l.bill_id
         WHERE l.free_calls > 0 AND NOT EXISTS (SELECT 1 FROM packs p
             WHERE p.account_id = l.account_id AND p.kind = 'free' AND p.api = l.api AND p.month = b.month)",
    );
    let uses: i64 = env.query("SELECT CAST(COUNT(*) AS BIGINT) FROM pack_consumption WHERE pack_id LIKE 'free:%'");
    assert!(
        uses >= 4,
        "a's two revisions and b's bill took from free packs ({uses})"
    );
    let columns = "pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month";
    env.exec(&format!(
        "INSERT INTO packs ({columns}) SELECT {columns} FROM free_packs"
    ));
    env.exec("DROP VIEW all_packs");
    env.exec("DROP VIEW free_packs");
    env.exec("DROP VIEW current_free_use");
    env.exec("ALTER TABLE free_grants DROP COLUMN period_start");
    if !env.is_postgres() {
        env.exec("CREATE INDEX packs_account ON packs (account_id, api)");
    }
    env.exec("DELETE FROM _sqlx_migrations WHERE version = 21");
    let rows: i64 = env.query("SELECT CAST(COUNT(*) AS BIGINT) FROM packs WHERE kind = 'free'");
    assert_eq!(rows, 3 * 3 * 2, "three accounts' packs of two months, as rows");
    let refused = env.run(&["verify"]);
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr);
    assert!(refused.contains("schema is older"), "{refused}");

    env.ok(&["migrate"]);
    let stored: i64 = env.query("SELECT CAST(COUNT(*) AS BIGINT) FROM packs WHERE kind = 'free'");
    assert_eq!(stored, 1, "only the pack of another size stays a row");
    let uses: i64 = env.query("SELECT CAST(COUNT(*) AS BIGINT) FROM pack_consumption WHERE pack_id LIKE 'free:%'");
    assert_eq!(uses, 0, "what a bill took from a free pack is its lines' free calls");
    assert_same(&env.snapshot(&["2026-10", "2026-11"]), &before, "the books after 0021");
    env.ok(&["verify"]);
    // The next month settles from the grant as before.
    env.import_usage(&["c,EnhanceImage,2026-11-10T00:00:00+08:00,900"]);
    env.settle("2026-11", "2026-12-01T03:00:00+08:00");
    let nov = env.bills("2026-11");
    let l = line(&nov, "c", ENH);
    assert_eq!((l["free_calls"].as_str(), l["billable_calls"].as_str()), ("800", "100"));
    env.ok(&["verify"]);
}

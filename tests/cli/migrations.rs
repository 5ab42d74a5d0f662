//! The two backends' migrations stay in step: same versions, same names, same tables.

use std::collections::BTreeSet;
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

fn tables(backend: &str, file: &str) -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend)
        .join(file);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("CREATE TABLE ")
                .map(|r| r.split_whitespace().next().unwrap().to_owned())
        })
        .collect()
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
    for file in &sqlite {
        assert_eq!(
            tables("sqlite", file),
            tables("postgres", file),
            "{file} creates different tables"
        );
    }
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

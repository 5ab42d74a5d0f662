//! Tests of SQLite's settle pipeline (`settle`): the premises it rests on and how its pages
//! behave, driven through a real store on a database file.

use super::settle::*;
use crate::domain::bill::ApiUsage;
use crate::domain::catalog::Catalog;
use crate::domain::month::Month;
use crate::input::accounts::NewAccount;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::store::{AccountUsage, FreeGrant, SettlePage, UsageStream};
use rusqlite::Connection;
use std::path::PathBuf;

/// The bundled SQLite is built as `.cargo/config.toml` asks: without the shared page cache
/// and the allocator statistics whose global mutexes the settle's threads queued on.
#[test]
fn sqlite_is_built_without_the_shared_page_cache() {
    let conn = Connection::open_in_memory().unwrap();
    let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
    let options: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
    assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
    assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
}

/// The pipeline's premise: `PRAGMA data_version`, read inside `BEGIN IMMEDIATE`, does not
/// move for the connection's own commits and does move for another connection's.
#[test]
fn data_version_moves_for_other_connections_commits_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v.db");
    let writer = Connection::open(&file).unwrap();
    writer
        .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)")
        .unwrap();
    let other = Connection::open(&file).unwrap();
    let version = |conn: &Connection| -> i64 {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let v = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap();
        conn.execute_batch("INSERT INTO t VALUES (1); COMMIT").unwrap();
        v
    };
    let first = version(&writer);
    assert_eq!(version(&writer), first, "the writer's own commit must not count");
    other.execute("INSERT INTO t VALUES (2)", []).unwrap();
    assert_ne!(version(&writer), first, "another connection's commit must count");
}

/// A database file with `ids` opened the day before October 2026 (100,000 fen each) and
/// the usage stream of each calling one API 1,000,000 times in October; what
/// `settle_pages` needs to settle them.
struct Fixture {
    _dir: tempfile::TempDir,
    file: PathBuf,
    page: SettlePage,
    usage: UsageStream,
}

async fn fixture(ids: &[String]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.db");
    let store = SqliteStore::connect(&format!("sqlite://{}", file.display()), true)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let tz = chrono_tz::Asia::Shanghai;
    let month: Month = "2026-10".parse().unwrap();
    let version = Catalog::built_in().for_month(month).unwrap().clone();
    let (start, end) = (month.start(tz), month.end(tz));
    let grant = FreeGrant::new(month, start, end, &version);
    let accounts: Vec<NewAccount> = ids
        .iter()
        .map(|id| NewAccount {
            line: 1,
            account_id: id.clone(),
            name: id.clone(),
            activated_at: Some(start - chrono::Duration::days(1)),
            balance_fen: 100_000,
        })
        .collect();
    store.import_accounts(&accounts, &grant, start).await.unwrap();
    let api = version.apis.keys().next().unwrap().clone();
    let (mut to_pages, usage) = crate::store::usage_channel();
    for id in ids {
        let usage = vec![ApiUsage {
            api: api.clone(),
            calls: 1_000_000,
        }];
        let account = AccountUsage {
            account_id: id.clone(),
            usage,
        };
        assert!(to_pages.send(account).await);
    }
    to_pages.finish(None).await;
    let page = SettlePage {
        month,
        start,
        end,
        now: end + chrono::Duration::hours(2),
        grant,
        version,
        dry_run: false,
    };
    Fixture {
        _dir: dir,
        file,
        page,
        usage,
    }
}

/// Page 2 is read ahead while page 1 is written. When another connection commits in
/// between (here a recharge of page 2's account), page 2 must be read again: its bill starts
/// from the recharged balance, not the one read ahead.
#[tokio::test(flavor = "current_thread")]
async fn a_page_read_ahead_is_read_again_when_another_connection_commits_meanwhile() {
    let ids: Vec<String> = ["a1", "a2", "a3"].iter().map(|id| id.to_string()).collect();
    let f = fixture(&ids).await;

    let other = Connection::open(&f.file).unwrap();
    let mut pages = 0;
    settle_pages(f.file.clone(), &f.page, f.usage, 1, &mut |_| {
        pages += 1;
        if pages == 1 {
            other
                .execute_batch(
                    "BEGIN IMMEDIATE;
                     UPDATE accounts SET balance_fen = balance_fen + 500000 WHERE account_id = 'a2';
                     INSERT INTO ledger (account_id, kind, amount_fen, reference, created_at)
                         VALUES ('a2', 'recharge', 500000, 'test', 0);
                     COMMIT",
                )
                .unwrap();
        }
    })
    .await
    .unwrap();

    assert_eq!(pages, 3);
    let bill = |id: &str| -> (i64, i64, i64) {
        other
            .query_row(
                "SELECT b.balance_before_fen, b.total_fen, a.balance_fen FROM bills b
                 JOIN accounts a USING (account_id) WHERE b.account_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    let (before, total, balance) = bill("a2");
    assert!(total > 0, "a2 is billed something");
    assert_eq!(before, 600_000, "a2's bill starts from the recharged balance");
    assert_eq!(balance, 600_000 - total);
    let (before, total, balance) = bill("a3");
    assert_eq!((before, balance), (100_000, 100_000 - total));
}

/// A page whose writes fail part-way leaves nothing of itself: here its ledger entries,
/// written after its bills, lines and pack use, in statements of many rows, meet a debit
/// already recorded for one of its bills. The statements stop at the first failing row
/// (`OR FAIL`, which spares SQLite a statement journal); the page's transaction is rolled
/// back whole, and the page committed before it stays.
#[tokio::test(flavor = "current_thread")]
async fn a_page_that_fails_part_way_leaves_nothing_and_the_pages_before_it_stand() {
    let ids: Vec<String> = (0..170).map(|i| format!("a{i:03}")).collect();
    let f = fixture(&ids).await;
    let other = Connection::open(&f.file).unwrap();
    // a130 is the 31st account of the second page of 100: its ledger entry fails inside the
    // page's first ledger statement of 64 rows, after the page's bills, lines and pack use.
    other
        .execute(
            "INSERT INTO ledger (account_id, kind, amount_fen, bill_id, created_at)
             VALUES ('a130', 'debit', -1, '2026-10-a130-r1', 0)",
            [],
        )
        .unwrap();
    let count = |sql: &str| -> i64 { other.query_row(sql, [], |r| r.get(0)).unwrap() };
    let remaining = count("SELECT SUM(remaining) FROM all_packs");
    let mut pages = 0;
    let result = settle_pages(f.file.clone(), &f.page, f.usage, 100, &mut |_| pages += 1).await;

    let error = format!("{:#}", result.expect_err("the second page must fail"));
    assert!(error.contains("inserting ledger entries"), "{error}");
    assert_eq!(pages, 1);
    // The failed page's transaction is over, not merely unseen: the write lock is free
    // (rusqlite waits up to 5 s for it).
    other
        .execute("UPDATE accounts SET name = name WHERE account_id = 'a000'", [])
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM bills"), 100);
    let last: String = other
        .query_row("SELECT MAX(account_id) FROM bills", [], |r| r.get(0))
        .unwrap();
    assert_eq!(last, "a099");
    assert_eq!(
        count("SELECT COUNT(*) FROM bill_lines WHERE bill_id > '2026-10-a099-r1'"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM pack_consumption WHERE bill_id > '2026-10-a099-r1'"),
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM ledger WHERE kind = 'debit'"), 101);
    assert_eq!(
        count("SELECT COUNT(*) FROM accounts WHERE balance_fen <> 100000 AND account_id > 'a099'"),
        0
    );
    let used_by_page_one = count("SELECT SUM(free_calls + prepaid_calls) FROM bill_lines");
    assert!(used_by_page_one > 0);
    assert_eq!(
        count("SELECT SUM(remaining) FROM all_packs"),
        remaining - used_by_page_one
    );
}

//! On a Citus cluster, `billrun migrate` spreads the schema by account: every table that grows
//! with the accounts is distributed by `account_id` in one co-location group with `accounts`,
//! and the small tables are reference tables. Checked in Citus' own catalog
//! (`pg_dist_partition`, `pg_dist_colocation`, `pg_dist_shard`), after a month has been settled
//! on it. `scripts/test` runs the PostgreSQL half a third time on a coordinator and two
//! workers (`BILLRUN_TEST_CITUS` names the workers); elsewhere there is no cluster to look at.

use crate::harness::*;

const NOV_1: &str = "2026-11-01T00:00:00+08:00";
const DEC_1: &str = "2026-12-01T00:30:00+08:00";

/// (table, distribution method, distribution column, co-location group) for each of billrun's
/// tables in Citus' catalog.
fn placement(env: &Env) -> Vec<(String, String, Option<String>, i32)> {
    block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&env.database).await.expect("connect");
        sqlx::query_as(
            "SELECT logicalrelid::regclass::text, partmethod::text,
                    column_to_column_name(logicalrelid, partkey), colocationid
             FROM pg_dist_partition ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .expect("read pg_dist_partition")
    })
}

#[test]
fn migrate_distributes_the_tables_by_account_with_the_small_ones_on_every_node() {
    let env = Env::new();
    if pg_database::citus_workers().is_empty() {
        return; // scripts/test runs this on its Citus cluster
    }
    env.import_accounts(
        NOV_1,
        &[
            "a1,Acme,2026-10-01T00:00:00+08:00,10.00",
            "b2,Bolt,2026-10-01T00:00:00+08:00,0",
        ],
    );
    env.import_usage(&[
        &format!("a1,{CROP},2026-11-03T10:00:00+08:00,5000"),
        &format!("b2,{CROP},2026-11-04T10:00:00+08:00,20000"),
    ]);
    env.settle("2026-11", DEC_1);
    env.ok(&["verify"]);

    let tables: Vec<String> = block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&env.database).await.expect("connect");
        sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations'
               AND c.relname !~ '_[0-9]+$'
             ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .expect("list the schema's tables")
    });
    let placed = placement(&env);
    let named: Vec<&str> = placed.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        named,
        tables.iter().map(String::as_str).collect::<Vec<_>>(),
        "every table is placed"
    );

    let large = [
        "accounts",
        "bill_lines",
        "bills",
        "events",
        "ledger",
        "pack_consumption",
        "packs",
        "usage_events",
        "usage_totals",
        "webhook_deliveries",
    ];
    let group = placed.iter().find(|p| p.0 == "accounts").expect("accounts placed").3;
    for (table, method, column, colocation) in &placed {
        if large.contains(&table.as_str()) {
            assert_eq!(method, "h", "{table} is hash-distributed");
            assert_eq!(
                column.as_deref(),
                Some("account_id"),
                "{table} is distributed by account_id"
            );
            assert_eq!(*colocation, group, "{table} is co-located with accounts");
        } else if table == "usage_chunks" {
            // The stored content of imports: by import, in a group of its own.
            assert_eq!(method, "h", "{table} is hash-distributed");
            assert_eq!(
                column.as_deref(),
                Some("import_id"),
                "{table} is distributed by import_id"
            );
            assert_ne!(*colocation, group, "{table} is not co-located with accounts");
        } else {
            assert_eq!(method, "n", "{table} is a reference table");
        }
    }
    assert_eq!(
        placed.iter().filter(|p| p.1 == "n").count(),
        tables.len() - large.len() - 1
    );

    // The group: text keys, as many shards as the cluster makes, spread over both workers.
    let (shards, column_type): (i32, String) = block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&env.database).await.expect("connect");
        sqlx::query_as(
            "SELECT shardcount, format_type(distributioncolumntype, NULL) FROM pg_dist_colocation
             WHERE colocationid = $1",
        )
        .bind(group)
        .fetch_one(&mut c)
        .await
        .expect("read pg_dist_colocation")
    });
    assert_eq!(column_type, "text");
    assert!(shards >= 2, "{shards} shards");
    let nodes: i64 = env.query(
        "SELECT COUNT(DISTINCT p.nodeport) FROM pg_dist_shard s JOIN pg_dist_shard_placement p USING (shardid)
         WHERE s.logicalrelid = 'accounts'::regclass",
    );
    assert_eq!(nodes, 2, "the shards of accounts are on both workers");

    // Each account's rows, of every table, are on the node that keeps the account.
    for account in ["a1", "b2"] {
        let ports: Vec<i32> = large
            .iter()
            .map(|table| {
                env.query(&format!(
                    "SELECT nodeport::int FROM pg_dist_shard_placement
                     WHERE shardid = get_shard_id_for_distribution_column('{table}', '{account}')"
                ))
            })
            .collect();
        assert!(ports.iter().all(|p| *p == ports[0]), "{account}: {ports:?}");
    }

    // Migrating again finds everything in place and changes nothing.
    env.ok(&["migrate"]);
    assert_eq!(placement(&env), placed);
}

/// A month's books, kept on plain PostgreSQL, then adjusted by late usage and a recharge.
fn october_on(env: &Env) {
    let accounts: Vec<String> = (0..8)
        .map(|i| format!("acct-{i},Account {i},2026-09-01T00:00:00+08:00,{}", 20 * i))
        .collect();
    env.import_accounts(
        "2026-10-01T00:00:00+08:00",
        &accounts.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let usage: Vec<String> = (0..8)
        .map(|i| {
            format!(
                "acct-{i},{CROP},2026-10-{:02}T10:00:00+08:00,{}",
                10 + i,
                1500 * (i + 1)
            )
        })
        .collect();
    env.import_usage(&usage.iter().map(String::as_str).collect::<Vec<_>>());
    env.ok(&["--now", NOV_1, "run"]);
    env.import_usage(&[&format!("acct-3,{CROP},2026-10-30T10:00:00+08:00,4000")]);
    env.ok(&["--now", "2026-11-02T02:00:00+08:00", "run"]);
    env.ok(&[
        "--now",
        "2026-11-05T10:00:00+08:00",
        "recharge",
        "acct-0",
        "50.00",
        "--reference",
        "pay-1",
    ]);
}

/// November on top, and everything a user sees of both months.
fn november_and_books(env: &Env) -> String {
    env.import_usage(&[
        &format!("acct-0,{CROP},2026-11-10T10:00:00+08:00,9000"),
        &format!("acct-5,{AQ},2026-11-11T10:00:00+08:00,7000"),
    ]);
    env.settle("2026-11", DEC_1);
    env.ok(&["verify"]);
    env.snapshot(&["2026-10", "2026-11"])
}

#[test]
fn a_plain_postgresql_database_with_settled_months_is_distributed_by_migrate_rows_and_all() {
    if pg_database::citus_workers().is_empty() {
        return; // scripts/test runs this on its Citus cluster
    }
    // The books as they would be on a Citus database from the start.
    let citus = Env::new();
    october_on(&citus);
    let october = citus.snapshot(&["2026-10"]);

    // The same books kept on plain PostgreSQL, before the cluster existed.
    let env = Env::plain();
    october_on(&env);
    env.ok(&["verify"]);
    assert_same(&env.snapshot(&["2026-10"]), &october, "plain PostgreSQL against Citus");
    let rows: i64 = env.query("SELECT COUNT(*) FROM ledger");

    // The administrator installs Citus in it and adds the workers; migrate distributes the
    // tables and moves their rows into the shards.
    env.make_citus();
    env.ok(&["migrate"]);
    let placed = placement(&env);
    assert_eq!(
        placed,
        placement(&citus),
        "placed as on a database that was Citus' from the start"
    );
    let in_shards: i64 =
        env.query("SELECT SUM(result::bigint)::bigint FROM run_command_on_shards('ledger', 'SELECT COUNT(*) FROM %s')");
    assert_eq!(in_shards, rows, "the ledger's rows are in its shards");
    let seen: i64 = env.query("SELECT COUNT(*) FROM ledger");
    assert_eq!(seen, rows, "read through the coordinator, every row is there once");
    let local: i64 = env.query("SELECT pg_relation_size('ledger')");
    assert_eq!(local, 0, "the coordinator's own copy of the ledger is emptied");
    env.ok(&["verify"]);
    assert_same(&env.snapshot(&["2026-10"]), &october, "the converted books");

    // And it goes on as any Citus database: the next month, verified, equal to the other's.
    assert_same(&november_and_books(&env), &november_and_books(&citus), "November");
}

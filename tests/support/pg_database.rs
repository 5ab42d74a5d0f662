//! A new database on the test PostgreSQL server that `BILLRUN_TEST_PG` names, for one test.
//!
//! On a Citus cluster (`scripts/test` sets `BILLRUN_TEST_CITUS` to the workers' `host:port`s,
//! `BILLRUN_TEST_PG` naming the coordinator) a database is Citus' only where an administrator
//! made it so: the database is created on every node with the `citus` extension, and the
//! coordinator is told its own address and its workers'. billrun's `migrate` then distributes
//! its tables there by itself.

use sqlx::{Connection, Executor, PgConnection};

/// Creates database `name` on `server` (a URL ending in `/database`), and on its Citus workers
/// when there are any; returns the new database's URL.
pub async fn create(server: &str, name: &str) -> String {
    let (base, _) = server.rsplit_once('/').expect("a server URL with a database");
    let workers = citus_workers();
    // One new database at a time: on Citus, adding the nodes of two new databases at once
    // failed now and then ("failure on connection marked as essential").
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    for node in std::iter::once(None).chain(workers.iter().map(Some)) {
        let admin = match node {
            None => server.to_owned(),
            Some(w) => with_host(server, w),
        };
        let mut c = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server {node:?}: {e}"));
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        if !workers.is_empty() {
            let (node_base, _) = admin.rsplit_once('/').unwrap();
            let mut db = PgConnection::connect(&format!("{node_base}/{name}")).await.unwrap();
            db.execute("CREATE EXTENSION citus")
                .await
                .expect("CREATE EXTENSION citus");
        }
    }
    let url = format!("{base}/{name}");
    if !workers.is_empty() {
        let mut db = PgConnection::connect(&url).await.unwrap();
        let (host, port) = host_port(server);
        sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
            .bind(host)
            .bind(port)
            .execute(&mut db)
            .await
            .expect("citus_set_coordinator_host");
        for w in &workers {
            let (host, port) = w.rsplit_once(':').expect("a worker as host:port");
            sqlx::query("SELECT citus_add_node($1, $2)")
                .bind(host)
                .bind(port.parse::<i32>().expect("a worker's port"))
                .execute(&mut db)
                .await
                .expect("citus_add_node");
        }
    }
    url
}

/// Drops database `name` from `server` and its Citus workers: each database with the `citus`
/// extension keeps a background worker on every node while it exists.
pub async fn drop(server: &str, name: &str) {
    let workers = citus_workers();
    for node in std::iter::once(None).chain(workers.iter().map(Some)) {
        let admin = match node {
            None => server.to_owned(),
            Some(w) => with_host(server, w),
        };
        if let Ok(mut c) = PgConnection::connect(&admin).await {
            // FORCE: a billrun process may not have closed its connections yet.
            let _ = c
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}

/// The Citus workers' `host:port`s, when the test server is a Citus coordinator.
pub fn citus_workers() -> Vec<String> {
    std::env::var("BILLRUN_TEST_CITUS")
        .unwrap_or_default()
        .split(',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `server` with its `host:port` replaced by `node`'s.
fn with_host(server: &str, node: &str) -> String {
    let (scheme_user, rest) = server.split_once('@').expect("a server URL with credentials");
    let (_, path) = rest.split_once('/').expect("a server URL with a database");
    format!("{scheme_user}@{node}/{path}")
}

/// The host and port of `server`.
fn host_port(server: &str) -> (String, i32) {
    let (_, rest) = server.split_once('@').expect("a server URL with credentials");
    let (hostport, _) = rest.split_once('/').expect("a server URL with a database");
    let (host, port) = hostport.rsplit_once(':').expect("a server URL with a port");
    (host.to_owned(), port.parse().expect("a port"))
}

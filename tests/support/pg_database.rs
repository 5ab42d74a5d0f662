//! A new database on the test PostgreSQL server that `BILLRUN_TEST_PG` names, for one test.
//!
//! On a Citus cluster (`scripts/test` sets `BILLRUN_TEST_CITUS` to the workers' `host:port`s,
//! `BILLRUN_TEST_PG` naming the coordinator) a database is Citus' only where an administrator
//! made it so: the database is created on every node with the `citus` extension, and the
//! coordinator is told its own address and its workers'. billrun's `migrate` then distributes
//! its tables there by itself.

use sqlx::{Connection, Executor, PgConnection};

/// Creates database `name` on `server` (a URL ending in `/database`), a Citus database when
/// the server is a Citus coordinator; returns the new database's URL.
pub async fn create(server: &str, name: &str) -> String {
    let url = create_plain(server, name).await;
    if !citus_workers().is_empty() {
        make_citus(server, name).await;
    }
    url
}

/// One test's database change on the cluster at a time: on Citus, adding the nodes of two new
/// databases at once failed now and then ("failure on connection marked as essential").
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates database `name` on `server` and on its Citus workers, if any, without the `citus`
/// extension: a plain PostgreSQL database, as one made before there was a cluster.
pub async fn create_plain(server: &str, name: &str) -> String {
    let _turn = ONE_AT_A_TIME.lock().await;
    for admin in node_urls(server) {
        let mut c = PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server {}: {e}", host_part(&admin)));
        c.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
    }
    with_database(server, name)
}

/// Makes database `name`, made by [`create_plain`] on every node, a Citus database as its
/// administrator would: the extension in it on every node, the coordinator told its own
/// address and its workers'.
pub async fn make_citus(server: &str, name: &str) {
    let _turn = ONE_AT_A_TIME.lock().await;
    for admin in node_urls(server) {
        let mut db = PgConnection::connect(&with_database(&admin, name)).await.unwrap();
        db.execute("CREATE EXTENSION citus")
            .await
            .expect("CREATE EXTENSION citus");
    }
    let mut db = PgConnection::connect(&with_database(server, name)).await.unwrap();
    let (host, port) = host_port(server);
    sqlx::query("SELECT citus_set_coordinator_host($1, $2)")
        .bind(host)
        .bind(port)
        .execute(&mut db)
        .await
        .expect("citus_set_coordinator_host");
    for w in citus_workers() {
        let (host, port) = w.rsplit_once(':').expect("a worker as host:port");
        sqlx::query("SELECT citus_add_node($1, $2)")
            .bind(host)
            .bind(port.parse::<i32>().expect("a worker's port"))
            .execute(&mut db)
            .await
            .expect("citus_add_node");
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a server URL with a database");
    format!("{base}/{name}")
}

/// `url` without its user and password, for messages.
fn host_part(url: &str) -> &str {
    url.rsplit_once('@').map_or(url, |(_, host)| host)
}

/// The administrator's URL (`server`'s database) on each node: the coordinator, then the
/// Citus workers, if any.
fn node_urls(server: &str) -> Vec<String> {
    std::iter::once(server.to_owned())
        .chain(citus_workers().iter().map(|w| with_host(server, w)))
        .collect()
}

/// Drops database `name` from `server` and its Citus workers: each database with the `citus`
/// extension keeps a background worker on every node while it exists.
pub async fn drop(server: &str, name: &str) {
    for admin in node_urls(server) {
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

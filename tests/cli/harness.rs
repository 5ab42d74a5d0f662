//! Drives the built `billrun` binary against a fresh database: a SQLite file in a temporary
//! directory, or, when `BILLRUN_TEST_PG` names a PostgreSQL server (as `scripts/test` sets it),
//! a new database on that server. The same tests run on both backends.

#[path = "../support/pg_database.rs"]
pub mod pg_database;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_billrun");

/// The seed's catalog APIs, for brevity in tests.
pub const AQ: &str = "AssessQuality";
pub const CROP: &str = "CropImage";
pub const ENH: &str = "EnhanceImage";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub database: String,
}

/// A CSV row as column → value.
pub type Row = BTreeMap<String, String>;

/// A test's PostgreSQL database goes with it: on a Citus cluster each one keeps a background
/// worker on every node.
impl Drop for Env {
    fn drop(&mut self) {
        if let (Some(server), Some((_, name))) = (
            std::env::var("BILLRUN_TEST_PG")
                .ok()
                .filter(|s| !s.is_empty() && self.is_postgres()),
            self.database.rsplit_once('/'),
        ) {
            block_on(pg_database::drop(&server, name));
        }
    }
}

impl Env {
    pub fn new() -> Env {
        Env::with_citus(true)
    }

    /// As [`Env::new`], but on a Citus cluster the database is a plain PostgreSQL one, created
    /// on every node without the extension, as a database made before there was a cluster:
    /// [`Env::make_citus`] then turns it into a Citus database.
    pub fn plain() -> Env {
        Env::with_citus(false)
    }

    /// A SQLite file, or a new database on the test PostgreSQL server: on a Citus cluster, a
    /// Citus database if `citus`.
    fn with_citus(citus: bool) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = match std::env::var("BILLRUN_TEST_PG") {
            Ok(server) if !server.is_empty() => new_pg_database(&server, citus),
            _ => format!("sqlite://{}", dir.path().join("billrun.db").display()),
        };
        Env { dir, database }
    }

    /// Installs Citus in the database of [`Env::plain`] and registers the cluster's nodes, as
    /// an administrator converting it would.
    pub fn make_citus(&self) {
        let server = std::env::var("BILLRUN_TEST_PG").expect("a PostgreSQL server to test on");
        let (_, name) = self.database.rsplit_once('/').expect("a database URL");
        block_on(pg_database::make_citus(&server, name));
    }

    pub fn is_postgres(&self) -> bool {
        self.database.starts_with("postgres")
    }

    /// Runs a query returning one value straight against the database, to check what the
    /// command line cannot show.
    pub fn query<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        use sqlx::Connection;
        block_on(async {
            if self.is_postgres() {
                let mut c = sqlx::PgConnection::connect(&self.database).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql)
            } else {
                let mut c = sqlx::SqliteConnection::connect(&self.database).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut c).await.expect(sql)
            }
        })
    }

    /// Runs statements straight against the database: data billrun itself would refuse,
    /// as an older version or another writer may have left it.
    pub fn exec(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        block_on(async {
            if self.is_postgres() {
                let mut c = sqlx::PgConnection::connect(&self.database).await.expect("connect");
                c.execute(sql).await.expect(sql);
            } else {
                let mut c = sqlx::SqliteConnection::connect(&self.database).await.expect("connect");
                c.execute(sql).await.expect(sql);
            }
        });
    }

    /// A `billrun` command with this env's database and a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_at(&self.database, args)
    }

    /// A `billrun` command with the database URL `database` and a clean environment.
    pub fn command_at(&self, database: &str, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.env_remove("DATABASE_URL")
            .env_remove("BILLRUN_NOW")
            .env_remove("BILLRUN_TZ")
            .env_remove("BILLRUN_CATALOG")
            .env("BILLRUN_LOG", "warn")
            .current_dir(self.dir.path())
            .arg("--database")
            .arg(database)
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run billrun")
    }

    /// Runs and requires success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "billrun {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs and requires failure with `code`; returns standard error.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "billrun {args:?} should exit {code}\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        stderr
    }

    /// Writes a file into the env's directory and returns its path as a string.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p: PathBuf = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write test file");
        p.display().to_string()
    }

    pub fn import_accounts(&self, now: &str, rows: &[&str]) {
        let text = format!("account_id,name,activated_at,balance\n{}\n", rows.join("\n"));
        let f = self.file(&format!("accounts-{}.csv", unique()), &text);
        self.ok(&["--now", now, "accounts", "import", &f]);
    }

    /// Imports usage rows as of the end of 2026: after every row the tests write (a row
    /// later than `--now` is refused).
    pub fn import_usage(&self, rows: &[&str]) {
        let text = format!("account_id,api,timestamp,calls\n{}\n", rows.join("\n"));
        let f = self.file(&format!("usage-{}.csv", unique()), &text);
        self.ok(&["--now", "2026-12-31T00:00:00+08:00", "usage", "import", &f]);
    }

    pub fn settle(&self, month: &str, now: &str) -> String {
        self.ok(&["--now", now, "settle", "--month", month])
    }

    pub fn accounts(&self) -> BTreeMap<String, Row> {
        parse_csv(&self.ok(&["accounts", "list", "--format", "csv"]))
            .into_iter()
            .map(|r| (r["account_id"].clone(), r))
            .collect()
    }

    /// The month's bills export; none for a month never settled (which `export` refuses).
    pub fn bills(&self, month: &str) -> Vec<Row> {
        parse_csv(&self.bills_csv(month))
    }

    /// The month's bills export as text; only the header for a month never settled.
    pub fn bills_csv(&self, month: &str) -> String {
        let out = self.run(&["export", "bills", "--month", month]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) && stderr.contains(&format!("{month} has not been settled")) {
            return "month\n".into();
        }
        assert!(out.status.success(), "export of {month} failed: {stderr}");
        String::from_utf8(out.stdout).expect("utf-8 export")
    }

    pub fn packs(&self) -> Vec<Row> {
        parse_csv(&self.ok(&["packs", "list", "--format", "csv"]))
    }

    pub fn events(&self) -> Vec<Row> {
        parse_csv(&self.ok(&["events", "--format", "csv"]))
    }

    /// Everything a user can see, for "nothing changed" comparisons.
    pub fn snapshot(&self, months: &[&str]) -> String {
        let mut s = String::new();
        s += &self.ok(&["accounts", "list", "--format", "csv"]);
        s += &self.ok(&["packs", "list", "--format", "csv"]);
        // Event ids are surrogate keys: PostgreSQL sequences skip the values of rolled-back
        // transactions, and concurrent workers interleave. Only the events themselves are
        // compared, as a set.
        let mut events: Vec<String> = self
            .events()
            .iter()
            .map(|e| format!("{:?}\n", e.iter().filter(|(k, _)| *k != "event_id").collect::<Vec<_>>()))
            .collect();
        events.sort();
        s += &events.concat();
        for m in months {
            s += &self.bills_csv(m);
        }
        s
    }
}

/// Asserts two snapshots are equal, showing the first line that differs rather than both.
pub fn assert_same(actual: &str, expected: &str, what: &str) {
    if actual != expected {
        let (n, (a, e)) = actual
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (a, e))| a != e)
            .unwrap_or((0, ("(length differs)", "")));
        panic!("{what}: line {} differs\n  got:      {a}\n  expected: {e}", n + 1);
    }
}

/// The number in "N accounts billed now" of a settle's output.
pub fn billed_now(stdout: &str) -> u64 {
    stdout
        .split(" accounts billed now")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout}"))
}

/// The line of `bills` for one account and API.
pub fn line<'a>(bills: &'a [Row], account: &str, api: &str) -> &'a Row {
    bills
        .iter()
        .find(|r| r["account_id"] == account && r["api"] == api)
        .unwrap_or_else(|| panic!("no bill line for {account}/{api} in {bills:#?}"))
}

pub fn parse_csv(text: &str) -> Vec<Row> {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let headers = r.headers().expect("csv header").clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("csv record");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Creates a fresh database on the PostgreSQL server at `server` (on every node of a Citus
/// cluster, with the extension if `citus`) and returns its URL.
fn new_pg_database(server: &str, citus: bool) -> String {
    use sqlx::{Connection, Executor};
    let name = format!("billrun_test_{}_{}", std::process::id(), unique());
    block_on(async {
        let url = if citus {
            pg_database::create(server, &name).await
        } else {
            pg_database::create_plain(server, &name).await
        };
        let mut c = sqlx::PgConnection::connect(server)
            .await
            .expect("connect to the test PostgreSQL server");
        // Neither the server's zone (scripts/test starts it in America/Los_Angeles) nor the
        // database's is the billing zone: month bounds must not depend on either.
        c.execute(format!("ALTER DATABASE {name} SET timezone TO 'Pacific/Kiritimati'").as_str())
            .await
            .expect("set the test database's time zone");
        url
    })
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

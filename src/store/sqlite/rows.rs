//! How SQLite's rows are written and read: many rows per statement for the settle writer, and
//! times as INTEGER microseconds since the epoch.
//!
//! Why: a profile of the writer thread showed that about a third of its time went to what
//! every statement costs whatever its rows: opening a cursor on the table and on each of its
//! indexes and walking down from the root, then, at the end, closing them and freeing their
//! memory. A page writes about 9000 rows; one statement per row paid that 9000 times. Here rows
//! go [`ROWS`] to a statement, and only a page's last few rows of each kind one by one.
//! Updates go one row to a statement (see [`Rows::update_each`]).
//!
//! Values that are the same on every row of a page (the month, its bounds, the settle's
//! instant) are the statement's first parameters, bound once per page; each row's own values
//! are numbered after them.
//!
//! `many_rows` in `store::sqlite` does the same for the accounts import through sqlx; this one
//! is for `rusqlite`'s synchronous, cached statements on the writer thread.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Statement, ToSql};

/// Rows per multi-row statement. With 16 columns, 1024 parameters: far below SQLite's limit of
/// 32766.
pub const ROWS: usize = 64;

/// `head` followed by `rows` row tuples: each row is `(?1, …, ?consts, ` then its own `vars`
/// parameters, numbered after the constants and the rows before it.
fn tuples(head: &str, consts: usize, vars: usize, rows: usize) -> String {
    let mut sql = String::from(head);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        let numbers = (1..=consts).chain((0..vars).map(|v| consts + r * vars + v + 1));
        let parameters: Vec<String> = numbers.map(|n| format!("?{n}")).collect();
        sql.push_str(&parameters.join(", "));
        sql.push(')');
    }
    sql
}

/// An `INSERT` of many rows at a time, and of one row for the remainder (or an `UPDATE`, one row
/// at a time).
pub struct Rows {
    many: String,
    one: String,
    /// Rows per statement of `many`.
    per: usize,
    consts: usize,
    vars: usize,
}

impl Rows {
    /// `INSERT INTO t (columns) VALUES …`, `columns` listing the `consts` constant columns first;
    /// each row's own values are the columns after them.
    pub fn insert(head: &str, consts: usize) -> Rows {
        let columns = head
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map_or(0, |(list, _)| list.split(',').count());
        let vars = columns - consts;
        Rows {
            many: tuples(head, consts, vars, ROWS),
            one: tuples(head, consts, vars, 1),
            per: ROWS,
            consts,
            vars,
        }
    }

    /// `UPDATE … WHERE key = ?1`, one row per statement, its `vars` parameters numbered from 1.
    /// Updates are not batched: an `UPDATE … FROM (VALUES …)` of many rows first copies them and
    /// the rows they match into two temporary tables, then looks each row up a second time to
    /// change it; one row per statement is looked up once and changed in place.
    pub fn update_each(sql: &str, vars: usize) -> Rows {
        Rows {
            many: sql.to_string(),
            one: sql.to_string(),
            per: 1,
            consts: 0,
            vars,
        }
    }

    /// Writes rows `0..n`: the constants `consts` once per statement, then, for each row, `bind`
    /// binds its own values from the parameter number it is given. Returns the rows changed.
    pub fn write(
        &self,
        conn: &Connection,
        consts: &[&dyn ToSql],
        n: usize,
        mut bind: impl FnMut(&mut Statement<'_>, usize, usize) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<usize> {
        debug_assert_eq!(consts.len(), self.consts);
        let (mut done, mut changed) = (0, 0);
        for (sql, rows) in [(&self.many, self.per), (&self.one, 1)] {
            if n - done < rows {
                continue;
            }
            let mut stmt = conn.prepare_cached(sql)?;
            for (i, value) in consts.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, value)?;
            }
            while n - done >= rows {
                for r in 0..rows {
                    bind(&mut stmt, self.consts + r * self.vars + 1, done + r)?;
                }
                changed += stmt.raw_execute()?;
                done += rows;
            }
        }
        Ok(changed)
    }
}

/// Binds `values` to `stmt`'s parameters from number `at` on: a row's `bind` for
/// [`Rows::write`], as an expression of type `rusqlite::Result<()>`.
macro_rules! bind_row {
    ($stmt:expr, $at:expr; $($value:expr),+ $(,)?) => {{
        let mut at = $at;
        $(
            $stmt.raw_bind_parameter(at, $value)?;
            at += 1;
        )+
        let _ = at;
        Ok(())
    }};
}

pub(crate) use bind_row;

/// A time as SQLite keeps it: INTEGER microseconds since the epoch.
pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A time read back from INTEGER microseconds since the epoch.
pub(crate) fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// An optional time read back from INTEGER microseconds since the epoch.
pub(crate) fn opt_at(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.map(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_come_first_in_every_row_and_each_row_numbers_its_own_after_them() {
        assert_eq!(
            tuples("INSERT INTO t (a, b, c) VALUES ", 1, 2, 2),
            "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3), (?1, ?4, ?5)"
        );
        let insert = Rows::insert("INSERT INTO t (a, b, c) VALUES ", 1);
        assert_eq!((insert.consts, insert.vars, insert.per), (1, 2, ROWS));
        assert_eq!(insert.one, "INSERT INTO t (a, b, c) VALUES (?1, ?2, ?3)");
    }

    /// Every row lands once, with its own values and the constants, whether it goes in a batch or
    /// in the remainder; an update changes each row it names once.
    #[test]
    fn rows_in_batches_and_in_the_remainder_are_all_written_once() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (c TEXT, k INTEGER PRIMARY KEY, x INTEGER)")
            .unwrap();
        let insert = Rows::insert("INSERT INTO t (c, k, x) VALUES ", 1);
        assert_eq!(insert.vars, 2);
        let n = 2 * ROWS + 5;
        let written = insert
            .write(
                &conn,
                &[&"const"],
                n,
                |stmt, at, i| bind_row!(stmt, at; i as i64, (i * 10) as i64),
            )
            .unwrap();
        assert_eq!(written, n);
        let update = Rows::update_each("UPDATE t SET x = x + ?2 WHERE k = ?1", 2);
        let changed = update
            .write(&conn, &[], n, |stmt, at, i| bind_row!(stmt, at; i as i64, 1_i64))
            .unwrap();
        assert_eq!(changed, n);
        let (count, sum, consts): (i64, i64, i64) = conn
            .query_row("SELECT COUNT(*), SUM(x), SUM(c = 'const') FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        let n = n as i64;
        assert_eq!((count, sum, consts), (n, 10 * n * (n - 1) / 2 + n, n));
    }
}

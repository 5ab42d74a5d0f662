//! How PostgreSQL's columns are read: `timestamptz`, `NUMERIC`, `boolean`, and integers of
//! either width. The views are built from these in `store::decode`.

use crate::store::decode::Columns;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::postgres::PgRow;
use sqlx::Row;

impl Columns for PgRow {
    fn text(&self, column: &str) -> anyhow::Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    /// A `bigint`, or an `integer` (revisions and tiers), widened.
    fn int(&self, column: &str) -> anyhow::Result<i64> {
        match self.try_get::<i64, _>(column) {
            Ok(n) => Ok(n),
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.try_get::<i32, _>(column)?.into()),
            Err(e) => Err(e.into()),
        }
    }

    fn opt_int(&self, column: &str) -> anyhow::Result<Option<i64>> {
        match self.try_get::<Option<i64>, _>(column) {
            Ok(n) => Ok(n),
            Err(sqlx::Error::ColumnDecode { .. }) => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            Err(e) => Err(e.into()),
        }
    }

    fn flag(&self, column: &str) -> anyhow::Result<bool> {
        Ok(self.try_get(column)?)
    }

    fn time(&self, column: &str) -> anyhow::Result<DateTime<Utc>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(column)?)
    }

    fn decimal(&self, column: &str) -> anyhow::Result<Decimal> {
        Ok(self.try_get(column)?)
    }
}

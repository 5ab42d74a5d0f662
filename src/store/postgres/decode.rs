//! How PostgreSQL's columns are read: `timestamptz`, `NUMERIC`, `boolean`, `bigint` and
//! `integer`. The views are built from these in `store::decode`.

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

    /// A `bigint`.
    fn int(&self, column: &str) -> anyhow::Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn opt_bytes(&self, column: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    /// An `integer`.
    fn int32(&self, column: &str) -> anyhow::Result<i32> {
        Ok(self.try_get(column)?)
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

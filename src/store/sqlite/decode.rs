//! How SQLite's columns are read: times as INTEGER microseconds since the epoch, exact amounts
//! as TEXT, flags as 0 or 1. The views are built from these in `store::decode`.

use super::rows::at;
use crate::store::decode::Columns;
use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> anyhow::Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> anyhow::Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

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

    fn flag(&self, column: &str) -> anyhow::Result<bool> {
        Ok(self.try_get::<i64, _>(column)? != 0)
    }

    fn time(&self, column: &str) -> anyhow::Result<DateTime<Utc>> {
        Ok(at(self.try_get(column)?))
    }

    fn opt_time(&self, column: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
        Ok(self.try_get::<Option<i64>, _>(column)?.map(at))
    }

    fn int32(&self, column: &str) -> anyhow::Result<i32> {
        let n: i64 = self.try_get(column)?;
        i32::try_from(n).with_context(|| format!("stored {column} {n} is out of range"))
    }

    fn decimal(&self, column: &str) -> anyhow::Result<Decimal> {
        let text: String = self.try_get(column)?;
        Decimal::from_str_exact(&text).with_context(|| format!("stored {column} '{text}' is not a decimal"))
    }
}

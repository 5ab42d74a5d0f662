//! Rows into the port's types, written once for both backends. A backend says how it reads a
//! column of each kind ([`Columns`], in its own `decode` module: SQLite keeps times as integer
//! microseconds and exact amounts as text, PostgreSQL as `timestamptz` and `NUMERIC`); every
//! view is built here from those, with its kinds and statuses parsed into their enums.

use super::webhooks::{DeliveryStatus, DeliveryView, DueDelivery, EndpointHealth, NoticeRef};
use super::{
    AccountView, Archived, ArrearsBill, BilledCalls, CommandRuns, CreditIssued, CreditNote, EventView, ExportLine,
    Holding, ImportView, LateUsage, LineAmount, MonthTotals, PackView, RunOutcome, RunView, SettledMonth, StatusCounts,
    StoredImport, StoredTotal, StoredVersion, UsedReference,
};
use crate::domain::arrears::{EventKind, ServiceState};
use crate::domain::bill::ApiUsage;
use crate::domain::credit::amount_due;
use crate::domain::money::Rounding;
use crate::domain::pack_alerts::Threshold;
use crate::domain::packs::{PackBalance, PackKind};
use crate::domain::settle::{CurrentBill, RevisionKind, StoredLine};
use crate::domain::webhook::EventType;
use crate::input::stored::{Content, Reading, StoredChunk};
use anyhow::Context;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;

/// How a backend reads one column of a row, by name.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> anyhow::Result<String>;
    fn opt_text(&self, column: &str) -> anyhow::Result<Option<String>>;
    fn int(&self, column: &str) -> anyhow::Result<i64>;
    fn opt_int(&self, column: &str) -> anyhow::Result<Option<i64>>;
    fn flag(&self, column: &str) -> anyhow::Result<bool>;
    fn time(&self, column: &str) -> anyhow::Result<DateTime<Utc>>;
    fn opt_time(&self, column: &str) -> anyhow::Result<Option<DateTime<Utc>>>;
    fn decimal(&self, column: &str) -> anyhow::Result<Decimal>;
    /// A small integer column (a revision, a tier).
    fn int32(&self, column: &str) -> anyhow::Result<i32>;
    /// A column of bytes (a stored chunk of usage).
    fn bytes(&self, column: &str) -> anyhow::Result<Vec<u8>>;
    fn opt_bytes(&self, column: &str) -> anyhow::Result<Option<Vec<u8>>>;

    /// A count: an integer that is never negative.
    fn count(&self, column: &str) -> anyhow::Result<u64> {
        let n = self.int(column)?;
        u64::try_from(n).with_context(|| format!("{column} {n} is negative"))
    }

    /// A text column holding one of an enum's names.
    fn parsed<T>(&self, column: &str, parse: fn(&str) -> Option<T>) -> anyhow::Result<T> {
        let text = self.text(column)?;
        parse(&text).with_context(|| format!("stored {column} '{text}' is not one billrun knows"))
    }
}

pub(crate) fn service_state(r: &impl Columns) -> anyhow::Result<ServiceState> {
    Ok(ServiceState {
        balance_fen: r.int("balance_fen")?,
        suspend_at: r.opt_time("suspend_at")?,
        suspended: r.flag("suspended")?,
    })
}

/// An account, from the columns of `sql::ACCOUNT_VIEW_SQL`.
pub(crate) fn account_view(r: &impl Columns) -> anyhow::Result<AccountView> {
    Ok(AccountView::new(
        r.text("account_id")?,
        r.text("name")?,
        r.opt_time("activated_at")?,
        service_state(r)?,
    ))
}

/// A pack, from the columns of `sql::PACKS_SQL`.
pub(crate) fn pack_view(r: &impl Columns) -> anyhow::Result<PackView> {
    Ok(PackView {
        pack_id: r.text("pack_id")?,
        kind: r.parsed("kind", PackKind::parse)?,
        account_id: r.text("account_id")?,
        api: r.text("api")?,
        calls: r.int("calls")?,
        remaining: r.int("remaining")?,
        valid_from: r.time("valid_from")?,
        valid_until: r.time("valid_until")?,
        purchased_at: r.time("purchased_at")?,
        month: r.opt_text("month")?,
    })
}

/// What accounts hold for a month, from the rows of their accounts (`account_id`,
/// `activated_at`), of `sql::holding_packs_sql`, of `sql::holding_usage_sql` and of
/// `sql::holding_alerts_sql`.
pub(crate) fn holdings<R: Columns>(
    accounts: &[R],
    packs: &[R],
    usage: &[R],
    alerts: &[R],
) -> anyhow::Result<HashMap<String, Holding>> {
    let mut out: HashMap<String, Holding> = HashMap::new();
    for r in accounts {
        let holding = Holding {
            opened: r.opt_time("activated_at")?,
            ..Holding::default()
        };
        out.insert(r.text("account_id")?, holding);
    }
    for r in packs {
        let pack = PackBalance {
            pack_id: r.text("pack_id")?,
            kind: r.parsed("kind", PackKind::parse)?,
            api: r.text("api")?,
            remaining: r.int("remaining")?,
            valid_until: r.time("valid_until")?,
            purchased_at: r.time("purchased_at")?,
        };
        let holding = out.entry(r.text("account_id")?).or_default();
        holding.sizes.insert(pack.pack_id.clone(), r.int("calls")?);
        holding.packs.push(pack);
    }
    for r in usage {
        let calls = ApiUsage {
            api: r.text("api")?,
            calls: r.int("calls")?,
        };
        out.entry(r.text("account_id")?).or_default().usage.push(calls);
    }
    for r in alerts {
        let alert = (r.text("pack_id")?, r.parsed("threshold", Threshold::parse)?);
        out.entry(r.text("account_id")?).or_default().alerted.insert(alert);
    }
    Ok(out)
}

/// A usage import, from the columns of `sql::USAGE_IMPORTS_SQL`.
pub(crate) fn import_view(r: &impl Columns) -> anyhow::Result<ImportView> {
    Ok(ImportView {
        import_id: r.int("import_id")?,
        file_name: r.text("file_name")?,
        sha256: r.text("sha256")?,
        rows: r.count("rows")?,
        calls: r.int("calls")?,
        duplicates: r.count("duplicates")?,
        first: r.opt_time("first_ts")?,
        last: r.opt_time("last_ts")?,
        imported_at: r.time("imported_at")?,
        retracts: r.opt_int("retracts")?,
        retracted_at: r.opt_time("retracted_at")?,
        retracted_by: r.opt_text("retracted_by")?,
        retraction_reason: r.opt_text("retraction_reason")?,
        replaced_by: r.opt_int("replaced_by")?,
    })
}

/// An event, from the columns of `sql::EVENTS_SQL`.
pub(crate) fn event_view(r: &impl Columns) -> anyhow::Result<EventView> {
    Ok(EventView {
        event_id: r.int("event_id")?,
        account_id: r.text("account_id")?,
        kind: r.parsed("kind", EventKind::parse)?,
        at: r.time("at")?,
        bill_id: r.opt_text("bill_id")?,
        suspend_at: r.opt_time("suspend_at")?,
        balance_fen: r.int("balance_fen")?,
        pack: pack_notice(r)?,
    })
}

/// A run, from the columns of `sql::RUNS_SQL`.
pub(crate) fn run_view(r: &impl Columns) -> anyhow::Result<RunView> {
    Ok(RunView {
        run_id: r.int("run_id")?,
        command: r.text("command")?,
        month: r.opt_text("month")?,
        started_at: r.time("started_at")?,
        ended_at: r.opt_time("ended_at")?,
        outcome: r.parsed("outcome", RunOutcome::parse)?,
        accounts_billed: r.int("accounts_billed")?,
        billed_fen: r.int("billed_fen")?,
        suspended: r.int("suspended")?,
        message: r.text("message")?,
    })
}

/// A bill line with its bill and account, from the columns of `sql::EXPORT_LINES_SQL`.
pub(crate) fn export_line(r: &impl Columns) -> anyhow::Result<ExportLine> {
    Ok(ExportLine {
        month: r.text("month")?,
        bill_id: r.text("bill_id")?,
        revision: r.int32("revision")?,
        kind: r.parsed("kind", RevisionKind::parse)?,
        debited_fen: r.int("debited_fen")?,
        rounding: r.text("rounding")?,
        account_id: r.text("account_id")?,
        account_name: r.text("name")?,
        api: r.text("api")?,
        total_calls: r.int("total_calls")?,
        free_calls: r.int("free_calls")?,
        prepaid_calls: r.int("prepaid_calls")?,
        billable_calls: r.int("billable_calls")?,
        tier: r.int32("tier")?.into(),
        tier_from: r.int("tier_from")?,
        tier_to: r.opt_int("tier_to")?,
        unit_price: r.decimal("unit_price")?,
        amount: r.decimal("amount")?,
        pricing: r.text("pricing")?,
        tier_basis: r.text("tier_basis")?,
        catalog_version: r.text("catalog_version")?,
        bill_exact_total: r.decimal("exact_total")?,
        bill_total_fen: r.int("total_fen")?,
        rounding_adjustment: r.decimal("rounding_adjustment")?,
        balance_before_fen: r.int("balance_before_fen")?,
        balance_after_fen: r.int("balance_after_fen")?,
        period_start: r.time("period_start")?,
        period_end: r.time("period_end")?,
        settled_at: r.time("settled_at")?,
        credited_fen: r.int("credited_fen")?,
        credit: match r.opt_text("credit_reference")? {
            Some(reference) => Some(CreditNote {
                reference,
                reason: r.opt_text("credit_reason")?.unwrap_or_default(),
                by: r.opt_text("credited_by")?,
            }),
            None => None,
        },
    })
}

/// A bill line's amount and its bill's arithmetic, from the columns of `sql::LINE_AMOUNTS_SQL`.
pub(crate) fn line_amount(r: &impl Columns) -> anyhow::Result<LineAmount> {
    Ok(LineAmount {
        bill_id: r.text("bill_id")?,
        rounding: r.text("rounding")?,
        exact_total: r.decimal("exact_total")?,
        total_fen: r.int("total_fen")?,
        rounding_adjustment: r.decimal("rounding_adjustment")?,
        amount: r.decimal("amount")?,
    })
}

/// A revision that left its account in arrears, from the columns of `sql::ARREARS_BILLS_SQL`.
pub(crate) fn arrears_bill(r: &impl Columns) -> anyhow::Result<ArrearsBill> {
    Ok(ArrearsBill {
        bill_id: r.text("bill_id")?,
        account_id: r.text("account_id")?,
        revision: r.int32("revision")?,
        balance_after_fen: r.int("balance_after_fen")?,
        suspend_at: r.opt_time("suspend_at")?,
    })
}

/// The recharge a reference was first used for, from the columns of `sql::USED_REFERENCE_SQL`.
pub(crate) fn used_reference(r: &impl Columns) -> anyhow::Result<UsedReference> {
    Ok(UsedReference {
        account_id: r.text("account_id")?,
        amount_fen: r.int("amount_fen")?,
        at: r.time("created_at")?,
        balance_fen: r.int("balance_fen")?,
    })
}

/// A credit found by its reference, from the columns of `sql::USED_CREDIT_SQL`.
pub(crate) fn used_credit(r: &impl Columns) -> anyhow::Result<CreditIssued> {
    let credited_fen = r.int("credited_fen")?;
    Ok(CreditIssued {
        account_id: r.text("account_id")?,
        month: r.text("month")?,
        bill_id: r.text("bill_id")?,
        revision: r.int32("revision")?,
        amount_fen: r.int("amount_fen")?,
        credited_fen,
        due_fen: amount_due(r.int("total_fen")?, credited_fen),
        balance_fen: r.int("balance_fen")?,
        restored: false,
        at: r.time("settled_at")?,
    })
}

/// The current revision of a bill as a credit needs it, from the columns of
/// `sql::CREDIT_BILL_SQL`: its id, the revision, and the rounding it was totalled with.
pub(crate) fn credit_bill(r: &impl Columns) -> anyhow::Result<(String, CurrentBill, Rounding)> {
    let rounding = r.text("rounding")?;
    Ok((
        r.text("bill_id")?,
        CurrentBill {
            revision: r.int32("revision")?,
            total_fen: r.int("total_fen")?,
            credited_fen: r.int("credited_fen")?,
            ..CurrentBill::default()
        },
        rounding.parse().map_err(anyhow::Error::msg)?,
    ))
}

/// A stored bill line, from the columns of `sql::CREDIT_LINES_SQL`.
pub(crate) fn stored_line(r: &impl Columns) -> anyhow::Result<StoredLine> {
    Ok(StoredLine {
        api: r.text("api")?,
        total_calls: r.int("total_calls")?,
        free_calls: r.int("free_calls")?,
        prepaid_calls: r.int("prepaid_calls")?,
        billable_calls: r.int("billable_calls")?,
        unit_price: r.decimal("unit_price")?,
        amount: r.decimal("amount")?,
    })
}

/// A month's totals, from the columns of `sql::MONTH_TOTALS_SQL`.
pub(crate) fn month_totals(r: &impl Columns) -> anyhow::Result<MonthTotals> {
    Ok(MonthTotals {
        bills: r.count("bills")?,
        total_fen: r.int("total")?,
        credited_fen: r.int("credited")?,
        accounts_in_arrears: r.count("arrears")?,
        settled_at: r.opt_time("settled_at")?,
    })
}

/// A command's latest run, from the columns of `sql::LATEST_RUNS_SQL`.
pub(crate) fn command_runs(r: &impl Columns) -> anyhow::Result<CommandRuns> {
    Ok(CommandRuns {
        command: r.text("command")?,
        last_started_at: r.time("started_at")?,
        last_ended_at: r.opt_time("ended_at")?,
        last_outcome: r.parsed("outcome", RunOutcome::parse)?,
        last_success: r.opt_time("last_success")?,
    })
}

/// Accounts by status, from the columns of `sql::STATUS_COUNTS_SQL`.
pub(crate) fn status_counts(r: &impl Columns) -> anyhow::Result<StatusCounts> {
    Ok(StatusCounts {
        active: r.count("active")?,
        arrears: r.count("arrears")?,
        suspended: r.count("suspended")?,
        inactive: r.count("inactive")?,
    })
}

/// A stored catalog version, from the columns of `sql::CATALOG_VERSIONS_SQL`.
pub(crate) fn stored_version(r: &impl Columns) -> anyhow::Result<StoredVersion> {
    Ok(StoredVersion {
        version: r.text("version")?,
        effective_from: r.text("effective_from")?,
        currency: r.text("currency")?,
        definition: r.text("definition")?,
        source: r.text("source")?,
        imported_at: r.time("imported_at")?,
    })
}

/// Late usage waiting for one month, from the columns of `sql::LATE_USAGE_SQL`.
pub(crate) fn late_usage(r: &impl Columns) -> anyhow::Result<LateUsage> {
    let month = r.text("month")?;
    Ok(LateUsage {
        month: month.parse().map_err(anyhow::Error::msg)?,
        imports: r.count("imports")?,
        rows: r.count("rows")?,
        calls: r.count("calls")?,
        oldest_imported_at: r.time("oldest_imported_at")?,
    })
}

/// An import's span, from the columns of `sql::IMPORT_SPANS_SQL`.
pub(crate) fn import_span(r: &impl Columns) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    Ok((r.time("first_ts")?, r.time("last_ts")?))
}

/// The pack of a pack alert, from the columns `pack_id`, `api`, `threshold`, `pack_calls` and
/// `pack_left` of `events`; none for another kind of event.
pub(crate) fn pack_notice(r: &impl Columns) -> anyhow::Result<Option<super::webhooks::PackNotice>> {
    let Some(pack_id) = r.opt_text("pack_id")? else {
        return Ok(None);
    };
    Ok(Some(super::webhooks::PackNotice {
        pack_id,
        api: r.text("api")?,
        threshold: r.parsed("threshold", Threshold::parse)?,
        calls: r.int("pack_calls")?,
        left: r.int("pack_left")?,
    }))
}

/// A claimed delivery and what it announces, from the columns of `sql::webhooks::claimed`.
pub(crate) fn due_delivery(r: &impl Columns) -> anyhow::Result<DueDelivery> {
    use super::webhooks::{BillNotice, EventNotice, Notice};
    let notice = match r.opt_text("bill_id")? {
        Some(bill_id) => Notice::Bill(BillNotice {
            bill_id,
            month: r.text("month")?,
            revision: r.int32("revision")?,
            kind: r.parsed("bill_kind", RevisionKind::parse)?,
            total_fen: r.int("total_fen")?,
            debited_fen: r.int("debited_fen")?,
            credited_fen: r.int("credited_fen")?,
            balance_after_fen: r.int("balance_after_fen")?,
            settled_at: r.time("settled_at")?,
        }),
        None => Notice::Event(EventNotice {
            event_id: r
                .opt_int("event_id")?
                .context("a delivery's bill or event is missing")?,
            kind: r.parsed("event_kind", EventKind::parse)?,
            at: r.time("event_at")?,
            bill_id: r.opt_text("event_bill_id")?,
            suspend_at: r.opt_time("suspend_at")?,
            balance_fen: r.int("balance_fen")?,
            pack: pack_notice(r)?,
        }),
    };
    Ok(DueDelivery {
        delivery_id: r.int("delivery_id")?,
        endpoint: r.text("endpoint")?,
        event_type: r.parsed("event_type", EventType::parse)?,
        account_id: r.text("account_id")?,
        created_at: r.time("created_at")?,
        attempts: r.int32("attempts")?.max(0) as u32,
        notice,
    })
}

/// A delivery's state, from the columns of `sql::webhooks::DELIVERIES_SQL`.
pub(crate) fn delivery_view(r: &impl Columns) -> anyhow::Result<DeliveryView> {
    let notice = match (r.opt_text("bill_id")?, r.opt_int("event_id")?) {
        (Some(bill), _) => NoticeRef::Bill(bill),
        (None, Some(event)) => NoticeRef::Event(event),
        (None, None) => anyhow::bail!("a delivery names neither a bill nor an event"),
    };
    let status = r.parsed("status", DeliveryStatus::parse)?;
    Ok(DeliveryView {
        delivery_id: r.int("delivery_id")?,
        endpoint: r.text("endpoint")?,
        event_type: r.parsed("event_type", EventType::parse)?,
        account_id: r.text("account_id")?,
        notice,
        created_at: r.time("created_at")?,
        status,
        attempts: r.int32("attempts")?.max(0) as u32,
        next_attempt_at: if status == DeliveryStatus::Pending {
            Some(r.time("next_attempt_at")?)
        } else {
            None
        },
        last_attempt_at: r.opt_time("last_attempt_at")?,
        last_status: r.opt_int("last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: r.opt_text("last_error")?,
        delivered_at: r.opt_time("delivered_at")?,
    })
}

/// An endpoint's deliveries, from the columns of `sql::webhooks::WEBHOOK_HEALTH_SQL`.
pub(crate) fn endpoint_health(r: &impl Columns) -> anyhow::Result<EndpointHealth> {
    Ok(EndpointHealth {
        endpoint: r.text("endpoint")?,
        disabled: r.flag("disabled")?,
        pending: r.count("pending")?,
        failed: r.count("failed")?,
        delivered: r.count("delivered")?,
        oldest_pending: r.opt_time("oldest_pending")?,
    })
}

/// An import of rows, from the columns of `sql::STORED_IMPORTS_SQL`.
pub(crate) fn stored_import(r: &impl Columns) -> anyhow::Result<StoredImport> {
    // Content kept before it said how it reads back counts as not kept (`migrate` rebuilds it).
    let (content, skipped_lines) = match (r.opt_text("content_sha256")?, r.opt_text("content_format")?) {
        (Some(sha256), Some(format)) => {
            let assume_tz = r.opt_text("assume_tz")?;
            let content = Content {
                sha256,
                bytes: r.int("content_bytes")?,
                chunks: r.int("content_chunks")?,
                reading: Reading::from_stored(&format, assume_tz.as_deref()).map_err(anyhow::Error::msg)?,
            };
            (Some(content), r.opt_bytes("skipped_lines")?)
        }
        _ => (None, None),
    };
    Ok(StoredImport {
        import_id: r.int("import_id")?,
        file_name: r.text("file_name")?,
        sha256: r.text("sha256")?,
        rows: r.int("rows")?,
        calls: r.int("calls")?,
        content,
        skipped_lines,
        span: r.opt_time("first_ts")?.zip(r.opt_time("last_ts")?),
        retracted: r.opt_time("retracted_at")?.is_some(),
        record_id: r.opt_int("record_id")?,
        archived: match (r.opt_time("archived_at")?, r.opt_text("archive_sha256")?) {
            (Some(at), Some(sha256)) => Some(Archived {
                at,
                sha256,
                calls: serde_json::from_str(&r.opt_text("archived_calls")?.unwrap_or_default())
                    .context("archived_calls")?,
            }),
            _ => None,
        },
    })
}

/// A settled month, from the columns of `sql::SETTLED_MONTHS_SQL`.
pub(crate) fn settled_month(r: &impl Columns) -> anyhow::Result<SettledMonth> {
    Ok(SettledMonth {
        month: r.text("month")?,
        start: r.time("period_start")?,
        end: r.time("period_end")?,
        through_import: r.int("through_import")?,
        tz: r.opt_text("tz")?,
    })
}

/// Calls on a current bill, from the columns of `sql::BILLED_CALLS_SQL`.
pub(crate) fn billed_calls(r: &impl Columns) -> anyhow::Result<BilledCalls> {
    Ok(BilledCalls {
        account_id: r.text("account_id")?,
        api: r.text("api")?,
        calls: r.int("calls")?,
    })
}

/// A usage total, from the columns of `sql::TOTALS_SQL`.
pub(crate) fn stored_total(r: &impl Columns) -> anyhow::Result<StoredTotal> {
    Ok(StoredTotal {
        month: r.text("month")?,
        account_id: r.text("account_id")?,
        api: r.text("api")?,
        calls: r.int("calls")?,
    })
}

/// A stored chunk, from the columns of `sql::STORED_CHUNK_SQL`.
pub(crate) fn stored_chunk(r: &impl Columns) -> anyhow::Result<StoredChunk> {
    Ok(StoredChunk {
        seq: r.int("seq")?,
        raw_bytes: r.int("raw_bytes")?,
        data: r.bytes("data")?,
    })
}

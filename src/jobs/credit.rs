//! Credit notes: an operator gives money back against a settled bill (`billrun credit`).
//!
//! The rule (how much may be credited, what it does to the balance and the service) is
//! `domain::credit`'s; the store writes the revision, its ledger entry and its webhook in one
//! transaction. This job checks what the operator typed and tells a retried command (the same
//! reference, account, month and amount: nothing credited again) from a conflict (the
//! reference already names another credit: refused).

use super::Ctx;
use crate::domain::credit::{CreditAmount, CreditError};
use crate::domain::limits::MAX_AMOUNT_FEN;
use crate::domain::money::{format_money, from_fen, parse_cny, to_fen};
use crate::domain::month::Month;
use crate::error::input_error;
use crate::input::text::shown;
use crate::input::{check_account_id, check_id};
use crate::store::{CreditIssued, CreditOutcome, CreditRequest, Store};

/// How much the operator asked to credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask {
    /// An amount, as typed.
    Amount(String),
    /// One line of the bill, whole.
    Line(String),
    /// Everything still due.
    Rest,
}

/// A credit as the operator asked for it.
#[derive(Clone, Debug)]
pub struct CreditAsk {
    pub account_id: String,
    pub month: Month,
    pub amount: Ask,
    pub reason: String,
    pub reference: String,
    pub by: Option<String>,
}

/// What a credit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credited {
    /// A credit revision was written.
    Issued(CreditIssued),
    /// The same credit (reference, account, month and amount) was issued before: nothing changed.
    AlreadyIssued(CreditIssued),
}

/// The longest reason kept.
const MAX_REASON_CHARS: usize = 500;

/// Credits `ask` against the account's bill for the month, at `ctx.now`.
pub async fn credit<S: Store>(store: &S, ctx: &Ctx, ask: &CreditAsk) -> anyhow::Result<Credited> {
    let id = ask.account_id.as_str();
    check_account_id(id).map_err(|e| input_error(format!("account: {e}")))?;
    check_id("reference", &ask.reference).map_err(input_error)?;
    if let Some(by) = &ask.by {
        check_id("by", by).map_err(input_error)?;
    }
    let reason = ask.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Err(input_error(format!(
            "reason: give why, in 1 to {MAX_REASON_CHARS} characters on one line"
        )));
    }
    let amount = match &ask.amount {
        Ask::Amount(text) => {
            let value = parse_cny(text).map_err(|e| input_error(format!("amount: {e}")))?;
            let fen = to_fen(value).filter(|fen| *fen <= MAX_AMOUNT_FEN).ok_or_else(|| {
                input_error(format!(
                    "amount: '{text}' is more than {}, the largest amount billrun takes",
                    format_money(from_fen(MAX_AMOUNT_FEN))
                ))
            })?;
            CreditAmount::Fen(fen)
        }
        Ask::Line(api) => CreditAmount::Line(api.clone()),
        Ask::Rest => CreditAmount::Rest,
    };
    let request = CreditRequest {
        account_id: id.to_owned(),
        month: ask.month,
        amount: amount.clone(),
        reason: reason.to_owned(),
        reference: ask.reference.clone(),
        by: ask.by.clone(),
    };
    let month = ask.month.to_string();
    match store.credit(&request, ctx.now).await? {
        CreditOutcome::Credited(issued) => Ok(Credited::Issued(issued)),
        CreditOutcome::ReferenceUsed(used) if same_credit(&used, id, &month, &amount) => {
            Ok(Credited::AlreadyIssued(used))
        }
        CreditOutcome::ReferenceUsed(used) => Err(input_error(format!(
            "reference '{}' already names another credit: {} to '{}' for {} at {}; this one was not issued. \
             A reference names one credit: give this one its own",
            shown(&ask.reference),
            format_money(from_fen(used.amount_fen)),
            shown(&used.account_id),
            used.month,
            ctx.local(used.at),
        ))),
        CreditOutcome::NoBill => Err(input_error(format!(
            "account '{}' has no bill for {month}: only a settled bill can be credited",
            shown(id)
        ))),
        CreditOutcome::Refused(e) => Err(input_error(refusal(&e, id, &month))),
    }
}

/// Whether the credit a reference names is the one asked for again: same account and month,
/// and the same amount when an amount was given (a line or "everything due" asked again after
/// it was credited is the same request).
fn same_credit(used: &CreditIssued, account: &str, month: &str, amount: &CreditAmount) -> bool {
    used.account_id == account
        && used.month == month
        && match amount {
            CreditAmount::Fen(fen) => used.amount_fen == *fen,
            CreditAmount::Line(_) | CreditAmount::Rest => true,
        }
}

/// What to tell the operator when the rules refuse a credit.
fn refusal(e: &CreditError, account: &str, month: &str) -> String {
    let bill = format!("the {month} bill of '{}'", shown(account));
    match e {
        CreditError::NotPositive => format!("amount: a credit of {bill} must be more than 0.00; nothing changed"),
        CreditError::NothingDue { total_fen } => format!(
            "{bill} ({}) asks for nothing any more (credited, or adjusted to 0.00); nothing changed",
            format_money(from_fen(*total_fen))
        ),
        CreditError::MoreThanDue { asked_fen, due_fen } => format!(
            "amount: {} is more than the {} {bill} still asks for; a credit never exceeds what was billed; nothing changed",
            format_money(from_fen(*asked_fen)),
            format_money(from_fen(*due_fen))
        ),
        CreditError::NoSuchLine { api, lines } => {
            format!("api: {bill} has no line for '{}' (its lines: {lines}); nothing changed", shown(api))
        }
        CreditError::OutOfRange => {
            format!("crediting {bill} would take the balance beyond the largest amount billrun keeps; nothing changed")
        }
    }
}

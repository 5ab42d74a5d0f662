//! Accounts: import with opening balances, activation, recharge.

use super::{open_input, Ctx};
use crate::domain::limits::MAX_AMOUNT_FEN;
use crate::domain::money::{format_money, from_fen, parse_cny, to_fen};
use crate::error::{input_error, RejectedFile};
use crate::input::accounts as file;
use crate::input::text::shown;
use crate::input::{check_account_id, check_id};
use crate::store::{ActivateOutcome, RechargeOutcome, Store, StoreError};
use std::path::Path;

/// Imports an accounts file whole, or rejects it whole. Returns how many were added.
pub async fn import<S: Store>(store: &S, ctx: &Ctx, path: &Path, assume: Option<chrono_tz::Tz>) -> anyhow::Result<u64> {
    let rejected = |problems: Vec<_>| {
        let total = problems.len() as u64;
        anyhow::Error::new(RejectedFile::new(&path.display().to_string(), problems, total))
    };
    let rows = file::read(open_input(path)?, assume).map_err(rejected)?;
    let grant = ctx.free_grant(ctx.current_month())?;
    match store.import_accounts(&rows, &grant, ctx.now).await {
        Err(StoreError::Rejected { problems, .. }) => Err(rejected(problems)),
        n => Ok(n?),
    }
}

/// Opens an account's service at `--now`, with the current month's whole free pack.
pub async fn activate<S: Store>(store: &S, ctx: &Ctx, id: &str) -> anyhow::Result<ActivateOutcome> {
    check_account_id(id).map_err(|e| input_error(format!("account: {e}")))?;
    let grant = ctx.free_grant(ctx.current_month())?;
    Ok(store.activate(id, ctx.now, &grant).await?)
}

/// What a recharge did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recharged {
    Credited {
        balance_fen: i64,
        restored: bool,
    },
    /// The same payment (reference, account and amount) was applied before: nothing changed.
    AlreadyApplied {
        balance_fen: i64,
    },
}

/// Credits `amount` (> 0, whole fen, at most [`MAX_AMOUNT_FEN`]) to an account.
///
/// A `reference` names one payment. Given again for the same account and amount, it is that
/// payment retried (a payment callback delivered twice), and nothing is credited again. Given
/// for another account or another amount, it is a different payment under a name already
/// taken: a conflict, refused, since crediting it or ignoring it would both be wrong.
pub async fn recharge<S: Store>(
    store: &S,
    ctx: &Ctx,
    id: &str,
    amount: &str,
    reference: Option<&str>,
) -> anyhow::Result<Recharged> {
    check_account_id(id).map_err(|e| input_error(format!("account: {e}")))?;
    if let Some(reference) = reference {
        check_id("reference", reference).map_err(input_error)?;
    }
    let value = parse_cny(amount).map_err(|e| input_error(format!("amount: {e}")))?;
    let fen = to_fen(value).filter(|fen| *fen <= MAX_AMOUNT_FEN).ok_or_else(|| {
        input_error(format!(
            "amount: '{amount}' is more than {}, the largest recharge billrun takes",
            format_money(from_fen(MAX_AMOUNT_FEN))
        ))
    })?;
    if fen <= 0 {
        return Err(input_error(format!("amount: '{amount}' must be greater than zero")));
    }
    match store.recharge(id, fen, ctx.now, reference).await? {
        RechargeOutcome::Credited { balance_fen, restored } => Ok(Recharged::Credited { balance_fen, restored }),
        RechargeOutcome::Overflow { balance_fen } => Err(input_error(format!(
            "crediting {} to '{}' would take its balance of {} beyond {}, the largest billrun keeps; nothing changed",
            format_money(value),
            shown(id),
            format_money(from_fen(balance_fen)),
            format_money(from_fen(i64::MAX))
        ))),
        RechargeOutcome::ReferenceUsed(used) if used.account_id == id && used.amount_fen == fen => {
            Ok(Recharged::AlreadyApplied {
                balance_fen: used.balance_fen,
            })
        }
        RechargeOutcome::ReferenceUsed(used) => Err(input_error(format!(
            "reference '{}' already names another payment: {} to '{}' at {}; this one ({} to '{}') was not applied. \
             A reference names one payment: give this one its own",
            shown(reference.unwrap_or_default()),
            format_money(from_fen(used.amount_fen)),
            shown(&used.account_id),
            ctx.local(used.at),
            format_money(value),
            shown(id)
        ))),
    }
}

//! Accounts: import with opening balances, activation, recharge.

use super::{open_input, Ctx};
use crate::domain::money::{parse_cny, to_fen};
use crate::error::{input_error, RejectedFile};
use crate::input::accounts as file;
use crate::store::{ActivateOutcome, RechargeOutcome, Store};
use std::path::Path;

/// Imports an accounts file whole, or rejects it whole. Returns how many were added.
pub async fn import<S: Store>(store: &S, ctx: &Ctx, path: &Path) -> anyhow::Result<u64> {
    let rejected = |problems| {
        anyhow::Error::new(RejectedFile {
            file: path.display().to_string(),
            problems,
        })
    };
    let rows = file::read(open_input(path)?).map_err(rejected)?;
    let grant = ctx.free_grant(ctx.current_month())?;
    store.import_accounts(&rows, &grant, ctx.now).await?.map_err(rejected)
}

/// Opens an account's service at `--now`, with the current month's whole free pack.
pub async fn activate<S: Store>(store: &S, ctx: &Ctx, id: &str) -> anyhow::Result<ActivateOutcome> {
    let grant = ctx.free_grant(ctx.current_month())?;
    match store.activate(id, ctx.now, &grant).await? {
        ActivateOutcome::NotFound => Err(input_error(format!("unknown account '{id}'"))),
        other => Ok(other),
    }
}

/// Credits `amount` (CNY, > 0, whole fen) to an account.
pub async fn recharge<S: Store>(
    store: &S,
    ctx: &Ctx,
    id: &str,
    amount: &str,
    reference: Option<&str>,
) -> anyhow::Result<RechargeOutcome> {
    let value = parse_cny(amount).map_err(|e| input_error(format!("amount: {e}")))?;
    let fen = to_fen(value).ok_or_else(|| input_error(format!("amount: '{amount}' is out of range")))?;
    if fen <= 0 {
        return Err(input_error(format!("amount: '{amount}' must be greater than zero")));
    }
    match store.recharge(id, fen, ctx.now, reference).await? {
        RechargeOutcome::NotFound => Err(input_error(format!("unknown account '{id}'"))),
        other => Ok(other),
    }
}

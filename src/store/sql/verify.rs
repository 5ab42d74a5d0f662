//! The checks `billrun verify` makes on the books, as SQL both backends run. Each query returns
//! one text row per breach, naming it. The arithmetic of each bill (exact lines, rounding,
//! total) is checked in Rust, by `jobs::verify`, since SQLite keeps exact amounts as text.
//!
//! `{m}` stands for the month parameter (NULL: every month); `{c}` is the current-revision test
//! for a bill `b`.

/// One of the checks, as the port names it: the jobs say which, the backend runs its SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookCheck(usize);

impl BookCheck {
    /// Every check, in the order `verify` reports them.
    pub fn all() -> impl Iterator<Item = BookCheck> {
        (0..checks("").len()).map(BookCheck)
    }

    /// What the check makes sure of, in a sentence.
    pub fn what(self) -> &'static str {
        checks("")[self.0].0
    }

    /// The check's query, with the month parameter written as the backend writes it (`?1`
    /// for SQLite, `$1::text` for PostgreSQL).
    pub fn sql(self, param: &str) -> String {
        checks(param).swap_remove(self.0).1
    }
}

/// What bill `b` asks for: its total less its credits, never below zero.
fn due(b: &str) -> String {
    format!("(CASE WHEN {b}.total_fen > {b}.credited_fen THEN {b}.total_fen - {b}.credited_fen ELSE 0 END)")
}

/// (what is checked, query) pairs.
fn checks(param: &str) -> Vec<(&'static str, String)> {
    // A bill is current when no later revision of its account and month exists. Written as
    // `NOT EXISTS`, which PostgreSQL plans as an anti-join, rather than as `revision = (SELECT
    // MAX(…))`, a filter it guesses keeps one bill in two hundred: a guess that small made it
    // join the other side of a check to the "few" current bills by a nested loop, comparing
    // every pair (measured at 100,000 accounts: 35 to 42 s on Citus, more than ten minutes on
    // PostgreSQL; a time that grows with the square of the accounts).
    let current = "NOT EXISTS (SELECT 1 FROM bills b2 WHERE b2.account_id = b.account_id AND b2.month = b.month AND b2.revision > b.revision)";
    let m = |sql: &str| {
        sql.replace("{m}", param)
            .replace("{c}", current)
            .replace("{due_b}", &due("b"))
            .replace("{due_p}", &due("p"))
    };
    vec![
        (
            "each account's balance equals the sum of its ledger entries",
            m("SELECT 'account ' || a.account_id || ': balance ' || a.balance_fen || ' fen, ledger sum '
                      || COALESCE(SUM(l.amount_fen), 0) || ' fen'
               FROM accounts a LEFT JOIN ledger l ON l.account_id = a.account_id
               GROUP BY a.account_id, a.balance_fen HAVING a.balance_fen <> COALESCE(SUM(l.amount_fen), 0)"),
        ),
        (
            "at most one original bill per account and month",
            m("SELECT 'account ' || account_id || ', ' || month || ': ' || COUNT(*) || ' original bills'
               FROM bills WHERE kind = 'original' AND ({m} IS NULL OR month = {m})
               GROUP BY account_id, month HAVING COUNT(*) > 1"),
        ),
        (
            "revisions are numbered 1, 2, 3… without gaps, revision 1 the original",
            m("SELECT 'account ' || account_id || ', ' || month || ': revisions ' || MIN(revision) || '-' || MAX(revision)
                      || ' in ' || COUNT(*) || ' bills'
               FROM bills WHERE ({m} IS NULL OR month = {m})
               GROUP BY account_id, month
               HAVING MIN(revision) <> 1 OR MAX(revision) <> COUNT(*)
                   OR SUM(CASE WHEN (revision = 1) <> (kind = 'original') THEN 1 ELSE 0 END) > 0"),
        ),
        (
            "every revision is debited or credited exactly once, by what it moved",
            m("SELECT 'bill ' || b.bill_id || ': ' || COUNT(l.entry_id) || ' ledger entries, '
                      || COALESCE(SUM(l.amount_fen), 0) || ' fen, for a bill that moved ' || b.debited_fen || ' fen'
               FROM bills b LEFT JOIN ledger l ON l.account_id = b.account_id AND l.bill_id = b.bill_id
               WHERE ({m} IS NULL OR b.month = {m})
               GROUP BY b.account_id, b.bill_id, b.debited_fen
               HAVING COUNT(l.entry_id) <> 1 OR COALESCE(SUM(l.amount_fen), 0) <> -b.debited_fen"),
        ),
        (
            "ledger entries name only bills that exist",
            m("SELECT 'ledger entry ' || l.entry_id || ' names bill ' || l.bill_id || ', which does not exist'
               FROM ledger l WHERE l.bill_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bills b WHERE b.account_id = l.account_id AND b.bill_id = l.bill_id)"),
        ),
        (
            "each revision moves what it should: an original its total, an adjustment the difference in \
             what is due, a credit no more than was due; only a credit changes a bill's credits",
            // What a revision asks for is its total less the bill's credits, never below zero
            // (`domain::settle::amount_due`).
            m("SELECT 'bill ' || b.bill_id || ' (' || b.kind || '): moved ' || b.debited_fen || ' fen; total '
                      || COALESCE(p.total_fen, 0) || ' -> ' || b.total_fen || ' fen, credits '
                      || COALESCE(p.credited_fen, 0) || ' -> ' || b.credited_fen || ' fen'
               FROM bills b LEFT JOIN bills p
                 ON p.account_id = b.account_id AND p.month = b.month AND p.revision = b.revision - 1
               WHERE ({m} IS NULL OR b.month = {m}) AND CASE WHEN b.kind = 'credit'
                 THEN p.bill_id IS NULL OR b.debited_fen >= 0 OR b.total_fen <> p.total_fen
                      OR b.credited_fen <> p.credited_fen - b.debited_fen OR -b.debited_fen > {due_p}
                 ELSE b.credited_fen <> COALESCE(p.credited_fen, 0)
                      OR b.debited_fen <> {due_b} - COALESCE({due_p}, 0) END"),
        ),
        (
            "every event an account has belongs to an import that was recorded and not retracted",
            // Each import checked once, not each of its events: the events are counted per
            // import in the same pass that finds the imports (a join, which Citus runs on the
            // shards of `usage_events` against its copy of `usage_imports`).
            m("SELECT d.n || ' events (the first from line ' || d.first_line || ')'
                      || ' name import ' || d.import_id
                      || CASE WHEN i.import_id IS NULL THEN ', which does not exist'
                              ELSE ', which was retracted' END
               FROM (SELECT import_id, COUNT(*) AS n, MIN(source_line) AS first_line FROM usage_events
                     GROUP BY import_id) d
               LEFT JOIN usage_imports i ON i.import_id = d.import_id
               WHERE i.import_id IS NULL OR i.retracted_at IS NOT NULL OR i.retracts IS NOT NULL"),
        ),
        (
            "every bill line and pack use belongs to a bill that exists, and every pack use to a pack",
            // A line or pack use names its bill's account (`account_id`): one of another
            // account is reported as having no bill.
            m("SELECT 'bill line ' || l.bill_id || ' ' || l.api || ': no such bill of account ' || l.account_id
               FROM bill_lines l
               WHERE NOT EXISTS (SELECT 1 FROM bills b WHERE b.account_id = l.account_id AND b.bill_id = l.bill_id)
               UNION ALL
               SELECT 'pack use of bill ' || c.bill_id || ': no such bill of account ' || c.account_id
               FROM pack_consumption c
               WHERE NOT EXISTS (SELECT 1 FROM bills b WHERE b.account_id = c.account_id AND b.bill_id = c.bill_id)
               UNION ALL
               SELECT 'pack use of bill ' || c.bill_id || ': no pack ' || c.pack_id || ' of account ' || c.account_id
               FROM pack_consumption c
               WHERE NOT EXISTS (SELECT 1 FROM all_packs p WHERE p.account_id = c.account_id AND p.pack_id = c.pack_id)"),
        ),
        (
            "each pack's remainder is its size minus what current bills took from it",
            // The packs and their uses by current bills side by side, grouped by pack, as in
            // the usage check: an outer join of the packs to the totalled uses was planned, once
            // the tables had statistics, as a nested loop over every pair of the two.
            // A use of a pack that does not exist is the check above's breach, not this one's.
            m("SELECT 'pack ' || pack_id || ': ' || SUM(remaining) || ' remaining, but ' || SUM(calls) || ' - '
                      || SUM(used) || ' used by current bills'
               FROM (SELECT account_id, pack_id, 1 AS packs, remaining, calls, 0 AS used FROM packs
                     UNION ALL
                     SELECT c.account_id, c.pack_id, 0 AS packs, 0 AS remaining, 0 AS calls, c.calls AS used
                     FROM pack_consumption c JOIN bills b ON b.account_id = c.account_id AND b.bill_id = c.bill_id
                     WHERE {c}) AS side_by_side
               GROUP BY account_id, pack_id
               HAVING SUM(packs) = 1 AND SUM(remaining) <> SUM(calls) - SUM(used)"),
        ),
        (
            "each bill's pack use adds up to what its lines took from stored packs",
            // The prepaid calls of its lines, and their free calls where the month's free pack
            // is a stored one; what a bill takes from a free pack that follows from the grant is
            // its line's free calls, with no pack use.
            m("SELECT 'bill ' || bill_id || ': its lines took ' || SUM(taken) || ' calls from stored packs, its pack use '
                      || SUM(used)
               FROM (SELECT l.account_id, l.bill_id,
                            l.prepaid_calls + CASE WHEN EXISTS (
                                SELECT 1 FROM bills b JOIN packs p ON p.account_id = b.account_id AND p.month = b.month
                                WHERE b.account_id = l.account_id AND b.bill_id = l.bill_id
                                  AND p.kind = 'free' AND p.api = l.api) THEN l.free_calls ELSE 0 END AS taken,
                            0 AS used
                     FROM bill_lines l
                     UNION ALL
                     SELECT c.account_id, c.bill_id, 0 AS taken, c.calls AS used FROM pack_consumption c) AS side_by_side
               GROUP BY account_id, bill_id
               HAVING SUM(taken) <> SUM(used)"),
        ),
        (
            "no free pack that follows from a grant gave more than its size",
            m("SELECT 'pack ' || pack_id || ': ' || calls || ' calls, of which the current bill took '
                      || (calls - remaining)
               FROM free_packs WHERE ({m} IS NULL OR month = {m}) AND remaining < 0"),
        ),
    ]
}

/// Breaches listed per check at most; the rest are counted.
pub const MAX_PER_CHECK: usize = 50;

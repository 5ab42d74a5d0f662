-- A month's free packs are no longer stored as a row per account, API and month: they follow
-- from the month's grant (`free_grants`: its window and the calls per API) and each account's
-- opening. An account opened before the month ended has the month's free pack of every API
-- the grant names, with the id 'free:<month>:<api>:<account>'; what is left of it is its
-- size less what the current revision of the month's bill took from it (`pack_consumption`).
-- The view `free_packs` lays them out as rows of `packs`; `all_packs` is both kinds.
--
-- A free pack stored before this migration that is exactly what the grant gives (same window,
-- same calls, an account opened in time, and a remainder equal to its size less its use) is
-- removed; any other stays stored and keeps being used as it is, and the grant gives no pack
-- where an account has a stored one of the same API and month.
ALTER TABLE free_grants ADD COLUMN period_start INTEGER;
UPDATE free_grants SET period_start =
    (SELECT MIN(p.valid_from) FROM packs p WHERE p.kind = 'free' AND p.month = free_grants.month);

-- Pack use names packs that are no longer rows: its foreign key to `packs` goes.
CREATE TABLE pack_consumption_new (
    bill_id    TEXT NOT NULL REFERENCES bills (bill_id),
    pack_id    TEXT NOT NULL,
    calls      INTEGER NOT NULL CHECK (calls > 0),
    account_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (bill_id, pack_id)
) WITHOUT ROWID;
INSERT INTO pack_consumption_new (bill_id, pack_id, calls, account_id)
    SELECT bill_id, pack_id, calls, account_id FROM pack_consumption;
DROP TABLE pack_consumption;
ALTER TABLE pack_consumption_new RENAME TO pack_consumption;

-- What the current revision of each account's bill of a month took from each pack.
CREATE VIEW current_pack_use AS
    SELECT c.account_id, c.pack_id, b.month, SUM(c.calls) AS calls
    FROM pack_consumption c JOIN bills b ON b.account_id = c.account_id AND b.bill_id = c.bill_id
    WHERE NOT EXISTS (SELECT 1 FROM bills b2
                      WHERE b2.account_id = b.account_id AND b2.month = b.month AND b2.revision > b.revision)
    GROUP BY c.account_id, c.pack_id, b.month;

CREATE VIEW free_packs AS
    SELECT 'free:' || g.month || ':' || f.key || ':' || a.account_id AS pack_id, 'free' AS kind, a.account_id,
           f.key AS api, f.value AS calls,
           f.value - COALESCE((SELECT u.calls FROM current_pack_use u
                               WHERE u.account_id = a.account_id AND u.month = g.month
                                 AND u.pack_id = 'free:' || g.month || ':' || f.key || ':' || a.account_id), 0)
               AS remaining,
           g.period_start AS valid_from, g.period_end AS valid_until, g.period_start AS purchased_at, g.month
    FROM free_grants g JOIN json_each(g.apis) f JOIN accounts a ON a.activated_at < g.period_end
    WHERE g.period_start IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM packs p WHERE p.account_id = a.account_id AND p.api = f.key AND p.month = g.month);

DELETE FROM packs WHERE kind = 'free' AND pack_id IN (
    SELECT p.pack_id FROM packs p
    JOIN free_grants g ON g.month = p.month
    JOIN json_each(g.apis) f ON f.key = p.api AND f.value = p.calls
    JOIN accounts a ON a.account_id = p.account_id AND a.activated_at < g.period_end
    WHERE p.kind = 'free' AND p.pack_id = 'free:' || g.month || ':' || f.key || ':' || a.account_id
      AND p.valid_from = g.period_start AND p.valid_until = g.period_end AND p.purchased_at = p.valid_from
      AND p.remaining = p.calls - COALESCE((SELECT u.calls FROM current_pack_use u
                                            WHERE u.account_id = p.account_id AND u.pack_id = p.pack_id), 0));

CREATE VIEW all_packs AS
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM packs
    UNION ALL
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM free_packs;

-- (account_id, api) is the start of the (account_id, api, month) key's index.
DROP INDEX packs_account;

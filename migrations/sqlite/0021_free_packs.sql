-- A month's free packs are no longer stored as a row per account, API and month: they follow
-- from the month's grant (`free_grants`: its window and the calls per API) and each account's
-- opening. An account opened before the month ended has the month's free pack of every API
-- the grant names, with the id 'free:<month>:<api>:<account>'. What a bill takes from it is
-- the free calls of the bill's line for the API, not a row of `pack_consumption`; what is left
-- of it is its size less the free calls of the current revision of the month's bill. The view
-- `free_packs` lays them out as rows of `packs`; `all_packs` is both kinds.
--
-- A free pack stored before this migration that is exactly what the grant gives (same window,
-- same calls, an account opened in time, and a remainder equal to its size less its use) is
-- removed, with the pack use that named it; any other stays stored and keeps being used as it
-- is (with pack use), and the grant gives no pack where an account has a stored one of the same
-- API and month.
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

-- The free calls of the current revision of each account's bill of a month, per API: what it
-- took from the month's free pack of that API.
CREATE VIEW current_free_use AS
    SELECT l.account_id, b.month, l.api, l.free_calls AS calls
    FROM bill_lines l JOIN bills b ON b.account_id = l.account_id AND b.bill_id = l.bill_id
    WHERE NOT EXISTS (SELECT 1 FROM bills b2
                      WHERE b2.account_id = b.account_id AND b2.month = b.month AND b2.revision > b.revision);

CREATE VIEW free_packs AS
    SELECT 'free:' || g.month || ':' || f.key || ':' || a.account_id AS pack_id, 'free' AS kind, a.account_id,
           f.key AS api, f.value AS calls,
           f.value - COALESCE((SELECT u.calls FROM current_free_use u
                               WHERE u.account_id = a.account_id AND u.month = g.month AND u.api = f.key), 0)
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
      AND p.remaining = p.calls - COALESCE((SELECT u.calls FROM current_free_use u
                                            WHERE u.account_id = p.account_id AND u.month = p.month AND u.api = p.api), 0));
DELETE FROM pack_consumption WHERE pack_id LIKE 'free:%'
    AND NOT EXISTS (SELECT 1 FROM packs p WHERE p.account_id = pack_consumption.account_id AND p.pack_id = pack_consumption.pack_id);

CREATE VIEW all_packs AS
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM packs
    UNION ALL
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM free_packs;

-- (account_id, api) is the start of the (account_id, api, month) key's index.
DROP INDEX packs_account;

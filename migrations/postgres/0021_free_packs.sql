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
-- API and month. (Kept in step with
-- migrations/sqlite/0021, which also drops the pack foreign key of pack use and an index
-- PostgreSQL dropped in 0005.)
-- A grant's start is its stored packs' start. (An upsert rather than an UPDATE: Citus updates
-- a reference table only from reference tables, but inserts into one from any query.)
ALTER TABLE free_grants ADD COLUMN period_start timestamptz;
INSERT INTO free_grants (month, period_end, apis, accounts, period_start)
    SELECT g.month, g.period_end, g.apis, g.accounts, s.start
    FROM free_grants g
    JOIN (SELECT month, MIN(valid_from) AS start FROM packs WHERE kind = 'free' GROUP BY month) s ON s.month = g.month
    ON CONFLICT (month) DO UPDATE SET period_start = excluded.period_start;

-- The free calls of the current revision of each account's bill of a month, per API: what it
-- took from the month's free pack of that API.
CREATE VIEW current_free_use AS
    SELECT l.account_id, b.month, l.api, l.free_calls AS calls
    FROM bill_lines l JOIN bills b ON b.account_id = l.account_id AND b.bill_id = l.bill_id
    WHERE NOT EXISTS (SELECT 1 FROM bills b2
                      WHERE b2.account_id = b.account_id AND b2.month = b.month AND b2.revision > b.revision);

CREATE VIEW free_packs AS
    SELECT 'free:' || g.month || ':' || f.key || ':' || a.account_id AS pack_id, 'free'::text AS kind, a.account_id,
           f.key AS api, f.value::bigint AS calls,
           f.value::bigint - COALESCE(u.calls, 0)::bigint AS remaining,
           g.period_start AS valid_from, g.period_end AS valid_until, g.period_start AS purchased_at, g.month
    FROM free_grants g CROSS JOIN LATERAL jsonb_each_text(g.apis::jsonb) f
    JOIN accounts a ON a.activated_at < g.period_end
    LEFT JOIN current_free_use u ON u.account_id = a.account_id AND u.month = g.month AND u.api = f.key
    WHERE g.period_start IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM packs p WHERE p.account_id = a.account_id AND p.api = f.key AND p.month = g.month);

DELETE FROM packs p USING free_grants g, jsonb_each_text(g.apis::jsonb) f, accounts a
    WHERE p.kind = 'free' AND g.month = p.month AND f.key = p.api AND f.value::bigint = p.calls
      AND a.account_id = p.account_id AND a.activated_at < g.period_end
      AND p.pack_id = 'free:' || g.month || ':' || f.key || ':' || a.account_id
      AND p.valid_from = g.period_start AND p.valid_until = g.period_end AND p.purchased_at = p.valid_from
      AND p.remaining = p.calls - COALESCE((SELECT u.calls FROM current_free_use u
                                            WHERE u.account_id = p.account_id AND u.month = p.month AND u.api = p.api), 0);
DELETE FROM pack_consumption c WHERE c.pack_id LIKE 'free:%'
    AND NOT EXISTS (SELECT 1 FROM packs p WHERE p.account_id = c.account_id AND p.pack_id = c.pack_id);

CREATE VIEW all_packs AS
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM packs
    UNION ALL
    SELECT pack_id, kind, account_id, api, calls, remaining, valid_from, valid_until, purchased_at, month FROM free_packs;

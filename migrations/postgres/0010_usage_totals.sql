-- The month's calls per account and API, kept up to date by every usage import in the
-- transaction that adds its rows, so that a settle reads one row per account and API instead
-- of aggregating every usage row of the month. The raw rows stay, append-only, as the audit
-- trail; `billrun verify` recomputes the totals from them.
--
-- Months are those of one billing time zone, recorded in settings as 'usage_totals_zone'.
-- Until it is set (a database from before this migration, or a new one), the first import or
-- settle builds the totals from the raw rows; an import or settle in another zone builds them
-- again for its own. The key includes account_id, so it holds on a database distributed by
-- account. Text keys sort in byte order (COLLATE "C"), as in SQLite: settle reads them in that
-- order.
CREATE TABLE usage_totals (
    month      text COLLATE "C" NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    api        text COLLATE "C" NOT NULL,
    calls      bigint NOT NULL CHECK (calls > 0),
    PRIMARY KEY (month, account_id, api)
);
